//! Shared support for rmount's integration tests.
//!
//! Every test module (tests/it/*.rs) starts with `use crate::support::*;`
//! and gets:
//!
//! - [`Server`]: a real, throwaway server of one [`ServerKind`] (OpenSSH,
//!   OpenSSH in a chroot, gesftpserver, vsftpd plain or TLS, ProFTPD,
//!   pure-ftpd) on a free loopback port, with its own temp dir, keys,
//!   certificates and an `export` directory, owned by the ordinary login,
//!   that is what the tests mount (see `server.rs`).
//! - [`Mount`]: the real `rmount` binary mounting a server on a fresh mount
//!   point; dropping it always unmounts (see `mount.rs`). [`MountPoint`]:
//!   just the fresh mount point, for tests that run the client themselves.
//! - small helpers: [`run_rmount`] (with a hard timeout), [`wait_until`]
//!   (poll with a deadline, never sleep as synchronisation), [`is_mounted`],
//!   [`sha256_file`], [`free_port`], [`run_cmd`].
//! - [`light_load`] / [`heavy_load`]: the guard every test holds, so that
//!   the tests that load the whole machine run alone (see `load.rs`).
//! - `fixture`: per-test mounts on shared servers and the test-generating
//!   macros `on_every_server!` and `per_protocol!` (see `fixture.rs`).
//!
//! Everything a test starts is stopped by PID in a `Drop`, so a failing test
//! leaves no server, daemon or mount behind. Tests run as root (FUSE and the
//! servers need it here).
//!
//! Keep the public API stable: every test module is written against it.
//! Everything here is used by some test: what no test uses any more is
//! deleted, not kept behind an `allow(dead_code)`.

// First: its macros are in scope for the modules declared after it, and
// (through `#[macro_use] mod support;`) for the test modules.
#[macro_use]
pub mod fixture;
mod load;
mod mount;
mod payload;
mod process;
mod proxy;
mod proxy_mount;
mod server;
mod users;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

pub use load::{heavy_load, light_load};
pub use mount::{
    is_mounted, mount_entry, rmount_processes_for, unique_dir, unmount_path, Mount, MountPoint,
};
pub use payload::{mib_chunk, pseudo_random_bytes};
pub use process::{
    descendants, free_port, peak_rss_tree, program_rss, reset_peak_rss_tree, run_cmd,
    run_cmd_timeout, run_rmount,
};
pub use proxy::{established_connections_to, FaultProxy};
pub use proxy_mount::{mount_via_proxy, proxy_url_and_args};
pub use server::{ssh_keygen_ed25519, Proto, Server, ServerKind};
pub use users::{SFTP_PW_PASSWORD, SFTP_PW_USER, TEST_PASSWORD, TEST_USER};

/// How often [`wait_until`] polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The `rmount` binary Cargo built for this test run (debug profile).
pub fn rmount_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rmount"))
}

/// The `rmount-test-helper` binary (tests/helper/): jobs that must run in a
/// separate, single-threaded process.
pub fn helper_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rmount-test-helper"))
}

/// Polls `cond` every 20 ms until it returns true; panics naming `what` if
/// it is still false after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Runs `f` on its own thread and returns its result with the time it took,
/// or panics if it has not returned within `limit` (a hang: ARCHITECTURE.md
/// invariant 2). The thread is left blocked; unmounting in the test's Drop
/// guards releases it.
pub fn within<R: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> R + Send + 'static,
) -> (R, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => (r, start.elapsed()),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{what} panicked (see above)")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {limit:?} (a hang: invariant 2)")
        }
    }
}

/// Like [`wait_until`] but returns false instead of panicking on the deadline.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Lower-case hex SHA-256 of a file's contents (streamed, any size).
pub fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut f = File::open(p).unwrap_or_else(|e| panic!("sha256_file: open {}: {e}", p.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("sha256_file: read {}: {e}", p.display()));
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    hex(&h.finalize())
}

/// Lower-case hex SHA-256 of a byte slice.
pub fn sha256_bytes(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// rmount's stderr, trimmed, as text (for assertions on error messages).
pub fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// A multi-line description of a finished process, for panic messages.
pub fn describe_output(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}
