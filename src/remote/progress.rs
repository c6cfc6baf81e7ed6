//! The minimum-progress rule for transfers: a socket timeout catches a
//! transfer that stops, but not one that drips (a byte a second keeps every
//! read within its timeout for ever). A transfer must move at least
//! [`MIN_BYTES`] for every timeout's worth of time spent waiting on the
//! network, or it fails as timed out. Time spent waiting for the local side
//! (an upload that streams a file while an application writes it) does not
//! count.

use std::io;
use std::time::{Duration, Instant};

/// Bytes a transfer must move per window: 64 KiB, so any link faster than
/// a few KiB/s passes with the default 20 s timeout.
pub const MIN_BYTES: u64 = 64 << 10;

pub struct Progress {
    window: Duration,
    /// When `moved` was last called.
    last: Instant,
    /// Network time in the current window, and the bytes it moved.
    busy: Duration,
    moved: u64,
}

impl Progress {
    /// A rule with windows of `window` (the mount's timeout) starting now.
    pub fn new(window: Duration) -> Progress {
        Progress {
            window,
            last: Instant::now(),
            busy: Duration::ZERO,
            moved: 0,
        }
    }

    /// Counts `n` bytes moved, all the time since the last call spent on
    /// the network (a reader's case).
    pub fn moved(&mut self, n: usize) -> io::Result<()> {
        let spent = self.last.elapsed();
        self.account(n, spent)
    }

    /// Counts `n` bytes moved in `spent` of network time; fails once a
    /// whole window of it moved too little.
    pub fn account(&mut self, n: usize, spent: Duration) -> io::Result<()> {
        self.last = Instant::now();
        self.busy += spent;
        self.moved += n as u64;
        if self.window.is_zero() || self.busy < self.window {
            return Ok(());
        }
        if self.moved < MIN_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the transfer moved {} bytes in {:?}", self.moved, self.busy),
            ));
        }
        self.busy = Duration::ZERO;
        self.moved = 0;
        Ok(())
    }
}

/// A reader whose reads obey the rule.
pub struct ProgressReader<R> {
    pub inner: R,
    pub progress: Progress,
}

impl<R: io::Read> io::Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.moved(n)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drip_fails_after_one_window_and_a_flow_does_not() {
        let mut drip = Progress::new(Duration::from_millis(50));
        assert!(drip.moved(1).is_ok(), "within the first window");
        std::thread::sleep(Duration::from_millis(60));
        let e = drip.moved(1).expect_err("a whole window moved 2 bytes");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);

        let mut flow = Progress::new(Duration::from_millis(50));
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(30));
            flow.moved(MIN_BYTES as usize).expect("enough per window");
        }
        let mut off = Progress::new(Duration::ZERO);
        off.moved(0).expect("no rule without a timeout");

        // Waiting for the local side does not count, only network time.
        let mut upload = Progress::new(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        upload
            .account(10, Duration::from_millis(1))
            .expect("a slow writer is not a slow network");
    }
}
