//! The connection pool: turns a protocol's single-threaded `Connection` into
//! a `Remote` that many threads can call at once.
//!
//! One connection is kept for metadata so `stat` never queues behind a bulk
//! transfer; the others carry reads and writes. A connection that saw a
//! timeout or transport error is dropped, never reused (invariant 2),
//! and idempotent calls are retried once on a fresh one. The pool knows no
//! protocol details and nothing of FUSE: what a protocol provides
//! (`Connection`, `Connector`) is in `connection.rs`.

use crate::stats;
use crate::sync::{lock, wait_timeout};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Error, Result, WriterId};

mod connection;
mod kept;
mod remote;

pub use connection::{Connection, Connector, Generation};

/// Runs `op`, a change, counting it in `counter` both before (handles
/// opened from then on are not reused across it) and after (a handle
/// another connection opened, or data it read ahead, while it ran may
/// predate it).
fn counted<R>(counter: &AtomicU64, op: impl FnOnce() -> Result<R>) -> Result<R> {
    counter.fetch_add(1, Ordering::SeqCst);
    let result = op();
    counter.fetch_add(1, Ordering::SeqCst);
    result
}

/// While the server is known to be unreachable, calls fail at once instead of
/// each waiting for a full connect timeout; reconnect attempts back off up
/// to this long.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// After a server said it has too many connections (`Error::Busy`), the pool
/// opens no new data connection for this long and waits for its own.
const BUSY_HOLD: Duration = Duration::from_secs(30);

/// Limits of a pool, from the mount options.
#[derive(Clone, Copy, Debug)]
pub struct PoolOptions {
    /// Connections in all, one of them for metadata.
    pub max_conns: usize,
    /// Longest wait for a free connection (the operation deadline).
    pub timeout: Duration,
    /// Keepalive rounds with failures before the server counts as down.
    pub alive_count_max: u32,
    /// The mount's id, which the private names made here carry (see
    /// `private_names`).
    pub mount_id: &'static str,
}

/// A connection and the link epoch it was made in (see `Pool::epoch`).
struct Pooled<T> {
    conn: T,
    epoch: u64,
}

pub struct Pool<C: Connector> {
    connector: C,
    opts: PoolOptions,
    /// The metadata connection.
    meta: Mutex<Option<Pooled<C::Conn>>>,
    bulk: Mutex<Bulk<Pooled<C::Conn>>>,
    bulk_freed: Condvar,
    bulk_max: usize,
    /// The two counts of a `Generation`.
    names: AtomicU64,
    writes: AtomicU64,
    /// Bumped when an operation timed out: the link is suspect, so every
    /// connection made before is dropped instead of reused (each would
    /// likely cost another full timeout).
    epoch: AtomicU64,
    outage: Mutex<Outage>,
    keepalive_failures: AtomicU32,
    /// Data connections holding a handle kept open for a writer
    /// (`Remote::write_kept`), parked for that writer's next call. They
    /// count as open; one is taken back (its handle closed) when no other
    /// connection can be had.
    parked: Mutex<HashMap<WriterId, Vec<Pooled<C::Conn>>>>,
    /// The failed close of a kept handle that was closed to free its
    /// connection, for the writer's `close_writer`.
    kept_errors: Mutex<HashMap<WriterId, Error>>,
}

struct Bulk<T> {
    idle: Vec<T>,
    /// Connections in use or idle.
    open: usize,
    /// Until then the server is full: reuse connections, open none.
    busy_until: Option<Instant>,
}

impl<T> Bulk<T> {
    /// Another connection may be opened: fewer than `max` are, and the
    /// server has not lately said it is full.
    fn has_room(&self, max: usize) -> bool {
        let full = self.busy_until.is_some_and(|t| Instant::now() < t);
        self.open < max && !full
    }
}

