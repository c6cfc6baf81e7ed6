//! Write-behind for one open file: coalesced chunks are sent to the server
//! by background threads, each on its own connection, while the writer goes
//! on filling the next chunk.
//!
//! Chunks that overlap are never in flight together (the later one waits),
//! so the server ends with the bytes in write order. It only sends and
//! remembers the first failure; `drain` waits until everything queued is on
//! the server. Callers drain before anything that needs the server's copy
//! to be complete (reads, truncation, commit, rename).

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crossbeam_channel::{bounded, Sender};

use super::budget::Buffered;
use crate::remote::{self, Remote, WriterId};
use crate::sync::{lock, wait};

/// Two senders keep one connection sending while the other waits for the
/// server's last acknowledgements of its chunk. A third made sequential
/// writes slower: its server process contends with the others for the
/// file's lock, and the server's CPU is what limits a loopback or LAN link.
const MAX_SENDERS: usize = 2;

struct Chunk {
    writer: WriterId,
    path: PathBuf,
    offset: u64,
    /// Counted in the process's write budget until sent (dropped).
    data: Buffered,
}

#[derive(Default)]
struct Progress {
    /// Byte ranges of the chunks queued or being sent.
    outstanding: Vec<(u64, u64)>,
    /// The first failure; later chunks are dropped unsent.
    error: Option<remote::Error>,
}

#[derive(Default)]
struct Shared {
    progress: Mutex<Progress>,
    idle: Condvar,
}

pub struct WriteBehind {
    remote: Arc<dyn Remote>,
    senders: usize,
    queue: Option<Sender<Chunk>>,
    shared: Arc<Shared>,
}

impl WriteBehind {
    /// `senders` threads, at most `MAX_SENDERS` (at most one chunk in
    /// flight each, and as many waiting: memory stays bounded).
    pub fn new(remote: Arc<dyn Remote>, senders: usize) -> WriteBehind {
        WriteBehind {
            remote,
            senders: senders.clamp(1, MAX_SENDERS),
            queue: None,
            shared: Arc::default(),
        }
    }

    /// Queues a chunk (waiting while the queue is full, or while chunks
    /// being sent hold the process's write budget). Reports an earlier
    /// failure instead, once.
    pub fn push(
        &mut self,
        writer: WriterId,
        path: PathBuf,
        offset: u64,
        mut data: Buffered,
    ) -> remote::Result<()> {
        self.take_error()?;
        data.start_sending();
        let range = (offset, offset + data.len() as u64);
        {
            let mut progress = lock(&self.shared.progress);
            while progress.outstanding.iter().any(|r| overlaps(*r, range)) {
                progress = self.wait(progress);
            }
            progress.outstanding.push(range);
        }
        let chunk = Chunk {
            writer,
            path,
            offset,
            data,
        };
        let queue = match &self.queue {
            Some(queue) => queue,
            None => self.queue.insert(self.start()?),
        };
        if let Err(unsent) = queue.send(chunk) {
            // The sender thread is gone (it cannot be, short of a panic):
            // send here rather than lose the bytes.
            lock(&self.shared.progress)
                .outstanding
                .retain(|r| *r != range);
            let c = unsent.into_inner();
            return self.remote.write_kept(c.writer, &c.path, c.offset, &c.data);
        }
        Ok(())
    }

    fn start(&self) -> remote::Result<Sender<Chunk>> {
        // As many queued as in flight: while the budget allows, each
        // sender finds its next chunk ready when it finishes one.
        let (tx, rx) = bounded::<Chunk>(self.senders);
        for _ in 0..self.senders {
            let (remote, shared, rx) = (self.remote.clone(), self.shared.clone(), rx.clone());
            std::thread::Builder::new()
                .name("write-behind".into())
                .spawn(move || {
                    for chunk in rx {
                        let range = (chunk.offset, chunk.offset + chunk.data.len() as u64);
                        let failed = lock(&shared.progress).error.is_some();
                        let result = if failed {
                            Ok(())
                        } else {
                            remote.write_kept(chunk.writer, &chunk.path, chunk.offset, &chunk.data)
                        };
                        let mut progress = lock(&shared.progress);
                        if let Err(e) = result {
                            progress.error.get_or_insert(e);
                        }
                        if let Some(i) = progress.outstanding.iter().position(|r| *r == range) {
                            progress.outstanding.swap_remove(i);
                        }
                        shared.idle.notify_all();
                    }
                })
                .map_err(remote::Error::Io)?;
        }
        Ok(tx)
    }

    fn wait<'a>(&self, progress: MutexGuard<'a, Progress>) -> MutexGuard<'a, Progress> {
        wait(&self.shared.idle, progress)
    }

    /// Waits until everything queued is on the server; reports a failure.
    pub fn drain(&self) -> remote::Result<()> {
        let mut progress = lock(&self.shared.progress);
        while !progress.outstanding.is_empty() {
            progress = self.wait(progress);
        }
        drop(progress);
        self.take_error()
    }

    fn take_error(&self) -> remote::Result<()> {
        match lock(&self.shared.progress).error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::memory::Memory;
    use std::path::Path;
    use std::sync::atomic::Ordering;

    #[test]
    fn chunks_land_in_order_and_failures_are_reported() {
        let mem = Arc::new(Memory::new(true));
        mem.put_file("/f", b"");
        let mut wb = WriteBehind::new(mem.clone(), 3);
        for i in 0..10u8 {
            wb.push(
                1,
                "/f".into(),
                u64::from(i) * 2,
                Buffered::new(&[b'a' + i; 2]),
            )
            .expect("push");
        }
        // Overlapping rewrites of one range land in order.
        for i in 0..10u8 {
            wb.push(1, "/f".into(), 0, Buffered::new(&[i; 4]))
                .expect("push");
        }
        wb.drain().expect("drain");
        assert_eq!(mem.content("/f").map(|c| c[..4].to_vec()), Some(vec![9; 4]));
        assert_eq!(mem.content("/f").map(|c| c.len()), Some(20));
        assert_eq!(mem.content("/f").map(|c| c[18]), Some(b'j'));
        mem.fail_writes.store(true, Ordering::SeqCst);
        let _ = wb.push(1, Path::new("/f").into(), 20, Buffered::new(&[1; 2]));
        assert!(wb.drain().is_err(), "the failure is reported");
        assert!(wb.drain().is_ok(), "once");
    }
}
