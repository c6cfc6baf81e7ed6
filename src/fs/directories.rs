//! Directories: listings (from the caches when they are fresh, else from
//! the server), open directories and the snapshots readdir serves, and the
//! kernel's keep_cache for a listing. Removing other mounts' leftovers seen
//! in a listing is leftovers.rs's.

use std::hash::{Hash, Hasher};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::open_file::OpenFile;
use super::{DirItem, Error, Fs, Opened, Result};
use crate::cache::meta::Lookup;
use crate::remote::{Attr, Kind};
use crate::sync::lock;

/// A directory listing built from the caches, valid while the caches show
/// no change and the listing is the same one.
pub(super) struct Snapshot {
    changes: u64,
    listed_at: Instant,
    items: Arc<[DirItem]>,
    names: u64,
}

/// Directories whose last cached listing is kept ready.
pub(super) const SNAPSHOTS: NonZeroUsize = match NonZeroUsize::new(256) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// Digest of a listing's names and kinds, what the kernel caches of it
/// besides inode numbers.
fn names_digest(items: &[DirItem]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for item in items {
        (&item.name, item.attr.kind).hash(&mut h);
    }
    h.finish()
}

impl Fs {
    /// Opens a directory on a snapshot of its listing.
    pub fn opendir(&self, ino: u64) -> Result<Opened> {
        let path = self.path_of(ino)?;
        let items: Arc<[DirItem]> = self.list(&path)?.into();
        self.list_ahead(&path, &items);
        let names = names_digest(&items);
        Ok(self.open_dir_on(ino, items, names))
    }

    /// `opendir` from the caches alone, for the FUSE dispatcher: None when
    /// that would need the server or a lock that network I/O may hold (an
    /// open file's state); the caller then goes through a worker.
    pub fn opendir_cached(&self, ino: u64) -> Option<Opened> {
        let path = lock(&self.inodes).path(ino)?.to_path_buf();
        let (items, names) = self.cached_snapshot(ino, &path)?;
        if self.lists_open_file(&items)? {
            return None;
        }
        self.meta.vouch_listing(&path);
        self.list_ahead(&path, &items);
        Some(self.open_dir_on(ino, items, names))
    }

    /// A directory's attributes from the cache alone, for the dispatcher
    /// (directories have no open-file state to consult).
    pub fn getattr_cached_dir(&self, ino: u64) -> Option<Attr> {
        let path = lock(&self.inodes).path(ino)?.to_path_buf();
        match self.meta.get(&path) {
            Some(Lookup::Found(attr)) if attr.kind == Kind::Dir => {
                Some(self.present_with(attr, Some(ino), None))
            }
            _ => None,
        }
    }

    /// The listing of `dir` built from the caches (with the digest of its
    /// names), reusing the last one built while the caches did not change:
    /// an `ls -lR` opens every directory, and this runs on the dispatcher.
    fn cached_snapshot(&self, ino: u64, dir: &Path) -> Option<(Arc<[DirItem]>, u64)> {
        let changes = self.meta.changes();
        let listed_at = self.meta.listing_at(dir)?;
        if let Some(s) = lock(&self.snapshots).get(&ino) {
            if s.changes == changes && s.listed_at == listed_at {
                return Some((s.items.clone(), s.names));
            }
        }
        let items = self.cached_items(dir)?;
        let inos = self.changed_inos(&items);
        let items: Arc<[DirItem]> = items
            .into_iter()
            .zip(inos)
            .map(|(mut item, ino)| {
                item.attr = self.present_with(item.attr, ino, None);
                item
            })
            .collect();
        let names = names_digest(&items);
        let snapshot = Snapshot {
            changes,
            listed_at,
            items: items.clone(),
            names,
        };
        lock(&self.snapshots).put(ino, snapshot);
        Some((items, names))
    }

