//! Attributes: the stat of a path through the cache, how the mount shows
//! attributes (ids mapped, open files' sizes, ctime of changes made here),
//! getattr, access and setattr. It must not decide what an open file holds
//! beyond its size and mode: that is the open state's (`file_state.rs`).

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::access;
use super::file_state::{self, Content, FileState};
use super::open_file::OpenFile;
use super::{Entry, Error, Fs, Result, SetAttrs, TimeSet};
use crate::cache::meta::Lookup;
use crate::remote::{self, Attr, Kind, SetAttr};
use crate::sync::lock;

impl Fs {
    /// Attributes as the mount shows them: ids mapped, open files' sizes
    /// and link counts, changes made through the mount in the ctime.
    fn present(&self, ino: Option<u64>, attr: Attr) -> Attr {
        let state = ino.and_then(|ino| lock(&self.open).get(&ino).cloned());
        self.present_with(attr, ino, state.as_deref())
    }

    pub(super) fn present_with(
        &self,
        mut attr: Attr,
        ino: Option<u64>,
        open: Option<&OpenFile>,
    ) -> Attr {
        if let Some(map) = self.cfg.idmap {
            if attr.uid == map.remote_uid {
                attr.uid = map.local_uid;
            }
            if attr.gid == map.remote_gid {
                attr.gid = map.local_gid;
            }
        }
        (attr.uid, attr.gid) = self.owners.shown(attr.uid, attr.gid);
        attr.uid = self.cfg.owner.0.unwrap_or(attr.uid);
        attr.gid = self.cfg.owner.1.unwrap_or(attr.gid);
        if let Some(open) = open {
            if let Some(size) = open.shown_size() {
                attr.size = size;
            }
            if open.unlinked() {
                attr.nlink = 0;
            }
        }
        attr.ctime = attr.ctime.max(attr.mtime);
        if let Some(changed) = ino.and_then(|ino| lock(&self.changed).get(&ino).copied()) {
            attr.ctime = attr.ctime.max(changed);
        }
        attr
    }

    /// Records that `ino` changed through the mount now: its ctime moves
    /// forward, even within one clock tick.
    pub(super) fn note_change(&self, ino: u64) {
        let now = SystemTime::now();
        let mut changed = lock(&self.changed);
        let at = match changed.get(&ino) {
            Some(&last) if last >= now => last + Duration::from_nanos(1),
            _ => now,
        };
        changed.insert(ino, at);
    }

    /// Attributes of a remote path, through the cache.
    pub(super) fn stat_path(&self, path: &Path) -> Result<Attr> {
        match self.meta.get(path) {
            Some(Lookup::Found(attr)) => return Ok(attr),
            Some(Lookup::Missing) => return Err(Error::not_found()),
            None => {}
        }
        // A listing's entry with a coarser time: the remote completes it.
        if let Some(listed) = self.meta.get_listed(path) {
            return self.stat_listed(path, &listed);
        }
        self.stat_fresh(path)
    }

    pub(super) fn stat_fresh(&self, path: &Path) -> Result<Attr> {
        self.cache_stat(path, self.remote.stat(path))
    }

    /// `stat_fresh` of a file the caches know as `known`, for an open
    /// (close-to-open): the remote may ask less than a whole stat.
    pub(super) fn stat_again(&self, path: &Path, known: &Attr) -> Result<Attr> {
        self.cache_stat(path, self.remote.stat_again(path, known))
    }

