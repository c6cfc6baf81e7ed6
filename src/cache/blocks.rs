//! Block cache: fixed-size blocks of file content under a byte budget (LRU),
//! keyed by file and version (size + mtime), so a file changed on the server
//! is never answered from blocks of its old version.
//!
//! Also owns the in-flight table that makes concurrent readers (and
//! read-ahead) of one block share a single remote read. It does not decide
//! what to fetch; the caller passes the fetch function.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use crate::stats;
use crate::sync::{lock, wait};
use lru::LruCache;

/// Which block of which version of which file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub file: u64,
    pub size: u64,
    pub mtime: SystemTime,
    pub index: u64,
}

pub type Block = Arc<Vec<u8>>;

#[derive(Default)]
struct InFlight {
    done: Mutex<bool>,
    cond: Condvar,
    /// Readers that waited for it, so tests can tell they did.
    #[cfg(test)]
    waiters: std::sync::atomic::AtomicUsize,
}

pub struct BlockCache {
    budget: u64,
    stored: Mutex<Stored>,
    in_flight: Mutex<HashMap<BlockKey, Arc<InFlight>>>,
}

struct Stored {
    lru: LruCache<BlockKey, Block>,
    bytes: u64,
}

/// A block someone has promised to fetch (see `BlockCache::reserve`).
/// Dropping it unfilled, as a failed fetch does, wakes the waiting readers,
/// which then fetch the block themselves.
pub struct Reservation {
    cache: Arc<BlockCache>,
    key: BlockKey,
    flight: Arc<InFlight>,
}

impl Reservation {
    pub fn fill(self, block: Block) {
        self.cache.insert(self.key.clone(), block);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        lock(&self.cache.in_flight).remove(&self.key);
        *lock(&self.flight.done) = true;
        self.flight.cond.notify_all();
    }
}

