//! A new file written through the extensions' raw channel, requests sent
//! together where no answer is needed in between: the OPEN with an LSTAT
//! of the new file (its attributes, so no stat follows), the WRITE
//! requests of one write all at once. So a small new file costs three
//! round trips (OPEN + LSTAT, WRITE, CLOSE). The handle belongs to the
//! extensions' channel (each SFTP channel is its own server process), so
//! every request on it goes there.
//!
//! It owns the handle and the ids of requests whose replies are still to
//! be read; it must leave the channel at a packet boundary (every reply
//! read) before anything else uses the channel, which `close` does. It
//! does not open or reuse anything else.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::ext::SftpExt;
use super::wire::{self, Packet};
use crate::remote::{Error, Result};

/// Bytes per WRITE request: what libssh2 and OpenSSH's own client send.
const WRITE_CHUNK: usize = 32 * 1024;
/// Requests sent ahead whose replies are not read yet, at most: a bound
/// on what waits in the channel's window.
const MAX_AHEAD: usize = 64;
/// A write larger than this goes through libssh2's own pipelined write
/// (`SftpConnection`), not here.
pub const SMALL_WRITE: usize = 256 * 1024;

/// A handle of a new file on the extensions' channel.
pub struct RawKept {
    pub path: PathBuf,
    handle: Vec<u8>,
    /// Requests sent whose (status) replies are still to be read, oldest
    /// first, with what each was.
    ahead: VecDeque<(u32, &'static str)>,
    /// The first failure a reply reported, for the close.
    failed: Option<Error>,
}

impl RawKept {
    /// Creates `path` (exclusive, or truncating) with `mode` asked for,
    /// and opens it for writing. An LSTAT of the new file goes with the
    /// OPEN: its attributes, unless the server did not give them. One round
    /// trip; with `exact`, a second sets the mode again by the handle (the
    /// server applies its umask to the OPEN's).
    pub fn create(
        ext: &mut SftpExt,
        path: &Path,
        mode: u32,
        exclusive: bool,
        exact: bool,
    ) -> Result<(RawKept, Option<ssh2::FileStat>)> {
        let name = path.as_os_str().as_bytes();
        let flags = wire::FXF_WRITE
            | wire::FXF_CREAT
            | if exclusive {
                wire::FXF_EXCL
            } else {
                wire::FXF_TRUNC
            };
        let open = ext.send(|id| {
            Ok(Packet::new(wire::FXP_OPEN, id)
                .string(name)?
                .u32(flags)
                .u32(wire::ATTR_PERMISSIONS)
                .u32(mode & 0o7777))
        })?;
        // Only after an exclusive create is the file's LSTAT its own: a
        // server may run it before the OPEN (it then fails, and the caller
        // stats), but it can find no other file there, as the OPEN would
        // then have failed.
        let lstat = match exclusive {
            true => Some(ext.send(|id| Packet::new(wire::FXP_LSTAT, id).string(name))?),
            false => None,
        };
        let opened = ext.receive(open)?;
        // Read even when the open failed: the channel stays at a packet
        // boundary.
        let stat = match lstat {
            Some(id) => Some(ext.receive(id)?),
            None => None,
        };
        let handle = if opened.kind == wire::FXP_HANDLE {
            wire::handle(&opened).ok_or_else(|| Error::Transport("open: a bad handle".into()))?
        } else {
            wire::status_result(&opened, "create")?;
            return Err(Error::Transport("open: no handle".into()));
        };
        let kept = RawKept {
            path: path.to_path_buf(),
            handle,
            ahead: VecDeque::new(),
            failed: None,
        };
        let mut attrs = stat.as_ref().and_then(wire::attrs);
        if exact {
            // Only once the open succeeded: by the handle, so it never
            // changes a file someone else made under that name.
            let moded = ext
                .send(|id| {
                    Ok(Packet::new(wire::FXP_FSETSTAT, id)
                        .string(&kept.handle)?
                        .u32(wire::ATTR_PERMISSIONS)
                        .u32(mode & 0o7777))
                })
                .and_then(|id| ext.receive(id))
                .and_then(|r| wire::status_result(&r, "chmod"));
            if let Err(e) = moded {
                // The file is there, without its mode: close it, say why.
                return Err(match kept.close(ext) {
                    Err(broken) if broken.breaks_connection() => broken,
                    _ => e,
                });
            }
            if let Some(perm) = attrs.as_mut().and_then(|a| a.perm.as_mut()) {
                *perm = (*perm & !0o7777) | (mode & 0o7777);
            }
        }
        Ok((kept, attrs))
    }

    /// Sends `data` at `offset`, all its WRITE requests together, and
    /// reads their replies: when it returns, the server has the bytes (a
    /// change made next on another connection, such as setting the
    /// times, comes after them).
    pub fn write(&mut self, ext: &mut SftpExt, offset: u64, data: &[u8]) -> Result<()> {
        for (i, chunk) in data.chunks(WRITE_CHUNK).enumerate() {
            while self.ahead.len() >= MAX_AHEAD {
                self.read_one(ext)?;
            }
            let at = offset + (i * WRITE_CHUNK) as u64;
            let id = ext.send(|id| {
                Packet::new(wire::FXP_WRITE, id)
                    .string(&self.handle)?
                    .u64(at)
                    .string(chunk)
            })?;
            self.ahead.push_back((id, "write"));
        }
        while !self.ahead.is_empty() {
            self.read_one(ext)?;
        }
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends the CLOSE and reads every reply still due: the first failure
    /// of a write, else the close's own.
    pub fn close(mut self, ext: &mut SftpExt) -> Result<()> {
        let id = ext.send(|id| Packet::new(wire::FXP_CLOSE, id).string(&self.handle))?;
        self.ahead.push_back((id, "close"));
        while !self.ahead.is_empty() {
            self.read_one(ext)?;
        }
        match self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reads the oldest reply due; a broken channel is returned, a failed
    /// status kept (the first one) for the close.
    fn read_one(&mut self, ext: &mut SftpExt) -> Result<()> {
        let Some((id, what)) = self.ahead.pop_front() else {
            return Ok(());
        };
        let reply = ext.receive(id)?;
        if let Err(e) = wire::status_result(&reply, what) {
            if e.breaks_connection() {
                return Err(e);
            }
            self.failed.get_or_insert(e);
        }
        Ok(())
    }
}
