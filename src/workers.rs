//! A small fixed pool of named threads fed by a queue. The FUSE adapter
//! uses two (metadata and data) so a slow transfer never delays a `stat`;
//! the filesystem logic uses one for read-ahead.
//!
//! Queuing a request never waits: the FUSE dispatcher must go on answering
//! what the caches know while every worker is busy. The queue is bounded
//! all the same, by the kernel: it has only so many requests outstanding
//! (one per waiting system call, plus its few background reads). Optional
//! work (`try_spawn`) is refused past `queue_len`.
//!
//! Threads start on first use, after the process has daemonized (fork keeps
//! only the calling thread).

use crossbeam_channel::{unbounded, Sender};

pub type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Workers {
    queue: Sender<Job>,
    /// Queued jobs past which optional work is refused.
    queue_len: usize,
}

impl Workers {
    pub fn new(name: &str, threads: usize, queue_len: usize) -> Workers {
        let (queue, jobs) = unbounded::<Job>();
        for i in 0..threads.max(1) {
            let jobs = jobs.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    for job in jobs {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a {name} thread: {e}");
            }
        }
        Workers { queue, queue_len }
    }

    /// Queues a job; never waits.
    pub fn spawn(&self, job: Job) {
        if let Err(e) = self.queue.send(job) {
            // Only possible if every worker died; run it here rather than lose
            // a reply the kernel is waiting for.
            (e.into_inner())();
        }
    }

    /// Queues a job unless `queue_len` jobs wait already (for optional work).
    pub fn try_spawn(&self, job: Job) -> bool {
        if self.queue.len() >= self.queue_len {
            return false;
        }
        self.spawn(job);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_full_queue_never_makes_the_caller_wait() {
        let workers = Workers::new("test", 1, 2);
        let (release, blocked) = mpsc::channel::<()>();
        workers.spawn(Box::new(move || {
            let _ = blocked.recv_timeout(Duration::from_secs(10));
        }));
        let (done_tx, done) = mpsc::channel();
        for i in 0..10 {
            let done_tx = done_tx.clone();
            // Returns at once although the only worker is busy.
            workers.spawn(Box::new(move || {
                let _ = done_tx.send(i);
            }));
        }
        assert!(
            !workers.try_spawn(Box::new(|| {})),
            "optional work is refused past queue_len"
        );
        release.send(()).expect("release the worker");
        let finished: Vec<i32> = (0..10)
            .map(|_| {
                done.recv_timeout(Duration::from_secs(10))
                    .expect("every job runs")
            })
            .collect();
        assert_eq!(finished, (0..10).collect::<Vec<_>>(), "in order");
    }
}
