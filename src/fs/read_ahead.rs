//! Read-ahead state of one open handle: detects sequential reading, grows
//! the window while it lasts, and queues the blocks to fetch, in order, for
//! a single fetching chain.
//!
//! One chain per handle, not one task per block: the blocks of a stream
//! then reach the server as one contiguous run on one connection, so the
//! connection's pipelined reads continue from block to block instead of
//! being dropped by a seek (several connections each serving every n-th
//! block were measurably slower). Several files still read in parallel, on
//! several connections. Each queued block carries a `T`, the caller's
//! promise to fetch it (a block-cache reservation), so that the kernel's
//! parallel reads wait for the chain instead of fetching the same stream
//! out of order. It does no I/O itself; `Fs` runs the chain.

use std::collections::VecDeque;
use std::ops::Range;

#[derive(Debug)]
pub struct ReadAhead<T> {
    /// End of the last read, to detect sequential reading.
    next_read: u64,
    /// Window in blocks, doubled while reading stays sequential.
    streak: u64,
    /// Block after the last one queued.
    to: u64,
    /// Blocks the chain has still to fetch, in order.
    queue: VecDeque<(u64, T)>,
    /// A chain is running for this handle.
    running: bool,
}

impl<T> Default for ReadAhead<T> {
    fn default() -> Self {
        ReadAhead {
            next_read: 0,
            streak: 0,
            to: 0,
            queue: VecDeque::new(),
            running: false,
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
        let sequential = offset == self.next_read;
        self.next_read = offset + len as u64;
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

    pub fn queue(&mut self, index: u64, promise: T) {
        self.queue.push_back((index, promise));
    }

    /// True when a chain has to be started for the queued blocks (and
    /// counts it as running from now on).
    pub fn start(&mut self) -> bool {
        if self.running || self.queue.is_empty() {
            return false;
        }
        self.running = true;
        true
    }

    /// The next block for the running chain; None ends the chain.
    pub fn next_block(&mut self) -> Option<(u64, T)> {
        let next = self.queue.pop_front();
        self.running = next.is_some();
        next
    }

    /// Drops what is queued (a fetch failed, a chain could not start, or
    /// reading stopped being sequential): the next sequential read queues
    /// afresh from where it is.
    pub fn stop(&mut self) {
        self.queue.clear();
        self.to = 0;
        self.running = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn queue_all(ra: &mut ReadAhead<()>, wanted: Range<u64>) {
        for index in wanted {
            ra.queue(index, ());
        }
    }

    fn drain(ra: &mut ReadAhead<()>) -> Vec<u64> {
        std::iter::from_fn(|| ra.next_block().map(|(i, ())| i)).collect()
    }

    #[test]
    fn sequential_reads_grow_one_chain() {
        let mut ra = ReadAhead::default();
        let wanted = ra.after_read(0, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted, 1..2, "a window of one block at first");
        queue_all(&mut ra, wanted);
        assert!(ra.start());
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
        assert!(!ra.running);
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
    fn random_access_drops_the_queue() {
        let mut ra = ReadAhead::default();
        let wanted = ra.after_read(0, 4096, MIB, 100, 8);
        queue_all(&mut ra, wanted);
        assert!(ra.start());
        assert_eq!(ra.after_read(50 * MIB, 4096, MIB, 100, 8), 0..0);
        assert_eq!(ra.next_block().map(|b| b.0), None, "the chain ends");
        // Sequential again: a new window from the new position.
        assert_eq!(ra.after_read(50 * MIB + 4096, 4096, MIB, 100, 8), 51..52);
    }

    #[test]
    fn after_a_stop_the_next_read_queues_from_where_it_is() {
        let mut ra = ReadAhead::default();
        for i in 0..4 {
            let wanted = ra.after_read(i * MIB, MIB as usize, MIB, 100, 8);
            queue_all(&mut ra, wanted);
        }
        ra.stop();
        assert_eq!(ra.next_block().map(|b| b.0), None);
        let wanted = ra.after_read(4 * MIB, MIB as usize, MIB, 100, 8);
        assert_eq!(wanted.start, 5);
    }
}
