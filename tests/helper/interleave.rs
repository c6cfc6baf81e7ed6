//! The `interleave` job: writes many files through a mount at once, from
//! this separate, single-threaded process (a file written from the
//! multi-threaded test process gets an extra FUSE flush whenever another
//! test thread forks a child while it is open). All files are opened
//! first, then written in turns of one piece each, so every file has
//! written data the server does not have yet at the same time.
//!
//! It exits non-zero on the first error; the test checks the bytes.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use crate::close_checked;
use crate::payload::mib_chunk;

/// Writes `$RMOUNT_INTERLEAVE_DIR/f<i>` for i in 0..`RMOUNT_INTERLEAVE_FILES`,
/// each `RMOUNT_INTERLEAVE_MIB` MiB of `mib_chunk(i, …)`, in pieces of
/// `RMOUNT_INTERLEAVE_PIECE` bytes (a divisor of 1 MiB) taken in turns;
/// then closes them all, checking each close.
pub fn run() {
    let dir = PathBuf::from(
        std::env::var_os("RMOUNT_INTERLEAVE_DIR").expect("RMOUNT_INTERLEAVE_DIR not set"),
    );
    let var = |k: &str| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} not set"))
    };
    let (files, mib, piece) = (
        var("RMOUNT_INTERLEAVE_FILES"),
        var("RMOUNT_INTERLEAVE_MIB"),
        var("RMOUNT_INTERLEAVE_PIECE") as usize,
    );
    assert!(piece > 0 && (1 << 20) % piece == 0, "piece divides 1 MiB");
    let mut open: Vec<File> = (0..files)
        .map(|i| {
            let path = dir.join(format!("f{i}"));
            File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
        })
        .collect();
    for m in 0..mib {
        let chunks: Vec<Vec<u8>> = (0..files).map(|i| mib_chunk(i, m)).collect();
        for at in (0..1 << 20).step_by(piece) {
            for (i, f) in open.iter_mut().enumerate() {
                f.write_all(&chunks[i][at..at + piece])
                    .unwrap_or_else(|e| panic!("write f{i} at MiB {m}: {e}"));
            }
        }
    }
    for (i, f) in open.drain(..).enumerate() {
        close_checked(f).unwrap_or_else(|e| panic!("close f{i}: {e}"));
    }
}
