//! Attribute, negative-lookup and directory-listing cache, keyed by remote
//! path, each entry valid for a TTL and the whole bounded by an LRU.
//!
//! Owns only the stored answers. It never fetches; the filesystem logic fills
//! it from stat and list replies and updates it on every change it makes.
//! Every change also marks the directory it touches, so that a listing
//! taken while the mount changed that directory is not stored over the
//! change (`store_listing`).

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
/// Directories whose last change is remembered; older ones share one mark.
const MAX_MARKS: usize = 4_096;

/// What the cache knows about a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(Attr),
    /// The path was recently seen not to exist.
    Missing,
}

/// A listing's entry: its name, its attributes, and whether they are all
/// a stat would tell (see `Remote::listed_as_stat`).
pub struct Listed {
    pub name: OsString,
    pub attr: Attr,
    pub as_stat: bool,
}

/// A directory's names, and whether a name it lacks does not exist: a
/// listing made ahead, which no one was shown yet, does not tell that
/// (changes made on the server stay visible to lookups as before).
#[derive(Clone)]
struct Names {
    names: Vec<OsString>,
    vouched: bool,
}

/// What is stored for a path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stored {
    Lookup(Lookup),
    /// As a listing showed it, with a coarser time than a stat's: not an
    /// answer to a stat by itself (`get_listed`).
    Listed(Attr),
}

struct Timed<T> {
    value: T,
    at: Instant,
}

/// The change count of each directory's last change (see `mark`).
struct Marks {
    last: LruCache<PathBuf, u64>,
    /// The latest mark no longer remembered by directory.
    floor: u64,
}

