//! Listings fetched once for many: one listing of a directory at a time,
//! shared by every caller that needs it while it runs (no thundering
//! herd); lookups answered from a listing once a directory sees several
//! cold ones (a cold `stat` of many names costs about one listing); and
//! the state of listing ahead (`ahead.rs`: the subdirectories of a
//! directory being shown, listed in the background).
//!
//! Owns the in-flight listings and the per-directory record of lookup
//! misses. It must not decide what a listing shows (the caches and
//! `directories.rs` do) nor block the FUSE dispatcher.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::{Error, Fs, Result};
use crate::cache::meta::{Listed, Lookup, MetaCache};
use crate::remote::{self, Attr, Kind, Remote};
use crate::sync::{lock, wait};
use crate::workers::Workers;
use ahead::PLANS;

/// A second lookup miss in a directory within this long lists it.
pub(super) const MISS_WINDOW: Duration = Duration::from_secs(1);
/// A directory is listed for lookups only while its listings have had
/// fewer names than this; a listing this long never answers "no such
/// file" alone (some servers cut long listings without a word).
pub(super) const LOOKUP_LISTING_NAMES: usize = 10_000;
/// ... and only if the size the server gives the directory is under this
/// (most filesystems grow a directory with its names, 16 to 50 bytes
/// each): about 10 000 names of ordinary length.
pub(super) const LOOKUP_LISTING_BYTES: u64 = 512 << 10;
/// Directories whose lookup misses are remembered.
const MISS_RECORDS: NonZeroUsize = match NonZeroUsize::new(256) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A listing taken from the server, as its entries were filtered.
pub(super) struct Fetched {
    pub(super) entries: Vec<Listed>,
    /// It was stored in the caches: no change made through the mount
    /// touched the directory while it was taken.
    pub(super) stored: bool,
    /// A name it lacks does not exist: not a listing made ahead.
    pub(super) vouched: bool,
}

/// Who a listing is for, which tells the lane it runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum For {
    /// Someone waiting for it: `Remote::list`; joins a listing of the
    /// directory already under way.
    Caller,
    /// Listing ahead: `Remote::list_in_background`; leaves a listing
    /// already under way alone.
    Ahead,
}

/// What a caller of `fetch` got.
pub(super) enum Got {
    /// Its own listing (with the server's error, if any).
    Own(remote::Result<Arc<Fetched>>),
    /// One another caller took; None if that failed, or (listing ahead)
    /// if one was under way.
    Joined(Option<Arc<Fetched>>),
    /// None: another caller's listing was stored just before (the caller
    /// looked at the caches before it landed).
    Cached,
}

/// One listing under way: its outcome once done (None: it failed).
#[derive(Default)]
struct Flight {
    outcome: Mutex<Option<Option<Arc<Fetched>>>>,
    done: Condvar,
}

impl Flight {
    /// Waits for the listing's end (its `Landing` always finishes it,
    /// within the remote's deadline).
    fn wait(&self) -> Option<Arc<Fetched>> {
        let mut outcome = lock(&self.outcome);
        while outcome.is_none() {
            outcome = wait(&self.done, outcome);
        }
        outcome.clone().flatten()
    }

    fn finish(&self, got: Option<Arc<Fetched>>) {
        *lock(&self.outcome) = Some(got);
        self.done.notify_all();
    }
}

/// Lookup misses in one directory.
struct Misses {
    last: Instant,
    count: u32,
    /// Names in its last listing.
    names: Option<usize>,
    /// A listing failed (say, the directory can be entered but not read):
    /// no listing for lookups before then.
    refused_until: Option<Instant>,
}

pub(super) struct Listings {
    flights: Mutex<HashMap<PathBuf, Arc<Flight>>>,
    misses: Mutex<LruCache<PathBuf, Misses>>,
    /// Directories queued to be listed ahead.
    queued: Mutex<HashSet<PathBuf>>,
    /// The subdirectories of recently shown directories, sorted.
    plans: Mutex<LruCache<PathBuf, Arc<[PathBuf]>>>,
    /// The directory shown last: where a walk of the tree is.
    shown: Mutex<Option<PathBuf>>,
    ahead: OnceLock<Workers>,
    /// Threads listing ahead; 0: none.
    ahead_threads: usize,
}

/// Completes a flight even if its listing panics, so no waiter hangs.
struct Landing<'a> {
    listings: &'a Listings,
    dir: &'a Path,
    flight: Arc<Flight>,
    got: Option<Arc<Fetched>>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        lock(&self.listings.flights).remove(self.dir);
        self.flight.finish(self.got.take());
    }
}

impl Listings {
    pub(super) fn new(ahead_threads: usize) -> Listings {
        Listings {
            flights: Mutex::new(HashMap::new()),
            misses: Mutex::new(LruCache::new(MISS_RECORDS)),
            queued: Mutex::new(HashSet::new()),
            plans: Mutex::new(LruCache::new(PLANS)),
            shown: Mutex::new(None),
            ahead: OnceLock::new(),
            ahead_threads,
        }
    }

