//! Read-ahead state of one open handle: detects sequential reading, grows
//! the window while it lasts, and queues the blocks to fetch, in order, for
//! a single fetching chain.
//!
//! One chain per handle, not one task per block: the blocks of a stream
//! then reach the server as one contiguous run on one connection, so the
//! connection's pipelined reads continue from block to block instead of
//! being dropped by a seek (several connections each serving every n-th
//! block were measurably slower). Several files still read in parallel, on
//! several connections.
//!
//! A running chain holds a `T` for each queued block, the caller's promise
//! to fetch it (a block-cache reservation), so that the kernel's parallel
//! reads wait for the chain instead of fetching the same stream out of
//! order. A chain that waits for a worker holds no promise: nobody waits
//! for a chain that has not started. It does no I/O itself; `Fs` runs the
//! chain.

use std::collections::VecDeque;
use std::ops::Range;

/// How far a read may start from where the last one ended and still count
/// as sequential: the kernel sends a sequential reader's requests (up to
/// 1 MiB each) several at a time, and they reach us slightly out of order.
const REORDER: u64 = 2 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Idle,
    /// Handed to a worker, not running yet.
    Starting,
    Running,
}

#[derive(Debug)]
pub struct ReadAhead<T> {
    /// End of the last read, to detect sequential reading.
    next_read: u64,
    /// Window in blocks, doubled while reading stays sequential.
    streak: u64,
    /// Block after the last one queued.
    to: u64,
    /// Blocks queued before the chain runs, not promised yet.
    waiting: Vec<u64>,
    /// Blocks the chain has still to fetch, in order, with their promises.
    promised: VecDeque<(u64, T)>,
    chain: Chain,
}

impl<T> Default for ReadAhead<T> {
    fn default() -> Self {
        ReadAhead {
            next_read: 0,
            streak: 0,
            to: 0,
            waiting: Vec::new(),
            promised: VecDeque::new(),
            chain: Chain::Idle,
        }
    }
}

impl<T> ReadAhead<T> {
    /// Records a read of `len` bytes at `offset` of a file of `blocks`
    /// blocks of `block_size` bytes; returns the blocks newly wanted ahead
    /// of it, for the caller to `queue`.
    pub fn after_read(
        &mut self,
        offset: u64,
        len: usize,
        block_size: u64,
        blocks: u64,
        max_depth: u64,
    ) -> Range<u64> {
        let sequential = self.sequential(offset);
        let end = offset + len as u64;
        self.next_read = if sequential {
            self.next_read.max(end)
        } else {
            end
        };
        if !sequential || len == 0 {
            // Random access: the running chain stops at its next block.
            self.streak = 0;
            self.stop();
            return 0..0;
        }
        self.streak = (self.streak * 2).clamp(1, max_depth.max(1));
        let last = (offset + len as u64 - 1) / block_size;
        let from = self.to.max(last + 1);
        self.to = self.to.max((last + 1 + self.streak).min(blocks));
        from..self.to.max(from)
    }

    /// A sequential read of blocks `first..=last` that reaches past what
    /// the running chain has queued, from where its queue ends: the blocks
    /// to append to the chain (the caller promises and `queue`s them), so
    /// that the reader waits for the chain instead of fetching them out of
    /// order, on another connection, while the chain streams towards them.
    /// Empty unless the chain runs and the read starts within its queue or
    /// right after it.
    pub fn join(&mut self, first: u64, last: u64) -> Range<u64> {
        if !self.running() || first > self.to || last < self.to {
            return 0..0;
        }
        let from = self.to;
        self.to = last + 1;
        from..self.to
    }

    /// True when a read at `offset` continues the stream (see `REORDER`).
    pub fn sequential(&self, offset: u64) -> bool {
        offset.abs_diff(self.next_read) <= REORDER
    }

    /// True while a chain runs: blocks queued now need their promise.
    pub fn running(&self) -> bool {
        self.chain == Chain::Running
    }

    /// Queues a block: with its promise while the chain runs, without
    /// one before (`begin` takes it then).
    pub fn queue(&mut self, index: u64, promise: Option<T>) {
        match promise {
            Some(promise) => self.promised.push_back((index, promise)),
            None => self.waiting.push(index),
        }
    }

    /// True when a chain has to be handed to a worker for the queued
    /// blocks (it counts as starting from now on).
    pub fn start(&mut self) -> bool {
        if self.chain != Chain::Idle || (self.waiting.is_empty() && self.promised.is_empty()) {
            return false;
        }
        self.chain = Chain::Starting;
        true
    }

    /// Called by the chain when it starts running: takes a promise for
    /// every waiting block (`promise` gives None for a block already
    /// cached or being fetched, which is then left out).
    pub fn begin(&mut self, mut promise: impl FnMut(u64) -> Option<T>) {
        self.chain = Chain::Running;
        let waiting = std::mem::take(&mut self.waiting);
        self.promised.extend(
            waiting
                .into_iter()
                .filter_map(|i| promise(i).map(|p| (i, p))),
        );
    }

    /// The next block for the running chain; None ends the chain.
    pub fn next_block(&mut self) -> Option<(u64, T)> {
        let next = self.promised.pop_front();
        if next.is_none() {
            self.chain = Chain::Idle;
        }
        next
    }

    /// Ends the chain early: a fetch failed, or no worker would take it.
    pub fn end(&mut self) {
        self.stop();
        self.chain = Chain::Idle;
    }

