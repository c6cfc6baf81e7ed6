//! Where passwords and key passphrases come from (standard input, the
//! environment, or the terminal while the mount starts), each obtained at
//! most once and kept, zeroed when dropped, for every later connection.
//!
//! It never logs a secret nor puts one into the environment; which
//! authentication method uses them is decided in `auth`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::remote::secrets::{
    env_secret, prompt_secret, read_stdin_line, stdin_is_tty, Secret, PASSPHRASE_ENV, PASSWORD_ENV,
};

/// Password and key passphrases, obtained at most once and reused by every
/// later connection (reconnects from a daemon without a terminal never
/// prompt). Safe to share between threads. Each secret is held once, in a
/// [`Secret`] (zeroed when dropped); connections borrow it through an `Arc`
/// instead of copying it.
pub struct Credentials {
    password_stdin: bool,
    /// The terminal may be asked (until the mount is ready: a reconnect
    /// never prompts, which would stall the mount behind a terminal).
    may_prompt: std::sync::atomic::AtomicBool,
    state: Mutex<Secrets>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    Stdin,
    Env,
    Terminal,
}

#[derive(Default)]
struct Secrets {
    password: Option<(Arc<Secret>, Source)>,
    /// Standard input has been consumed (it is read at most once).
    stdin_read: bool,
    passphrases: HashMap<PathBuf, (Arc<Secret>, Source)>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never shows a secret, only whether one is held.
        let s = self.lock();
        f.debug_struct("Credentials")
            .field("password_stdin", &self.password_stdin)
            .field("has_password", &s.password.is_some())
            .field("passphrases", &s.passphrases.len())
            .finish()
    }
}

impl Credentials {
    /// `password_stdin`: the password is the first line of standard input
    /// (read once, on first need) instead of `RMOUNT_PASSWORD` or a prompt.
    pub fn new(password_stdin: bool) -> Credentials {
        Credentials {
            password_stdin,
            may_prompt: std::sync::atomic::AtomicBool::new(true),
            state: Mutex::new(Secrets::default()),
        }
    }

    /// Start-up is over: from now on only what is cached, the environment
    /// or standard input are used, never a prompt.
    pub fn end_prompts(&self) {
        self.may_prompt
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn prompts(&self) -> bool {
        self.may_prompt.load(std::sync::atomic::Ordering::SeqCst) && stdin_is_tty()
    }

    /// Whether the password is read from standard input.
    pub(super) fn password_stdin(&self) -> bool {
        self.password_stdin
    }

    /// Whether a passphrase for `key` is already held.
    pub(super) fn has_passphrase(&self, key: &Path) -> bool {
        self.lock().passphrases.contains_key(key)
    }

    fn lock(&self) -> MutexGuard<'_, Secrets> {
        crate::sync::lock(&self.state)
    }

    /// The password to try: cached, else from its source. The lock is held
    /// while prompting so that concurrent connections ask only once.
    pub(super) fn password(&self, user: &str, host: &str) -> Option<(Arc<Secret>, Source)> {
        let mut s = self.lock();
        if let Some((p, source)) = &s.password {
            return Some((Arc::clone(p), *source));
        }
        let got = if self.password_stdin {
            if s.stdin_read {
                None
            } else {
                s.stdin_read = true;
                read_stdin_line().map(|p| (Arc::new(p), Source::Stdin))
            }
        } else if let Some(p) = env_secret(PASSWORD_ENV) {
            Some((Arc::new(p), Source::Env))
        } else if self.prompts() {
            prompt_secret(&format!("{user}@{host}'s password: "))
                .map(|p| (Arc::new(p), Source::Terminal))
        } else {
            None
        };
        s.password = got.as_ref().map(|(p, source)| (Arc::clone(p), *source));
        got
    }

    /// Forgets a password typed on the terminal that the server refused, so
    /// that the next attempt asks again. Passwords from stdin or the
    /// environment cannot be asked again and stay.
    pub(super) fn refused_password(&self) {
        let mut s = self.lock();
        if matches!(s.password, Some((_, Source::Terminal))) {
            s.password = None;
        }
    }

    pub(super) fn passphrase(&self, key: &Path) -> Option<(Arc<Secret>, Source)> {
        let mut s = self.lock();
        if let Some((p, source)) = s.passphrases.get(key) {
            return Some((Arc::clone(p), *source));
        }
        let got = if let Some(p) = env_secret(PASSPHRASE_ENV) {
            Some((Arc::new(p), Source::Env))
        } else if self.prompts() {
            prompt_secret(&format!("Enter passphrase for key '{}': ", key.display()))
                .map(|p| (Arc::new(p), Source::Terminal))
        } else {
            None
        };
        if let Some((p, source)) = &got {
            s.passphrases
                .insert(key.to_path_buf(), (Arc::clone(p), *source));
        }
        got
    }

    pub(super) fn wrong_passphrase(&self, key: &Path) {
        self.lock().passphrases.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_prompt_after_start_up() {
        let c = Credentials::new(false);
        assert!(c.may_prompt.load(std::sync::atomic::Ordering::SeqCst));
        c.end_prompts();
        assert!(!c.prompts(), "never a prompt once the mount is ready");
        // Nothing cached, nothing in the environment's name for this test:
        // no password, and no terminal touched.
        assert!(c.password("u", "h").is_none() || std::env::var_os(PASSWORD_ENV).is_some());
    }

    #[test]
    fn credentials_debug_hides_secrets() {
        let c = Credentials::new(false);
        c.lock().password = Some((Arc::new(Secret::from("hunter2")), Source::Env));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"));
        c.refused_password();
        assert!(c.lock().password.is_some(), "an env password is kept");
        c.lock().password = Some((Arc::new(Secret::from("typed")), Source::Terminal));
        c.refused_password();
        assert!(
            c.lock().password.is_none(),
            "a typed password is asked again"
        );
    }

    /// Every connection borrows the one stored copy: a reconnect never
    /// duplicates the password.
    #[test]
    fn credentials_hand_out_the_one_stored_copy() {
        let c = Credentials::new(false);
        let stored = Arc::new(Secret::from("hunter2"));
        c.lock().password = Some((Arc::clone(&stored), Source::Env));
        for _ in 0..3 {
            let (got, source) = c.password("u", "h").expect("cached password");
            assert!(Arc::ptr_eq(&got, &stored));
            assert_eq!(source, Source::Env);
        }
        let key = Path::new("/k");
        c.lock()
            .passphrases
            .insert(key.to_path_buf(), (Arc::clone(&stored), Source::Env));
        let (got, _) = c.passphrase(key).expect("cached passphrase");
        assert!(Arc::ptr_eq(&got, &stored));
        drop(got);
        c.wrong_passphrase(key);
        drop(c);
        // Nothing else holds it: dropping this last handle zeroes it.
        assert_eq!(Arc::strong_count(&stored), 1);
    }
}
