//! Open files: open, create and release, the handle table, and the shared
//! open state per inode (created on first open, dropped after the last
//! release). Reading and writing through a handle are read.rs's and
//! write.rs's.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::file_state::{self, Content, FileState};
use super::open_file::OpenFile;
use super::read::ahead::ReadAhead;
use super::write::behind::WriteBehind;
use super::{Entry, Error, Fs, OpenFlags, Opened, Result};
use crate::cache::blocks::Reservation;
use crate::cache::meta::Lookup;
use crate::remote::private_names;
use crate::remote::{self, Attr, Kind};
use crate::sync::lock;

/// An open file handle (the kernel's `fh`): the open state it shares with
/// the file's other handles, and what is its own.
#[derive(Clone)]
pub(super) struct Handle {
    pub(super) ino: u64,
    pub(super) file: Arc<OpenFile>,
    pub(super) write: bool,
    pub(super) append: bool,
    /// `FileState::failures` when it was opened: later ones are its own.
    pub(super) failures_seen: u64,
    /// Shared with this handle's read-ahead chain while one runs.
    pub(super) ahead: Arc<Mutex<ReadAhead<Reservation>>>,
}

impl Fs {
    pub fn open(&self, ino: u64, flags: OpenFlags) -> Result<Opened> {
        if flags.write {
            self.writable()?;
        }
        let path = self.path_of(ino)?;
        // Close-to-open: a change made on the server before this open is
        // seen by it, for one stat. Not while the file is open with
        // content the server does not have yet: its open state is what
        // counts then. Writers always need the exact size (O_APPEND).
        let authoritative = lock(&self.open)
            .get(&ino)
            .is_some_and(|state| state.shown_size().is_some());
        let check = self.cfg.close_to_open && !authoritative;
        let cached = match self.meta.get(&path) {
            Some(Lookup::Found(attr)) => Some(attr),
            _ => None,
        };
        let mut attr = match &cached {
            Some(known) if check && !flags.write => self.stat_again(&path, known)?,
            _ if flags.write || check => self.stat_fresh(&path)?,
            _ => self.stat_path(&path)?,
        };
        let mut attrs_changed = false;
        if check {
            if let Some(cached) = &cached {
                if attr.mtime != cached.mtime && self.remote.same_version(&path, cached, &attr) {
                    // The same content, where the cache had a coarser time
                    // (a listing's): keep showing that one, so that
                    // the file does not seem changed to those who saw it.
                    attr.mtime = cached.mtime;
                    attr.atime = cached.atime;
                    attr.ctime = cached.ctime;
                    self.meta.put(&path, attr.clone());
                }
            }
            attrs_changed = cached.as_ref() != Some(&attr);
        }
        if attr.kind == Kind::Dir {
            return Err(remote::Error::IsADirectory.into());
        }
        let state = self.open_state(ino, &attr)?;
        let prepared = {
            let mut st = state.lock();
            self.prepare_open(ino, &path, &attr, &mut st, flags)
                .map(|keep_cache| (keep_cache, st.failures))
        };
        match prepared {
            Ok((keep_cache, failures)) => Ok(Opened {
                fh: self.add_handle(ino, state, flags, failures),
                keep_cache,
                attrs_changed,
            }),
            Err(e) => {
                let _ = self.drop_handle(ino, &state, false);
                Err(e)
            }
        }
    }

