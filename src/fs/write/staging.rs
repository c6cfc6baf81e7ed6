//! Local staging for servers without random writes: the private
//! staging directory of this process (0700, under the system temp
//! directory, locked for the life of the process so that those of dead
//! processes can be told and removed), its files, and reads from them.
//!
//! It touches only local disk; it must not talk to the server.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use crate::fs::{Error, Result};

const STAGING_PREFIX: &str = "rmount-staging-";
const STAGING_LOCK: &str = "lock";

/// The private staging directory of this mount (mode 0700) under the system
/// temp directory. It holds a lock file locked for the life of the process
/// (the lock survives the fork into the background), so a directory whose
/// lock can be taken was left by an rmount that no longer runs.
pub struct Staging {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Creates this process's staging directory, first removing those left
/// by dead rmount processes.
pub fn staging_dir() -> std::io::Result<Staging> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir();
    remove_dead_staging(&tmp);
    let dir = tempfile::Builder::new()
        .prefix(STAGING_PREFIX)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(tmp)?;
    let lock = File::create(dir.path().join(STAGING_LOCK))?;
    if !try_lock(&lock) {
        return Err(std::io::Error::other("cannot lock the staging directory"));
    }
    Ok(Staging { dir, _lock: lock })
}

fn remove_dead_staging(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let is_staging = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(STAGING_PREFIX));
        // A directory made a moment ago may not be locked yet.
        let settled = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(10)));
        if !is_staging || !settled {
            continue;
        }
        let dead = File::open(entry.path().join(STAGING_LOCK)).is_ok_and(|f| try_lock(&f));
        if dead {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Takes an exclusive lock without waiting.
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// A private staging file on local disk: mode 0600 in a 0700 directory.
pub fn staging_file(dir: &Path) -> Result<File> {
    let file = tempfile::tempfile_in(dir).map_err(Error::Io)?;
    Ok(file)
}

/// Reads from a staging file until `buf` is full or the file ends.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    Ok(filled)
}
