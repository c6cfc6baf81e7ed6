//! A small fixed pool of named threads fed by a bounded queue. The FUSE
//! adapter uses two (metadata and data) so a slow transfer never delays a
//! `stat`; the filesystem logic uses one for read-ahead.
//!
//! Threads start on first use, after the process has daemonized (fork keeps
//! only the calling thread).

use crossbeam_channel::{bounded, Sender, TrySendError};

pub type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Workers {
    queue: Sender<Job>,
}

impl Workers {
    pub fn new(name: &str, threads: usize, queue_len: usize) -> Workers {
        let (queue, jobs) = bounded::<Job>(queue_len);
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
        Workers { queue }
    }

    /// Queues a job, waiting for room if the queue is full.
    pub fn spawn(&self, job: Job) {
        if let Err(e) = self.queue.send(job) {
            // Only possible if every worker died; run it here rather than lose
            // a reply the kernel is waiting for.
            (e.into_inner())();
        }
    }

    /// Queues a job unless the queue is full (for optional work).
    pub fn try_spawn(&self, job: Job) -> bool {
        match self.queue.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(job)) => {
                job();
                true
            }
        }
    }
}