    fn in_flight(&self, dir: &Path) -> bool {
        lock(&self.flights).contains_key(dir)
    }

    /// Lists `dir` on the server and stores the listing (see
    /// `MetaCache::store_listing`), or, for a caller, waits for the listing
    /// of it already under way. `keep` filters the entries; None from it
    /// means the listing must not be stored (it is still returned). With
    /// `exact`, an entry that tells less than a stat (a coarser time) is
    /// stored as such, so that a stat still asks for the rest; without,
    /// as a stat's answer (what readdir has always done: a file keeps the
    /// time `ls -l` showed). `whom` picks the lane (see `For`).
    pub(super) fn fetch(
        &self,
        remote: &dyn Remote,
        meta: &MetaCache,
        dir: &Path,
        (exact, whom): (bool, For),
        keep: &mut dyn FnMut(&OsStr, &Attr) -> Option<bool>,
    ) -> Got {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some(flight) = flights.get(dir) {
                let flight = flight.clone();
                drop(flights);
                let joined = match whom {
                    For::Caller => flight.wait(),
                    For::Ahead => None,
                };
                return Got::Joined(joined);
            }
            let flight = Arc::new(Flight::default());
            flights.insert(dir.to_path_buf(), flight.clone());
            flight
        };
        let mut landing = Landing {
            listings: self,
            dir,
            flight,
            got: None,
        };
        // A listing stores itself before it stops being under way.
        if meta.listing_at(dir).is_some() {
            return Got::Cached;
        }
        let since = meta.marks();
        let listed = match whom {
            For::Caller => remote.list(dir),
            For::Ahead => remote.list_in_background(dir),
        };
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) => return Got::Own(Err(e)),
        };
        let mut storable = true;
        let entries: Vec<Listed> = entries
            .into_iter()
            .filter(|e| match keep(&e.name, &e.attr) {
                Some(kept) => kept,
                None => {
                    storable = false;
                    false
                }
            })
            .map(|e| Listed {
                as_stat: !exact || remote.listed_as_stat(&dir.join(&e.name), &e.attr),
                name: e.name,
                attr: e.attr,
            })
            .collect();
        let vouched = whom == For::Caller;
        let stored = storable && meta.store_listing(dir, &entries, since, vouched);
        let fetched = Arc::new(Fetched {
            entries,
            stored,
            vouched,
        });
        landing.got = Some(fetched.clone());
        Got::Own(Ok(fetched))
    }

    /// Counts a lookup miss in `dir` (whose attributes the caches know as
    /// `dir_attr`) and tells whether listing it is worth it: a second miss
    /// within `MISS_WINDOW`, in a directory not known to be large.
    fn worth_listing(&self, dir: &Path, dir_attr: Option<&Attr>) -> bool {
        let now = Instant::now();
        let mut misses = lock(&self.misses);
        let record = misses.get_or_insert_mut(dir.to_path_buf(), || Misses {
            last: now,
            count: 0,
            names: None,
            refused_until: None,
        });
        if now.duration_since(record.last) > MISS_WINDOW {
            record.count = 0;
        }
        record.last = now;
        record.count += 1;
        if record.count < 2 || record.refused_until.is_some_and(|t| now < t) {
            return false;
        }
        if record.names.is_some_and(|n| n >= LOOKUP_LISTING_NAMES) {
            return false;
        }
        // A directory of unknown size is not listed for a lookup.
        matches!(dir_attr, Some(a) if a.kind == Kind::Dir && a.size < LOOKUP_LISTING_BYTES)
    }

    fn listed(&self, dir: &Path, names: usize) {
        if let Some(record) = lock(&self.misses).get_mut(dir) {
            record.names = Some(names);
        }
    }

    fn refused(&self, dir: &Path, until: Instant) {
        if let Some(record) = lock(&self.misses).get_mut(dir) {
            record.refused_until = Some(until);
        }
    }
}

impl Fs {
    /// The attributes a lookup of `path` (`name` in its directory)
    /// answers: from the caches; from a cached listing of the directory
    /// (a name it lacks does not exist); from a listing of the directory
    /// when that is worth it (`Listings::worth_listing`); else by a stat.
    pub(super) fn lookup_attr(&self, path: &Path, name: &OsStr) -> Result<Attr> {
        match self.meta.get(path) {
            Some(Lookup::Found(attr)) => return Ok(attr),
            Some(Lookup::Missing) => return Err(Error::not_found()),
            None => {}
        }
        let Some(dir) = path.parent() else {
            return self.stat_fresh(path);
        };
        if let Some(answer) = self.answer_from_listing(dir, path, name) {
            return answer;
        }
        let dir_attr = match self.meta.get(dir) {
            Some(Lookup::Found(attr)) => Some(attr),
            _ => None,
        };
        if !self.meta.ttl().is_zero() && self.listings.worth_listing(dir, dir_attr.as_ref()) {
            if let Some(answer) = self.lookup_by_listing(dir, path, name) {
                return answer;
            }
        }
        self.stat_fresh(path)
    }