#[derive(Default)]
struct Outage {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

enum Lane<'a> {
    Meta,
    Bulk,
    /// A read of this path at this offset: on the idle data connection
    /// that continues it (`Connection::continues_read`), if there is one.
    Read(&'a Path, u64),
    /// Work nobody waits for: only on a data connection that is idle now;
    /// none is opened or waited for (`Error::Busy` instead).
    Idle,
}

impl<C: Connector> Pool<C> {
    /// A pool starting with `first`, which proved the server reachable.
    pub fn new(connector: C, first: C::Conn, opts: PoolOptions) -> Pool<C> {
        stats::get().conn_opened();
        Pool {
            connector,
            opts,
            meta: Mutex::new(Some(Pooled {
                conn: first,
                epoch: 0,
            })),
            bulk: Mutex::new(Bulk {
                idle: Vec::new(),
                open: 0,
                busy_until: None,
            }),
            bulk_freed: Condvar::new(),
            bulk_max: opts.max_conns.saturating_sub(1).max(1),
            names: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            epoch: AtomicU64::new(0),
            outage: Mutex::new(Outage::default()),
            keepalive_failures: AtomicU32::new(0),
            parked: Mutex::new(HashMap::new()),
            kept_errors: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `op` on a connection of `lane`; with `retry`, once more on a fresh
    /// connection if the first one broke. Not after a timeout: the retry
    /// would wait a second full timeout on a link that is likely dead.
    fn run<R>(
        &self,
        lane: Lane<'_>,
        retry: bool,
        mut op: impl FnMut(&mut C::Conn) -> Result<R>,
    ) -> Result<R> {
        let started = Instant::now();
        let result = self.run_once(&lane, &mut op);
        // A broken link usually fails at once; a failure that took long
        // means the retry would likely wait as long again.
        let quick = started.elapsed() < self.opts.timeout / 4;
        match result {
            Err(Error::Transport(ref e)) if retry && quick => {
                tracing::debug!("retrying on a new connection after: {e}");
                self.run_once(&lane, &mut op)
            }
            other => other,
        }
    }

    fn run_once<R>(
        &self,
        lane: &Lane<'_>,
        op: &mut impl FnMut(&mut C::Conn) -> Result<R>,
    ) -> Result<R> {
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
                let conn = self.acquire_bulk(None)?;
                self.run_bulk(conn, op)
            }
            Lane::Read(path, offset) => {
                let conn = self.acquire_bulk(Some((path, *offset)))?;
                self.run_bulk(conn, op)
            }
            Lane::Idle => match self.take_idle_bulk() {
                Some(conn) => self.run_bulk(conn, op),
                None => Err(Error::Busy("no idle data connection".into())),
            },
        }
    }

    /// Makes a data connection idle for work nobody waits for: opens one
    /// if none is idle, the pool has room and the server did not say it is
    /// full. Whether one is idle now (another caller may take it first).
    pub(super) fn open_spare(&self) -> bool {
        let epoch = {
            let mut bulk = lock(&self.bulk);
            if !bulk.idle.is_empty() {
                return true;
            }
            if !bulk.has_room(self.bulk_max) {
                return false;
            }
            bulk.open += 1;
            self.epoch.load(Ordering::SeqCst)
        };
        let opened = self.connect();
        let mut bulk = lock(&self.bulk);
        let spare = match opened {
            Ok(pooled) if pooled.epoch == epoch => {
                bulk.idle.push(pooled);
                true
            }
            Ok(stale) => {
                bulk.open -= 1;
                stats::get().conn_closed(false);
                discard(stale);
                false
            }
            Err(e) => {
                tracing::debug!("no spare data connection: {e}");
                bulk.open -= 1;
                if matches!(e, Error::Busy(_)) {
                    bulk.busy_until = Some(Instant::now() + BUSY_HOLD);
                }
                false
            }
        };
        drop(bulk);
        self.bulk_freed.notify_one();
        spare
    }

    fn is_current(&self, pooled: &Pooled<C::Conn>) -> bool {
        pooled.epoch == self.epoch.load(Ordering::SeqCst)
    }

    fn run_in_slot<R>(
        &self,
        slot: &mut MutexGuard<'_, Option<Pooled<C::Conn>>>,
        op: &mut impl FnMut(&mut C::Conn) -> Result<R>,
    ) -> Result<R> {
        if slot.as_ref().is_some_and(|p| !self.is_current(p)) {
            if let Some(stale) = slot.take() {
                stats::get().conn_closed(false);
                discard(stale);
            }
        }
        if slot.is_none() {
            match self.connect() {
                Ok(conn) => **slot = Some(conn),
                // The server is full: borrow an idle data connection.
                Err(Error::Busy(msg)) => match self.take_idle_bulk() {
                    Some(conn) => return self.run_bulk(conn, op),
                    None => return Err(Error::Transport(format!("server busy: {msg}"))),
                },
                Err(e) => return Err(e),
            }
        }
        let pooled = slot
            .as_mut()
            .ok_or(Error::Transport("no connection".into()))?;
        let _busy = stats::get().busy();
        let result = op(&mut pooled.conn);
        if let Err(e) = &result {
            if e.breaks_connection() {
                tracing::info!("dropping the metadata connection: {e}");
                if let Some(broken) = slot.take() {
                    stats::get().conn_closed(true);
                    discard(broken);
                }
                self.note_failure(e);
            }
        }
        result
    }

