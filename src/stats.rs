//! The mount's live counters: what `rmount stats` shows. A leaf like
//! `types.rs`: every layer may call it, it imports nothing of the crate.
//!
//! Each layer updates it with one-line hooks (the pool: operations,
//! latency, bytes, connections; the caches: hits and misses; the FUSE
//! adapter: errors by errno). The hot path only touches atomics, with
//! relaxed ordering: no lock, no allocation. What is cheaper to look at
//! when asked (bytes held by the caches, uploads pending) is not counted
//! here but measured by the control thread when it takes a [`Snapshot`].
//! It must not do I/O or know how the numbers are shown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A remote operation, as the pool runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Stat,
    List,
    Read,
    Write,
    Upload,
    Create,
    Setattr,
    Mkdir,
    Rmdir,
    Unlink,
    Rename,
    Symlink,
    Readlink,
    Link,
    Statfs,
    Fsync,
}

impl Op {
    pub const ALL: [Op; 16] = [
        Op::Stat,
        Op::List,
        Op::Read,
        Op::Write,
        Op::Upload,
        Op::Create,
        Op::Setattr,
        Op::Mkdir,
        Op::Rmdir,
        Op::Unlink,
        Op::Rename,
        Op::Symlink,
        Op::Readlink,
        Op::Link,
        Op::Statfs,
        Op::Fsync,
    ];

    /// Its key in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Op::Stat => "stat",
            Op::List => "list",
            Op::Read => "read",
            Op::Write => "write",
            Op::Upload => "upload",
            Op::Create => "create",
            Op::Setattr => "setattr",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Symlink => "symlink",
            Op::Readlink => "readlink",
            Op::Link => "link",
            Op::Statfs => "statfs",
            Op::Fsync => "fsync",
        }
    }
}

/// Buckets of the latency histogram: four per power of two of
/// microseconds (steps of at most 25 %), up to about 2^38 µs (three days);
/// longer calls land in the last bucket.
const BUCKETS: usize = 4 * 38;

/// The bucket of a latency of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let power = 63 - us.leading_zeros() as usize; // ≥ 2
    let quarter = ((us >> (power - 2)) & 3) as usize;
    (4 * power + quarter).min(BUCKETS - 1)
}

/// The exclusive upper bound, in microseconds, of `bucket`.
fn bucket_end(bucket: usize) -> u64 {
    if bucket < 8 {
        // 0..3 hold exactly that many µs; 4..7 stay empty.
        return (bucket as u64 + 1).min(4);
    }
    let (power, quarter) = (bucket / 4, bucket % 4);
    (5 + quarter as u64) << (power - 2)
}

/// A fixed-bucket latency histogram: recording is two atomic adds.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Histogram {
    const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    fn record(&self, us: u64) {
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
    }

    /// The latency (µs) that `quantile` (0..=1) of the recorded calls did
    /// not exceed, rounded up to its bucket's end; 0 with nothing recorded.
    pub fn quantile(&self, quantile: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let wanted = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in counts.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return bucket_end(i);
            }
        }
        bucket_end(BUCKETS - 1)
    }

    #[cfg(test)]
    fn clear(&self) {
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
    }
}

struct OpStats {
    count: AtomicU64,
    total_us: AtomicU64,
    latency: Histogram,
}

impl OpStats {
    const fn new() -> OpStats {
        OpStats {
            count: AtomicU64::new(0),
            total_us: AtomicU64::new(0),
            latency: Histogram::new(),
        }
    }
}

