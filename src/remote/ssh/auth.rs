//! Authenticating the user on an SSH session, as ssh does: identity files
//! if given (else the agent, then the default key files), then password or
//! keyboard-interactive unless the host key check forbade sending one.
//!
//! Secrets come from `credentials` and go only to the server; the failure
//! message names what was tried, never a secret.

use std::ffi::CStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use libssh2_sys as raw;
use ssh2::{KeyboardInteractivePrompt, Prompt, Session};

use super::credentials::{Credentials, Source};
use super::errors::{is_fatal, is_timeout, session_code};
use super::home::home_dir;
use super::host_key::{blob_key_type, PasswordUse};
use super::{IdentityAgent, SshSettings};
use crate::remote::secrets::PASSPHRASE_ENV;
use crate::remote::text::printable;
use crate::remote::Error;

/// Key files tried when no identity file is given, in this order (in `~/.ssh`).
const DEFAULT_KEY_FILES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];
/// How often a wrong password or passphrase typed on the terminal is asked again.
const PROMPT_ATTEMPTS: usize = 3;

/// Methods actually attempted, for the failure message.
#[derive(Default)]
struct Tried(Vec<&'static str>);

impl Tried {
    fn add(&mut self, m: &'static str) {
        if !self.0.contains(&m) {
            self.0.push(m);
        }
    }
}

impl fmt::Display for Tried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&self.0.join(", "))
        }
    }
}

/// How the authentication stage failed on a broken or slow connection.
fn auth_error(e: &ssh2::Error, who: &str, tried: &Tried) -> Error {
    tracing::debug!("authentication of {who}: {e}");
    if is_timeout(e) {
        Error::TimedOut
    } else {
        Error::Transport(format!(
            "the server closed the connection while authenticating {who} (tried: {tried}; too \
             many failed attempts?): {}",
            e.message()
        ))
    }
}

/// The authentication methods the server offers (`None`: the "none" method
/// already succeeded), control characters escaped as they are shown in
/// messages. Goes to libssh2 directly because ssh2's
/// `auth_methods` panics on a list that is not UTF-8.
fn auth_methods(sess: &Session, user: &str) -> Result<Option<String>, ssh2::Error> {
    let len = libc::c_uint::try_from(user.len()).unwrap_or(libc::c_uint::MAX);
    let list = {
        let mut raw = sess.raw();
        // SAFETY: the session pointer is valid while `raw` holds its lock;
        // libssh2 reads `len` bytes of `user`; the returned string is owned
        // by the session and copied before the lock is released.
        unsafe {
            let p = raw::libssh2_userauth_list(&mut *raw, user.as_ptr().cast(), len);
            if p.is_null() {
                None
            } else {
                Some(printable(CStr::from_ptr(p).to_bytes()))
            }
        }
    };
    match list {
        Some(l) => Ok(Some(l)),
        None if sess.authenticated() => Ok(None),
        None => Err(ssh2::Error::last_session_error(sess).unwrap_or_else(ssh2::Error::unknown)),
    }
}

pub(super) fn authenticate(
    sess: &Session,
    s: &SshSettings,
    creds: &Credentials,
    passwords: PasswordUse,
) -> Result<(), Error> {
    let who = format!("{}@{}", s.user, s.host);
    let mut tried = Tried::default();
    let methods = match auth_methods(sess, &s.user) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(()),
        Err(e) => return Err(auth_error(&e, &who, &tried)),
    };
    tracing::debug!("server offers authentication methods: {methods}");
    let offers = |m: &str| methods.split(',').any(|x| x == m);

    if offers("publickey")
        && try_public_keys(sess, s, creds, &mut tried).map_err(|e| auth_error(&e, &who, &tried))?
    {
        return Ok(());
    }

    let mut no_password = false;
    let password_offered = offers("password") || offers("keyboard-interactive");
    if password_offered && passwords == PasswordUse::Allowed {
        match try_password(sess, s, creds, &offers, &mut tried) {
            Ok(Some(true)) => return Ok(()),
            Ok(Some(false)) => {}
            Ok(None) => no_password = true,
            Err(e) => return Err(auth_error(&e, &who, &tried)),
        }
    }

    let mut msg = format!("authentication failed for {who} (tried: {tried})");
    if tried.0.is_empty() {
        msg.push_str(&format!("; the server accepts: {methods}"));
    }
    if password_offered && passwords == PasswordUse::DisabledChangedKey {
        msg.push_str(
            "; password and keyboard-interactive authentication are disabled because the host \
             key does not match known_hosts (possible man-in-the-middle attack)",
        );
    }
    if no_password {
        msg.push_str(if creds.password_stdin() {
            "; no password on standard input"
        } else {
            "; no password available: standard input is not a terminal (use -o password_stdin \
             or set RMOUNT_PASSWORD)"
        });
    }
    Err(Error::Setup(msg))
}

