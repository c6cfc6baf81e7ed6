//! Names: inode ↔ path, lookups, and the operations that make, remove or
//! move a name (mkdir, symlink, link, unlink, rmdir, rename), keeping the
//! caches and the inode table in step with each. Open files that lose or
//! change their name are handed to their open state; what a file holds is
//! not this file's business.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file_state::Content;
use super::inodes;
use super::open_file::OpenFile;
use super::{DirItem, Entry, Error, Fs, Result};
use crate::remote::private_names;
use crate::remote::{self, Attr, SetAttr};
use crate::sync::lock;

/// Longest name a component may have (as most Unix filesystems).
pub(super) const NAME_MAX: usize = 255;

/// `-o contain_symlinks`: the target a link at `link` (a server path below
/// `root`) may show. An absolute target inside `root` becomes relative to
/// the link's directory (so it resolves inside the mount, not on this
/// machine); one that leads out of `root`, absolute or through `..`, is
/// refused (None).
pub(super) fn contained_target(root: &Path, link: &Path, target: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let dir = link.parent()?;
    // Resolve lexically, as far as the root allows.
    let mut at: Vec<&OsStr> = Vec::new();
    let start = if target.is_absolute() {
        Path::new("/")
    } else {
        dir
    };
    for c in start.components().chain(target.components()) {
        match c {
            Component::RootDir => at.clear(),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                at.pop()?;
            }
            Component::Normal(n) => at.push(n),
        }
    }
    let resolved: PathBuf = std::iter::once(OsStr::new("/")).chain(at).collect();
    if !resolved.starts_with(root) {
        return None;
    }
    if !target.is_absolute() {
        return Some(target.to_path_buf());
    }
    // Relative to the link's directory: up to the common part, then down.
    let common = dir
        .components()
        .zip(resolved.components())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = dir.components().count() - common;
    let mut relative = PathBuf::new();
    for _ in 0..ups {
        relative.push("..");
    }
    for c in resolved.components().skip(common) {
        relative.push(c);
    }
    if relative.as_os_str().is_empty() {
        relative.push(".");
    }
    Some(relative)
}

pub(super) fn check_name(name: &OsStr) -> Result<()> {
    let bytes = name.as_bytes();
    if bytes.len() > NAME_MAX {
        return Err(Error::NameTooLong);
    }
    if bytes.is_empty() || bytes.contains(&b'/') || name == "." || name == ".." {
        return Err(Error::InvalidName);
    }
    Ok(())
}

impl Fs {
    /// The remote path of an inode that still has a name.
    pub(super) fn path_of(&self, ino: u64) -> Result<PathBuf> {
        let path = self.any_path_of(ino)?;
        if inodes::is_detached(&path) {
            return Err(Error::not_found());
        }
        Ok(path)
    }

    /// Like `path_of`, but also for an open file that lost its name: its
    /// content is then reached through the open state (`data_path`).
    pub(super) fn any_path_of(&self, ino: u64) -> Result<PathBuf> {
        lock(&self.inodes)
            .path(ino)
            .map(Path::to_path_buf)
            .ok_or_else(Error::not_found)
    }