impl BlockCache {
    pub fn new(budget: u64) -> BlockCache {
        BlockCache {
            budget,
            stored: Mutex::new(Stored {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &BlockKey) -> Option<Block> {
        lock(&self.stored).lru.get(key).cloned()
    }

    pub fn insert(&self, key: BlockKey, block: Block) {
        let len = block.len() as u64;
        if len > self.budget {
            return;
        }
        let mut stored = lock(&self.stored);
        if let Some(old) = stored.lru.put(key, block) {
            stored.bytes -= old.len() as u64;
        }
        stored.bytes += len;
        while stored.bytes > self.budget {
            match stored.lru.pop_lru() {
                Some((_, evicted)) => stored.bytes -= evicted.len() as u64,
                None => break,
            }
        }
    }

    /// Promises that the caller will fetch `key`: until the reservation is
    /// filled or dropped, readers of the block wait for it instead of
    /// fetching it themselves. None if the block is cached or promised.
    pub fn reserve(self: &Arc<Self>, key: &BlockKey) -> Option<Reservation> {
        // In-flight table first: a fill stores the block before its
        // reservation leaves the table, so no finished fetch is missed.
        let mut table = lock(&self.in_flight);
        if table.contains_key(key) || lock(&self.stored).lru.contains(key) {
            return None;
        }
        let flight = Arc::new(InFlight::default());
        table.insert(key.clone(), flight.clone());
        Some(Reservation {
            cache: self.clone(),
            key: key.clone(),
            flight,
        })
    }

    /// The block for `key`, from the cache, from a fetch already under way
    /// or promised, or by calling `fetch`. Errors are not cached.
    pub fn get_or_fetch<E>(
        self: &Arc<Self>,
        key: &BlockKey,
        fetch: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Block, E> {
        loop {
            if let Some(block) = self.get(key) {
                stats::get().block_lookup(true);
                return Ok(block);
            }
            if let Some(reservation) = self.reserve(key) {
                stats::get().block_lookup(false);
                let block = Arc::new(fetch()?);
                reservation.fill(block.clone());
                return Ok(block);
            }
            // Someone else is fetching: wait, then look again (if their fetch
            // failed, this loop makes us the next to try).
            let flight = lock(&self.in_flight).get(key).cloned();
            if let Some(flight) = flight {
                #[cfg(test)]
                flight
                    .waiters
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut done = lock(&flight.done);
                while !*done {
                    done = wait(&flight.cond, done);
                }
            }
        }
    }

    /// How many readers waited for the fetch of `key` under way.
    #[cfg(test)]
    fn waiters(&self, key: &BlockKey) -> usize {
        lock(&self.in_flight)
            .get(key)
            .map_or(0, |f| f.waiters.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Drops every cached block of `file` (after a change through the mount).
    pub fn forget_file(&self, file: u64) {
        let mut stored = lock(&self.stored);
        let doomed: Vec<BlockKey> = stored
            .lru
            .iter()
            .filter(|(k, _)| k.file == file)
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            if let Some(block) = stored.lru.pop(&key) {
                stored.bytes -= block.len() as u64;
            }
        }
    }

    /// Forgets every block (`rmount flush`). A fetch under way still
    /// stores its block when it ends.
    pub fn clear(&self) {
        let mut stored = lock(&self.stored);
        stored.lru.clear();
        stored.bytes = 0;
    }

    /// Blocks held and their bytes.
    pub fn held(&self) -> (u64, u64) {
        let stored = lock(&self.stored);
        (stored.lru.len() as u64, stored.bytes)
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        lock(&self.stored).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    fn key(file: u64, index: u64) -> BlockKey {
        BlockKey {
            file,
            size: 10,
            mtime: UNIX_EPOCH,
            index,
        }
    }

    #[test]
    fn budget_evicts_least_recently_used() {
        let cache = BlockCache::new(10);
        cache.insert(key(1, 0), Arc::new(vec![0; 4]));
        cache.insert(key(1, 1), Arc::new(vec![0; 4]));
        cache.get(&key(1, 0));
        cache.insert(key(1, 2), Arc::new(vec![0; 4]));
        assert!(cache.bytes() <= 10);
        assert!(cache.get(&key(1, 0)).is_some());
        assert!(cache.get(&key(1, 1)).is_none());
    }

    #[test]
    fn other_version_misses_and_forget_file() {
        let cache = BlockCache::new(100);
        cache.insert(key(1, 0), Arc::new(vec![1]));
        let mut newer = key(1, 0);
        newer.size = 11;
        assert!(cache.get(&newer).is_none());
        cache.insert(key(2, 0), Arc::new(vec![2]));
        cache.forget_file(1);
        assert!(cache.get(&key(1, 0)).is_none());
        assert!(cache.get(&key(2, 0)).is_some());
        assert_eq!(cache.bytes(), 1);
    }

    /// Waits (with a deadline) until `n` readers wait for `key`.
    fn until_waiting(cache: &BlockCache, key: &BlockKey, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cache.waiters(key) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{} of {n} readers waiting after 10 s",
                cache.waiters(key)
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn concurrent_fetches_of_one_block_share_one_read() {
        let cache = Arc::new(BlockCache::new(1 << 20));
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                std::thread::spawn(move || {
                    cache
                        .get_or_fetch::<()>(&key(1, 0), || {
                            calls.fetch_add(1, Ordering::SeqCst);
                            // Finish only once every other reader waits.
                            until_waiting(&cache, &key(1, 0), 7);
                            Ok(vec![7; 100])
                        })
                        .map(|b| b.len())
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().ok(), Some(Ok(100)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn readers_wait_for_a_reserved_block_instead_of_fetching_it() {
        let cache = Arc::new(BlockCache::new(100));
        let reservation = cache.reserve(&key(1, 0));
        assert!(reservation.is_some());
        assert!(cache.reserve(&key(1, 0)).is_none(), "promised once");
        let reader = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.get_or_fetch::<()>(&key(1, 0), || Ok(vec![0])))
        };
        until_waiting(&cache, &key(1, 0), 1);
        if let Some(r) = reservation {
            r.fill(Arc::new(vec![9, 9]));
        }
        let got = reader.join().ok().and_then(|r| r.ok()).map(|b| b.to_vec());
        assert_eq!(got, Some(vec![9, 9]), "the reader got the promised block");
        assert!(cache.reserve(&key(1, 0)).is_none(), "cached now");
    }

    #[test]
    fn a_dropped_reservation_lets_the_reader_fetch() {
        let cache = Arc::new(BlockCache::new(100));
        let reservation = cache.reserve(&key(1, 0));
        let reader = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.get_or_fetch::<()>(&key(1, 0), || Ok(vec![5])))
        };
        until_waiting(&cache, &key(1, 0), 1);
        drop(reservation);
        let got = reader.join().ok().and_then(|r| r.ok()).map(|b| b.to_vec());
        assert_eq!(got, Some(vec![5]));
    }

    #[test]
    fn failed_fetch_is_not_cached() {
        let cache = Arc::new(BlockCache::new(100));
        assert!(cache.get_or_fetch(&key(1, 0), || Err("down")).is_err());
        let block = cache.get_or_fetch::<&str>(&key(1, 0), || Ok(vec![1, 2]));
        assert_eq!(block.map(|b| b.len()), Ok(2));
    }
}