    /// The answer of a fresh cached listing of `dir` to a lookup of `name`
    /// in it (None: no such listing): a name it lacks does not exist.
    fn answer_from_listing(&self, dir: &Path, path: &Path, name: &OsStr) -> Option<Result<Attr>> {
        let (names, vouched) = self.meta.listing_vouched(dir)?;
        if names.iter().any(|n| n == name) {
            if let Some(Lookup::Found(attr)) = self.meta.get(path) {
                return Some(Ok(attr));
            }
            if let Some(listed) = self.meta.get_listed(path) {
                return Some(self.stat_listed(path, &listed));
            }
        } else if vouched && names.len() < LOOKUP_LISTING_NAMES {
            return Some(Err(Error::not_found()));
        }
        Some(self.stat_fresh(path))
    }

    /// Lists `dir` (or joins its listing under way) to answer a lookup of
    /// `name` in it; None when the listing cannot answer (it failed, or
    /// the directory changed meanwhile): a stat must.
    fn lookup_by_listing(&self, dir: &Path, path: &Path, name: &OsStr) -> Option<Result<Attr>> {
        let got = self.listings.fetch(
            &*self.remote,
            &self.meta,
            dir,
            (true, For::Caller),
            &mut |n, a| Some(self.listable(dir, n, a)),
        );
        let fetched = match got {
            Got::Own(Ok(fetched)) => {
                self.listings.listed(dir, fetched.entries.len());
                fetched
            }
            Got::Own(Err(e)) => {
                tracing::debug!("listing {} for lookups failed: {e}", dir.display());
                self.listings.refused(dir, Instant::now() + self.meta.ttl());
                return None;
            }
            Got::Joined(fetched) => fetched?,
            Got::Cached => return self.answer_from_listing(dir, path, name),
        };
        if !fetched.stored {
            return None;
        }
        self.learn_owners(fetched.entries.iter().map(|e| &e.attr));
        match fetched.entries.iter().find(|e| e.name == name) {
            Some(e) if e.as_stat => Some(Ok(e.attr.clone())),
            Some(e) => Some(self.stat_listed(path, &e.attr)),
            None if fetched.vouched && fetched.entries.len() < LOOKUP_LISTING_NAMES => {
                Some(Err(Error::not_found()))
            }
            None => None,
        }
    }

    /// The stat of `path` a fresh listing showed as `listed` (completed by
    /// the remote where a listing tells less than a stat), cached.
    pub(super) fn stat_listed(&self, path: &Path, listed: &Attr) -> Result<Attr> {
        self.cache_stat(path, self.remote.stat_listed(path, listed))
    }

    /// A listing of `dir` for readdir: its own, or the one under way (a
    /// lookup's, or one made ahead) if no change made through the mount
    /// touched the directory meanwhile.
    pub(super) fn fetch_for_readdir(&self, dir: &Path) -> Result<Vec<Listed>> {
        let entries = self.fetch_for_readdir_once(dir)?;
        self.learn_owners(entries.iter().map(|e| &e.attr));
        Ok(entries)
    }

    fn fetch_for_readdir_once(&self, dir: &Path) -> Result<Vec<Listed>> {
        for _ in 0..3 {
            let got = self.listings.fetch(
                &*self.remote,
                &self.meta,
                dir,
                (false, For::Caller),
                &mut |n, a| Some(self.listable(dir, n, a)),
            );
            match got {
                Got::Own(fetched) => return Ok(take_entries(fetched?)),
                Got::Joined(Some(fetched)) if fetched.stored => return Ok(take_entries(fetched)),
                Got::Joined(_) => {}
                Got::Cached => {
                    if let Some(items) = self.cached_items(dir) {
                        return Ok(items
                            .into_iter()
                            .map(|i| Listed {
                                name: i.name,
                                attr: i.attr,
                                as_stat: true,
                            })
                            .collect());
                    }
                }
            }
        }
        // Listed by others, in vain: once more, alone.
        let entries = self.remote.list(dir)?;
        Ok(entries
            .into_iter()
            .filter(|e| self.listable(dir, &e.name, &e.attr))
            .map(|e| Listed {
                name: e.name,
                attr: e.attr,
                as_stat: true,
            })
            .collect())
    }
}

fn take_entries(fetched: Arc<Fetched>) -> Vec<Listed> {
    match Arc::try_unwrap(fetched) {
        Ok(fetched) => fetched.entries,
        Err(shared) => shared
            .entries
            .iter()
            .map(|e| Listed {
                name: e.name.clone(),
                attr: e.attr.clone(),
                as_stat: e.as_stat,
            })
            .collect(),
    }
}

mod ahead;
#[cfg(test)]
mod tests;