    /// Records the result of a stat in the caches.
    pub(super) fn cache_stat(&self, path: &Path, result: remote::Result<Attr>) -> Result<Attr> {
        match result {
            Ok(attr) => {
                self.learn_owners([&attr]);
                self.meta.put(path, attr.clone());
                Ok(attr)
            }
            Err(remote::Error::NotFound) => {
                self.meta.put_missing(path);
                Err(Error::not_found())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn entry_for(&self, path: &Path, attr: Attr) -> Entry {
        let ino = lock(&self.inodes).lookup(path);
        Entry {
            ino,
            attr: self.present(Some(ino), attr),
        }
    }

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let attr = self.path_of(ino).and_then(|path| self.stat_path(&path));
        let attr = match attr {
            Err(Error::Remote(remote::Error::NotFound)) => {
                self.open_file_attr(ino).ok_or_else(Error::not_found)?
            }
            other => other?,
        };
        Ok(self.present(Some(ino), attr))
    }

    /// access(2): whether `caller` may do what `mask` (of `access::READ`,
    /// `WRITE`, `EXEC`; empty: existence) asks of `ino`, judged from the
    /// attributes as the mount shows them (ids mapped), as a local
    /// filesystem would. The server still decides each real operation.
    pub fn access(&self, ino: u64, caller: access::Caller, mask: u32) -> Result<()> {
        let attr = self.getattr(ino)?;
        if mask & access::WRITE != 0 {
            self.writable()?;
        }
        let in_groups = |gid| access::supplementary_groups(caller.pid).contains(&gid);
        if access::permitted(&attr, caller.uid, caller.gid, mask, in_groups) {
            Ok(())
        } else {
            Err(remote::Error::PermissionDenied.into())
        }
    }

    /// Attributes of a file that is open but has no name on the server.
    fn open_file_attr(&self, ino: u64) -> Option<Attr> {
        let state = lock(&self.open).get(&ino).cloned()?;
        let state = state.lock();
        let attr = match &state.last_attr {
            Some(last) => Attr {
                size: state.size,
                perm: state.perm as u16,
                nlink: 0,
                ..last.clone()
            },
            None => Attr {
                kind: Kind::File,
                size: state.size,
                perm: state.perm as u16,
                uid: 0,
                gid: 0,
                atime: state.version.1,
                mtime: state.version.1,
                ctime: state.version.1,
                nlink: 0,
            },
        };
        // No name on the server.
        Some(attr)
    }

    pub fn setattr(&self, ino: u64, changes: SetAttrs) -> Result<Attr> {
        self.writable()?;
        // An open file stays locked throughout, so a commit (which renames
        // a temporary file over the target and gives it the recorded mode)
        // cannot slip between the change on the server and its record here.
        let state = lock(&self.open).get(&ino).cloned();
        let mut open = state.as_deref().map(OpenFile::lock);
        let path = self.path_of(ino)?;
        // Mode and times (chmod, utimens: what `tar x` and `cp -a` do to
        // every file) change nothing the cached attributes would need
        // fresh from the server: they answer, where they are cached.
        let light = changes.size.is_none() && changes.uid.is_none() && changes.gid.is_none();
        let cached = match self.meta.get(&path) {
            Some(Lookup::Found(attr)) if light => Some(attr),
            _ => None,
        };
        let current = match cached {
            Some(attr) => attr,
            None => self.stat_fresh(&path)?,
        };
        let resolve = |t: Option<TimeSet>, old: SystemTime| match t {
            Some(TimeSet::Now) => SystemTime::now(),
            Some(TimeSet::At(t)) => t,
            None => old,
        };
        if current.kind == Kind::Symlink && self.remote.caps().setattr_follows_symlinks {
            // The server's setattr would act on the link's target: changing
            // a link must never change its target, and Linux ignores a
            // link's own mode. The server cannot take a link's own times,
            // so the mount shows the ones asked for until the cache expires
            // (rsync -a then sees its links as up to date).
            drop(open);
            let mut shown = current;
            shown.atime = resolve(changes.atime, shown.atime);
            shown.mtime = resolve(changes.mtime, shown.mtime);
            self.note_change(ino);
            return Ok(self.show_times(ino, &path, shown));
        }
        // A time the server cannot store fails the call before anything
        // else changes.
        let times = self.remote.caps().times;
        for time in [changes.atime, changes.mtime] {
            if let Some(TimeSet::At(t)) = time {
                times.secs(t)?;
            }
        }
        if let Some(mode) = changes.mode {
            let mode = mode & 0o7777;
            match open.as_mut() {
                None => self.remote.setattr(&path, SetAttr::Mode(mode))?,
                Some(st) => {
                    // While open, the copy that is written keeps the
                    // owner's write bit, so `chmod 0444` does not break a
                    // writer; the commit gives it `mode` (file_state::writable_perm).
                    let writable = file_state::writable_perm(mode);
                    match st.content.temp() {
                        Some(temp) => {
                            self.remote.setattr(&path, SetAttr::Mode(mode))?;
                            self.remote.setattr(temp, SetAttr::Mode(writable))?;
                        }
                        None => self.remote.setattr(&path, SetAttr::Mode(writable))?,
                    }
                    st.perm = mode;
                    st.server_perm = writable;
                }
            }
        }
        if self.owner_changes(&current, changes.uid, changes.gid) {
            let (uid, gid) = self.unmap_ids(changes.uid, changes.gid)?;
            // chown(2) says EPERM where the server says "permission denied".
            let denied = |e: remote::Error| match e {
                remote::Error::PermissionDenied => remote::Error::NotPermitted,
                e => e,
            };
            self.remote
                .setattr(&path, SetAttr::Owner(uid, gid))
                .map_err(denied)?;
            if let Some(temp) = open.as_ref().and_then(|st| st.content.temp()) {
                self.remote
                    .setattr(temp, SetAttr::Owner(uid, gid))
                    .map_err(denied)?;
            }
        }
        if let Some(size) = changes.size {
            match open.as_mut() {
                // Its writes were lost already: the server's file is what
                // a truncate by path changes.
                Some(st) if !changes.by_handle && st.error.is_some() => {
                    self.truncate_on_server(&path, &current, size)?
                }
                Some(st) => {
                    st.set_size(&*self.remote, &path, size)?;
                    if !changes.by_handle {
                        // truncate(2) names no descriptor: it acts on the
                        // server at once, as for a file nobody has open
                        // (or one whose last close is still on its way).
                        self.commit_locked(ino, st, &path)?;
                    }
                }
                None => self.truncate_on_server(&path, &current, size)?,
            }
            self.blocks.forget_file(ino);
        }
        let mut sent_times = None;
        if changes.atime.is_some() || changes.mtime.is_some() {
            let atime = resolve(changes.atime, current.atime);
            let mtime = resolve(changes.mtime, current.mtime);
            sent_times = Some((atime, mtime));
            let target = match open.as_mut() {
                Some(st) => {
                    st.send_pending(&*self.remote, &path)?;
                    if matches!(st.content, Content::Local { .. }) && st.dirty {
                        st.times = Some((atime, mtime));
                    }
                    st.data_path(&path).to_path_buf()
                }
                None => path.clone(),
            };
            match self
                .remote
                .setattr(&target, SetAttr::Times { atime, mtime })
            {
                Err(remote::Error::Unsupported(why)) if current.kind == Kind::Dir => {
                    // A server that cannot set a directory's times:
                    // kept like a symlink's, so `tar x` and `cp -a` finish.
                    tracing::debug!("directory times not set: {why}");
                    drop(open);
                    let mut shown = self.stat_fresh(&path)?;
                    (shown.atime, shown.mtime) = (atime, mtime);
                    return Ok(self.show_times(ino, &path, shown));
                }
                other => other?,
            }
        }
        let shown_perm = open.as_ref().map(|st| st.perm as u16);
        // An open file's times were set after every byte it was written
        // was sent (send_pending): the server's size is the one it shows.
        // A chmod of an open file leaves the server's copy writable, and a
        // rewrite's bytes are elsewhere: those ask the server.
        let (light, size) = match open.as_ref() {
            None => (light, current.size),
            Some(st) => (
                light && changes.mode.is_none() && matches!(st.content, Content::InPlace),
                st.size,
            ),
        };
        drop(open);
        self.note_change(ino);
        let mut current = current;
        current.size = size;
        let known = self.known_after(light, &current, changes.mode, sent_times);
        let mut attr = match known {
            Some(attr) => {
                self.meta.put(&path, attr.clone());
                attr
            }
            None => {
                // The old attributes must not answer if the stat fails.
                self.meta.forget(&path);
                self.stat_fresh(&path)?
            }
        };
        if let Some(perm) = shown_perm {
            attr.perm = perm;
        }
        Ok(self.present(Some(ino), attr))
    }

    /// What the server holds after a change of only mode and times, where
    /// that is certain without asking: the mode exactly as set, times in
    /// whole seconds, on a server that keeps them (`Caps::exact_times`).
    /// Otherwise `None`: the caller stats.
    fn known_after(
        &self,
        light: bool,
        current: &Attr,
        mode: Option<u32>,
        times: Option<(SystemTime, SystemTime)>,
    ) -> Option<Attr> {
        // A server may drop a set-id bit silently (setgid of a group the
        // login is not in): those modes are asked for.
        let special = mode.is_some_and(|m| m & 0o7000 != 0);
        if !light || special || !self.remote.caps().exact_times || current.kind != Kind::File {
            return None;
        }
        let whole = |t: SystemTime| {
            let secs = self.remote.caps().times.secs(t).ok()?;
            let secs = u64::try_from(secs).ok()?;
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        };
        let mut attr = current.clone();
        if let Some(mode) = mode {
            attr.perm = (mode & 0o7777) as u16;
        }
        if let Some((atime, mtime)) = times {
            attr.atime = whole(atime)?;
            attr.mtime = whole(mtime)?;
            attr.ctime = attr.mtime;
        }
        Some(attr)
    }

    /// Changes the size of the server's file. Without a remote truncate
    /// (a server without random writes may not shrink a file), the file
    /// is rewritten through a staging copy, as an open file would be.
    fn truncate_on_server(&self, path: &Path, current: &Attr, size: u64) -> Result<()> {
        match self.remote.setattr(path, SetAttr::Size(size)) {
            Err(remote::Error::Unsupported(_)) if !self.remote.caps().random_write => {
                self.truncate_by_rewrite(path, current, size)
            }
            other => Ok(other?),
        }
    }

    /// Stages the head of a closed file, cuts it and uploads it whole.
    fn truncate_by_rewrite(&self, path: &Path, current: &Attr, size: u64) -> Result<()> {
        let mut st = FileState::new(current.size, u32::from(current.perm), current.version());
        st.stage_locally(&self.cfg.staging_dir, false)?;
        st.set_size(&*self.remote, path, size)?;
        let committed = st.commit(&*self.remote, path);
        self.remove_orphaned_temps(&mut st);
        committed.map(|_| ())
    }

    /// Times the server cannot store (a symlink's own, a directory's on
    /// some servers): the mount shows them until the cache expires, so
    /// `rsync -a` sees its copy as up to date.
    fn show_times(&self, ino: u64, path: &Path, shown: Attr) -> Attr {
        self.meta.put(path, shown.clone());
        self.present(Some(ino), shown)
    }

    /// Whether a chown asks for an owner or group other than the ones the
    /// mount shows: one that does not is a successful no-op, as on a local
    /// filesystem (`cp -a` and `rsync -a` of one's own files ask for it,
    /// also from a server that cannot change owners at all).
    fn owner_changes(&self, current: &Attr, uid: Option<u32>, gid: Option<u32>) -> bool {
        let shown = self.present(None, current.clone());
        uid.is_some_and(|u| u != shown.uid) || gid.is_some_and(|g| g != shown.gid)
    }

    /// The server's ids for the ids of a chown (see `present_with`).
    fn unmap_ids(&self, uid: Option<u32>, gid: Option<u32>) -> Result<(Option<u32>, Option<u32>)> {
        Ok(match self.cfg.idmap {
            Some(map) => (
                uid.map(|u| {
                    if u == map.local_uid {
                        map.remote_uid
                    } else {
                        u
                    }
                }),
                gid.map(|g| {
                    if g == map.local_gid {
                        map.remote_gid
                    } else {
                        g
                    }
                }),
            ),
            None => self.remote_owner(uid, gid)?,
        })
    }
}