pub struct MetaCache {
    ttl: Duration,
    attrs: Mutex<LruCache<PathBuf, Timed<Stored>>>,
    /// Names in a directory, in server order. Their attributes live in `attrs`.
    dirs: Mutex<LruCache<PathBuf, Timed<Names>>>,
    /// Counts stores, updates and removals, so that what was built from the
    /// cache can tell it is still what the cache says.
    changes: AtomicU64,
    /// Taken before `attrs` (and held across a listing's store).
    marks: Mutex<Marks>,
    /// Counts marks (see `mark`).
    marked: AtomicU64,
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
            marks: Mutex::new(Marks {
                last: LruCache::new(cap(MAX_MARKS)),
                floor: 0,
            }),
            marked: AtomicU64::new(0),
        }
    }

    /// The count of marks so far: what a listing about to be taken gives
    /// `store_listing` as `since`.
    pub fn marks(&self) -> u64 {
        self.marked.load(Ordering::SeqCst)
    }

    /// Records that the mount changes what `dir` holds (a name or its
    /// attributes), before the change is stored.
    fn mark(&self, dir: Option<&Path>) {
        let Some(dir) = dir else { return };
        let n = self.marked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut marks = lock(&self.marks);
        if let Some((old, at)) = marks.last.push(dir.to_path_buf(), n) {
            if old != dir {
                marks.floor = marks.floor.max(at);
            }
        }
    }

    fn last_mark(marks: &Marks, dir: &Path) -> u64 {
        marks.last.peek(dir).copied().unwrap_or(marks.floor)
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

    fn get_stored(&self, path: &Path) -> Option<Stored> {
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

    /// What a stat of `path` would answer, if known.
    pub fn get(&self, path: &Path) -> Option<Lookup> {
        match self.get_stored(path)? {
            Stored::Lookup(lookup) => Some(lookup),
            Stored::Listed(_) => None,
        }
    }

    /// What a fresh listing showed of `path` when that is not all a stat
    /// would tell (`Listed::as_stat` false).
    pub fn get_listed(&self, path: &Path) -> Option<Attr> {
        match self.get_stored(path)? {
            Stored::Listed(attr) => Some(attr),
            Stored::Lookup(_) => None,
        }
    }

    /// What a stat or a listing told of `path`, for showing it in a
    /// listing.
    pub fn get_any(&self, path: &Path) -> Option<Attr> {
        match self.get_stored(path)? {
            Stored::Lookup(Lookup::Found(attr)) | Stored::Listed(attr) => Some(attr),
            Stored::Lookup(Lookup::Missing) => None,
        }
    }

    pub fn put(&self, path: &Path, attr: Attr) {
        self.put_lookup(path, Lookup::Found(attr));
    }

    pub fn put_missing(&self, path: &Path) {
        self.put_lookup(path, Lookup::Missing);
    }

    /// Stores a stat's answer. Replacing a different answer is a change
    /// of the directory (a listing taken before it is stale); a first
    /// answer, or the same one again, is not.
    fn put_lookup(&self, path: &Path, value: Lookup) {
        if self.ttl.is_zero() {
            return;
        }
        let value = Stored::Lookup(value);
        let differs = match lock(&self.attrs).peek(path) {
            Some(t) => match (&t.value, &value) {
                (Stored::Listed(_), Stored::Lookup(Lookup::Found(_))) => false,
                (old, new) => old != new,
            },
            None => false,
        };
        if differs {
            self.mark(path.parent());
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
        self.mark(path.parent());
        let mut attrs = lock(&self.attrs);
        match attrs.get_mut(path) {
            Some(Timed {
                value: Stored::Lookup(Lookup::Found(attr)),
                ..
            }) => {
                f(attr);
                self.changed();
            }
            // A listing's entry would not show the update: a stat will.
            Some(Timed {
                value: Stored::Listed(_),
                ..
            }) => {
                attrs.pop(path);
                self.changed();
            }
            _ => {}
        }
    }

    pub fn forget(&self, path: &Path) {
        self.mark(path.parent());
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
        Some(self.listing_vouched(dir)?.0)
    }

    /// Names in `dir`, if a fresh listing is cached, and whether a name
    /// it lacks does not exist (see `store_listing`, `vouch_listing`).
    pub fn listing_vouched(&self, dir: &Path) -> Option<(Vec<OsString>, bool)> {
        let mut dirs = lock(&self.dirs);
        stats::get().listing_lookup(dirs.peek(dir).is_some_and(|t| self.fresh(t)));
        match dirs.get(dir) {
            Some(t) if self.fresh(t) => Some((t.value.names.clone(), t.value.vouched)),
            Some(_) => {
                dirs.pop(dir);
                None
            }
            None => None,
        }
    }

    /// The cached listing of `dir` is being shown: from now on a name it
    /// lacks does not exist.
    pub fn vouch_listing(&self, dir: &Path) {
        if let Some(t) = lock(&self.dirs).peek_mut(dir) {
            t.value.vouched = true;
        }
    }

    /// Stores a listing and the attributes that came with it.
    #[cfg(test)]
    pub fn put_listing(&self, dir: &Path, entries: &[(OsString, Attr)]) {
        let entries: Vec<Listed> = entries
            .iter()
            .map(|(name, attr)| Listed {
                name: name.clone(),
                attr: attr.clone(),
                as_stat: true,
            })
            .collect();
        self.store_listing(dir, &entries, self.marks(), true);
    }

    /// Stores a listing of `dir` taken when the mark count was `since`
    /// (`marks()` before asking the server), unless the mount changed
    /// the directory meanwhile: then it is stale, and false says it was
    /// not stored. An entry that is not all a stat would tell does not
    /// replace a stat's answer for the same kind and size (whose time is
    /// finer). Without `vouched` (a listing made ahead), a name it lacks
    /// is not taken as missing until the listing is shown.
    pub fn store_listing(&self, dir: &Path, entries: &[Listed], since: u64, vouched: bool) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let marks = lock(&self.marks);
        if Self::last_mark(&marks, dir) > since {
            return false;
        }
        let now = Instant::now();
        {
            let mut attrs = lock(&self.attrs);
            for entry in entries {
                let path = dir.join(&entry.name);
                let value = if entry.as_stat {
                    Stored::Lookup(Lookup::Found(entry.attr.clone()))
                } else {
                    let finer = matches!(attrs.peek(&path), Some(t) if self.fresh(t)
                        && matches!(&t.value, Stored::Lookup(Lookup::Found(a))
                            if a.kind == entry.attr.kind && a.size == entry.attr.size));
                    if finer {
                        continue;
                    }
                    Stored::Listed(entry.attr.clone())
                };
                attrs.put(path, Timed { value, at: now });
            }
        }
        let names = entries.iter().map(|e| e.name.clone()).collect();
        lock(&self.dirs).put(
            dir.to_path_buf(),
            Timed {
                value: Names { names, vouched },
                at: now,
            },
        );
        drop(marks);
        self.changed();
        true
    }

    /// Records that `name` now exists in `dir` (keeps a cached listing right).
    pub fn dir_added(&self, dir: &Path, name: &OsStr) {
        self.mark(Some(dir));
        if let Some(t) = lock(&self.dirs).get_mut(dir) {
            if !t.value.names.iter().any(|n| n == name) {
                t.value.names.push(name.to_os_string());
                self.changed();
            }
        }
    }

    /// Records that `name` is gone from `dir`.
    pub fn dir_removed(&self, dir: &Path, name: &OsStr) {
        self.mark(Some(dir));
        if let Some(t) = lock(&self.dirs).get_mut(dir) {
            let before = t.value.names.len();
            t.value.names.retain(|n| n != name);
            if t.value.names.len() != before {
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
        let per_dir = std::mem::size_of::<(PathBuf, Timed<Names>)>();
        let per_name = std::mem::size_of::<OsString>();
        let dir_bytes = dirs
            .iter()
            .map(|(p, t)| {
                let names: usize = t.value.names.iter().map(|n| per_name + n.len()).sum();
                (per_dir + p.as_os_str().len() + names) as u64
            })
            .sum();
        ((attr_entries, attr_bytes), (dirs.len() as u64, dir_bytes))
    }

    /// Forgets `path` and everything below it (after a rename or rmdir).
    /// A path known as a non-directory has nothing below it: then no scan
    /// of the whole cache (rm -r and rsync remove or rename every file).
    pub fn forget_tree(&self, path: &Path) {
        self.mark(path.parent());
        self.mark(Some(path));
        let mut attrs = lock(&self.attrs);
        let leaf = matches!(attrs.peek(path), Some(Timed { value: Stored::Lookup(Lookup::Found(a)), .. }) if a.kind != Kind::Dir);
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
    fn a_listing_taken_across_a_change_of_its_directory_is_not_stored() {
        let cache = MetaCache::new(Duration::from_secs(60));
        let d = Path::new("/d");
        let listed = |name: &str| Listed {
            name: name.into(),
            attr: attr(1),
            as_stat: true,
        };
        type Change<'a> = (&'a str, &'a dyn Fn(&MetaCache));
        let changes: [Change; 5] = [
            ("dir_removed", &|c| c.dir_removed(d, OsStr::new("x"))),
            ("dir_added", &|c| c.dir_added(d, OsStr::new("y"))),
            ("forget", &|c| c.forget(Path::new("/d/x"))),
            ("update", &|c| c.update(Path::new("/d/x"), |a| a.size = 9)),
            ("forget_tree", &|c| c.forget_tree(d)),
        ];
        for (what, change) in changes {
            let since = cache.marks();
            change(&cache);
            assert!(
                !cache.store_listing(d, &[listed("x")], since, true),
                "stored across {what}"
            );
            assert_eq!(cache.listing(d), None, "{what}");
        }
        // A change elsewhere, or a stat's first answer, leaves it alone.
        let since = cache.marks();
        cache.dir_removed(Path::new("/e"), OsStr::new("x"));
        cache.put(Path::new("/d/z"), attr(1));
        assert!(cache.store_listing(d, &[listed("x")], since, true));
        // A stat's answer that differs from the one stored is a change.
        let since = cache.marks();
        cache.put(Path::new("/d/x"), attr(2));
        assert!(!cache.store_listing(d, &[listed("x")], since, true));
    }

    #[test]
    fn a_coarse_listing_entry_answers_no_stat_and_keeps_a_finer_one() {
        let cache = MetaCache::new(Duration::from_secs(60));
        let d = Path::new("/d");
        cache.put(Path::new("/d/a"), attr(1));
        let coarse = |name: &str, size| Listed {
            name: name.into(),
            attr: attr(size),
            as_stat: false,
        };
        assert!(cache.store_listing(d, &[coarse("a", 1), coarse("b", 1)], cache.marks(), true));
        assert_eq!(cache.get(Path::new("/d/a")), Some(Lookup::Found(attr(1))));
        assert_eq!(cache.get(Path::new("/d/b")), None, "not a stat's answer");
        assert_eq!(cache.get_listed(Path::new("/d/b")), Some(attr(1)));
        assert_eq!(cache.get_any(Path::new("/d/b")), Some(attr(1)));
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
