//! `rmount-test-helper`: the processes the integration tests (tests/it/)
//! start when what they test must happen in a separate, single-threaded
//! process rather than on a thread of the test binary. Built by Cargo for
//! the tests (`CARGO_BIN_EXE_rmount-test-helper`); of no use on its own.
//!
//! Usage: `rmount-test-helper interleave|rewrite|soak`, with the job's
//! parameters in `RMOUNT_INTERLEAVE_*` / `RMOUNT_REWRITE_*` /
//! `RMOUNT_SOAK_*` environment variables. A job checks
//! what it can and exits non-zero on failure; the test checks the rest.

// The same bytes as the tests' `support::pseudo_random_bytes`/`mib_chunk`,
// from the same file: this binary is a crate of its own.
mod interleave;
#[path = "../it/support/payload.rs"]
mod payload;
mod rewrite;
mod soak;

use std::fs::File;
use std::io;
use std::os::fd::IntoRawFd;

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("interleave") => interleave::run(),
        Some("rewrite") => rewrite::run(),
        Some("soak") => soak::run(),
        _ => {
            eprintln!(
                "usage: rmount-test-helper interleave|rewrite|soak (started by rmount's tests)"
            );
            std::process::exit(2);
        }
    }
}

/// close(2) with its result (Rust's `File` drops close errors).
fn close_checked(f: File) -> io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: we own fd (into_raw_fd) and close it exactly once.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
