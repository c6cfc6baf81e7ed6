//! Attribute, negative-lookup and directory-listing cache, keyed by remote
//! path, each entry valid for a TTL and the whole bounded by an LRU.
//!
//! Owns only the stored answers. It never fetches; the filesystem logic fills
//! it from stat and list replies and updates it on every change it makes.

use std::ffi::{OsStr, OsString};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::stats;
use crate::sync::lock;
use crate::types::{Attr, Kind};

const MAX_ATTRS: usize = 200_000;
const MAX_DIRS: usize = 2_000;

/// What the cache knows about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Attr),
    /// The path was recently seen not to exist.
    Missing,
}

struct Timed<T> {
    value: T,
    at: Instant,
}

pub struct MetaCache {
    ttl: Duration,
    attrs: Mutex<LruCache<PathBuf, Timed<Lookup>>>,
    /// Names in a directory, in server order. Their attributes live in `attrs`.
    dirs: Mutex<LruCache<PathBuf, Timed<Vec<OsString>>>>,
    /// Counts stores, updates and removals, so that what was built from the
    /// cache can tell it is still what the cache says.
    changes: AtomicU64,
}

fn cap(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl MetaCache {
    pub fn new(ttl: Duration) -> MetaCache {
        MetaCache {
            ttl,
            attrs: Mutex::new(LruCache::new(cap(MAX_ATTRS))),
            dirs: Mutex::new(LruCache::new(cap(MAX_DIRS))),
            changes: AtomicU64::new(0),
        }
    }

    /// Changes so far: equal counts mean nothing was stored, updated or
    /// removed in between (entries may only have grown older).
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn fresh<T>(&self, t: &Timed<T>) -> bool {
        t.at.elapsed() < self.ttl
    }

    pub fn get(&self, path: &Path) -> Option<Lookup> {
        let mut attrs = lock(&self.attrs);
        stats::get().attr_lookup(attrs.peek(path).is_some_and(|t| self.fresh(t)));
        match attrs.get(path) {
            Some(t) if self.fresh(t) => Some(t.value.clone()),
            Some(_) => {
                attrs.pop(path);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, path: &Path, attr: Attr) {
        self.put_lookup(path, Lookup::Found(attr));
    }

    pub fn put_missing(&self, path: &Path) {
        self.put_lookup(path, Lookup::Missing);
    }

    fn put_lookup(&self, path: &Path, value: Lookup) {
        if self.ttl.is_zero() {
            return;
        }
        let timed = Timed {
            value,
            at: Instant::now(),
        };
        lock(&self.attrs).put(path.to_path_buf(), timed);
        self.changed();
    }

    /// Updates a cached attribute in place (keeping its age), if present.
    pub fn update(&self, path: &Path, f: impl FnOnce(&mut Attr)) {
        if let Some(Timed {
            value: Lookup::Found(attr),
            ..
        }) = lock(&self.attrs).get_mut(path)
        {
            f(attr);
            self.changed();
        }
    }

    pub fn forget(&self, path: &Path) {
        if lock(&self.attrs).pop(path).is_some() {
            self.changed();
        }
    }

    /// When the cached listing of `dir` was taken, if it is fresh.
    pub fn listing_at(&self, dir: &Path) -> Option<Instant> {
        lock(&self.dirs)
            .peek(dir)
            .filter(|t| self.fresh(t))
            .map(|t| t.at)
    }

    /// Names in `dir`, if a fresh listing is cached.
    pub fn listing(&self, dir: &Path) -> Option<Vec<OsString>> {
        let mut dirs = lock(&self.dirs);
        stats::get().listing_lookup(dirs.peek(dir).is_some_and(|t| self.fresh(t)));
        match dirs.get(dir) {
            Some(t) if self.fresh(t) => Some(t.value.clone()),
            Some(_) => {
                dirs.pop(dir);
                None
            }
            None => None,
        }
    }

    /// Stores a listing and the attributes that came with it.
    pub fn put_listing(&self, dir: &Path, entries: &[(OsString, Attr)]) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        {
            let mut attrs = lock(&self.attrs);
            for (name, attr) in entries {
                let timed = Timed {
                    value: Lookup::Found(attr.clone()),
                    at: now,
                };
                attrs.put(dir.join(name), timed);
            }
        }
        let names = entries.iter().map(|(n, _)| n.clone()).collect();
        lock(&self.dirs).put(
            dir.to_path_buf(),
            Timed {
                value: names,
                at: now,
            },
        );
        self.changed();
    }

    /// Records that `name` now exists in `dir` (keeps a cached listing right).
    pub fn dir_added(&self, dir: &Path, name: &OsStr) {
        if let Some(t) = lock(&self.dirs).get_mut(dir) {
            if !t.value.iter().any(|n| n == name) {
                t.value.push(name.to_os_string());
                self.changed();
            }
        }
    }

    /// Records that `name` is gone from `dir`.
    pub fn dir_removed(&self, dir: &Path, name: &OsStr) {
        if let Some(t) = lock(&self.dirs).get_mut(dir) {
            let before = t.value.len();
            t.value.retain(|n| n != name);
            if t.value.len() != before {
                self.changed();
            }
        }
    }

    /// Forgets everything (`rmount flush`).
    pub fn clear(&self) {
        lock(&self.attrs).clear();
        lock(&self.dirs).clear();
        self.changed();
    }

    /// Entries and an estimate of the bytes they hold: (attributes and
    /// negative entries, listings). Walks the whole cache: for
    /// `rmount stats`, not for the request path.
    pub fn usage(&self) -> ((u64, u64), (u64, u64)) {
        let attrs = lock(&self.attrs);
        let per_attr = std::mem::size_of::<(PathBuf, Timed<Lookup>)>();
        let attr_bytes = attrs
            .iter()
            .map(|(p, _)| (per_attr + p.as_os_str().len()) as u64)
            .sum();
        let attr_entries = attrs.len() as u64;
        drop(attrs);
        let dirs = lock(&self.dirs);
        let per_dir = std::mem::size_of::<(PathBuf, Timed<Vec<OsString>>)>();
        let per_name = std::mem::size_of::<OsString>();
        let dir_bytes = dirs
            .iter()
            .map(|(p, t)| {
                let names: usize = t.value.iter().map(|n| per_name + n.len()).sum();
                (per_dir + p.as_os_str().len() + names) as u64
            })
            .sum();
        ((attr_entries, attr_bytes), (dirs.len() as u64, dir_bytes))
    }

    /// Forgets `path` and everything below it (after a rename or rmdir).
    /// A path known as a non-directory has nothing below it: then no scan
    /// of the whole cache (rm -r and rsync remove or rename every file).
    pub fn forget_tree(&self, path: &Path) {
        let mut attrs = lock(&self.attrs);
        let leaf = matches!(attrs.peek(path), Some(Timed { value: Lookup::Found(a), .. }) if a.kind != Kind::Dir);
        if leaf && !lock(&self.dirs).contains(path) {
            attrs.pop(path);
            self.changed();
            return;
        }
        let doomed: Vec<PathBuf> = attrs
            .iter()
            .filter(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            attrs.pop(&p);
        }
        drop(attrs);
        let mut dirs = lock(&self.dirs);
        let doomed: Vec<PathBuf> = dirs
            .iter()
            .filter(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            dirs.pop(&p);
        }
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn attr(size: u64) -> Attr {
        Attr {
            kind: Kind::File,
            size,
            perm: 0o644,
            uid: 0,
            gid: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            nlink: 1,
        }
    }

    #[test]
    fn entries_expire_after_ttl() {
        let cache = MetaCache::new(Duration::from_millis(30));
        cache.put(Path::new("/a"), attr(1));
        assert_eq!(cache.get(Path::new("/a")), Some(Lookup::Found(attr(1))));
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.get(Path::new("/a")).is_some() {
            assert!(Instant::now() < deadline, "entry never expired");
            std::thread::yield_now();
        }
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = MetaCache::new(Duration::ZERO);
        cache.put(Path::new("/a"), attr(1));
        cache.put_listing(Path::new("/"), &[("a".into(), attr(1))]);
        assert_eq!(cache.get(Path::new("/a")), None);
        assert_eq!(cache.listing(Path::new("/")), None);
    }

    #[test]
    fn every_store_update_and_removal_counts_as_a_change() {
        let cache = MetaCache::new(Duration::from_secs(60));
        let d = Path::new("/d");
        let mut last = cache.changes();
        let mut changed = |what: &str, cache: &MetaCache| {
            let now = cache.changes();
            assert!(now > last, "{what} is a change");
            last = now;
        };
        cache.put_listing(d, &[("x".into(), attr(1))]);
        changed("put_listing", &cache);
        let at = cache.listing_at(d);
        assert!(at.is_some());
        cache.put(Path::new("/d/x"), attr(2));
        changed("put", &cache);
        cache.update(Path::new("/d/x"), |a| a.size = 3);
        changed("update", &cache);
        cache.dir_added(d, OsStr::new("y"));
        changed("dir_added", &cache);
        cache.dir_removed(d, OsStr::new("y"));
        changed("dir_removed", &cache);
        cache.forget(Path::new("/d/x"));
        changed("forget", &cache);
        cache.forget_tree(d);
        changed("forget_tree", &cache);
        assert_eq!(cache.listing_at(d), None);
        let before = cache.changes();
        cache.get(Path::new("/d/x"));
        cache.update(Path::new("/d/x"), |a| a.size = 4);
        cache.forget(Path::new("/d/x"));
        assert_eq!(
            cache.changes(),
            before,
            "reading, or touching what is not cached, is not a change"
        );
    }

    #[test]
    fn forgetting_a_file_leaves_other_names_but_a_dir_takes_its_tree() {
        let cache = MetaCache::new(Duration::from_secs(60));
        cache.put(Path::new("/f"), attr(1));
        cache.put(Path::new("/f2"), attr(1));
        cache.forget_tree(Path::new("/f"));
        assert_eq!(cache.get(Path::new("/f")), None);
        assert_eq!(cache.get(Path::new("/f2")), Some(Lookup::Found(attr(1))));
        let mut dir = attr(0);
        dir.kind = Kind::Dir;
        cache.put(Path::new("/d"), dir);
        cache.put(Path::new("/d/x"), attr(1));
        cache.forget_tree(Path::new("/d"));
        assert_eq!(cache.get(Path::new("/d/x")), None, "below a directory");
    }

    #[test]
    fn listing_updates_and_tree_forget() {
        let cache = MetaCache::new(Duration::from_secs(60));
        cache.put_listing(Path::new("/d"), &[("x".into(), attr(1))]);
        assert_eq!(cache.get(Path::new("/d/x")), Some(Lookup::Found(attr(1))));
        cache.dir_added(Path::new("/d"), OsStr::new("y"));
        cache.dir_removed(Path::new("/d"), OsStr::new("x"));
        assert_eq!(
            cache.listing(Path::new("/d")),
            Some(vec![OsString::from("y")])
        );
        cache.put_missing(Path::new("/d/z"));
        assert_eq!(cache.get(Path::new("/d/z")), Some(Lookup::Missing));
        cache.forget_tree(Path::new("/d"));
        assert_eq!(cache.get(Path::new("/d/x")), None);
        assert_eq!(cache.listing(Path::new("/d")), None);
    }
}
