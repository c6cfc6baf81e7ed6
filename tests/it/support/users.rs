//! The two system accounts the test servers need, created idempotently.
//!
//! - [`TEST_USER`]: the ordinary account every test server logs in, as real
//!   users log in: it owns each server's export, gets the server's umask and
//!   cannot write to a read-only file or chown to others (root could, and
//!   would hide all of that). SFTP logs it in with a key, FTP with
//!   [`TEST_PASSWORD`] (vsftpd checks it through PAM and refuses root).
//! - [`SFTP_PW_USER`]: a second ordinary account, for SFTP password tests.
//!
//! Both are made once per machine (`useradd`), and their password is set
//! once per test process (`chpasswd`), under a file lock so that parallel
//! test processes do not race on /etc/passwd.

use std::fs::OpenOptions;
use std::os::unix::io::AsRawFd;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::process::run_cmd;

/// The ordinary login of every test server (it owns the export).
pub const TEST_USER: &str = "rmount-test";
/// Password of [`TEST_USER`].
pub const TEST_PASSWORD: &str = "rmount-test-Pw1";

/// A user with a password for SFTP password-authentication tests.
pub const SFTP_PW_USER: &str = "rmount-pw";
/// Password of [`SFTP_PW_USER`].
pub const SFTP_PW_PASSWORD: &str = "rmount-pw-Secret2";

/// A system account: (uid, gid).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// Ensures [`TEST_USER`] exists with [`TEST_PASSWORD`].
pub(crate) fn test_account() -> Account {
    static ONCE: OnceLock<Account> = OnceLock::new();
    *ONCE.get_or_init(|| ensure_user(TEST_USER, TEST_PASSWORD))
}

/// Ensures [`SFTP_PW_USER`] exists with [`SFTP_PW_PASSWORD`].
pub(crate) fn sftp_pw_account() -> Account {
    static ONCE: OnceLock<Account> = OnceLock::new();
    *ONCE.get_or_init(|| ensure_user(SFTP_PW_USER, SFTP_PW_PASSWORD))
}

fn ensure_user(name: &str, password: &str) -> Account {
    // Serialize with other test processes on this machine.
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("rmount-test-users.lock"))
        .expect("open user lock file");
    // SAFETY: flock on a file descriptor we own; released when `lock` drops.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock on the user lock file failed");

    if lookup(name).is_none() {
        // -m: a home directory (unused by the servers, but PAM and sshd
        // expect one); /bin/bash is in /etc/shells, which vsftpd's PAM
        // stack (pam_shells) requires.
        let out = run_cmd(
            Command::new("useradd").args(["-m", "-s", "/bin/bash", name]),
            Duration::from_secs(60),
            None,
        );
        if !out.status.success() && lookup(name).is_none() {
            panic!(
                "useradd {name} failed (tests must run as root)\n{}",
                super::describe_output(&out)
            );
        }
    }
    // Set the password every time (cheap, and repairs a changed one).
    let line = format!("{name}:{password}\n");
    let out = run_cmd(
        &mut Command::new("chpasswd"),
        Duration::from_secs(60),
        Some(line.as_bytes()),
    );
    if !out.status.success() {
        panic!(
            "chpasswd for {name} failed\n{}",
            super::describe_output(&out)
        );
    }
    lookup(name).unwrap_or_else(|| panic!("user {name} missing right after useradd"))
}

/// (uid, gid) of a user, or None if there is no such user.
fn lookup(name: &str) -> Option<Account> {
    let out = run_cmd(Command::new("id").arg(name), Duration::from_secs(30), None);
    if !out.status.success() {
        return None;
    }
    // "uid=1001(rmount-test) gid=1001(rmount-test) groups=..."
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let num = |key: &str| -> Option<u32> {
        let start = text.find(key)? + key.len();
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect::<String>()
            .parse()
            .ok()
    };
    Some(Account {
        uid: num("uid=")?,
        gid: num("gid=")?,
    })
}
