//! The commit of an open file: what puts everything written on the
//! server under the file's name (a rename of its temporary copy, an upload
//! of its staging file, or only closing the handles kept for its writes),
//! the mode and times it gets then, and what a failed commit leaves (a new
//! file emptied again). Where the bytes go before that is `file_state`'s.

use std::path::Path;

use super::{writable_perm, Content, FileState};
use crate::fs::write::transfer::{commit_temp, upload_local};
use crate::fs::{Error, Result, WriteLoss};
use crate::remote::{Error as RemoteError, Remote, SetAttr};

impl FileState {
    /// Makes everything written so far durable at `path` on the server.
    /// Returns whether anything changed there. A failure is remembered
    /// (see `error`).
    pub fn commit(&mut self, remote: &dyn Remote, path: &Path) -> Result<bool> {
        if let Some(e) = &self.error {
            let e = Error::WriteFailed(e.clone());
            self.discard_temp(remote);
            self.undo_new(remote, path);
            return Err(e);
        }
        let result = self.commit_now(remote, path);
        match &result {
            Err(e) => {
                self.lose(WriteLoss::of(e));
                self.undo_new(remote, path);
            }
            Ok(_) if self.new_in_place => {
                // From now on the file has content to protect: a later
                // rewrite goes to a temporary copy.
                self.new_in_place = false;
                self.rewriting = true;
            }
            Ok(_) => {}
        }
        result
    }

    /// After a loss, a file created by this open and written under its
    /// own name is emptied again, as it was created: its name never holds
    /// a part of what was written as if it had arrived. Where the server
    /// cannot be reached, it may keep that part; the loss was reported.
    pub(super) fn undo_new(&mut self, remote: &dyn Remote, path: &Path) {
        if !self.new_in_place || self.unlinked {
            return;
        }
        self.new_in_place = false;
        self.streamer = None;
        // A chunk still in flight must not land after the file is emptied,
        // nor through a handle kept open for the writes.
        self.let_sends_land();
        let _ = remote.close_writer(self.writer);
        let emptied = if remote.caps().random_write {
            remote.setattr(path, SetAttr::Size(0))
        } else {
            remote.upload(path, &mut std::io::empty(), false)
        };
        if let Err(e) = emptied {
            tracing::warn!("cannot empty {} after its lost writes: {e}", path.display());
        }
    }

    fn commit_now(&mut self, remote: &dyn Remote, path: &Path) -> Result<bool> {
        if let Err(e) = self.settle(remote, path) {
            self.discard_temp(remote);
            return Err(e);
        }
        if self.unlinked {
            return Ok(false);
        }
        if !self.append_only
            && matches!(
                self.content,
                Content::Local {
                    synced: Some(_),
                    ..
                }
            )
        {
            // Only appends may extend the server's copy in place; anything
            // else replaces it whole, atomically.
            self.load_head(remote, path)?;
            self.set_unsynced();
        }
        let changed = self.dirty;
        let content = std::mem::replace(&mut self.content, Content::InPlace);
        let result = match content {
            Content::InPlace => Ok(()),
            Content::Truncated => remote.setattr(path, SetAttr::Size(0)).map_err(Error::from),
            Content::Temp(temp) => {
                let renamed = commit_temp(remote, &temp, path, &mut self.orphans);
                if renamed.is_ok() {
                    self.server_perm = writable_perm(self.perm);
                }
                renamed
            }
            Content::Hidden(hidden) => {
                self.content = Content::Hidden(hidden);
                return Ok(false);
            }
            Content::Local {
                mut file,
                synced,
                head_loaded,
            } => {
                let streamed = self.streamer.take().and_then(|s| {
                    s.finish(self.size)
                        .inspect_err(|e| tracing::debug!("streaming upload failed: {e}"))
                        .ok()
                });
                let result = match streamed {
                    Some(temp) => commit_temp(remote, &temp, path, &mut self.orphans),
                    None => upload_local(
                        remote,
                        path,
                        &mut file,
                        (synced, self.size),
                        self.new_in_place,
                        &mut self.orphans,
                    ),
                };
                if result.is_ok() && synced.is_none() {
                    // A whole upload replaced the file, with the server's
                    // default mode.
                    self.server_perm = u32::MAX;
                }
                if result.is_ok() {
                    self.restore_times(remote, path);
                }
                let synced = if result.is_ok() {
                    Some(self.size)
                } else {
                    synced
                };
                self.content = Content::Local {
                    file,
                    synced,
                    head_loaded,
                };
                result
            }
        };
        self.dirty = false;
        result?;
        self.restore_perm(remote, path);
        Ok(changed)
    }

    /// Whether the server's file lacks the mode the mount shows (a commit
    /// still has to set it).
    pub fn perm_pending(&self) -> bool {
        self.server_perm != self.perm && !self.unlinked
    }

    /// Gives an uploaded file the times set while it was staged. As for
    /// the mode, a refusal is logged: the data is there.
    fn restore_times(&mut self, remote: &dyn Remote, path: &Path) {
        if let Some((atime, mtime)) = self.times.take() {
            if let Err(e) = remote.setattr(path, SetAttr::Times { atime, mtime }) {
                tracing::warn!("cannot restore the times of {}: {e}", path.display());
            }
        }
    }

    /// Gives the committed file its mode where the protocol can set one.
    /// The data is there either way, so a refusal is no failed write.
    pub fn restore_perm(&mut self, remote: &dyn Remote, path: &Path) {
        if !self.perm_pending() || matches!(self.content, Content::Hidden(_)) {
            return;
        }
        match remote.setattr(path, SetAttr::Mode(self.perm)) {
            Ok(()) | Err(RemoteError::Unsupported(_)) => {}
            Err(e) => tracing::warn!("cannot restore the mode of {}: {e}", path.display()),
        }
        // Tried once: a refusal is not asked again at every close.
        self.server_perm = self.perm;
    }
}