    fn run_bulk<R>(
        &self,
        mut pooled: Pooled<C::Conn>,
        op: &mut impl FnMut(&mut C::Conn) -> Result<R>,
    ) -> Result<R> {
        let _busy = stats::get().busy();
        let result = op(&mut pooled.conn);
        let broken = matches!(&result, Err(e) if e.breaks_connection());
        if let Err(e) = &result {
            if broken {
                tracing::info!("dropping a data connection: {e}");
                self.note_failure(e);
            }
        }
        self.give_back(pooled, broken);
        result
    }

    /// An idle data connection of the current epoch, if any (stale ones are
    /// dropped on the way): for a read, the one that continues it; else,
    /// or if none does, the last one returned that holds no read open for
    /// its reader (a stream or handle kept for the next block), else the
    /// last one returned.
    fn pop_idle(
        &self,
        bulk: &mut Bulk<Pooled<C::Conn>>,
        read: Option<(&Path, u64)>,
    ) -> Option<Pooled<C::Conn>> {
        let mut i = 0;
        while i < bulk.idle.len() {
            if self.is_current(&bulk.idle[i]) {
                i += 1;
                continue;
            }
            let stale = bulk.idle.remove(i);
            bulk.open -= 1;
            stats::get().conn_closed(false);
            discard(stale);
        }
        let idle = &bulk.idle;
        let continuing = read.and_then(|(path, offset)| {
            idle.iter()
                .rposition(|p| p.conn.continues_read(path, offset))
        });
        let chosen = continuing
            .or_else(|| idle.iter().rposition(|p| !p.conn.holds_read()))
            .or_else(|| idle.len().checked_sub(1))?;
        Some(bulk.idle.remove(chosen))
    }

    fn take_idle_bulk(&self) -> Option<Pooled<C::Conn>> {
        let mut bulk = lock(&self.bulk);
        self.pop_idle(&mut bulk, None)
    }

    fn acquire_bulk(&self, read: Option<(&Path, u64)>) -> Result<Pooled<C::Conn>> {
        let deadline = Instant::now() + self.opts.timeout;
        let mut bulk = lock(&self.bulk);
        loop {
            if let Some(conn) = self.pop_idle(&mut bulk, read) {
                return Ok(conn);
            }
            if bulk.has_room(self.bulk_max) {
                bulk.open += 1;
                drop(bulk);
                match self.connect() {
                    Ok(conn) => return Ok(conn),
                    // Too many connections: wait for one of ours, if any.
                    Err(Error::Busy(msg)) => {
                        bulk = lock(&self.bulk);
                        bulk.open -= 1;
                        if bulk.open == 0 {
                            return Err(Error::Transport(format!("server busy: {msg}")));
                        }
                        tracing::info!("server busy ({msg}); waiting for a pooled connection");
                        bulk.busy_until = Some(Instant::now() + BUSY_HOLD);
                        continue;
                    }
                    Err(e) => {
                        lock(&self.bulk).open -= 1;
                        self.bulk_freed.notify_one();
                        return Err(e);
                    }
                }
            }
            drop(bulk);
            if let Some(pooled) = self.reclaim_parked() {
                if self.is_current(&pooled) {
                    return Ok(pooled);
                }
                self.give_back(pooled, false);
            }
            bulk = lock(&self.bulk);
            // A parked connection whose close broke it freed its slot:
            // open a new one rather than wait for the deadline.
            if bulk.has_room(self.bulk_max) {
                continue;
            }
            // One parked since `reclaim_parked` looked: its writer parked it
            // under this lock, so it is seen here or its wake-up comes after.
            if lock(&self.parked).values().any(|conns| !conns.is_empty()) {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::TimedOut);
            }
            bulk = wait_timeout(&self.bulk_freed, bulk, deadline - now);
        }
    }

    /// A timeout means the link itself is suspect: retire every connection
    /// made so far and fail fast for a while (see `connect`).
    fn note_failure(&self, e: &Error) {
        if matches!(e, Error::TimedOut) {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.mark_down(&e.to_string());
        }
    }

    fn mark_down(&self, why: &str) {
        let mut outage = lock(&self.outage);
        outage.failures += 1;
        let backoff = Duration::from_millis(250 << outage.failures.min(5)).min(MAX_BACKOFF);
        outage.retry_at = Some(Instant::now() + backoff);
        outage.last_error = why.to_string();
    }