    /// Readies the shared state for one more handle; returns whether the
    /// kernel may keep its cached pages.
    fn prepare_open(
        &self,
        ino: u64,
        path: &Path,
        attr: &Attr,
        st: &mut FileState,
        flags: OpenFlags,
    ) -> Result<bool> {
        if flags.write && st.error.is_some() {
            // Those who lost writes keep being told; a new writer starts
            // from the server's file.
            st.recover(&*self.remote, attr.size, attr.version());
        }
        if flags.write
            && !self.remote.caps().random_write
            && !matches!(st.content, Content::Local { .. })
        {
            st.size = attr.size;
            st.stage_locally(&self.cfg.staging_dir, flags.truncate)?;
        }
        if flags.write {
            // One writer without O_APPEND ends the append-only state.
            let first = st.handles == 1;
            st.append_only = flags.append && !flags.truncate && (first || st.append_only);
        }
        let mut keep_cache = false;
        if flags.truncate && flags.write {
            self.truncate_on_open(st, path)?;
            self.note_change(ino);
            self.blocks.forget_file(ino);
            self.meta.update(path, |a| a.size = 0);
        } else if !st.reads_bypass_cache() {
            let version = attr.version();
            let previous = lock(&self.shown_versions).insert(ino, version);
            keep_cache = previous == Some(version);
            if previous.is_some_and(|v| v != version) {
                // Blocks are keyed by version: the old ones are only dead
                // weight now.
                self.blocks.forget_file(ino);
            }
            st.version = version;
            st.size = attr.size;
        }
        Ok(keep_cache)
    }

    /// Starts uploading a freshly staged (empty) file while it is written,
    /// where atomic writes allow a temporary name. A new file streams to a
    /// temporary name too: a stream names its file by path, so one to the
    /// file's own name would have to end before every rename (its close
    /// still uploads it in place when no stream ran).
    fn start_stream(&self, st: &mut FileState, path: &Path) {
        if !self.cfg.atomic_writes || !self.remote.caps().atomic_rename || st.streamer.is_some() {
            return;
        }
        if let Content::Local { file, .. } = &st.content {
            let temp = private_names::private_sibling(path, private_names::TEMP_PREFIX);
            st.streamer =
                super::write::upload_stream::Streamer::start(self.remote.clone(), file, temp);
        }
    }

    fn truncate_on_open(&self, state: &mut FileState, path: &Path) -> Result<()> {
        // A fresh rewrite: what was written before, whether it arrived or
        // was lost, no longer matters.
        if !matches!(state.content, Content::Local { .. }) {
            let _ = state.send_pending(&*self.remote, path);
        }
        state.error = None;
        if let Content::Local { .. } = state.content {
            state.stage_locally(&self.cfg.staging_dir, true)?;
            self.start_stream(state, path);
        } else if !self.cfg.atomic_writes {
            state.set_size(&*self.remote, path, 0)?;
        } else {
            state.discard_temp(&*self.remote);
            state.content = Content::Truncated;
            state.rewriting = true;
            state.size = 0;
            state.dirty = true;
        }
        Ok(())
    }

    /// The shared open state of `ino`, created on first open, with one more
    /// handle counted. The open files' table is never held while a file's
    /// state is locked: a commit holds that lock for a whole upload, and
    /// every stat and listing consults the table.
    fn open_state(&self, ino: u64, attr: &Attr) -> Result<Arc<OpenFile>> {
        loop {
            let existing = lock(&self.open).get(&ino).cloned();
            if let Some(state) = existing {
                let mut st = state.lock();
                if st.closed {
                    continue; // released meanwhile and already out of the table
                }
                st.handles += 1;
                drop(st);
                return Ok(state);
            }
            let mut state = FileState::new(attr.size, u32::from(attr.perm), attr.version());
            if self.remote.caps().random_write {
                state.write_behind = Some(WriteBehind::new(
                    self.remote.clone(),
                    self.cfg.prefetch_threads,
                ));
            }
            state.handles = 1;
            let state = Arc::new(OpenFile::new(state));
            let mut open = lock(&self.open);
            if open.contains_key(&ino) {
                continue; // another open made one first: use that
            }
            open.insert(ino, state.clone());
            return Ok(state);
        }
    }

