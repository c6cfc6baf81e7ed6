//! The FTP login: which user, and its password, decided once at start-up
//! (while standard input and the terminal are still ours) and reused by
//! every reconnect.
//!
//! User: from the URL, else the `login` of a matching `~/.netrc` entry, else
//! `anonymous`. Password, first found: one line of standard input
//! (`-o password_stdin`), `$RMOUNT_PASSWORD`, the netrc entry, the usual
//! e-mail-style placeholder for anonymous logins, a terminal prompt when
//! standard input is a terminal. The password never appears in `Debug`
//! output or logs.

use std::fmt;
use std::path::Path;

use crate::remote::netrc;
use crate::remote::secrets::{
    env_secret, prompt_secret, read_stdin_line, stdin_is_tty, Secret, PASSWORD_ENV,
};

/// What anonymous logins send as password (by convention an e-mail address).
const ANONYMOUS_PASSWORD: &str = "rmount@";

/// Where the password came from, to explain a refused login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSource {
    Stdin,
    Env,
    Netrc,
    Anonymous,
    Terminal,
    /// Nothing was available; an empty password is sent.
    None,
}

pub struct Login {
    pub user: String,
    /// The one copy kept for reconnects; zeroed when the login is dropped.
    password: Secret,
    pub source: PasswordSource,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Resolves user and password (see the module comment). `netrc_file`:
    /// the netrc to consult, if any.
    pub fn resolve(
        url_user: Option<&str>,
        host: &str,
        password_stdin: bool,
        netrc_file: Option<&Path>,
    ) -> Login {
        let env = env_password();
        // The netrc is read only when it can tell something still unknown.
        let needs_netrc = url_user.is_none() || (!password_stdin && env.is_none());
        let entry = netrc_file
            .filter(|_| needs_netrc)
            .and_then(|p| netrc::lookup(p, host, url_user));
        let user = url_user
            .map(str::to_string)
            .or_else(|| entry.as_ref().and_then(|e| e.login.clone()))
            .unwrap_or_else(|| "anonymous".to_string());
        let anonymous = user == "anonymous" || user == "ftp";
        let netrc_password = entry.and_then(|e| e.password);
        let (password, source) = if password_stdin {
            match read_stdin_line() {
                Some(p) => (p, PasswordSource::Stdin),
                None => (Secret::from(""), PasswordSource::None),
            }
        } else if let Some(p) = env {
            (p, PasswordSource::Env)
        } else if let Some(p) = netrc_password {
            (p, PasswordSource::Netrc)
        } else if anonymous {
            (Secret::from(ANONYMOUS_PASSWORD), PasswordSource::Anonymous)
        } else if stdin_is_tty() {
            match prompt_secret(&format!("{user}@{host}'s FTP password: ")) {
                Some(p) => (p, PasswordSource::Terminal),
                None => (Secret::from(""), PasswordSource::None),
            }
        } else {
            (Secret::from(""), PasswordSource::None)
        };
        Login {
            user,
            password,
            source,
        }
    }

    /// A login with a known password.
    #[cfg(test)]
    pub fn with_password(user: &str, password: &str) -> Login {
        Login {
            user: user.to_string(),
            password: Secret::from(password),
            source: PasswordSource::Env,
        }
    }

    pub fn password(&self) -> &str {
        self.password.expose()
    }

    /// A hint to add to a "login failed" message.
    pub fn hint(&self) -> &'static str {
        match self.source {
            PasswordSource::None => {
                " (no password given: use -o password_stdin, RMOUNT_PASSWORD, ~/.netrc or a terminal)"
            }
            PasswordSource::Stdin => " (password from standard input)",
            PasswordSource::Env => " (password from RMOUNT_PASSWORD)",
            PasswordSource::Netrc => " (password from .netrc)",
            PasswordSource::Anonymous | PasswordSource::Terminal => "",
        }
    }
}

fn env_password() -> Option<Secret> {
    env_secret(PASSWORD_ENV)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let login = Login::with_password("alice", "hunter2");
        let text = format!("{login:?}");
        assert!(
            text.contains("alice") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn netrc_supplies_user_and_password() {
        // Environment variables are process-wide: this test only runs the
        // netrc path when RMOUNT_PASSWORD is unset.
        if std::env::var_os(PASSWORD_ENV).is_some() {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("netrc");
        std::fs::write(&path, "machine ftp.example login bob password pw\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let login = Login::resolve(None, "ftp.example", false, Some(&path));
        assert_eq!((login.user.as_str(), login.password()), ("bob", "pw"));
        assert_eq!(login.source, PasswordSource::Netrc);
        // A URL user that the netrc does not know gets no netrc password.
        let other = Login::resolve(Some("carol"), "ftp.example", false, Some(&path));
        assert_eq!(other.user, "carol");
        assert_ne!(other.source, PasswordSource::Netrc);
    }

    #[test]
    fn anonymous_without_sources_gets_the_placeholder() {
        if std::env::var_os(PASSWORD_ENV).is_some() {
            return;
        }
        let login = Login::resolve(None, "h", false, None);
        assert_eq!(login.user, "anonymous");
        assert_eq!(login.password(), ANONYMOUS_PASSWORD);
    }
}
