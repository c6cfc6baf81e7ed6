//! Moving bytes between the server and the open state: the upload of a
//! staged file, the commit of a temporary copy over its target, copies
//! between remote files and into a staging file, and the removal of a
//! temporary file after a failure.
//!
//! It only transfers; which content goes where, and when, is
//! `FileState`'s decision.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::fs::{Error, Result};
use crate::remote::private_names::{self, private_sibling, TEMP_PREFIX};
use crate::remote::{Error as RemoteError, Remote};

/// Writes are gathered into remote writes of up to this size: 1 MiB per
/// remote write wherever the application writes that much in order.
/// Larger chunks measured slower: a chunk bigger than the transport's
/// flow-control window (2 MiB on the servers tested) stalls its sender,
/// and more is left to send when the file is flushed.
pub const WRITE_CHUNK: usize = 1 << 20;

/// Size of each remote read when filling a staging file.
pub const DOWNLOAD_CHUNK: usize = 1 << 20;

/// Uploads a local staging file: appending the new tail where the server
/// already holds the head, otherwise whole under a temporary name that is
/// then renamed over the target, so a failed upload leaves the old file.
/// A `new` file (nothing on the server to protect) is uploaded under its
/// own name.
pub fn upload_local(
    remote: &dyn Remote,
    path: &Path,
    file: &mut File,
    (synced, size): (Option<u64>, u64),
    new: bool,
    orphans: &mut Vec<PathBuf>,
) -> Result<()> {
    if let Some(from) = synced {
        if from == size {
            return Ok(());
        }
        file.seek(SeekFrom::Start(from)).map_err(Error::Io)?;
        let mut tail = Read::take(&mut *file, size - from);
        return remote.upload(path, &mut tail, true).map_err(Error::from);
    }
    file.seek(SeekFrom::Start(0)).map_err(Error::Io)?;
    let mut whole = Read::take(&mut *file, size);
    if new || !remote.caps().atomic_rename {
        return remote.upload(path, &mut whole, false).map_err(Error::from);
    }
    let temp = private_sibling(path, TEMP_PREFIX);
    if let Err(e) = remote.upload(&temp, &mut whole, false) {
        remove_quietly(remote, &temp, orphans);
        return Err(e.into());
    }
    commit_temp(remote, &temp, path, orphans)
}

/// Renames the new content at `temp` over `path`; on failure removes
/// `temp`, unless the old file could not be put back (then both stay,
/// and the error says so in the log).
pub fn commit_temp(
    remote: &dyn Remote,
    temp: &Path,
    path: &Path,
    orphans: &mut Vec<PathBuf>,
) -> Result<()> {
    match remote.rename(temp, path) {
        Ok(()) => Ok(()),
        // The old file is still aside: the new one at `temp` is the only
        // other copy, and stays.
        Err(RemoteError::KeptAside { error, .. }) => Err(Error::Remote(*error)),
        Err(e) => {
            remove_quietly(remote, temp, orphans);
            Err(e.into())
        }
    }
}

/// Copies the first `len` bytes of one remote file into another.
pub fn copy_remote(remote: &dyn Remote, from: &Path, to: &Path, len: u64) -> Result<()> {
    read_remote(remote, from, len, WRITE_CHUNK, |offset, data| {
        Ok(remote.write(to, offset, data)?)
    })
}

/// Reads the first `len` bytes of a remote file in `chunk`-sized calls,
/// handing each piece and its offset to `sink`.
fn read_remote(
    remote: &dyn Remote,
    path: &Path,
    len: u64,
    chunk: usize,
    mut sink: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    let mut offset = 0;
    while offset < len {
        let data = remote.read(path, offset, chunk.min((len - offset) as usize))?;
        if data.is_empty() {
            break;
        }
        sink(offset, &data)?;
        offset += data.len() as u64;
    }
    Ok(())
}

/// Copies `len` bytes of the remote file into a staging file, for random
/// writes into an existing file over protocols without random writes.
pub fn download_into(
    remote: &dyn Remote,
    path: &Path,
    len: u64,
    file: &mut File,
    chunk: usize,
) -> Result<()> {
    read_remote(remote, path, len, chunk, |offset, data| {
        file.write_all_at(data, offset).map_err(Error::Io)
    })
}

/// Removes a temporary file after a failure. The failure often broke the
/// connection the first attempt goes over, so a second one (on a fresh
/// connection) is made; if that fails too, the path goes to `orphans` for
/// a later retry.
pub fn remove_quietly(remote: &dyn Remote, path: &Path, orphans: &mut Vec<PathBuf>) {
    for _ in 0..2 {
        if private_names::remove(remote, path) {
            return;
        }
    }
    orphans.push(path.to_path_buf());
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::remote::memory::{Fault, Memory};

    /// A commit whose rename fails leaves the old file, and removes the
    /// temporary copy (nothing left for a later retry).
    #[test]
    fn a_failed_commit_keeps_the_old_file() {
        let mem = Memory::new(true);
        *crate::sync::lock(&mem.rename_faults) = [Fault::Fail; 40].into_iter().collect();
        mem.put_file("/g", b"old g");
        mem.put_file("/tmp-g", b"new g");
        let mut orphans = Vec::new();
        let committed = commit_temp(&mem, Path::new("/tmp-g"), Path::new("/g"), &mut orphans);
        assert!(committed.is_err());
        assert!(orphans.is_empty());
        assert_eq!(mem.content("/g").as_deref(), Some(&b"old g"[..]));
    }
}
