//! The `soak` job: one of the 16 worker processes of the reliability soak
//! test. It creates, rewrites, patches, reads, renames and deletes files in
//! its own directory of the mount, checks every read against what it wrote,
//! and records what each file should hold, for the test to compare with the
//! server.
//!
//! Parameters come from the environment (set by `soak_16_processes` in
//! tests/it/reliability.rs).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::close_checked;
use crate::payload::pseudo_random_bytes;

const MIB: u64 = 1 << 20;

/// Works in `RMOUNT_SOAK_DIR` for `RMOUNT_SOAK_SECS` seconds with the
/// random choices of `RMOUNT_SOAK_SEED`, checks every read against what it
/// wrote, and records the final `name\tsha256 size` lines in
/// `RMOUNT_SOAK_STATE` (and a journal of every change next to it). Any
/// failed call ends it with a non-zero status.
pub fn run() {
    let dir = PathBuf::from(std::env::var_os("RMOUNT_SOAK_DIR").expect("RMOUNT_SOAK_DIR not set"));
    let state_file = PathBuf::from(std::env::var_os("RMOUNT_SOAK_STATE").expect("state path"));
    let seed: u64 = std::env::var("RMOUNT_SOAK_SEED")
        .expect("seed")
        .parse()
        .expect("seed");
    let end = Instant::now() + Duration::from_secs(soak_secs());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut counter = 0u64;
    let mut ops = 0u64;
    let save = |files: &BTreeMap<String, Vec<u8>>| {
        let text: String = files
            .iter()
            .map(|(n, d)| format!("{n}\t{} {}\n", sha256_bytes(d), d.len()))
            .collect();
        fs::write(&state_file, text).expect("write soak state");
    };
    // One line per change, for diagnosing a mismatch: "op name [name] size".
    let mut journal = File::create(state_file.with_extension("journal")).expect("journal");
    let mut note = |line: String| {
        let _ = writeln!(journal, "{line}");
    };
    let fail = |files: &BTreeMap<String, Vec<u8>>, what: String| -> ! {
        save(files);
        eprintln!("soak worker {seed}: {what}");
        std::process::exit(1);
    };
    while Instant::now() < end {
        ops += 1;
        let names: Vec<String> = files.keys().cloned().collect();
        let pick = |r: u64| names.get((r % names.len().max(1) as u64) as usize).cloned();
        let roll = next() % 100;
        let size = if next() % 10 == 0 {
            (next() % (2 * MIB)) as usize
        } else {
            (next() % (64 * 1024)) as usize
        };
        match roll {
            // create a new file
            0..=24 if files.len() < 24 => {
                counter += 1;
                let name = format!("f{counter}");
                let data = pseudo_random_bytes(size, next());
                if let Err(e) = fs::write(dir.join(&name), &data) {
                    fail(&files, format!("create {name}: {e}"));
                }
                note(format!("create {name} {}", data.len()));
                files.insert(name, data);
            }
            // rewrite a whole file
            0..=44 => {
                let Some(name) = pick(next()) else { continue };
                let data = pseudo_random_bytes(size, next());
                if let Err(e) = fs::write(dir.join(&name), &data) {
                    fail(&files, format!("rewrite {name}: {e}"));
                }
                note(format!("rewrite {name} {}", data.len()));
                files.insert(name, data);
            }
            // write into the middle (or past the end) in place
            45..=54 => {
                let Some(name) = pick(next()) else { continue };
                let old = files[&name].clone();
                let at = next() % (old.len() as u64 + 1);
                let patch = pseudo_random_bytes((next() % 8192) as usize + 1, next());
                let r = OpenOptions::new()
                    .write(true)
                    .open(dir.join(&name))
                    .and_then(|f| f.write_all_at(&patch, at).map(|()| f))
                    .and_then(close_checked);
                if let Err(e) = r {
                    fail(&files, format!("pwrite {name} at {at}: {e}"));
                }
                let mut data = old;
                let end = at as usize + patch.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[at as usize..end].copy_from_slice(&patch);
                note(format!(
                    "pwrite {name} {} at {at} -> {}",
                    patch.len(),
                    data.len()
                ));
                files.insert(name, data);
            }
            // read and check
            55..=79 => {
                let Some(name) = pick(next()) else { continue };
                match fs::read(dir.join(&name)) {
                    Ok(d) if d == files[&name] => {}
                    Ok(d) => fail(
                        &files,
                        format!(
                            "read {name}: {} bytes, not the {} written",
                            d.len(),
                            files[&name].len()
                        ),
                    ),
                    Err(e) => fail(&files, format!("read {name}: {e}")),
                }
            }
            // rename (sometimes over another file)
            80..=89 => {
                let Some(from) = pick(next()) else { continue };
                let to = if next() % 3 == 0 {
                    pick(next()).unwrap_or_default()
                } else {
                    counter += 1;
                    format!("f{counter}")
                };
                if to == from {
                    continue;
                }
                if let Err(e) = fs::rename(dir.join(&from), dir.join(&to)) {
                    fail(&files, format!("rename {from} -> {to}: {e}"));
                }
                let data = files.remove(&from).expect("known file");
                note(format!("rename {from} {to} {}", data.len()));
                files.insert(to, data);
            }
            // delete
            _ => {
                let Some(name) = pick(next()) else { continue };
                if let Err(e) = fs::remove_file(dir.join(&name)) {
                    fail(&files, format!("delete {name}: {e}"));
                }
                note(format!("delete {name}"));
                files.remove(&name);
            }
        }
    }
    // The directory as the mount shows it must match too.
    let mut listed: Vec<String> = match fs::read_dir(&dir) {
        Ok(d) => d
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()
            .unwrap_or_else(|e| fail(&files, format!("read_dir: {e}"))),
        Err(e) => fail(&files, format!("read_dir: {e}")),
    };
    listed.sort();
    let want: Vec<String> = files.keys().cloned().collect();
    if listed != want {
        fail(&files, format!("listing {listed:?} != recorded {want:?}"));
    }
    save(&files);
    eprintln!(
        "soak worker {seed}: {ops} operations, {} files",
        files.len()
    );
}

/// `RMOUNT_SOAK_SECS`, as the test reads it (default 60, 1 to 3600).
fn soak_secs() -> u64 {
    std::env::var("RMOUNT_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .clamp(1, 3600)
}

/// Lower-case hex SHA-256 of a byte slice (as the test's `sha256_file`).
fn sha256_bytes(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
