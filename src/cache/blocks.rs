//! Block cache: fixed-size blocks of file content under a byte budget (LRU),
//! keyed by file and version (size + mtime), so a file changed on the server
//! is never answered from blocks of its old version.
//!
//! Scan resistant: blocks of a sequential stream (read-ahead fills and a
//! sequential reader's own misses) live in a small stream segment of their
//! own, dropped there in the order they came. A file read once from start
//! to end therefore never pushes other files' blocks out (the kernel's page
//! cache keeps what the reader got); a block read to its end a second time
//! (by another pass or another reader), or read at random, moves to the
//! main segment. A stream's late pieces of a block it has already read to
//! the end (the kernel's parallel reads arrive out of order) are no second
//! use: counted as one, they moved a few blocks of every large file read
//! once into the main segment, and pushed other files' blocks out. The two
//! segments together never hold more than the budget.
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

/// How a reader uses the blocks it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Part of a sequential stream: kept in the stream segment only.
    Stream,
    /// Anything else: a hit or a fetch keeps the block in the main segment.
    Random,
}

/// The stream segment's share of the budget: enough for a stream's
/// read-ahead window and the block it is reading, at most half the budget.
pub const STREAM_SHARE: u64 = 16 << 20;

#[derive(Default)]
struct InFlight {
    done: Mutex<bool>,
    cond: Condvar,
    /// Readers that waited for it, so tests can tell they did.
    #[cfg(test)]
    waiters: std::sync::atomic::AtomicUsize,
}

pub struct BlockCache {
    stored: Mutex<Stored>,
    in_flight: Mutex<HashMap<BlockKey, Arc<InFlight>>>,
}

/// One LRU list under its own byte budget.
struct Segment<V> {
    lru: LruCache<BlockKey, V>,
    bytes: u64,
    budget: u64,
}

/// A block of the stream segment; `used` once a stream read it to its end
/// (a second time moves it to the main segment).
struct Streamed {
    block: Block,
    used: bool,
}

/// What a stored value costs of the budget.
trait Weight {
    fn weight(&self) -> u64;
}

impl Weight for Block {
    fn weight(&self) -> u64 {
        self.as_slice().len() as u64
    }
}

impl Weight for Streamed {
    fn weight(&self) -> u64 {
        self.block.as_slice().len() as u64
    }
}

impl<V: Weight> Segment<V> {
    fn new(budget: u64) -> Segment<V> {
        Segment {
            lru: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// Stores `value` as the most recently used, then evicts the least
    /// recently used until the segment fits its budget.
    fn put(&mut self, key: BlockKey, value: V) {
        let len = value.weight();
        if len > self.budget {
            self.remove(&key);
            return;
        }
        if let Some(old) = self.lru.put(key, value) {
            self.bytes -= old.weight();
        }
        self.bytes += len;
        while self.bytes > self.budget {
            match self.lru.pop_lru() {
                Some((_, evicted)) => self.bytes -= evicted.weight(),
                None => break,
            }
        }
    }

    fn remove(&mut self, key: &BlockKey) -> Option<V> {
        let value = self.lru.pop(key)?;
        self.bytes -= value.weight();
        Some(value)
    }

    fn clear(&mut self) {
        self.lru.clear();
        self.bytes = 0;
    }

    fn forget_file(&mut self, file: u64) {
        let doomed: Vec<BlockKey> = self
            .lru
            .iter()
            .filter(|(k, _)| k.file == file)
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.remove(&key);
        }
    }
}

struct Stored {
    main: Segment<Block>,
    stream: Segment<Streamed>,
}

impl Stored {
    fn contains(&self, key: &BlockKey) -> bool {
        self.main.lru.contains(key) || self.stream.lru.contains(key)
    }