    /// A new handle on `file`, whose state counted `failures_seen` losses
    /// when it was readied for this handle.
    fn add_handle(
        &self,
        ino: u64,
        file: Arc<OpenFile>,
        flags: OpenFlags,
        failures_seen: u64,
    ) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            ino,
            file,
            write: flags.write,
            append: flags.append,
            failures_seen,
            ahead: Arc::default(),
        };
        lock(&self.handles).insert(fh, handle);
        fh
    }

    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        flags: OpenFlags,
    ) -> Result<(Entry, Opened)> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        if private_names::is_private_name(name.as_bytes()) {
            return Err(Error::InvalidName);
        }
        // The server's file must stay writable for the writes that follow,
        // as the descriptor of a file created read-only is on a local
        // filesystem; the commit gives it `mode` (file_state::writable_perm).
        // Where the protocol writes in place, the handle the create opens
        // stays open for those writes (`create_kept`).
        let server_mode = file_state::writable_perm(mode & 0o7777);
        let writer = remote::new_writer_id();
        let created = if self.remote.caps().random_write {
            self.remote.create_kept(writer, &path, server_mode, true)
        } else {
            self.remote.create(&path, server_mode, true).map(|()| None)
        };
        let attr = match created {
            Ok(attr) => attr,
            Err(remote::Error::Exists) if !flags.exclusive => {
                // Someone created it since the kernel looked: open it.
                let entry = self.created(&path)?;
                let opened = self.open(entry.ino, flags)?;
                return Ok((entry, opened));
            }
            Err(e) => return Err(e.into()),
        };
        // Either failing leaves no open file: the kept handle is closed.
        let (state, entry) = self
            .created_as(&path, attr)
            .and_then(|entry| Ok((self.open_state(entry.ino, &entry.attr)?, entry)))
            .inspect_err(|_| {
                let _ = self.remote.close_writer(writer);
            })?;
        let failures = {
            let mut st = state.lock();
            st.perm = mode & 0o7777;
            st.server_perm = file_state::writable_perm(st.perm);
            // The file is new: nothing on the server to protect, so it is
            // written under its own name (README, "Writes and what a
            // successful close means"). Not if another open shares it.
            let new = st.handles == 1 && matches!(st.content, Content::InPlace);
            if new {
                st.writer = writer;
                st.new_in_place = true;
            } else {
                let _ = self.remote.close_writer(writer);
            }
            if !self.remote.caps().random_write {
                let staged = st.stage_locally(&self.cfg.staging_dir, true);
                if let Err(e) = staged {
                    drop(st);
                    let _ = self.drop_handle(entry.ino, &state, false);
                    return Err(e);
                }
                st.dirty = false;
                self.start_stream(&mut st, &path);
            }
            st.failures
        };
        lock(&self.shown_versions).insert(entry.ino, entry.attr.version());
        let fh = self.add_handle(
            entry.ino,
            state,
            OpenFlags {
                write: true,
                ..flags
            },
            failures,
        );
        Ok((
            entry,
            Opened {
                fh,
                keep_cache: false,
                attrs_changed: false,
            },
        ))
    }

    pub(super) fn handle(&self, fh: u64) -> Result<Handle> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or(Error::BadHandle)
    }

    pub fn release(&self, fh: u64) -> Result<()> {
        let Some(handle) = lock(&self.handles).remove(&fh) else {
            return Err(Error::BadHandle);
        };
        // Nobody reads ahead of a closed handle: its chain ends.
        lock(&handle.ahead).stop();
        // close() already committed through flush. Only the last release
        // commits what is left (writes that came after that close, as from
        // a shared mapping), whatever its own mode: an earlier one arriving
        // late must not commit another handle's rewrite half-way.
        let result = self.drop_handle(handle.ino, &handle.file, true);
        if let Err(e) = &result {
            tracing::warn!("write-back at close failed: {e}");
        }
        result
    }

    /// One handle fewer on `state`. After the last, what is left is
    /// committed (with `commit`), the state leaves the open files' table
    /// and what only it kept alive is removed.
    fn drop_handle(&self, ino: u64, state: &Arc<OpenFile>, commit: bool) -> Result<()> {
        let mut st = state.lock();
        st.handles -= 1;
        if st.handles > 0 {
            return Ok(());
        }
        let result = if commit {
            self.any_path_of(ino)
                .and_then(|path| self.commit_locked(ino, &mut st, &path))
        } else {
            Ok(())
        };
        st.closed = true;
        let mut open = lock(&self.open);
        if open.get(&ino).is_some_and(|s| Arc::ptr_eq(s, state)) {
            open.remove(&ino);
        }
        drop(open);
        st.cleanup(&*self.remote);
        self.remove_orphaned_temps(&mut st);
        result
    }
}
