//! What a download left open is worth to the next read: the costs that
//! decide whether a read ahead of the stream's position skips forward on
//! it (reading and dropping the bytes in between) or starts a new one
//! (`ABOR`/426, `EPSV`, `REST`, `RETR`: several round trips).
//!
//! The kernel and the read-ahead fetch a sequential reader's blocks
//! slightly out of order, several at a time, on several connections, so a
//! connection's stream is often a block or two behind the next read it
//! gets. Restarting it costs a few round trips; skipping costs the gap's
//! transfer time. Both are measured as the mount runs (the last restart's
//! time and the rate reads find data at), so a fast link restarts where a
//! long one skips.
//!
//! Must not: do I/O, or let a gap larger than `SKIP_MAX` through however
//! cheap the link looks (the bytes skipped cross the link for nothing).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The largest gap ever skipped: a read-ahead window's worth.
pub(super) const SKIP_MAX: u64 = 16 << 20;

/// Reads smaller than this tell too little about the rate.
const RATE_SAMPLE_MIN: usize = 256 << 10;

/// The measured costs, shared by the connections of a mount.
#[derive(Default)]
pub(super) struct StreamCosts {
    /// The last stream (re)start: ending the old download and opening a new
    /// one until the server said it sends (microseconds).
    restart_us: AtomicU64,
    /// Bytes per second that reads of an open stream found, smoothed.
    rate: AtomicU64,
}

impl StreamCosts {
    /// Records how long a (re)start took.
    pub(super) fn restarted(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.restart_us.store(us, Ordering::Relaxed);
    }

    /// Records a read of `bytes` from an open stream that took `took`.
    pub(super) fn streamed(&self, bytes: usize, took: Duration) {
        if bytes < RATE_SAMPLE_MIN || took.is_zero() {
            return;
        }
        let now = (bytes as f64 / took.as_secs_f64()) as u64;
        let old = self.rate.load(Ordering::Relaxed);
        // A quarter of the new sample: one slow read does not stop skips.
        let smoothed = if old == 0 {
            now
        } else {
            old - old / 4 + now / 4
        };
        self.rate.store(smoothed, Ordering::Relaxed);
    }

    /// The largest gap cheaper to skip than to restart for: what the link
    /// brings while a restart would wait, at most `SKIP_MAX`. Zero until
    /// both costs were measured.
    pub(super) fn skip_limit(&self) -> u64 {
        let us = self.restart_us.load(Ordering::Relaxed);
        let rate = self.rate.load(Ordering::Relaxed);
        let bytes = u128::from(rate) * u128::from(us) / 1_000_000;
        u64::try_from(bytes).unwrap_or(u64::MAX).min(SKIP_MAX)
    }
}

/// How a read at `offset` can use a stream at `pos`: the bytes to skip, or
/// None when it needs a new stream (behind it, or too far ahead).
pub(super) fn skip_to(pos: u64, offset: u64, limit: u64) -> Option<u64> {
    let gap = offset.checked_sub(pos)?;
    (gap <= limit).then_some(gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn nothing_is_skipped_before_both_costs_are_known() {
        let costs = StreamCosts::default();
        assert_eq!(costs.skip_limit(), 0);
        costs.restarted(Duration::from_millis(80));
        assert_eq!(costs.skip_limit(), 0, "no rate yet");
        assert_eq!(skip_to(MIB, MIB, costs.skip_limit()), Some(0));
        assert_eq!(skip_to(MIB, 2 * MIB, costs.skip_limit()), None);
    }

    #[test]
    fn a_long_link_skips_what_a_restart_would_wait_for() {
        let costs = StreamCosts::default();
        costs.restarted(Duration::from_millis(80));
        // 100 MiB/s: a restart waits as long as 8 MiB take to arrive.
        costs.streamed(MIB as usize, Duration::from_millis(10));
        let limit = costs.skip_limit();
        assert!((7 * MIB..=8 * MIB).contains(&limit), "{limit}");
        assert_eq!(skip_to(MIB, 3 * MIB, limit), Some(2 * MIB));
        assert_eq!(skip_to(3 * MIB, MIB, limit), None, "never backwards");
        assert_eq!(skip_to(0, 9 * MIB, limit), None);
    }

    #[test]
    fn a_fast_link_restarts_and_no_gap_exceeds_the_cap() {
        let costs = StreamCosts::default();
        costs.restarted(Duration::from_micros(500));
        costs.streamed(MIB as usize, Duration::from_millis(1));
        assert!(costs.skip_limit() < MIB, "{}", costs.skip_limit());
        costs.restarted(Duration::from_secs(2));
        assert_eq!(costs.skip_limit(), SKIP_MAX);
    }

    #[test]
    fn small_reads_do_not_count_and_one_slow_read_moves_the_rate_a_quarter() {
        let costs = StreamCosts::default();
        costs.restarted(Duration::from_secs(1));
        costs.streamed(4096, Duration::from_secs(1));
        assert_eq!(costs.skip_limit(), 0);
        costs.streamed(4 * MIB as usize, Duration::from_secs(1));
        assert_eq!(costs.skip_limit(), 4 * MIB);
        costs.streamed(MIB as usize, Duration::from_secs(1));
        assert_eq!(costs.skip_limit(), 3 * MIB + MIB / 4);
    }
}
