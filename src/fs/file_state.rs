//! The state of one open file, shared by all its handles: the coalescing
//! write buffer, where the content lives on the server right now (the file
//! itself, a temporary name during an atomic rewrite, a hidden name after
//! unlink, or a local staging file for protocols without random writes),
//! the size the mount shows, and a sticky write error.
//!
//! This module decides *where* bytes go and when they are committed; the
//! moving of bytes is `write::transfer`'s. It does not own caches or the
//! inode table (the caller updates those).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::write::behind::WriteBehind;
use super::write::budget::Buffered;
use super::write::staging::{read_full_at, staging_file};
use super::write::transfer::{
    copy_remote, download_into, remove_quietly, DOWNLOAD_CHUNK, WRITE_CHUNK,
};
use super::write::upload_stream::Streamer;

mod commit;
use super::{Error, Result, WriteLoss};
use crate::remote::private_names::{move_under, private_sibling, TEMP_PREFIX};
use crate::remote::{new_writer_id, Attr, Error as RemoteError, Remote, SetAttr, WriterId};

/// The mode a file gets on the server while the mount writes it: `perm`
/// with the owner's read and write bits, which the login needs to write
/// (and read back) its own file. The commit then sets `perm` itself.
pub fn writable_perm(perm: u32) -> u32 {
    perm | 0o600
}

/// Where the content of an open file lives while it is open.
#[derive(Debug)]
pub enum Content {
    /// In the file at the inode's current path; writes go there in place.
    InPlace,
    /// Truncated to zero through the mount, nothing written yet: the server
    /// still has the old content, which the commit will truncate.
    Truncated,
    /// Being rewritten under a temporary name; the commit renames it over.
    Temp(PathBuf),
    /// Unlinked while open: kept under a hidden name until the last release.
    Hidden(PathBuf),
    /// Staged in a private local file (protocols without random writes).
    /// `synced`: the server holds the first `synced` bytes unchanged, so the
    /// commit may append the rest; `None` means upload whole. `head_loaded`:
    /// those first bytes have been copied into `file` too.
    Local {
        file: File,
        synced: Option<u64>,
        head_loaded: bool,
    },
}

impl Content {
    /// The temporary name of a file being rewritten, if it is.
    pub fn temp(&self) -> Option<&Path> {
        match self {
            Content::Temp(p) => Some(p),
            _ => None,
        }
    }
}

pub struct FileState {
    pub handles: usize,
    /// Its last handle was released and it left the open files' table; an
    /// open that got hold of it just before must make a new one.
    pub closed: bool,
    pub content: Content,
    /// Writes not yet sent: (offset, bytes).
    pending: Option<(u64, Buffered)>,
    /// The size the mount shows while the file is open.
    pub size: u64,
    /// Written since the last commit.
    pub dirty: bool,
    /// The file's permission bits as the mount shows them; every commit
    /// leaves them on the server.
    pub perm: u32,
    /// The permission bits the server's copy (at `data_path`) has now.
    /// While the file is written they may include the owner's read and
    /// write bits that `perm` lacks (see `writable_perm`): an ordinary
    /// login cannot write to its own read-only file, while a local file
    /// created read-only stays writable through the descriptor that
    /// created it.
    pub server_perm: u32,
    /// Times set while the content is staged locally (`cp -p` sets them
    /// before its close): the upload at the commit gives the file new
    /// times, so the commit sets these again after it. A later write
    /// drops them, as it moves a local file's mtime.
    pub times: Option<(SystemTime, SystemTime)>,
    /// The version (size, mtime) of the content on the server, for the block cache.
    pub version: (u64, SystemTime),
    /// Why written data was lost (a failed write or commit): until a new
    /// writer opens the file (`recover`), nothing more is committed.
    pub error: Option<WriteLoss>,
    /// Losses so far. Every handle open at a loss reports it from every
    /// later write, flush, fsync and close (`Handle::failures_seen`): a
    /// close of a forked copy of a descriptor reaches us as the same
    /// flush, so reporting it once could tell the real writer "success"
    /// for data that never arrived. Handles opened later do not.
    pub failures: u64,
    pub unlinked: bool,
    /// Its attributes as the mount last knew them when its name went, for
    /// fstat (the server has them no more).
    pub last_attr: Option<Attr>,
    /// The file is being rewritten whole (opened with O_TRUNC or created).
    /// After a commit made part of it durable, later writes go to a fresh
    /// temporary copy, so a failure never leaves that part plus a partial
    /// tail under the real name.
    pub rewriting: bool,
    /// Only O_APPEND writers have it open: a commit of locally staged
    /// content may append the new tail (an append upload) instead of replacing.
    pub append_only: bool,
    /// Sends full chunks in the background (protocols with random writes).
    pub write_behind: Option<WriteBehind>,
    /// Temporary files that could not be removed after a failure (the link
    /// was down); the caller retries later (`Fs::remove_orphaned_temps`).
    pub orphans: Vec<PathBuf>,
    /// Uploads a new locally staged file while it is written (servers without
    /// random writes).
    pub streamer: Option<Streamer>,
    /// Names the server handles kept open for this file's writes, which
    /// every commit closes (`Remote::close_writer`).
    pub writer: WriterId,
    /// The file was created by this open and is written under its own
    /// name (it had nothing to protect), until its first commit. A loss
    /// before then empties it again, as it was created.
    pub new_in_place: bool,
}

