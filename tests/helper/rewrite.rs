//! The `rewrite` job: rewrites one file through a mount from this separate,
//! single-threaded process, as `cp` would, and reports how each step
//! ended. A file written from the multi-threaded test process itself gets
//! an extra FUSE flush whenever another test thread forks a child while it
//! is open, which would change what the reliability tests check.
//!
//! Parameters come from the environment (set by `Rewriter::spawn` in
//! tests/it/reliability.rs); it checks nothing itself: the test does.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use crate::close_checked;
use crate::payload::mib_chunk;

/// `RMOUNT_REWRITE_ROUNDS` times: opens `RMOUNT_REWRITE_PATH` with O_TRUNC
/// (never O_CREAT), writes `RMOUNT_REWRITE_MIB` MiB made from
/// `RMOUNT_REWRITE_SEED` in 256 KiB pieces, fsyncs and closes; stops after
/// the first error. Appends one `write fsync close` errno line per round to
/// `$RMOUNT_REWRITE_OUT/rounds` (0: success, -1: not done) and the bytes
/// written so far to `.../progress`.
pub fn run() {
    let path = PathBuf::from(
        std::env::var_os("RMOUNT_REWRITE_PATH").expect("RMOUNT_REWRITE_PATH not set"),
    );
    let var = |k: &str| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} not set"))
    };
    let (mib, seed, rounds) = (
        var("RMOUNT_REWRITE_MIB"),
        var("RMOUNT_REWRITE_SEED"),
        var("RMOUNT_REWRITE_ROUNDS"),
    );
    let out = PathBuf::from(std::env::var_os("RMOUNT_REWRITE_OUT").expect("out dir"));
    let mut report = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("rounds"))
        .expect("rounds file");
    let code = |r: &io::Result<()>| r.as_ref().err().map_or(0, errno);
    let mut written = 0u64;
    for _ in 0..rounds {
        let mut f = match OpenOptions::new().write(true).truncate(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                writeln!(report, "{} -1 -1", errno(&e)).expect("report");
                return;
            }
        };
        let mut write = Ok(());
        'chunks: for i in 0..mib {
            for piece in mib_chunk(seed, i).chunks(256 * 1024) {
                if let Err(e) = f.write_all(piece) {
                    write = Err(e);
                    break 'chunks;
                }
                written += piece.len() as u64;
                let _ = fs::write(out.join("progress"), written.to_string());
            }
        }
        let fsync = f.sync_all();
        let close = close_checked(f);
        let line = format!("{} {} {}", code(&write), code(&fsync), code(&close));
        writeln!(report, "{line}").expect("report");
        if line != "0 0 0" {
            return;
        }
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}
