//! Where secrets come from: the environment, one line of standard input,
//! or a terminal prompt. Owns the names of the environment variables and
//! [`Secret`], the one type a password or passphrase is kept in: it is
//! zeroed when dropped, cannot be cloned and never shows in `Debug`. It
//! never logs or passes a secret on (callers keep them in memory).

use std::fmt;
use std::os::unix::ffi::OsStringExt;

use zeroize::{Zeroize, Zeroizing};

/// Environment variable holding the login password (read, never set).
pub const PASSWORD_ENV: &str = "RMOUNT_PASSWORD";
/// Environment variable holding the passphrase of encrypted private keys.
pub const PASSPHRASE_ENV: &str = "RMOUNT_KEY_PASSPHRASE";

/// A password or passphrase. Its bytes are overwritten with zeros when it
/// is dropped. Deliberately not `Clone`: a secret kept for reconnects is
/// one copy, shared (for example through an `Arc`) rather than duplicated.
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(Zeroizing::new(text))
    }

    /// The secret, to hand to a login call. Do not copy it into a
    /// long-lived `String`.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret::new(text)
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret::new(text.to_string())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Bytes that may hold a secret as a `String`, without leaving an unzeroed
/// copy behind: valid UTF-8 is moved, not copied; otherwise the invalid
/// sequences are replaced and the original bytes zeroed.
pub fn secret_from_bytes(bytes: Vec<u8>) -> Secret {
    match String::from_utf8(bytes) {
        Ok(text) => Secret::new(text),
        Err(e) => {
            let mut bytes = Zeroizing::new(e.into_bytes());
            let text = String::from_utf8_lossy(&bytes).into_owned();
            bytes.zeroize();
            Secret::new(text)
        }
    }
}

pub fn env_secret(name: &str) -> Option<Secret> {
    std::env::var_os(name).map(|v| secret_from_bytes(v.into_vec()))
}

pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

pub fn prompt_secret(prompt: &str) -> Option<Secret> {
    match rpassword::prompt_password(prompt) {
        Ok(p) => Some(Secret::new(p)),
        Err(e) => {
            tracing::debug!("cannot read a secret from the terminal: {e}");
            None
        }
    }
}

/// One line of standard input without its line ending; `None` at end of
/// input. Read a byte at a time straight from the descriptor, so that no
/// buffer outside the returned [`Secret`] keeps a copy of the line.
pub fn read_stdin_line() -> Option<Secret> {
    // Reserved up front: growing would leave unzeroed copies behind.
    let mut line = Zeroizing::new(Vec::with_capacity(1024));
    loop {
        let mut byte = 0u8;
        // SAFETY: reads at most one byte into a valid one-byte buffer.
        let n = unsafe { libc::read(libc::STDIN_FILENO, (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 => {
                line.push(byte);
                byte.zeroize();
                if line.last() == Some(&b'\n') {
                    break;
                }
            }
            0 if line.is_empty() => {
                tracing::warn!("password_stdin: standard input is empty");
                return None;
            }
            0 => break,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::warn!("password_stdin: cannot read standard input: {e}");
                return None;
            }
        }
    }
    strip_line_ending(&mut line);
    Some(secret_from_bytes(std::mem::take(&mut *line)))
}

fn strip_line_ending(line: &mut Vec<u8>) {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
}

/// Marks the process not dumpable: no core file, and no ptrace or reading
/// of its memory (or of /proc/PID/environ and the like) by other processes
/// of the same user without CAP_SYS_PTRACE. The kernel then also shows the
/// files in /proc/PID as owned by root. Call early, before any secret is
/// read.
pub fn forbid_core_dumps() -> std::io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes one integer argument; the rest are unused.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        strip_line_ending(&mut v);
        v
    }

    #[test]
    fn line_endings_stripped() {
        assert_eq!(stripped("pw\n"), b"pw");
        assert_eq!(stripped("pw\r\n"), b"pw");
        assert_eq!(stripped("pw"), b"pw");
        assert_eq!(stripped(" pw \n"), b" pw ");
    }

    /// A secret's storage is zeroed in place: `Zeroizing` is what `Secret`
    /// holds, and zeroizing a string clears every byte of its buffer.
    #[test]
    fn secret_is_zeroed_when_dropped() {
        fn drops_zeroizing(_: &Zeroizing<String>) {}
        let secret = Secret::from("hunter2");
        drops_zeroizing(&secret.0);

        // What `Zeroizing`'s drop does, observed on a buffer we still own.
        let mut text = String::with_capacity(16);
        text.push_str("hunter2");
        let ptr = text.as_ptr();
        let cap = text.capacity();
        text.zeroize();
        assert!(text.is_empty());
        // SAFETY: the allocation is still owned by `text` (zeroize keeps it).
        let bytes = unsafe { std::slice::from_raw_parts(ptr, cap) };
        assert!(bytes.iter().all(|&b| b == 0), "{bytes:?}");
    }

    #[test]
    fn secret_never_shows_in_debug() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_lost() {
        assert_eq!(secret_from_bytes(b"pw".to_vec()).expose(), "pw");
        assert_eq!(secret_from_bytes(b"p\xffw".to_vec()).expose(), "p\u{fffd}w");
    }

    #[test]
    fn process_can_be_made_not_dumpable() {
        // Done in a child so that the test process itself stays dumpable.
        // SAFETY: the child only calls async-signal-safe functions.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let ok = forbid_core_dumps().is_ok()
                && unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) } == 0;
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