    /// Connects, or fails at once while a recent attempt failed (backoff).
    fn connect(&self) -> Result<Pooled<C::Conn>> {
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
        let epoch = self.epoch.load(Ordering::SeqCst);
        match self.connector.connect() {
            // Full, not unreachable: no backoff (the caller waits instead).
            Err(Error::Busy(msg)) => Err(Error::Busy(msg)),
            Ok(conn) => {
                let mut outage = lock(&self.outage);
                if outage.failures > 0 {
                    tracing::info!("reconnected to the server");
                }
                *outage = Outage::default();
                stats::get().conn_opened();
                Ok(Pooled { conn, epoch })
            }
            Err(e) => {
                self.mark_down(&e.to_string());
                tracing::warn!("cannot reconnect: {e}");
                Err(match e {
                    Error::Setup(msg) => Error::Transport(msg),
                    other => other,
                })
            }
        }
    }

    /// Runs `op`, which changes what a path names.
    fn renaming<R>(&self, op: impl FnOnce() -> Result<R>) -> Result<R> {
        counted(&self.names, op)
    }

    fn generation(&self) -> Generation {
        Generation {
            names: self.names.load(Ordering::SeqCst),
            writes: self.writes.load(Ordering::SeqCst),
        }
    }

    /// Opens the missing data connections now, a few at a time in parallel
    /// (servers drop bursts of unauthenticated connections: OpenSSH's
    /// MaxStartups begins at 10), so that the first large transfer does not
    /// pay for their handshakes while it runs. Once one cannot be opened,
    /// the rest are left to be opened on demand, as usual.
    pub fn open_all(&self) {
        const AT_ONCE: usize = 8;
        let epoch = self.epoch.load(Ordering::SeqCst);
        loop {
            let batch = {
                let mut bulk = lock(&self.bulk);
                let batch = self.bulk_max.saturating_sub(bulk.open).min(AT_ONCE);
                bulk.open += batch;
                batch
            };
            if batch == 0 {
                return;
            }
            let opened: Vec<Result<C::Conn>> = std::thread::scope(|s| {
                let started: Vec<_> = (0..batch)
                    .map(|_| s.spawn(|| self.connector.connect()))
                    .collect();
                started
                    .into_iter()
                    .map(|t| {
                        t.join()
                            .unwrap_or_else(|_| Err(Error::Transport("connect panicked".into())))
                    })
                    .collect()
            });
            let mut failed = false;
            let mut bulk = lock(&self.bulk);
            for result in opened {
                match result {
                    Ok(conn) => {
                        stats::get().conn_opened();
                        bulk.idle.push(Pooled { conn, epoch })
                    }
                    Err(e) => {
                        tracing::debug!("cannot open a data connection yet: {e}");
                        bulk.open -= 1;
                        failed = true;
                    }
                }
            }
            drop(bulk);
            self.bulk_freed.notify_all();
            if failed {
                return;
            }
        }
    }

    /// Probes every idle connection (`Connection::keepalive`) and drops the
    /// dead ones. After `alive_count_max` rounds in a row with failures the
    /// server counts as down, so calls fail fast until a reconnect works.
    pub fn keepalive_idle(&self) {
        let idle: Vec<Pooled<C::Conn>> = std::mem::take(&mut lock(&self.bulk).idle);
        let mut failed = false;
        for pooled in idle {
            failed |= self
                .run_bulk(pooled, &mut |c: &mut C::Conn| c.keepalive())
                .is_err();
        }
        if let Ok(mut slot) = self.meta.try_lock() {
            if let Some(pooled) = slot.as_mut() {
                if let Err(e) = pooled.conn.keepalive() {
                    tracing::info!("metadata connection failed its keepalive: {e}");
                    if let Some(dead) = slot.take() {
                        stats::get().conn_closed(true);
                        discard(dead);
                    }
                    failed = true;
                }
            }
        }
        if !failed {
            self.keepalive_failures.store(0, Ordering::SeqCst);
        } else if self.keepalive_failures.fetch_add(1, Ordering::SeqCst) + 1
            >= self.opts.alive_count_max
        {
            self.mark_down("no answer to keepalives");
        }
    }
}

/// Closes a connection off the caller's thread: closing a connection to a
/// dead server can itself wait for a timeout, which no caller should pay.
fn discard<T: Send + 'static>(conn: T) {
    let spawned = std::thread::Builder::new()
        .name("discard".into())
        .spawn(move || drop(conn));
    if let Err(e) = spawned {
        tracing::warn!("cannot start a thread to close a connection: {e}");
    }
}

/// No path with a NUL byte reaches a server: a protocol whose strings
/// carry any byte would send it as it is, and a name the mount gave a file
/// that lost its own (see `fs::inodes`) carries one.
fn no_nul(path: &Path) -> Result<()> {
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(Error::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod scripted;
#[cfg(test)]
mod tests;
