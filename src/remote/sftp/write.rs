//! The SFTP write path: creating a file with exactly its mode, writes
//! through a handle of their own (closed, its status checked, before the
//! call returns) or through the handle kept open for one writer while the
//! pool parks the connection for it, and whole uploads. Reads and the
//! handle they cache are `mod.rs`'s; nothing here caches a handle beyond
//! the one kept for a writer.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use ssh2::{File, OpenFlags, OpenType};

use super::small_put::{RawKept, SMALL_WRITE};
use super::status::{map_err, map_io};
use super::{attr_from_stat, SftpConnection, READ_CHUNK};
use crate::remote::explain::Expect;
use crate::remote::pool::Connection;
use crate::remote::{Attr, Error, Result, SetAttr};

impl SftpConnection {
    /// Creates `path` (exclusive, or truncating) with exactly `mode`, and
    /// returns its handle, open for writing.
    pub(super) fn open_new(&mut self, path: &Path, mode: u32, exclusive: bool) -> Result<File> {
        self.drop_handles();
        let mut flags = OpenFlags::WRITE | OpenFlags::CREATE;
        flags |= if exclusive {
            OpenFlags::EXCLUSIVE
        } else {
            OpenFlags::TRUNCATE
        };
        let mode = mode & 0o7777;
        let opened = self
            .sftp
            .open_mode(path, flags, mode as i32, OpenType::File);
        let file = opened.map_err(|e| {
            let err = map_err(e, "create");
            if exclusive {
                self.explain_failure(err, path, Expect::Absent)
            } else {
                err
            }
        })?;
        if needs_exact_mode(mode) {
            self.setattr(path, SetAttr::Mode(mode))?;
        }
        Ok(file)
    }

    /// Where the server opens a channel for the extensions: creates
    /// `path` there, its handle kept for the writes (`small_put`), with
    /// its attributes if the server gave them. `Ok(None)`: no such
    /// channel; nothing was done.
    pub(super) fn create_raw_kept(
        &mut self,
        path: &Path,
        mode: u32,
        exclusive: bool,
    ) -> Result<Option<Option<Attr>>> {
        self.drop_handles();
        let exact = needs_exact_mode(mode);
        let Some(ext) = self.ext()? else {
            return Ok(None);
        };
        match RawKept::create(ext, path, mode, exclusive, exact) {
            Ok((raw, attrs)) => {
                self.raw_kept = Some(raw);
                Ok(Some(attrs.as_ref().map(attr_from_stat)))
            }
            Err(e) if e.breaks_connection() => {
                self.ext = None;
                Err(e)
            }
            Err(e) if exclusive => Err(self.explain_failure(e, path, Expect::Absent)),
            Err(e) => Err(e),
        }
    }

    /// Each write opens and closes its own handle, and checks the CLOSE
    /// status: a server may report a failed write only there, and a handle
    /// left open would keep the file busy on the server (a program just
    /// linked on the mount could not run there: ETXTBSY) after the
    /// application's close() returned.
    pub(super) fn write_once(&mut self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        self.reader = None;
        let mut file = self
            .sftp
            .open_mode(path, OpenFlags::WRITE, 0o644, OpenType::File)
            .map_err(|e| map_err(e, "open for writing"))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| map_io(e, "seek"))?;
        file.write_all(data).map_err(|e| map_io(e, "write"))?;
        file.close().map_err(|e| map_err(e, "close"))
    }

    /// Keeps the handle open for the writer's next writes: one round trip
    /// per write, none to open or close. A handle opened with another
    /// path is closed first (and its close checked).
    pub(super) fn write_through_kept(
        &mut self,
        path: &Path,
        offset: u64,
        data: &[u8],
    ) -> Result<bool> {
        self.reader = None;
        if let Some(mut raw) = self.raw_kept.take() {
            if raw.path == path && data.len() <= SMALL_WRITE {
                let Some(ext) = self.ext.as_mut() else {
                    return Err(Error::Transport("the extensions' channel is gone".into()));
                };
                if let Err(e) = raw.write(ext, offset, data) {
                    // Replies may still be due: the channel goes with the
                    // handle (the server closes what it held).
                    self.ext = None;
                    return Err(e);
                }
                self.raw_kept = Some(raw);
                return Ok(true);
            }
            // A large write: libssh2's own pipelined writes, on a handle
            // of the main channel.
            self.raw_kept = Some(raw);
            self.close_kept_handle()?;
        }
        if self.kept.as_ref().is_some_and(|(p, _)| p != path) {
            self.close_kept_handle()?;
        }
        let file = match &mut self.kept {
            Some((_, file)) => file,
            None => {
                let file = self
                    .sftp
                    .open_mode(path, OpenFlags::WRITE, 0o644, OpenType::File)
                    .map_err(|e| map_err(e, "open for writing"))?;
                &mut self.kept.insert((path.to_path_buf(), file)).1
            }
        };
        let written = file
            .seek(SeekFrom::Start(offset))
            .map_err(|e| map_io(e, "seek"))
            .and_then(|_| file.write_all(data).map_err(|e| map_io(e, "write")));
        if let Err(e) = written {
            // Dropping the handle closes it without waiting for the status:
            // the write's failure is what counts.
            self.kept = None;
            return Err(e);
        }
        Ok(true)
    }

    /// Closes the kept handle, if any, and reports its close status.
    pub(super) fn close_kept_handle(&mut self) -> Result<()> {
        if let Some(raw) = self.raw_kept.take() {
            let Some(ext) = self.ext.as_mut() else {
                return Err(Error::Transport("the extensions' channel is gone".into()));
            };
            let closed = raw.close(ext);
            if closed.as_ref().is_err_and(Error::breaks_connection) {
                self.ext = None;
            }
            closed?;
        }
        match self.kept.take() {
            Some((_, mut file)) => file.close().map_err(|e| map_err(e, "close")),
            None => Ok(()),
        }
    }

    /// Replaces (or appends to) the whole file with what `src` gives.
    pub(super) fn upload_whole(
        &mut self,
        path: &Path,
        src: &mut dyn io::Read,
        append: bool,
    ) -> Result<()> {
        self.drop_handles();
        let mut flags = OpenFlags::WRITE | OpenFlags::CREATE;
        flags |= if append {
            OpenFlags::APPEND
        } else {
            OpenFlags::TRUNCATE
        };
        let mut file = self
            .sftp
            .open_mode(path, flags, 0o644, OpenType::File)
            .map_err(|e| map_err(e, "open for upload"))?;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = src.read(&mut buf).map_err(Error::Io)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n]).map_err(|e| map_io(e, "write"))?;
        }
        file.close().map_err(|e| map_err(e, "close"))
    }
}

/// The server applies its umask to new files; the kernel already applied
/// the caller's: a mode the umask or the server may have cut (group or
/// other write, set-id bits) is set again, exactly as asked for.
fn needs_exact_mode(mode: u32) -> bool {
    mode & 0o7022 != 0
}
