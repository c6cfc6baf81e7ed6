//! Where secrets come from: the environment, one line of standard input,
//! or a terminal prompt. Owns the names of the environment variables; it
//! never stores, logs or passes a secret on (callers keep them in memory).

use std::io::{self, BufRead};
use std::os::unix::ffi::OsStringExt;

/// Environment variable holding the login password (read, never set).
pub const PASSWORD_ENV: &str = "RMOUNT_PASSWORD";
/// Environment variable holding the passphrase of encrypted private keys.
pub const PASSPHRASE_ENV: &str = "RMOUNT_KEY_PASSPHRASE";

pub fn env_secret(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| String::from_utf8_lossy(&v.into_vec()).into_owned())
}

pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

pub fn prompt_secret(prompt: &str) -> Option<String> {
    match rpassword::prompt_password(prompt) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::debug!("cannot read a secret from the terminal: {e}");
            None
        }
    }
}

/// One line of standard input without its line ending; `None` at end of input.
pub fn read_stdin_line() -> Option<String> {
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) => {
            tracing::warn!("password_stdin: standard input is empty");
            None
        }
        Ok(_) => Some(strip_line_ending(line)),
        Err(e) => {
            tracing::warn!("password_stdin: cannot read standard input: {e}");
            None
        }
    }
}

fn strip_line_ending(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_stripped() {
        assert_eq!(strip_line_ending("pw\n".into()), "pw");
        assert_eq!(strip_line_ending("pw\r\n".into()), "pw");
        assert_eq!(strip_line_ending("pw".into()), "pw");
        assert_eq!(strip_line_ending(" pw \n".into()), " pw ");
    }
}
