//! Writes through a handle and their commit: write, flush (close), fsync,
//! the commit that puts a file on the server, and the later removal of
//! temporary files a failed commit could not remove.

// Below the handles: background sends, the upload stream, local staging
// and moving bytes between them.
pub mod behind;
pub mod budget;
pub mod staging;
pub mod transfer;
pub mod upload_stream;

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::file_state::{Content, FileState};
use super::handles::Handle;
use super::open_file::OpenFile;
use super::{Error, Fs, Result};
use crate::remote::private_names;
use crate::sync::lock;

impl Fs {
    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let h = self.handle(fh)?;
        if !h.write {
            return Err(Error::BadHandle);
        }
        let mut st = h.file.lock();
        if st.failures > h.failures_seen {
            return Err(st.lost());
        }
        let path = self.any_path_of(h.ino)?;
        let offset = if h.append { st.size } else { offset };
        let was_dirty = st.dirty;
        let written = st.write(&*self.remote, &path, offset, data);
        self.remove_orphaned_temps(&mut st);
        written?;
        let size = st.size;
        drop(st);
        if !was_dirty {
            // Once per dirtying: later writes move the mtime, and the
            // ctime shown is never below it (`present_with`).
            self.note_change(h.ino);
        }
        // No need to drop cached blocks here: reads of a written file
        // bypass them until the commit, which drops them.
        self.meta.update(&path, |a| {
            a.size = size;
            a.mtime = SystemTime::now();
        });
        Ok(data.len() as u32)
    }

    /// close(): a writer's close puts the file on the server and reports
    /// what failed. A reader's close does nothing: it must neither commit
    /// another handle's rewrite half-way nor take that writer's error.
    pub fn flush(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        if !h.write {
            return Ok(());
        }
        self.commit(h.ino, &h.file, h.failures_seen)
    }

    pub fn fsync(&self, fh: u64) -> Result<()> {
        let Handle {
            ino,
            file: state,
            failures_seen,
            ..
        } = self.handle(fh)?;
        self.commit(ino, &state, failures_seen)?;
        let st = state.lock();
        let path = self.any_path_of(ino)?;
        if !st.unlinked && !matches!(st.content, Content::Local { .. }) {
            self.remote.fsync(st.data_path(&path))?;
        }
        Ok(())
    }

    /// Commits for a handle that was opened after `failures_seen` losses.
    fn commit(&self, ino: u64, state: &OpenFile, failures_seen: u64) -> Result<()> {
        // Path after the lock: a rename holds it while it moves the file.
        let mut st = state.lock();
        if st.failures > failures_seen {
            return Err(st.lost());
        }
        let path = self.any_path_of(ino)?;
        self.commit_locked(ino, &mut st, &path)
    }

    pub(super) fn commit_locked(&self, ino: u64, st: &mut FileState, path: &Path) -> Result<()> {
        if !st.dirty && st.error.is_none() {
            if st.perm_pending() {
                st.restore_perm(&*self.remote, path);
                self.meta.forget(path);
            }
            return Ok(());
        }
        let result = st.commit(&*self.remote, path);
        self.remove_orphaned_temps(st);
        self.blocks.forget_file(ino);
        self.meta.forget(path);
        self.dir_changed(path);
        if result.is_ok() && !st.unlinked {
            if self.remote.caps().exact_times {
                // No stat to learn the server's new mtime: the size is
                // known, and a version of our own keys the blocks read
                // from now on (the next open's stat shows another, which
                // drops them). The kernel keeps no page cache across it.
                st.version = (st.size, SystemTime::now());
                lock(&self.shown_versions).remove(&ino);
            } else if let Ok(attr) = self.stat_fresh(path) {
                // Whole uploads: a server that keeps coarse times (whole
                // seconds or minutes) may show the new file with the very
                // time an open just saw, so only the server's own
                // version tells the next open the content is new.
                st.version = attr.version();
                st.size = attr.size;
                lock(&self.shown_versions).insert(ino, attr.version());
            }
        }
        result.map(|_| ())
    }

    /// Keeps trying, in the background, to remove temporary files that a
    /// failure left behind while the server was unreachable (bounded:
    /// about two minutes; after that the next mount's sweep removes them).
    pub(super) fn remove_orphaned_temps(&self, st: &mut FileState) {
        if st.orphans.is_empty() {
            return;
        }
        let mut orphans = std::mem::take(&mut st.orphans);
        let remote = self.remote.clone();
        let spawned = std::thread::Builder::new()
            .name("orphan-remover".into())
            .spawn(move || {
                for attempt in 0..24u32 {
                    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt.min(10) + 1)));
                    orphans.retain(|p| !private_names::remove(&*remote, p));
                    if orphans.is_empty() {
                        return;
                    }
                }
                for p in orphans {
                    tracing::warn!("cannot remove temporary file {}", p.display());
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a thread to remove temporary files: {e}");
        }
    }
}
