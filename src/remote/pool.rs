//! The connection pool: turns a protocol's single-threaded `Connection` into
//! a `Remote` that many threads can call at once.
//!
//! One connection is kept for metadata so `stat` never queues behind a bulk
//! transfer; the others carry reads and writes. A connection that saw a
//! timeout or transport error is dropped, never reused (DESIGN invariant 2),
//! and idempotent calls are retried once on a fresh one. The pool knows no
//! protocol details and nothing of FUSE.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Attr, Caps, DirEntry, Error, Remote, Result, SetAttr, StatFs};

/// One connection to the server, used by one thread at a time. The methods
/// mirror `Remote`; `generation` is the pool's count of changes made through
/// the mount, so a connection can tell when cached handles may be stale.
pub trait Connection: Send + 'static {
    fn stat(&mut self, path: &Path) -> Result<Attr>;
    fn list(&mut self, path: &Path) -> Result<Vec<DirEntry>>;
    fn read(&mut self, path: &Path, offset: u64, len: usize, generation: u64) -> Result<Vec<u8>>;
    fn write(&mut self, path: &Path, offset: u64, data: &[u8], generation: u64) -> Result<()>;
    fn upload(&mut self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()>;
    fn create(&mut self, path: &Path, mode: u32, exclusive: bool) -> Result<()>;
    fn setattr(&mut self, path: &Path, change: SetAttr) -> Result<()>;
    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<()>;
    fn rmdir(&mut self, path: &Path) -> Result<()>;
    fn unlink(&mut self, path: &Path) -> Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> Result<()>;
    fn symlink(&mut self, target: &Path, link: &Path) -> Result<()>;
    fn readlink(&mut self, path: &Path) -> Result<PathBuf>;
    fn statfs(&mut self, path: &Path) -> Result<StatFs>;
    fn fsync(&mut self, path: &Path) -> Result<()>;
    /// Cheap liveness probe for idle connections (SSH keepalive, FTP NOOP).
    fn keepalive(&mut self) -> Result<()>;
}

/// Makes new connections for the pool.
pub trait Connector: Send + Sync + 'static {
    type Conn: Connection;
    fn connect(&self) -> Result<Self::Conn>;
    fn caps(&self) -> Caps;
}

/// While the server is known to be unreachable, calls fail at once instead of
/// each waiting for a full connect timeout.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Pool<C: Connector> {
    connector: C,
    /// The metadata connection.
    meta: Mutex<Option<C::Conn>>,
    bulk: Mutex<Bulk<C::Conn>>,
    bulk_freed: Condvar,
    bulk_max: usize,
    generation: AtomicU64,
    outage: Mutex<Outage>,
}

struct Bulk<T> {
    idle: Vec<T>,
    /// Connections in use or idle.
    open: usize,
}

#[derive(Default)]
struct Outage {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

enum Lane {
    Meta,
    Bulk,
}

impl<C: Connector> Pool<C> {
    /// A pool of at most `max_conns` connections (one of them for metadata),
    /// starting with `first`, which proved the server reachable at start-up.
    pub fn new(connector: C, first: C::Conn, max_conns: usize) -> Pool<C> {
        Pool {
            connector,
            meta: Mutex::new(Some(first)),
            bulk: Mutex::new(Bulk {
                idle: Vec::new(),
                open: 0,
            }),
            bulk_freed: Condvar::new(),
            bulk_max: max_conns.saturating_sub(1).max(1),
            generation: AtomicU64::new(0),
            outage: Mutex::new(Outage::default()),
        }
    }

    /// Runs `op` on a connection of `lane`; with `retry`, once more on a fresh
    /// connection if the first one broke.
    fn run<R>(&self, lane: Lane, retry: bool, mut op: impl FnMut(&mut C::Conn) -> Result<R>) -> Result<R> {
        let result = self.run_once(&lane, &mut op);
        match result {
            Err(ref e) if retry && e.breaks_connection() => {
                tracing::debug!("retrying after: {e}");
                self.run_once(&lane, &mut op)
            }
            other => other,
        }
    }

    fn run_once<R>(&self, lane: &Lane, op: &mut impl FnMut(&mut C::Conn) -> Result<R>) -> Result<R> {
        match lane {
            Lane::Meta => {
                // A busy metadata connection should not make a stat wait for
                // it while a bulk connection sits idle.
                if let Ok(mut slot) = self.meta.try_lock() {
                    return self.run_in_slot(&mut slot, op);
                }
                if let Some(conn) = self.take_idle_bulk() {
                    return self.run_bulk(conn, op);
                }
                let mut slot = lock(&self.meta);
                self.run_in_slot(&mut slot, op)
            }
            Lane::Bulk => {
                let conn = self.acquire_bulk()?;
                self.run_bulk(conn, op)
            }
        }
    }

    fn run_in_slot<R>(
        &self,
        slot: &mut MutexGuard<'_, Option<C::Conn>>,
        op: &mut impl FnMut(&mut C::Conn) -> Result<R>,
    ) -> Result<R> {
        if slot.is_none() {
            **slot = Some(self.connect()?);
        }
        let conn = slot.as_mut().ok_or(Error::Transport("no connection".into()))?;
        let result = op(conn);
        if let Err(e) = &result {
            if e.breaks_connection() {
                tracing::info!("dropping metadata connection: {e}");
                **slot = None;
            }
        }
        result
    }