    /// Drops what is queued (and so its promises), as when the handle is
    /// closed: the next sequential read queues afresh from where it is. A
    /// chain that is running or starting ends when it finds the queue empty.
    pub fn stop(&mut self) {
        self.waiting.clear();
        self.promised.clear();
        self.to = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Queues as `Fs` does: with a promise only while the chain runs.
    fn queue_all(ra: &mut ReadAhead<u64>, wanted: Range<u64>) {
        for index in wanted {
            let promise = ra.running().then_some(index);
            ra.queue(index, promise);
        }
    }

    fn drain(ra: &mut ReadAhead<u64>) -> Vec<u64> {
        std::iter::from_fn(|| ra.next_block().map(|(i, _)| i)).collect()
    }

    #[test]
    fn sequential_reads_grow_one_chain() {
        let mut ra = ReadAhead::default();
        let wanted = ra.after_read(0, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted, 1..2, "a window of one block at first");
        queue_all(&mut ra, wanted);
        assert!(ra.start());
        assert!(!ra.start(), "one chain at a time");
        ra.begin(Some);
        assert_eq!(ra.next_block().map(|b| b.0), Some(1));
        let wanted = ra.after_read(MIB, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted, 2..4);
        queue_all(&mut ra, wanted);
        assert!(!ra.start(), "the chain is still running");
        let wanted = ra.after_read(2 * MIB, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted, 4..7, "only blocks not queued yet");
        queue_all(&mut ra, wanted);
        assert_eq!(
            drain(&mut ra),
            vec![2, 3, 4, 5, 6],
            "each block once, in order"
        );
        assert!(!ra.running());
    }

    #[test]
    fn promises_are_taken_only_once_the_chain_runs() {
        let mut ra: ReadAhead<u64> = ReadAhead::default();
        queue_all(&mut ra, 1..4);
        assert!(ra.start());
        assert!(
            ra.promised.is_empty(),
            "a chain waiting for a worker holds no promise"
        );
        // Block 2 got cached meanwhile: no promise for it, so it is skipped.
        ra.begin(|i| (i != 2).then_some(i));
        assert_eq!(drain(&mut ra), vec![1, 3]);
    }

    #[test]
    fn window_is_capped_and_stops_at_end_of_file() {
        let mut ra = ReadAhead::default();
        let mut queued = Vec::new();
        for i in 0..10 {
            let wanted = ra.after_read(i * MIB, MIB as usize, MIB, 12, 4);
            assert!(wanted.end <= i + 1 + 4, "at most 4 blocks ahead");
            queued.extend(wanted.clone());
            queue_all(&mut ra, wanted);
        }
        assert_eq!(queued, (1..12).collect::<Vec<_>>(), "nothing past the end");
    }

    #[test]
    fn a_read_past_the_queue_joins_the_running_chain() {
        let mut ra = ReadAhead::default();
        let wanted = ra.after_read(0, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted, 1..2);
        assert_eq!(ra.join(2, 2), 0..0, "no chain runs yet");
        queue_all(&mut ra, wanted);
        assert!(ra.start());
        ra.begin(Some);
        // The kernel's read of block 2 arrives before the read of block 1
        // is answered (and queues more): it joins the chain.
        assert_eq!(ra.join(2, 2), 2..3);
        queue_all(&mut ra, 2..3);
        assert_eq!(ra.join(1, 2), 0..0, "already queued");
        assert_eq!(ra.join(5, 5), 0..0, "not next to the queue");
        let wanted = ra.after_read(MIB, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted, 3..4, "block 2 is not queued twice");
        queue_all(&mut ra, wanted);
        assert_eq!(drain(&mut ra), vec![1, 2, 3], "in order");
        assert_eq!(ra.join(4, 4), 0..0, "the chain has ended");
    }

    #[test]
    fn random_access_drops_the_queue() {
        let mut ra = ReadAhead::default();
        let wanted = ra.after_read(0, 4096, MIB, 100, 8);
        queue_all(&mut ra, wanted);
        assert!(ra.start());
        ra.begin(Some);
        assert_eq!(ra.after_read(50 * MIB, 4096, MIB, 100, 8), 0..0);
        assert_eq!(ra.next_block().map(|b| b.0), None, "the chain ends");
        // Sequential again: a new window from the new position.
        assert_eq!(ra.after_read(50 * MIB + 4096, 4096, MIB, 100, 8), 51..52);
    }

    #[test]
    fn reads_slightly_out_of_order_stay_sequential() {
        let mut ra: ReadAhead<u64> = ReadAhead::default();
        let mut queued = Vec::new();
        // The kernel's requests of 1 MiB, two at a time, finishing swapped.
        for pair in 0..4u64 {
            for i in [2 * pair + 1, 2 * pair] {
                let wanted = ra.after_read(i * MIB, MIB as usize, MIB, 100, 8);
                queued.extend(wanted.clone());
                queue_all(&mut ra, wanted);
            }
        }
        assert_eq!(queued.first(), Some(&2), "read-ahead started");
        assert!(queued.len() >= 8, "and went on: {queued:?}");
        assert!(queued.windows(2).all(|w| w[0] < w[1]), "each block once");
    }

    #[test]
    fn after_a_failure_the_next_read_starts_a_new_chain_from_where_it_is() {
        let mut ra = ReadAhead::default();
        for i in 0..4 {
            let wanted = ra.after_read(i * MIB, MIB as usize, MIB, 100, 8);
            queue_all(&mut ra, wanted);
        }
        assert!(ra.start());
        ra.begin(Some);
        ra.end();
        assert_eq!(ra.next_block().map(|b| b.0), None);
        let wanted = ra.after_read(4 * MIB, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted.start, 5);
        queue_all(&mut ra, wanted);
        assert!(ra.start(), "a new chain");
    }
}