    /// Whether a listed file is open (its state then has to be consulted,
    /// and may be locked for a while); None if the open files' table is busy.
    fn lists_open_file(&self, items: &[DirItem]) -> Option<bool> {
        let open = self.open.try_lock().ok()?;
        if open.is_empty() {
            return Some(false);
        }
        let inodes = lock(&self.inodes);
        Some(items.iter().any(|i| {
            inodes
                .ino(&i.path)
                .is_some_and(|ino| open.contains_key(&ino))
        }))
    }

    /// Registers an open directory. The kernel may keep the entries it
    /// cached from the last opening if they are exactly these: the same
    /// names and kinds (`names`), and the same inode numbers, which hold as
    /// long as no inode was dropped.
    fn open_dir_on(&self, ino: u64, items: Arc<[DirItem]>, names: u64) -> Opened {
        let digest = {
            let mut h = std::hash::DefaultHasher::new();
            (names, lock(&self.inodes).removals()).hash(&mut h);
            h.finish()
        };
        let keep_cache = lock(&self.listing_digests).insert(ino, digest) == Some(digest);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, items);
        Opened {
            fh,
            keep_cache,
            attrs_changed: false,
        }
    }

    /// A listing from the caches: a fresh listing whose every entry still
    /// has fresh attributes (as the server gave them, in a stat or a
    /// listing).
    pub(super) fn cached_items(&self, dir: &Path) -> Option<Vec<DirItem>> {
        let names = self.meta.listing(dir)?;
        let items: Option<Vec<DirItem>> = names
            .into_iter()
            .map(|name| {
                let path = dir.join(&name);
                let attr = self.meta.get_any(&path)?;
                Some(DirItem { name, attr, path })
            })
            .collect();
        items
    }

    /// The listing of `dir`: from the caches when fresh, else from the
    /// server (or the listing of it under way, see listings.rs).
    pub(super) fn list(&self, dir: &Path) -> Result<Vec<DirItem>> {
        if let Some(items) = self.cached_items(dir) {
            // Shown now: a name it lacks does not exist.
            self.meta.vouch_listing(dir);
            return Ok(self.present_items(items));
        }
        let entries = self.fetch_for_readdir(dir)?;
        self.meta.vouch_listing(dir);
        let items = entries
            .into_iter()
            .map(|e| DirItem {
                path: dir.join(&e.name),
                name: e.name,
                attr: e.attr,
            })
            .collect();
        Ok(self.present_items(items))
    }

    fn present_items(&self, items: Vec<DirItem>) -> Vec<DirItem> {
        // One look at the open files for the whole listing (usually none).
        let open: Vec<Option<(u64, Arc<OpenFile>)>> = {
            let open = lock(&self.open);
            if open.is_empty() {
                vec![None; items.len()]
            } else {
                let inodes = lock(&self.inodes);
                items
                    .iter()
                    .map(|i| {
                        let ino = inodes.ino(&i.path)?;
                        Some((ino, open.get(&ino)?.clone()))
                    })
                    .collect()
            }
        };
        let changed = self.changed_inos(&items);
        items
            .into_iter()
            .zip(open.into_iter().zip(changed))
            .map(|(mut item, (state, changed))| {
                let ino = state.as_ref().map(|(ino, _)| *ino).or(changed);
                let state = state.as_ref().map(|(_, s)| &**s);
                item.attr = self.present_with(item.attr, ino, state);
                item
            })
            .collect()
    }

    /// The inode of each listed entry that changed through the mount (its
    /// ctime is then not the mtime); usually none.
    fn changed_inos(&self, items: &[DirItem]) -> Vec<Option<u64>> {
        if lock(&self.changed).is_empty() {
            return vec![None; items.len()];
        }
        let inodes = lock(&self.inodes);
        items.iter().map(|i| inodes.ino(&i.path)).collect()
    }

    /// The listing an open directory was opened on. Shared, not copied:
    /// the kernel reads a large directory in many small calls, each taking
    /// only what fits in its buffer.
    pub fn readdir(&self, fh: u64) -> Result<Arc<[DirItem]>> {
        lock(&self.dirs).get(&fh).cloned().ok_or(Error::BadHandle)
    }

    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }
}
