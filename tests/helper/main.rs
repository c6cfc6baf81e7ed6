//! `rmount-test-helper`: the processes the integration tests (tests/it/)
//! start when what they test must happen in a separate, single-threaded
//! process rather than on a thread of the test binary. Built by Cargo for
//! the tests (`CARGO_BIN_EXE_rmount-test-helper`).
//!
//! Usage: `rmount-test-helper interleave|rewrite|soak`, with the job's
//! parameters in `RMOUNT_INTERLEAVE_*` / `RMOUNT_REWRITE_*` /
//! `RMOUNT_SOAK_*` environment variables. A job checks
//! what it can and exits non-zero on failure; the test checks the rest.
//!
//! One job serves scripts/bench.sh as well: `rmount-test-helper proxy
//! --listen ADDR --upstream ADDR --latency-ms N`, the tests' delay proxy as
//! a process (see proxy.rs).

// The same bytes as the tests' `support::pseudo_random_bytes`/`mib_chunk`,
// from the same file: this binary is a crate of its own.
mod interleave;
#[path = "../it/support/payload.rs"]
mod payload;
// The tests' fault/delay proxy, from the same file; this job uses only its
// latency control.
#[allow(dead_code)]
#[path = "../it/support/proxy.rs"]
mod fault_proxy;
mod proxy;
mod rewrite;
mod soak;

use std::fs::File;
use std::io;
use std::os::fd::IntoRawFd;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("interleave") => interleave::run(),
        Some("rewrite") => rewrite::run(),
        Some("soak") => soak::run(),
        Some("proxy") => proxy::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: rmount-test-helper interleave|rewrite|soak|proxy (started by rmount's tests and scripts/bench.sh)"
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