#[derive(Default)]
struct HitMiss {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitMiss {
    const fn new() -> HitMiss {
        HitMiss {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn note(&self, hit: bool) {
        if hit {
            self.hits.fetch_add(1, Relaxed);
        } else {
            self.misses.fetch_add(1, Relaxed);
        }
    }
}

/// Error replies are counted per errno below this; others under 0.
const ERRNOS: usize = 256;

/// What the mount serves, set once at start-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    pub protocol: String,
    pub server: String,
    pub root: String,
    pub mountpoint: String,
}

/// Every counter of a mount. One per process ([`get`]); tests make their own.
pub struct Stats {
    identity: OnceLock<(Identity, Instant)>,
    ops: [OpStats; Op::ALL.len()],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    conns_open: AtomicI64,
    conns_busy: AtomicI64,
    conns_lost: AtomicU64,
    /// Lost connections not yet replaced: the next connects are reconnects.
    lost_unreplaced: AtomicU64,
    reconnects: AtomicU64,
    attrs: HitMiss,
    listings: HitMiss,
    blocks: HitMiss,
    errors: [AtomicU64; ERRNOS],
    flushes: AtomicU64,
}

static STATS: Stats = Stats::new();

/// The process's counters.
pub fn get() -> &'static Stats {
    &STATS
}

/// Counts one call of `op` when dropped (see [`Stats::timed`]).
#[must_use]
pub struct Timed {
    stats: &'static Stats,
    op: Op,
    started: Instant,
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.stats.op_done(self.op, self.started.elapsed());
    }
}

/// A reader that counts what passes through it as bytes written to the
/// server (an upload's source).
pub struct Uploaded<'a> {
    pub inner: &'a mut dyn std::io::Read,
}

impl std::io::Read for Uploaded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        get().wrote_bytes(n);
        Ok(n)
    }
}