/// As ssh: the identity files given, then (unless `IdentitiesOnly`) the
/// agent; with no identity file given, the agent and then the default key
/// files.
fn try_public_keys(
    sess: &Session,
    s: &SshSettings,
    creds: &Credentials,
    tried: &mut Tried,
) -> Result<bool, ssh2::Error> {
    if !s.identity_files.is_empty() {
        for key in &s.identity_files {
            if try_key_file(sess, &s.user, creds, key, true, tried)? {
                return Ok(true);
            }
        }
        return if s.options.identities_only {
            Ok(false)
        } else {
            try_agent(sess, s, tried)
        };
    }
    if !s.options.identities_only && try_agent(sess, s, tried)? {
        return Ok(true);
    }
    let Some(home) = home_dir() else {
        return Ok(false);
    };
    for name in DEFAULT_KEY_FILES {
        let key = home.join(".ssh").join(name);
        if key.is_file() && try_key_file(sess, &s.user, creds, &key, false, tried)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every identity of a running ssh-agent (`IdentityAgent`, else
/// `SSH_AUTH_SOCK`). Agent trouble is not an error.
fn try_agent(sess: &Session, s: &SshSettings, tried: &mut Tried) -> Result<bool, ssh2::Error> {
    let user = s.user.as_str();
    let socket = match &s.options.identity_agent {
        IdentityAgent::None => return Ok(false),
        IdentityAgent::Environment if std::env::var_os("SSH_AUTH_SOCK").is_none() => {
            return Ok(false)
        }
        IdentityAgent::Environment => None,
        IdentityAgent::Socket(path) => Some(path),
    };
    let mut agent = match sess.agent() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("ssh-agent: {e}");
            return Ok(false);
        }
    };
    if let Some(path) = socket {
        if let Err(e) = agent.set_identity_path(path) {
            tracing::debug!("ssh-agent: cannot use {}: {e}", path.display());
            return Ok(false);
        }
    }
    if let Err(e) = agent.connect() {
        tracing::debug!("ssh-agent: cannot connect: {e}");
        return Ok(false);
    }
    let ids = match agent.list_identities().and_then(|()| agent.identities()) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::debug!("ssh-agent: cannot list keys: {e}");
            Vec::new()
        }
    };
    let mut result = Ok(false);
    for id in &ids {
        tried.add("publickey");
        match agent.userauth(user, id) {
            Ok(()) => {
                tracing::debug!("authenticated with agent key {}", id.comment());
                result = Ok(true);
                break;
            }
            Err(e) if is_fatal(&e) => {
                result = Err(e);
                break;
            }
            Err(e) => tracing::debug!("agent key {} refused: {e}", id.comment()),
        }
    }
    let _ = agent.disconnect();
    result
}

fn path_with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Whether the libssh2 error after offering a key with a passphrase means
/// the private key could not be used (wrong passphrase), as opposed to the
/// server refusing the key.
fn is_key_unusable(e: &ssh2::Error) -> bool {
    matches!(
        session_code(e),
        Some(
            raw::LIBSSH2_ERROR_FILE
                | raw::LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
                | raw::LIBSSH2_ERROR_KEYFILE_AUTH_FAILED
        )
    )
}

fn try_key_file(
    sess: &Session,
    user: &str,
    creds: &Credentials,
    key: &Path,
    explicit: bool,
    tried: &mut Tried,
) -> Result<bool, ssh2::Error> {
    let text = match fs::read(key) {
        Ok(t) => t,
        Err(e) => {
            if explicit {
                tracing::warn!("identity file {}: {e}", key.display());
            }
            return Ok(false);
        }
    };
    let pub_path = path_with_suffix(key, ".pub");
    let pubkey = pub_path.is_file().then_some(pub_path.as_path());
    tried.add("publickey");

    if !private_key_is_encrypted(&text) {
        return match sess.userauth_pubkey_file(user, pubkey, key, None) {
            Ok(()) => {
                tracing::debug!("authenticated with {}", key.display());
                Ok(true)
            }
            Err(e) if is_fatal(&e) => Err(e),
            Err(e) => {
                tracing::debug!("key {} not accepted: {e}", key.display());
                Ok(false)
            }
        };
    }

    // Encrypted key. With its public half at hand, ask the server first
    // whether it would accept the key at all (libssh2 offers the public key
    // before it needs the private one), so that no passphrase is asked for
    // a key the server refuses.
    let have_cached = creds.has_passphrase(key);
    if pubkey.is_some() && !have_cached {
        match sess.userauth_pubkey_file(user, pubkey, key, None) {
            Ok(()) => return Ok(true),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if !is_key_unusable(&e) => {
                tracing::debug!("key {} not accepted: {e}", key.display());
                return Ok(false);
            }
            Err(_) => {} // accepted; the private key needs its passphrase
        }
    }
    for _ in 0..PROMPT_ATTEMPTS {
        let Some((passphrase, source)) = creds.passphrase(key) else {
            tracing::debug!("no passphrase available for {}", key.display());
            return Ok(false);
        };
        match sess.userauth_pubkey_file(user, pubkey, key, Some(passphrase.expose())) {
            Ok(()) => {
                tracing::debug!("authenticated with {}", key.display());
                return Ok(true);
            }
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if is_key_unusable(&e) => {
                creds.wrong_passphrase(key);
                let from = match source {
                    Source::Env => format!(" (from {PASSPHRASE_ENV})"),
                    _ => String::new(),
                };
                tracing::warn!("wrong passphrase{from} for key {}", key.display());
                if source != Source::Terminal {
                    return Ok(false);
                }
            }
            Err(e) => {
                tracing::debug!("key {} not accepted: {e}", key.display());
                return Ok(false);
            }
        }
    }
    Ok(false)
}

