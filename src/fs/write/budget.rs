//! The memory that written data not yet on the server may hold, for the
//! whole process: bytes gathered into chunks by open files (`Buffered`)
//! and chunks queued or in flight in the write-behind. Without it each
//! open file held up to five 1 MiB chunks, so 64 files written at once
//! held hundreds of MiB (README "Speed", memory).
//!
//! It only counts and makes senders wait; what is sent when is
//! `FileState`'s and the write-behind's decision. It never makes anyone
//! wait for bytes that are only gathered (they may never be sent before
//! their file is written again), only for chunks already being sent,
//! which always finish (every remote call has a deadline).

use std::sync::{Condvar, Mutex};

use crate::sync::{lock, wait};

/// What written data may hold in memory before writers send smaller
/// chunks and wait for those being sent: room for one sequential
/// writer's chunks (one gathering, two queued, two in flight) and more.
pub const WRITE_MEMORY: usize = 8 << 20;

#[derive(Default)]
struct Counts {
    /// Bytes gathered in open files' buffers (their capacity).
    gathered: usize,
    /// Bytes of chunks handed to the write-behind and not yet sent.
    sending: usize,
    /// Senders waiting for room: a chunk sent wakes them only if any.
    waiting: usize,
}

/// A byte budget and what is held of it.
pub struct Budget {
    counts: Mutex<Counts>,
    sent: Condvar,
    limit: usize,
}

impl Budget {
    pub const fn new(limit: usize) -> Budget {
        Budget {
            counts: Mutex::new(Counts {
                gathered: 0,
                sending: 0,
                waiting: 0,
            }),
            sent: Condvar::new(),
            limit,
        }
    }
}

/// The process's budget: a mount is one process, and its open files share it.
static PROCESS: Budget = Budget::new(WRITE_MEMORY);

/// Written bytes gathered into a chunk, counted while they are held.
pub struct Buffered {
    data: Vec<u8>,
    budget: &'static Budget,
    /// What `data` is counted as (its capacity, when it was last counted).
    counted: usize,
    /// Counted as a chunk being sent rather than gathered.
    sending: bool,
}

impl Buffered {
    /// A copy of `data`, counted in the process's budget (for tests).
    #[cfg(test)]
    pub fn new(data: &[u8]) -> Buffered {
        Buffered::new_in(&PROCESS, data)
    }

    /// Nothing yet, in the process's budget (`extend` adds).
    pub fn empty() -> Buffered {
        Buffered::empty_in(&PROCESS)
    }

    fn empty_in(budget: &'static Budget) -> Buffered {
        Buffered {
            data: Vec::new(),
            budget,
            counted: 0,
            sending: false,
        }
    }

    #[cfg(test)]
    fn new_in(budget: &'static Budget, data: &[u8]) -> Buffered {
        let mut b = Buffered::empty_in(budget);
        let _ = b.extend(data);
        b
    }

    /// Appends `data`; true when written data then holds more than its
    /// budget: the writer should send what it gathered now instead of
    /// gathering a full chunk. (One lock of the shared counts per write.)
    pub fn extend(&mut self, data: &[u8]) -> bool {
        self.data.extend_from_slice(data);
        let now = self.data.capacity();
        let mut counts = lock(&self.budget.counts);
        if self.sending {
            counts.sending = counts.sending - self.counted + now;
        } else {
            counts.gathered = counts.gathered - self.counted + now;
        }
        self.counted = now;
        counts.gathered + counts.sending > self.budget.limit
    }

    /// Counts it as a chunk being sent, first waiting while the chunks
    /// being sent hold the budget (a chunk larger than the budget goes
    /// when nothing else is being sent).
    pub fn start_sending(&mut self) {
        if self.sending {
            return;
        }
        let budget = self.budget;
        let mut counts = lock(&budget.counts);
        while counts.sending > 0 && counts.sending + self.counted > budget.limit {
            counts.waiting += 1;
            counts = wait(&budget.sent, counts);
            counts.waiting -= 1;
        }
        counts.gathered -= self.counted;
        counts.sending += self.counted;
        self.sending = true;
    }
}

impl std::ops::Deref for Buffered {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        let mut counts = lock(&self.budget.counts);
        if self.sending {
            counts.sending -= self.counted;
            let waiting = counts.waiting > 0;
            drop(counts);
            if waiting {
                self.budget.sent.notify_all();
            }
        } else {
            counts.gathered -= self.counted;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn held(budget: &Budget) -> (usize, usize) {
        let c = lock(&budget.counts);
        (c.gathered, c.sending)
    }

    #[test]
    fn counts_follow_the_buffers_and_senders_wait_for_room() {
        const LIMIT: usize = 1 << 20;
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(LIMIT)));
        let mut a = Buffered::new_in(budget, &[1; 1000]);
        assert!(!a.extend(&[2; 1000]), "within the budget");
        assert_eq!((&a[..2], a.len()), (&[1u8, 1][..], 2000));
        assert_eq!(held(budget), (a.counted, 0));
        assert!(a.counted >= 2000);
        let mut big = Buffered::empty_in(budget);
        assert!(big.extend(&vec![0; LIMIT]), "gathered bytes count");
        // Larger than the budget, but nothing else is being sent: it goes.
        big.start_sending();
        assert_eq!(held(budget), (a.counted, big.counted));
        // The budget is full of a chunk being sent: the next one waits
        // until that one is sent (dropped).
        let sending = Arc::new(AtomicBool::new(false));
        let flag = sending.clone();
        let sender = std::thread::spawn(move || {
            a.start_sending();
            flag.store(true, Ordering::SeqCst);
            a
        });
        // It waits (counted under the lock it waits on), and has not gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while lock(&budget.counts).waiting == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the sender never waited"
            );
            std::thread::yield_now();
        }
        assert!(
            !sending.load(Ordering::SeqCst),
            "waits while the budget is full"
        );
        drop(big);
        let a = sender.join().expect("sender");
        assert!(sending.load(Ordering::SeqCst));
        assert_eq!(held(budget), (0, a.counted));
        drop(a);
        assert_eq!(held(budget), (0, 0), "everything released");
    }
}