/// Counts a connection as busy until dropped (see [`Stats::busy`]).
#[must_use]
pub struct Busy(&'static Stats);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.conns_busy.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    pub const fn new() -> Stats {
        Stats {
            identity: OnceLock::new(),
            ops: [const { OpStats::new() }; Op::ALL.len()],
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            conns_open: AtomicI64::new(0),
            conns_busy: AtomicI64::new(0),
            conns_lost: AtomicU64::new(0),
            lost_unreplaced: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            attrs: HitMiss::new(),
            listings: HitMiss::new(),
            blocks: HitMiss::new(),
            errors: [const { AtomicU64::new(0) }; ERRNOS],
            flushes: AtomicU64::new(0),
        }
    }

    /// Records what is mounted; uptime counts from here. Only the first
    /// call counts.
    pub fn started(&self, identity: Identity) {
        let _ = self.identity.set((identity, Instant::now()));
    }

    /// Times one call of `op` from now until the guard drops.
    pub fn timed(&'static self, op: Op) -> Timed {
        Timed {
            stats: self,
            op,
            started: Instant::now(),
        }
    }

    pub fn op_done(&self, op: Op, took: Duration) {
        let s = &self.ops[op as usize];
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        s.count.fetch_add(1, Relaxed);
        s.total_us.fetch_add(us, Relaxed);
        s.latency.record(us);
    }

    pub fn read_bytes(&self, n: usize) {
        self.bytes_read.fetch_add(n as u64, Relaxed);
    }

    pub fn wrote_bytes(&self, n: usize) {
        self.bytes_written.fetch_add(n as u64, Relaxed);
    }

    /// A connection to the server was opened.
    pub fn conn_opened(&self) {
        self.conns_open.fetch_add(1, Relaxed);
        let replaced = self
            .lost_unreplaced
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        if replaced.is_ok() {
            self.reconnects.fetch_add(1, Relaxed);
        }
    }

    /// A connection was closed; `lost` if it broke (timeout, transport
    /// error, failed keepalive), so that the next one opened is a reconnect.
    pub fn conn_closed(&self, lost: bool) {
        self.conns_open.fetch_sub(1, Relaxed);
        if lost {
            self.conns_lost.fetch_add(1, Relaxed);
            self.lost_unreplaced.fetch_add(1, Relaxed);
        }
    }

    /// The caller runs a call on a connection until the guard drops.
    pub fn busy(&'static self) -> Busy {
        self.conns_busy.fetch_add(1, Relaxed);
        Busy(self)
    }

    pub fn attr_lookup(&self, hit: bool) {
        self.attrs.note(hit);
    }

    pub fn listing_lookup(&self, hit: bool) {
        self.listings.note(hit);
    }

    pub fn block_lookup(&self, hit: bool) {
        self.blocks.note(hit);
    }

    /// An error reply to the kernel.
    pub fn error(&self, errno: i32) {
        let slot = usize::try_from(errno).ok().filter(|&e| e < ERRNOS);
        self.errors[slot.unwrap_or(0)].fetch_add(1, Relaxed);
    }

    /// The caches were dropped on request.
    pub fn flushed(&self) {
        self.flushes.fetch_add(1, Relaxed);
    }

    /// Every counter now, with what the caller measured of the caches.
    pub fn snapshot(&self, held: Held) -> Snapshot {
        let (identity, uptime) = match self.identity.get() {
            Some((identity, at)) => (identity.clone(), at.elapsed()),
            None => (Identity::default(), Duration::ZERO),
        };
        let operations = Op::ALL
            .iter()
            .map(|&op| {
                let s = &self.ops[op as usize];
                let count = s.count.load(Relaxed);
                let total = s.total_us.load(Relaxed);
                let mean_ms = if count == 0 {
                    0.0
                } else {
                    total as f64 / count as f64 / 1000.0
                };
                let figures = OpFigures {
                    count,
                    mean_ms,
                    p99_ms: s.latency.quantile(0.99) as f64 / 1000.0,
                };
                (op.name().to_string(), figures)
            })
            .collect();
        let errors = self
            .errors
            .iter()
            .enumerate()
            .filter_map(|(errno, n)| {
                let n = n.load(Relaxed);
                (n > 0).then(|| (errno_name(errno as i32), n))
            })
            .collect();
        let gauge = |g: &AtomicI64| g.load(Relaxed).max(0) as u64;
        let rate = |hm: &HitMiss, entries: u64, bytes: u64| CacheFigures {
            hits: hm.hits.load(Relaxed),
            misses: hm.misses.load(Relaxed),
            entries,
            bytes,
        };
        Snapshot {
            version: 1,
            pid: std::process::id(),
            protocol: identity.protocol,
            server: identity.server,
            root: identity.root,
            mountpoint: identity.mountpoint,
            uptime_seconds: uptime.as_secs_f64(),
            connections: Connections {
                open: gauge(&self.conns_open),
                busy: gauge(&self.conns_busy),
                lost: self.conns_lost.load(Relaxed),
                reconnects: self.reconnects.load(Relaxed),
            },
            operations,
            bytes: Bytes {
                read: self.bytes_read.load(Relaxed),
                written: self.bytes_written.load(Relaxed),
            },
            cache: Caches {
                attributes: rate(&self.attrs, held.attr_entries, held.attr_bytes),
                listings: rate(&self.listings, held.listing_entries, held.listing_bytes),
                blocks: rate(&self.blocks, held.block_entries, held.block_bytes),
            },
            uploads_pending: held.uploads_pending,
            flushes: self.flushes.load(Relaxed),
            errors,
        }
    }

    /// Back to zero (tests only: the process's counters are never reset).
    #[cfg(test)]
    fn clear(&self) {
        for s in &self.ops {
            s.count.store(0, Relaxed);
            s.total_us.store(0, Relaxed);
            s.latency.clear();
        }
    }
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

/// What the caches hold and the files not yet uploaded, measured when a
/// snapshot is taken.
#[derive(Clone, Copy, Debug, Default)]
pub struct Held {
    pub attr_entries: u64,
    pub attr_bytes: u64,
    pub listing_entries: u64,
    pub listing_bytes: u64,
    pub block_entries: u64,
    pub block_bytes: u64,
    pub uploads_pending: u64,
}