/// Whether a private key file needs a passphrase: OpenSSH format with a
/// cipher other than "none", or encrypted PEM.
fn private_key_is_encrypted(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    const END: &str = "-----END OPENSSH PRIVATE KEY-----";
    if let Some(start) = text.find(BEGIN) {
        let body = &text[start + BEGIN.len()..];
        let body = body.find(END).map_or(body, |end| &body[..end]);
        let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let Ok(bin) = STANDARD.decode(b64) else {
            return false;
        };
        const MAGIC: &[u8] = b"openssh-key-v1\0";
        return match bin.strip_prefix(MAGIC).and_then(blob_key_type) {
            Some(cipher) => cipher != "none",
            None => false,
        };
    }
    text.contains("Proc-Type: 4,ENCRYPTED")
        || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Answers every keyboard-interactive prompt with the password. ssh2 takes
/// the answers as owned `String`s and drops them unzeroed right after the
/// call: a short-lived copy that this crate cannot avoid.
struct PasswordPrompter<'a> {
    password: &'a str,
}

impl KeyboardInteractivePrompt for PasswordPrompter<'_> {
    fn prompt<'b>(
        &mut self,
        _user: &str,
        _instructions: &str,
        prompts: &[Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.password.to_string()).collect()
    }
}

/// Password, or keyboard-interactive answered with the password when the
/// server does not offer "password". `Ok(None)`: no password was available.
fn try_password(
    sess: &Session,
    s: &SshSettings,
    creds: &Credentials,
    offers: &dyn Fn(&str) -> bool,
    tried: &mut Tried,
) -> Result<Option<bool>, ssh2::Error> {
    let method = if offers("password") {
        "password"
    } else {
        "keyboard-interactive"
    };
    for _ in 0..PROMPT_ATTEMPTS {
        let Some((password, source)) = creds.password(&s.user, &s.host) else {
            return Ok(if tried.0.contains(&method) {
                Some(false)
            } else {
                None
            });
        };
        tried.add(method);
        let r = if method == "password" {
            sess.userauth_password(&s.user, password.expose())
        } else {
            sess.userauth_keyboard_interactive(
                &s.user,
                &mut PasswordPrompter {
                    password: password.expose(),
                },
            )
        };
        match r {
            Ok(()) if sess.authenticated() => {
                tracing::debug!("authenticated with {method}");
                return Ok(Some(true));
            }
            Ok(()) => tracing::debug!("{method}: more authentication required"),
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) if session_code(&e) == Some(raw::LIBSSH2_ERROR_PASSWORD_EXPIRED) => {
                tracing::warn!("the password of {}@{} has expired", s.user, s.host);
                return Ok(Some(false));
            }
            Err(e) => tracing::debug!("{method} refused: {e}"),
        }
        creds.refused_password();
        if source != Source::Terminal {
            break;
        }
        eprintln!("Permission denied, please try again.");
    }
    Ok(Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_key_detection() {
        assert!(!private_key_is_encrypted(PLAIN_KEY.as_bytes()));
        assert!(private_key_is_encrypted(ENCRYPTED_KEY.as_bytes()));
        assert!(private_key_is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n"
        ));
        assert!(!private_key_is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"
        ));
        assert!(!private_key_is_encrypted(b"garbage"));
    }

    // The private half of ED25519_PUB (unencrypted) and another key encrypted
    // with the passphrase "pw"; test material only.
    const PLAIN_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDfg2UzNj7bTi8f5YjgLkoFNzrD/4UG4UEu9XCVzNxt8gAAAIhP5KrGT+Sq
xgAAAAtzc2gtZWQyNTUxOQAAACDfg2UzNj7bTi8f5YjgLkoFNzrD/4UG4UEu9XCVzNxt8g
AAAEC8EsW8zIyLW1SGyFYGkassI5E+ERRLfX0zD4iaAsOPw9+DZTM2PttOLx/liOAuSgU3
OsP/hQbhQS71cJXM3G3yAAAABHRlc3QB
-----END OPENSSH PRIVATE KEY-----
";
    const ENCRYPTED_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABC2n0tXji
hbBDZRFpwvmimfAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIEcYS1A0C3VWVvf/
sTQa6UeqysfViyZDempy8ByU8ZRMAAAAkPhL6PMREumLIW6W7GgXNgo/9M0wUER0Dnch22
3JojeL7K8B0JYjIxfRcbxzGZjwLNmJyBgG2nOSo6++TFwxyyjSXzHkNfodNeiA08H0BW0H
5zw/ZBK4z5yQq3RceP6MNcWrHsJ6tBXMFteDpZOIrjNMnXaMVbNERxS7ty+JhNA38ZTh/q
1YFBbXLj1PmyIelg==
-----END OPENSSH PRIVATE KEY-----
";
}