    pub(super) fn child_path(&self, parent: u64, name: &OsStr) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.path_of(parent)?.join(name))
    }

    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry> {
        let path = self.child_path(parent, name)?;
        if private_names::is_private_name(name.as_bytes()) {
            return Err(Error::not_found());
        }
        // Through the caches, or a listing of the parent (listings.rs).
        let attr = self.lookup_attr(&path, name)?;
        Ok(self.entry_for(&path, attr))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        let gone = lock(&self.inodes).forget(ino, n);
        if gone {
            lock(&self.shown_versions).remove(&ino);
            lock(&self.listing_digests).remove(&ino);
            lock(&self.changed).remove(&ino);
            lock(&self.snapshots).pop(&ino);
            self.blocks.forget_file(ino);
        }
    }

    /// Counts a kernel lookup of a readdirplus entry; undone with `forget`.
    pub fn remember(&self, item: &DirItem) -> u64 {
        lock(&self.inodes).lookup(&item.path)
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let path = self.path_of(ino)?;
        let mut target = self.remote.readlink(&path)?;
        if self.cfg.contain_symlinks {
            target = contained_target(&self.cfg.root, &path, &target)
                .ok_or(remote::Error::NotPermitted)?;
        }
        Ok(target.into_os_string().into_encoded_bytes())
    }

    /// The directory holding `path` changed (its mtime did): forget its
    /// cached attributes. The kernel drops its own copy by itself.
    pub(super) fn dir_changed(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.meta.forget(dir);
        }
    }

    /// Records a new name in the caches and returns its entry.
    pub(super) fn created(&self, path: &Path) -> Result<Entry> {
        self.created_as(path, None)
    }

    /// As `created`, with the new name's attributes if the remote gave
    /// them with the create (no stat then).
    pub(super) fn created_as(&self, path: &Path, attr: Option<Attr>) -> Result<Entry> {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            self.meta.dir_added(dir, name);
        }
        self.dir_changed(path);
        self.meta.forget(path);
        let attr = match attr {
            Some(attr) => self.cache_stat(path, Ok(attr))?,
            None => self.stat_fresh(path)?,
        };
        Ok(self.entry_for(path, attr))
    }

    /// Records in the caches that `path` (and all below it) is gone.
    fn forget_name(&self, path: &Path) {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            self.meta.dir_removed(dir, name);
        }
        self.dir_changed(path);
        self.meta.forget_tree(path);
        self.meta.put_missing(path);
    }

    fn removed(&self, path: &Path) {
        self.forget_name(path);
        lock(&self.inodes).unlinked(path);
    }

    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32) -> Result<Entry> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        self.remote.mkdir(&path, mode)?;
        self.created(&path)
    }

    pub fn symlink(&self, parent: u64, name: &OsStr, target: &Path) -> Result<Entry> {
        self.writable()?;
        if !self.remote.caps().symlinks {
            return Err(remote::Error::NotPermitted.into());
        }
        let path = self.child_path(parent, name)?;
        self.remote.symlink(target, &path)?;
        self.created(&path)
    }

    /// A hard link: `new_name` in `new_parent` for the file `ino`, where
    /// the server can make one (`EPERM` otherwise). The new name gets an
    /// inode of its own (inodes are names here); the file's ctime moves.
    pub fn link(&self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<Entry> {
        self.writable()?;
        let to = self.child_path(new_parent, new_name)?;
        if private_names::is_private_name(new_name.as_bytes()) {
            return Err(Error::InvalidName);
        }
        // An open file stays locked while it gets the name, and what it
        // holds goes to the server first, so the new name shows it (a
        // rewrite under a temporary name would otherwise leave the new
        // name on the old content).
        let state = lock(&self.open).get(&ino).cloned();
        let mut open = state.as_deref().map(OpenFile::lock);
        let from = self.path_of(ino)?;
        if let Some(st) = open.as_mut() {
            if st.error.is_none() {
                self.commit_locked(ino, st, &from)?;
            }
        }
        self.remote.link(&from, &to)?;
        drop(open);
        self.note_change(ino);
        // One file: the new name shows the same change.
        let mut entry = self.created(&to)?;
        self.note_change(entry.ino);
        if let Some(&at) = lock(&self.changed).get(&entry.ino) {
            entry.attr.ctime = entry.attr.ctime.max(at);
        }
        Ok(entry)
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        self.remote.rmdir(&path)?;
        self.removed(&path);
        Ok(())
    }

    pub fn unlink(&self, parent: u64, name: &OsStr) -> Result<()> {
        self.writable()?;
        let path = self.child_path(parent, name)?;
        let ino = lock(&self.inodes).ino(&path);
        let state = ino.and_then(|ino| lock(&self.open).get(&ino).cloned());
        match state {
            Some(state) => {
                // What fstat shows once the server has no name for it.
                let last = self.stat_path(&path).ok();
                self.unlink_open(&path, &state, last)?
            }
            None => self.remote.unlink(&path)?,
        }
        if let Some(ino) = ino {
            self.blocks.forget_file(ino);
            // One name fewer: still seen through open descriptors.
            self.note_change(ino);
        }
        self.removed(&path);
        Ok(())
    }

    /// Unlink of a file that is still open: its content must stay reachable
    /// through the open handles, so it moves to a hidden name (or, if it is
    /// being rewritten under a temporary name, the old file just goes).
    fn unlink_open(&self, path: &Path, state: &OpenFile, last: Option<Attr>) -> Result<()> {
        let mut state = state.lock();
        if state.handles == 0 {
            // The last release got here first: nothing keeps it open.
            return Ok(self.remote.unlink(path)?);
        }
        match &state.content {
            Content::Temp(_) => self.remote.unlink(path)?,
            Content::Local { .. } => {
                // The staging file must hold every byte before the server's
                // copy goes away.
                state.load_everything(&*self.remote, path)?;
                self.remote.unlink(path)?;
            }
            Content::Hidden(_) => return Err(Error::not_found()),
            Content::InPlace | Content::Truncated => {
                let hidden = private_names::private_sibling(path, private_names::HIDDEN_PREFIX);
                state.send_pending(&*self.remote, path)?;
                self.remote.rename(path, &hidden)?;
                if matches!(state.content, Content::Truncated) {
                    self.remote.setattr(&hidden, SetAttr::Size(0))?;
                }
                state.content = Content::Hidden(hidden);
            }
        }
        state.unlinked = true;
        state.last_attr = last;
        Ok(())
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<()> {
        self.writable()?;
        let from = self.child_path(parent, name)?;
        let to = self.child_path(new_parent, new_name)?;
        if private_names::is_private_name(new_name.as_bytes()) {
            return Err(Error::InvalidName);
        }
        if from == to {
            return Ok(()); // rename(2) of a name onto itself does nothing
        }
        if no_replace {
            match self.remote.stat(&to) {
                Ok(_) => return Err(remote::Error::Exists.into()),
                Err(remote::Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // An open file at the target loses its name, as by unlink: its
        // content moves to a hidden name first, so its descriptors keep it
        // and its commit never renames anything over the new file.
        let replaced = lock(&self.inodes).ino(&to);
        let replaced_state = replaced.and_then(|ino| lock(&self.open).get(&ino).cloned());
        if let Some(state) = &replaced_state {
            let last = self.stat_path(&to).ok();
            self.unlink_open(&to, state, last)?;
        }
        // An open source file stays locked while it moves, so that a commit
        // (which renames its temporary file over the file's current path)
        // cannot run against the old name; buffered writes land first.
        let source_ino = lock(&self.inodes).ino(&from);
        let source_state = source_ino.and_then(|ino| lock(&self.open).get(&ino).cloned());
        let mut source_guard = source_state.as_deref().map(OpenFile::lock);
        if let Some(st) = source_guard.as_mut() {
            st.send_pending(&*self.remote, &from)?;
        }
        // Open files below a renamed directory keep names of their own
        // there (temporary and hidden copies): they are locked while the
        // directory moves (in inode order), then follow it.
        let open: Vec<(u64, Arc<OpenFile>)> = lock(&self.open)
            .iter()
            .map(|(ino, state)| (*ino, state.clone()))
            .collect();
        let mut below: Vec<(u64, Arc<OpenFile>)> = {
            let inodes = lock(&self.inodes);
            open.into_iter()
                .filter(|(ino, _)| {
                    inodes
                        .path(*ino)
                        .is_some_and(|p| p != from && p.starts_with(&from))
                })
                .collect()
        };
        below.sort_by_key(|(ino, _)| *ino);
        let mut below_guards: Vec<_> = below.iter().map(|(_, state)| state.lock()).collect();
        self.remote.rename(&from, &to)?;
        for st in &mut below_guards {
            st.moved(&from, &to);
        }
        drop(below_guards);
        if let Some(ino) = replaced {
            self.blocks.forget_file(ino);
            self.note_change(ino);
        }
        if let Some(ino) = source_ino {
            self.note_change(ino);
        }
        self.forget_name(&from);
        self.meta.forget_tree(&to);
        if let (Some(dir), Some(name)) = (to.parent(), to.file_name()) {
            self.meta.dir_added(dir, name);
        }
        self.dir_changed(&to);
        lock(&self.inodes).rename(&from, &to);
        drop(source_guard);
        Ok(())
    }

    /// The inode number a directory entry has, if the kernel knows it.
    pub fn known_ino(&self, path: &Path) -> Option<u64> {
        lock(&self.inodes).ino(path)
    }
}