/// The figures `rmount stats` shows; its JSON form is documented key by key
/// in the README ("Live stats and flushing the caches").
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    pub pid: u32,
    pub protocol: String,
    pub server: String,
    pub root: String,
    pub mountpoint: String,
    pub uptime_seconds: f64,
    pub connections: Connections,
    pub operations: BTreeMap<String, OpFigures>,
    pub bytes: Bytes,
    pub cache: Caches,
    pub uploads_pending: u64,
    pub flushes: u64,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Connections {
    pub open: u64,
    pub busy: u64,
    pub lost: u64,
    pub reconnects: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OpFigures {
    pub count: u64,
    pub mean_ms: f64,
    pub p99_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Bytes {
    pub read: u64,
    pub written: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Caches {
    pub attributes: CacheFigures,
    pub listings: CacheFigures,
    pub blocks: CacheFigures,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// The symbolic name of an errno, as `errno(1)` prints it; `E<n>` for one
/// not listed, `other` for a value out of range.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        0 => "other",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EPROTO => "EPROTO",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ESTALE => "ESTALE",
        libc::EDQUOT => "EDQUOT",
        _ => return format!("E{errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_cover_their_values() {
        for us in (0..5000u64).chain([1 << 20, (1 << 20) + 12345, 1 << 37]) {
            let b = bucket(us);
            assert!(us < bucket_end(b), "{us} µs below the end of bucket {b}");
            if b > 0 && b < BUCKETS - 1 {
                assert!(us >= bucket_end(b - 1), "{us} µs above bucket {}", b - 1);
            }
        }
        for b in 1..BUCKETS {
            assert!(bucket_end(b) >= bucket_end(b - 1), "bucket {b}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn p99_is_within_a_bucket_of_the_true_value() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.99), 0, "empty");
        // 990 fast calls of 100 µs and 10 slow ones of 50 ms: the 99th
        // percentile is the slowest fast call.
        for _ in 0..990 {
            h.record(100);
        }
        for _ in 0..10 {
            h.record(50_000);
        }
        let p99 = h.quantile(0.99);
        assert!((100..=125).contains(&p99), "p99 {p99} µs");
        let p100 = h.quantile(1.0);
        assert!((50_000..=62_500).contains(&p100), "max {p100} µs");
        h.clear();
        assert_eq!(h.quantile(0.5), 0);
    }

    #[test]
    fn snapshot_counts_what_was_recorded() {
        let stats: &'static Stats = Box::leak(Box::new(Stats::new()));
        stats.started(Identity {
            protocol: "sftp".into(),
            server: "host:22".into(),
            root: "/srv".into(),
            mountpoint: "/mnt".into(),
        });
        for ms in [1, 2, 3] {
            stats.op_done(Op::Stat, Duration::from_millis(ms));
        }
        drop(stats.timed(Op::Read));
        stats.read_bytes(1000);
        stats.wrote_bytes(3 << 20);
        stats.attr_lookup(true);
        stats.attr_lookup(false);
        stats.block_lookup(true);
        stats.error(libc::ENOENT);
        stats.error(libc::ENOENT);
        stats.error(-5);
        let busy = stats.busy();
        stats.conn_opened();
        stats.conn_opened();
        stats.conn_closed(true);
        stats.conn_opened();
        let held = Held {
            block_bytes: 4096,
            uploads_pending: 2,
            ..Held::default()
        };
        let s = stats.snapshot(held);
        assert_eq!(s.protocol, "sftp");
        let stat = &s.operations["stat"];
        assert_eq!(stat.count, 3);
        assert!((stat.mean_ms - 2.0).abs() < 0.01, "{stat:?}");
        assert!(stat.p99_ms >= 3.0 && stat.p99_ms <= 3.75, "{stat:?}");
        assert_eq!(s.operations["read"].count, 1);
        assert_eq!(s.operations.len(), Op::ALL.len(), "every operation shown");
        assert_eq!((s.bytes.read, s.bytes.written), (1000, 3 << 20));
        assert_eq!((s.cache.attributes.hits, s.cache.attributes.misses), (1, 1));
        assert_eq!((s.cache.blocks.hits, s.cache.blocks.bytes), (1, 4096));
        assert_eq!(s.errors.get("ENOENT"), Some(&2));
        assert_eq!(s.errors.get("other"), Some(&1));
        assert_eq!(s.uploads_pending, 2);
        let c = &s.connections;
        assert_eq!((c.open, c.busy, c.lost, c.reconnects), (2, 1, 1, 1));
        drop(busy);
        assert_eq!(stats.snapshot(held).connections.busy, 0);
        // The JSON form reads back as the same snapshot.
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
        stats.clear();
        assert_eq!(stats.snapshot(held).operations["stat"].count, 0);
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(libc::ENOTSUP), "EOPNOTSUPP");
        assert_eq!(errno_name(200), "E200");
    }
}