    fn run_bulk<R>(&self, mut conn: C::Conn, op: &mut impl FnMut(&mut C::Conn) -> Result<R>) -> Result<R> {
        let result = op(&mut conn);
        let broken = matches!(&result, Err(e) if e.breaks_connection());
        let mut bulk = lock(&self.bulk);
        if broken {
            tracing::info!("dropping a data connection after an error");
            bulk.open -= 1;
            drop(conn);
        } else {
            bulk.idle.push(conn);
        }
        drop(bulk);
        self.bulk_freed.notify_one();
        result
    }

    fn take_idle_bulk(&self) -> Option<C::Conn> {
        lock(&self.bulk).idle.pop()
    }

    fn acquire_bulk(&self) -> Result<C::Conn> {
        let mut bulk = lock(&self.bulk);
        loop {
            if let Some(conn) = bulk.idle.pop() {
                return Ok(conn);
            }
            if bulk.open < self.bulk_max {
                bulk.open += 1;
                drop(bulk);
                return self.connect().inspect_err(|_| {
                    lock(&self.bulk).open -= 1;
                    self.bulk_freed.notify_one();
                });
            }
            bulk = self
                .bulk_freed
                .wait(bulk)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Connects, or fails at once while a recent attempt failed (backoff).
    fn connect(&self) -> Result<C::Conn> {
        {
            let outage = lock(&self.outage);
            if let Some(at) = outage.retry_at {
                if Instant::now() < at {
                    return Err(Error::Transport(format!(
                        "server unreachable: {}",
                        outage.last_error
                    )));
                }
            }
        }
        match self.connector.connect() {
            Ok(conn) => {
                let mut outage = lock(&self.outage);
                if outage.failures > 0 {
                    tracing::info!("reconnected to the server");
                }
                *outage = Outage::default();
                Ok(conn)
            }
            Err(e) => {
                let mut outage = lock(&self.outage);
                outage.failures += 1;
                let backoff = Duration::from_millis(250 << outage.failures.min(5)).min(MAX_BACKOFF);
                outage.retry_at = Some(Instant::now() + backoff);
                outage.last_error = e.to_string();
                tracing::warn!("cannot reconnect: {e}");
                Err(match e {
                    Error::Setup(msg) => Error::Transport(msg),
                    other => other,
                })
            }
        }
    }

    /// Records a change made through the mount (see `Connection`).
    fn changed(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Sends a keepalive on every idle connection; drops the dead ones.
    pub fn keepalive_idle(&self) {
        let idle: Vec<C::Conn> = std::mem::take(&mut lock(&self.bulk).idle);
        for conn in idle {
            let _ = self.run_bulk(conn, &mut |c: &mut C::Conn| c.keepalive());
        }
        if let Ok(mut slot) = self.meta.try_lock() {
            if let Some(conn) = slot.as_mut() {
                if let Err(e) = conn.keepalive() {
                    tracing::info!("metadata connection failed its keepalive: {e}");
                    *slot = None;
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<C: Connector> Remote for Pool<C> {
    fn caps(&self) -> Caps {
        self.connector.caps()
    }
    fn stat(&self, path: &Path) -> Result<Attr> {
        self.run(Lane::Meta, true, |c| c.stat(path))
    }
    fn list(&self, path: &Path) -> Result<Vec<DirEntry>> {
        self.run(Lane::Meta, true, |c| c.list(path))
    }
    fn read(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        let generation = self.generation();
        self.run(Lane::Bulk, true, |c| c.read(path, offset, len, generation))
    }
    fn write(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        let generation = self.changed();
        self.run(Lane::Bulk, false, |c| c.write(path, offset, data, generation))
    }
    fn upload(&self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()> {
        self.changed();
        self.run(Lane::Bulk, false, |c| c.upload(path, src, append))
    }
    fn create(&self, path: &Path, mode: u32, exclusive: bool) -> Result<()> {
        self.changed();
        self.run(Lane::Meta, false, |c| c.create(path, mode, exclusive))
    }
    fn setattr(&self, path: &Path, change: SetAttr) -> Result<()> {
        self.changed();
        self.run(Lane::Meta, false, |c| c.setattr(path, change))
    }
    fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        self.run(Lane::Meta, false, |c| c.mkdir(path, mode))
    }
    fn rmdir(&self, path: &Path) -> Result<()> {
        self.changed();
        self.run(Lane::Meta, false, |c| c.rmdir(path))
    }
    fn unlink(&self, path: &Path) -> Result<()> {
        self.changed();
        self.run(Lane::Meta, false, |c| c.unlink(path))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.changed();
        self.run(Lane::Meta, false, |c| c.rename(from, to))
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.run(Lane::Meta, false, |c| c.symlink(target, link))
    }
    fn readlink(&self, path: &Path) -> Result<PathBuf> {
        self.run(Lane::Meta, true, |c| c.readlink(path))
    }
    fn statfs(&self, path: &Path) -> Result<StatFs> {
        self.run(Lane::Meta, true, |c| c.statfs(path))
    }
    fn fsync(&self, path: &Path) -> Result<()> {
        self.run(Lane::Bulk, false, |c| c.fsync(path))
    }
}