    fn get(&mut self, key: &BlockKey, access: Access) -> Option<Block> {
        if let Some(block) = self.main.lru.get(key) {
            return Some(block.clone());
        }
        let streamed = self.stream.lru.peek(key)?;
        if access == Access::Stream {
            // The stream reads on in this block, or a late piece of it
            // arrives: leave its place alone (`stream_done` decides).
            return Some(streamed.block.clone());
        }
        // Read at random: worth keeping.
        let streamed = self.stream.remove(key)?;
        self.main.put(key.clone(), streamed.block.clone());
        Some(streamed.block)
    }

    fn insert(&mut self, key: BlockKey, block: Block, access: Access) {
        match access {
            Access::Random => {
                self.stream.remove(&key);
                self.main.put(key, block);
            }
            Access::Stream if self.main.lru.contains(&key) => {
                self.main.put(key, block);
            }
            Access::Stream => self.stream.put(key, Streamed { block, used: false }),
        }
    }
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
    /// Stores a block fetched for a stream (read-ahead).
    pub fn fill(self, block: Block) {
        self.cache.insert(self.key.clone(), block, Access::Stream);
    }

    fn fill_as(self, block: Block, access: Access) {
        self.cache.insert(self.key.clone(), block, access);
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
    /// A cache of at most `budget` bytes for blocks of `block_size` bytes:
    /// half of it, at most `STREAM_SHARE`, for sequential streams, and in
    /// any case room there for `stream_blocks` blocks (a stream's
    /// read-ahead window and the blocks it is reading), as far as the
    /// budget goes: with less, read-ahead fills would push out the block
    /// being read, which its next piece then fetches again.
    pub fn new(budget: u64, block_size: u64, stream_blocks: u64) -> BlockCache {
        let stream = (budget / 2)
            .min(STREAM_SHARE)
            .max(budget.min(block_size.saturating_mul(stream_blocks)));
        BlockCache::with_stream_share(budget, stream)
    }

    fn with_stream_share(budget: u64, stream: u64) -> BlockCache {
        BlockCache {
            stored: Mutex::new(Stored {
                main: Segment::new(budget - stream),
                stream: Segment::new(stream),
            }),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &BlockKey, access: Access) -> Option<Block> {
        lock(&self.stored).get(key, access)
    }

    pub fn insert(&self, key: BlockKey, block: Block, access: Access) {
        lock(&self.stored).insert(key, block, access);
    }

    /// A stream has read `key` to its end: the second time (another pass,
    /// another reader), the block moves to the main segment. (Stream reads leave the stream segment's order
    /// alone, so it drops blocks in the order they came: the ones a stream
    /// has read before the ones read ahead for it.)
    pub fn stream_done(&self, key: &BlockKey) {
        let mut stored = lock(&self.stored);
        match stored.stream.lru.peek_mut(key) {
            Some(streamed) if !streamed.used => streamed.used = true,
            Some(_) => {
                if let Some(streamed) = stored.stream.remove(key) {
                    stored.main.put(key.clone(), streamed.block);
                }
            }
            None => {}
        }
    }

    /// Promises that the caller will fetch `key`: until the reservation is
    /// filled or dropped, readers of the block wait for it instead of
    /// fetching it themselves. None if the block is cached or promised.
    pub fn reserve(self: &Arc<Self>, key: &BlockKey) -> Option<Reservation> {
        // In-flight table first: a fill stores the block before its
        // reservation leaves the table, so no finished fetch is missed.
        let mut table = lock(&self.in_flight);
        if table.contains_key(key) || lock(&self.stored).contains(key) {
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
        access: Access,
        fetch: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Block, E> {
        loop {
            if let Some(block) = self.get(key, access) {
                stats::get().block_lookup(true);
                return Ok(block);
            }
            if let Some(reservation) = self.reserve(key) {
                stats::get().block_lookup(false);
                let block = Arc::new(fetch()?);
                reservation.fill_as(block.clone(), access);
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
        stored.main.forget_file(file);
        stored.stream.forget_file(file);
    }

    /// Forgets every block (`rmount flush`). A fetch under way still
    /// stores its block when it ends.
    pub fn clear(&self) {
        let mut stored = lock(&self.stored);
        stored.main.clear();
        stored.stream.clear();
    }

    /// Blocks held and their bytes.
    pub fn held(&self) -> (u64, u64) {
        let stored = lock(&self.stored);
        let blocks = stored.main.lru.len() + stored.stream.lru.len();
        (blocks as u64, stored.main.bytes + stored.stream.bytes)
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        let stored = lock(&self.stored);
        stored.main.bytes + stored.stream.bytes
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
    fn the_stream_share_is_half_at_most_16_mib_and_a_streams_window_at_least() {
        let share = |budget: u64, block: u64| {
            let cache = BlockCache::new(budget, block, 10);
            let stored = lock(&cache.stored);
            assert_eq!(stored.main.budget + stored.stream.budget, budget);
            stored.stream.budget
        };
        const MIB: u64 = 1 << 20;
        assert_eq!(share(64 * MIB, MIB), 16 * MIB);
        assert_eq!(share(32 * MIB, MIB), 16 * MIB);
        assert_eq!(share(16 * MIB, MIB), 10 * MIB);
        assert_eq!(share(3 * MIB, MIB), 3 * MIB);
        assert_eq!(share(MIB, MIB), MIB);
        assert_eq!(share(0, MIB), 0);
    }

    #[test]
    fn budget_evicts_least_recently_used() {
        // Half of the budget is the stream segment's.
        let cache = BlockCache::new(20, 1, 2);
        cache.insert(key(1, 0), Arc::new(vec![0; 4]), Access::Random);
        cache.insert(key(1, 1), Arc::new(vec![0; 4]), Access::Random);
        cache.get(&key(1, 0), Access::Random);
        cache.insert(key(1, 2), Arc::new(vec![0; 4]), Access::Random);
        assert!(cache.bytes() <= 10);
        assert!(cache.get(&key(1, 0), Access::Random).is_some());
        assert!(cache.get(&key(1, 1), Access::Random).is_none());
    }

    #[test]
    fn other_version_misses_and_forget_file() {
        let cache = BlockCache::new(100, 1, 2);
        cache.insert(key(1, 0), Arc::new(vec![1]), Access::Random);
        let mut newer = key(1, 0);
        newer.size = 11;
        assert!(cache.get(&newer, Access::Random).is_none());
        cache.insert(key(2, 0), Arc::new(vec![2]), Access::Random);
        cache.forget_file(1);
        assert!(cache.get(&key(1, 0), Access::Random).is_none());
        assert!(cache.get(&key(2, 0), Access::Random).is_some());
        assert_eq!(cache.bytes(), 1);
    }

    /// Reads file `file` block by block as a sequential stream does.
    fn scan(cache: &Arc<BlockCache>, file: u64, blocks: u64, len: usize) {
        for index in 0..blocks {
            let got =
                cache.get_or_fetch::<()>(&key(file, index), Access::Stream, || Ok(vec![3; len]));
            assert_eq!(got.map(|b| b.len()), Ok(len));
            cache.stream_done(&key(file, index));
        }
    }

    #[test]
    fn a_sequential_scan_does_not_evict_another_files_hot_blocks() {
        const KIB: usize = 1024;
        let cache = Arc::new(BlockCache::new(64 * KIB as u64, KIB as u64, 2));
        // File 1: 24 KiB read at random, so in the main segment.
        for index in 0..24 {
            cache.insert(key(1, index), Arc::new(vec![1; KIB]), Access::Random);
        }
        // File 2, 100 times the budget, read once from start to end.
        scan(&cache, 2, 6400, KIB);
        assert!(cache.bytes() <= 64 * KIB as u64, "{} bytes", cache.bytes());
        for index in 0..24 {
            assert!(
                cache.get(&key(1, index), Access::Random).is_some(),
                "block {index} of the hot file was evicted by the scan"
            );
        }
        // The scan kept only its bounded share: its first blocks are gone.
        assert!(cache.get(&key(2, 0), Access::Random).is_none());
    }

    #[test]
    fn read_ahead_blocks_wait_for_their_reader_and_a_block_used_again_is_kept() {
        let cache = Arc::new(BlockCache::new(40, 1, 2));
        // Read-ahead fills three blocks ahead of the stream.
        for index in 0..3 {
            if let Some(r) = cache.reserve(&key(1, index)) {
                r.fill(Arc::new(vec![0; 4]));
            }
        }
        // The stream reads block 0 in pieces: the block stays until done.
        for _ in 0..2 {
            assert!(cache.get(&key(1, 0), Access::Stream).is_some());
        }
        cache.stream_done(&key(1, 0));
        // More read-ahead: the block already read, the oldest, goes first
        // (stream segment: 20 bytes, five blocks).
        for index in 3..6 {
            if let Some(r) = cache.reserve(&key(1, index)) {
                r.fill(Arc::new(vec![0; 4]));
            }
        }
        assert!(
            cache.get(&key(1, 0), Access::Stream).is_none(),
            "read, so first to go"
        );
        for index in 1..6 {
            assert!(
                cache.get(&key(1, index), Access::Stream).is_some(),
                "block {index}"
            );
        }
        // Block 1, read to its end by the stream and then to its end
        // again (another pass), moves to the main segment and outlives the
        // stream's next blocks. Block 2's late piece, arriving after the
        // stream read it to the end, is no second use: it goes.
        cache.stream_done(&key(1, 1));
        cache.stream_done(&key(1, 2));
        assert!(cache.get(&key(1, 2), Access::Stream).is_some());
        assert!(cache.get(&key(1, 1), Access::Stream).is_some());
        cache.stream_done(&key(1, 1));
        for index in 6..20 {
            if let Some(r) = cache.reserve(&key(1, index)) {
                r.fill(Arc::new(vec![0; 4]));
            }
            cache.stream_done(&key(1, index));
        }
        assert!(cache.get(&key(1, 1), Access::Random).is_some());
        assert!(cache.get(&key(1, 2), Access::Random).is_none());
        assert!(cache.bytes() <= 40);
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
        let cache = Arc::new(BlockCache::new(1 << 20, 1, 2));
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                std::thread::spawn(move || {
                    cache
                        .get_or_fetch::<()>(&key(1, 0), Access::Random, || {
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
        let cache = Arc::new(BlockCache::new(100, 1, 2));
        let reservation = cache.reserve(&key(1, 0));
        assert!(reservation.is_some());
        assert!(cache.reserve(&key(1, 0)).is_none(), "promised once");
        let reader = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or_fetch::<()>(&key(1, 0), Access::Random, || Ok(vec![0]))
            })
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
        let cache = Arc::new(BlockCache::new(100, 1, 2));
        let reservation = cache.reserve(&key(1, 0));
        let reader = {
            let cache = cache.clone();
            std::thread::spawn(move || {
                cache.get_or_fetch::<()>(&key(1, 0), Access::Random, || Ok(vec![5]))
            })
        };
        until_waiting(&cache, &key(1, 0), 1);
        drop(reservation);
        let got = reader.join().ok().and_then(|r| r.ok()).map(|b| b.to_vec());
        assert_eq!(got, Some(vec![5]));
    }

    #[test]
    fn failed_fetch_is_not_cached() {
        let cache = Arc::new(BlockCache::new(100, 1, 2));
        assert!(cache
            .get_or_fetch(&key(1, 0), Access::Random, || Err("down"))
            .is_err());
        let block = cache.get_or_fetch::<&str>(&key(1, 0), Access::Random, || Ok(vec![1, 2]));
        assert_eq!(block.map(|b| b.len()), Ok(2));
    }
}