impl FileState {
    pub fn new(size: u64, perm: u32, version: (u64, SystemTime)) -> FileState {
        FileState {
            handles: 0,
            closed: false,
            content: Content::InPlace,
            pending: None,
            size,
            dirty: false,
            perm,
            server_perm: perm,
            times: None,
            version,
            error: None,
            failures: 0,
            unlinked: false,
            last_attr: None,
            rewriting: false,
            append_only: false,
            write_behind: None,
            orphans: Vec::new(),
            streamer: None,
            writer: new_writer_id(),
            new_in_place: false,
        }
    }

    /// True when reads must see state the server (at the inode's path) does
    /// not have yet, so they cannot be served from cached blocks.
    pub fn reads_bypass_cache(&self) -> bool {
        self.dirty || !matches!(self.content, Content::InPlace)
    }

    /// Where the bytes live on the server for path-based calls, if remote.
    pub fn data_path<'a>(&'a self, path: &'a Path) -> &'a Path {
        match &self.content {
            Content::Temp(p) | Content::Hidden(p) => p,
            _ => path,
        }
    }

    /// Adds a write to the buffer, sending what must go first.
    pub fn write(
        &mut self,
        remote: &dyn Remote,
        path: &Path,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(Error::WriteFailed(e.clone()));
        }
        let result = self.write_unchecked(remote, path, offset, data);
        if let Err(e) = &result {
            // Whatever failed (starting the temporary copy, making the file
            // writable, sending), these bytes are lost: nothing of this
            // rewrite may be committed, not even its truncation.
            if self.error.is_none() {
                self.lose(WriteLoss::of(e));
            }
            self.undo_new(remote, path);
        }
        result
    }

    fn write_unchecked(
        &mut self,
        remote: &dyn Remote,
        path: &Path,
        offset: u64,
        data: &[u8],
    ) -> Result<()> {
        let end = offset + data.len() as u64;
        if let Content::Local { synced, .. } = &self.content {
            if synced.is_some_and(|n| offset < n) {
                // Rewriting bytes the server already has: upload whole.
                self.load_head(remote, path)?;
                self.set_unsynced();
            }
            if let Content::Local { file, .. } = &self.content {
                file.write_all_at(data, offset).map_err(Error::Io)?;
            }
            if let Some(stream) = &self.streamer {
                if !stream.wrote(offset, data.len() as u64) {
                    // Out of order: upload the staged file whole at commit.
                    self.streamer = None;
                }
            }
        } else {
            self.start_temp(remote, path)?;
            self.make_writable(remote, path)?;
            let contiguous =
                matches!(&self.pending, Some((start, buf)) if start + buf.len() as u64 == offset);
            if !contiguous {
                self.queue_pending(remote, path)?;
            }
            let (_, buf) = self
                .pending
                .get_or_insert_with(|| (offset, Buffered::empty()));
            let over_budget = buf.extend(data);
            if buf.len() >= WRITE_CHUNK || over_budget {
                self.queue_pending(remote, path)?;
            }
        }
        self.size = self.size.max(end);
        self.dirty = true;
        self.times = None;
        Ok(())
    }

    /// Before the first write of a rewrite: the content goes to a new
    /// temporary file, empty after a truncation, or a copy of what an
    /// earlier commit of this rewrite made durable.
    pub(super) fn start_temp(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        let copy = match self.content {
            Content::Truncated => 0,
            Content::InPlace if self.rewriting => self.size,
            _ => return Ok(()),
        };
        let temp = private_sibling(path, TEMP_PREFIX);
        // Its handle stays open for the writes that follow.
        remote.create_kept(self.writer, &temp, writable_perm(self.perm), true)?;
        if let Err(e) = copy_remote(remote, path, &temp, copy) {
            let _ = remote.close_writer(self.writer);
            remove_quietly(remote, &temp, &mut self.orphans);
            return Err(e);
        }
        self.content = Content::Temp(temp);
        Ok(())
    }

    /// Before writing in place: gives the server's file the owner's write
    /// bit back if a commit left it read-only (its mode said so) while
    /// descriptors still write to it.
    pub(super) fn make_writable(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        if !matches!(self.content, Content::InPlace | Content::Hidden(_))
            || self.server_perm == writable_perm(self.server_perm)
        {
            return Ok(());
        }
        let perm = writable_perm(self.server_perm);
        remote.setattr(self.data_path(path), SetAttr::Mode(perm))?;
        self.server_perm = perm;
        Ok(())
    }

    fn set_unsynced(&mut self) {
        if let Content::Local { synced, .. } = &mut self.content {
            *synced = None;
        }
    }

    /// Copies the bytes the server holds into the staging file, once.
    fn load_head(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        if let Content::Local {
            file,
            synced: Some(n),
            head_loaded: loaded @ false,
        } = &mut self.content
        {
            download_into(remote, path, *n, file, DOWNLOAD_CHUNK)?;
            *loaded = true;
        }
        Ok(())
    }

    /// Makes a local staging file self-contained (before its remote copy is
    /// unlinked): the head is copied and nothing counts as on the server.
    pub fn load_everything(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        self.load_head(remote, path)?;
        self.set_unsynced();
        Ok(())
    }

    /// Starts staging locally (protocols without random writes). With
    /// `truncate`, the staged content starts empty and nothing is downloaded.
    pub fn stage_locally(&mut self, dir: &Path, truncate: bool) -> Result<()> {
        self.streamer = None;
        let file = staging_file(dir)?;
        if truncate {
            self.content = Content::Local {
                file,
                synced: None,
                head_loaded: true,
            };
            self.size = 0;
            self.dirty = true;
        } else {
            self.content = Content::Local {
                file,
                synced: Some(self.size),
                head_loaded: false,
            };
        }
        Ok(())
    }

    /// Sends buffered writes and waits until everything written is on the
    /// server.
    pub fn send_pending(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        self.queue_pending(remote, path)?;
        if let Some(result) = self.write_behind.as_ref().map(WriteBehind::drain) {
            result.map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    /// Sends what is buffered, waits for it, and closes the handles kept
    /// for the writes, checking their close: then the server has every
    /// byte written so far.
    fn settle(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        self.send_pending(remote, path)?;
        remote.close_writer(self.writer).map_err(|e| self.failed(e))
    }

    /// Hands buffered writes to the write-behind (or sends them now).
    fn queue_pending(&mut self, remote: &dyn Remote, path: &Path) -> Result<()> {
        let Some((offset, buf)) = self.pending.take() else {
            return Ok(());
        };
        let target = self.data_path(path).to_path_buf();
        let result = match self.write_behind.as_mut() {
            Some(wb) => wb.push(self.writer, target, offset, buf),
            None => remote.write_kept(self.writer, &target, offset, &buf),
        };
        result.map_err(|e| self.failed(e))
    }

    /// Remembers a failed write for the next flush/fsync/close.
    fn failed(&mut self, e: RemoteError) -> Error {
        self.lose(WriteLoss::of(&e));
        Error::Remote(e)
    }

    /// Reads through the open state (dirty files, temp names, local staging).
    pub fn read(
        &mut self,
        remote: &dyn Remote,
        path: &Path,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let len = len.min((self.size - offset) as usize);
        match &self.content {
            Content::Truncated => Ok(Vec::new()),
            Content::Local { .. } => {
                self.load_head(remote, path)?;
                let Content::Local { file, .. } = &self.content else {
                    return Ok(Vec::new());
                };
                let mut buf = vec![0u8; len];
                let n = read_full_at(file, &mut buf, offset)?;
                buf.truncate(n);
                Ok(buf)
            }
            _ => {
                self.send_pending(remote, path)?;
                let mut data = remote.read(self.data_path(path), offset, len)?;
                // A sparse extension not yet materialised reads as zeros.
                data.resize(len, 0);
                Ok(data)
            }
        }
    }

    /// Changes the size (truncate up or down) of the open content.
    pub fn set_size(&mut self, remote: &dyn Remote, path: &Path, size: u64) -> Result<()> {
        match &mut self.content {
            Content::Local { synced, .. } => {
                self.streamer = None;
                if synced.is_some_and(|n| size < n) {
                    self.load_head(remote, path)?;
                    self.set_unsynced();
                }
                if let Content::Local { file, .. } = &self.content {
                    file.set_len(size).map_err(Error::Io)?;
                }
            }
            Content::Truncated if size == 0 => {}
            _ => {
                self.start_temp(remote, path)?;
                self.make_writable(remote, path)?;
                self.send_pending(remote, path)?;
                remote.setattr(self.data_path(path), SetAttr::Size(size))?;
            }
        }
        self.size = size;
        self.dirty = true;
        Ok(())
    }

    /// A directory above this file was renamed from `from` to `to`: the
    /// names it keeps on the server (a temporary or hidden copy, leftovers
    /// to remove) moved with it.
    pub fn moved(&mut self, from: &Path, to: &Path) {
        if let Content::Temp(p) | Content::Hidden(p) = &mut self.content {
            move_under(p, from, to);
        }
        for p in &mut self.orphans {
            move_under(p, from, to);
        }
        if let Some(streamer) = &mut self.streamer {
            streamer.moved(from, to);
        }
    }

    /// Records that written data was lost.
    pub(super) fn lose(&mut self, why: WriteLoss) {
        self.error = Some(why);
        self.failures += 1;
    }

    /// The message for a handle that was open at a loss.
    pub fn lost(&self) -> Error {
        Error::WriteFailed(self.error.clone().unwrap_or_else(|| "data was lost".into()))
    }

    /// After a loss, for a new writer: back to the server's file as it is
    /// (`size`, `version`), with nothing of the lost writes kept.
    pub fn recover(&mut self, remote: &dyn Remote, size: u64, version: (u64, SystemTime)) {
        // Chunks of the lost writes still in flight must not land after
        // the new writer starts, nor be reported to it.
        self.let_sends_land();
        self.discard_temp(remote);
        if !matches!(self.content, Content::Hidden(_)) {
            self.content = Content::InPlace;
            self.size = size;
            self.version = version;
        }
        self.rewriting = false;
        self.dirty = false;
        self.error = None;
    }

    /// Waits until the chunks still being sent in the background have
    /// landed or failed (their outcome no longer matters: after a loss).
    pub(super) fn let_sends_land(&self) {
        if let Some(wb) = &self.write_behind {
            let _ = wb.drain();
        }
    }

    /// Removes a temporary file after a failure, so none is left behind.
    pub fn discard_temp(&mut self, remote: &dyn Remote) {
        self.streamer = None;
        // Nothing more is written through them; their close status no
        // longer matters.
        let _ = remote.close_writer(self.writer);
        if let Content::Temp(temp) = &self.content {
            remove_quietly(remote, temp, &mut self.orphans);
            self.content = Content::InPlace;
        }
        self.pending = None;
        self.dirty = false;
    }

    /// After the last release: removes what only the open file kept alive.
    pub fn cleanup(&mut self, remote: &dyn Remote) {
        self.streamer = None;
        let _ = remote.close_writer(self.writer);
        match &self.content {
            Content::Hidden(p) | Content::Temp(p) if self.unlinked => {
                remove_quietly(remote, p, &mut self.orphans);
            }
            _ => {}
        }
    }
}
