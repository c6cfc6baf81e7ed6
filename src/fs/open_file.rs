//! One open file as all its handles share it: the state behind its lock,
//! and what stat and listings show of it while it is open (its size, and
//! whether its name is gone). That is published whenever the lock is
//! released, so a stat never waits for a write or an upload that holds the
//! lock for a long time.
//!
//! It must not do any I/O: it only guards and publishes.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::file_state::FileState;
use crate::sync::lock;

/// `shown` when the server's attributes are right as they are.
const SERVER: u64 = u64::MAX;

pub struct OpenFile {
    state: Mutex<FileState>,
    shown: AtomicU64,
    unlinked: AtomicBool,
}

impl OpenFile {
    pub fn new(state: FileState) -> OpenFile {
        let shown = AtomicU64::new(shown(&state));
        let unlinked = AtomicBool::new(state.unlinked);
        OpenFile {
            state: Mutex::new(state),
            shown,
            unlinked,
        }
    }

    /// Waits for the state; the guard publishes the size when dropped.
    pub fn lock(&self) -> Locked<'_> {
        Locked {
            state: lock(&self.state),
            file: self,
        }
    }

    /// The size to show instead of the server's (writes not yet there), as
    /// of the last release of the lock. Never waits.
    pub fn shown_size(&self) -> Option<u64> {
        match self.shown.load(Ordering::Acquire) {
            SERVER => None,
            size => Some(size),
        }
    }

    /// Whether its name is gone (unlinked while open), as of the last
    /// release of the lock. Never waits.
    pub fn unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Acquire)
    }
}

fn shown(state: &FileState) -> u64 {
    // A new file written under its own name is pending from its creation
    // until its first commit closes the handles kept for it.
    if state.reads_bypass_cache() || state.new_in_place {
        state.size
    } else {
        SERVER
    }
}

pub struct Locked<'a> {
    state: MutexGuard<'a, FileState>,
    file: &'a OpenFile,
}

impl Deref for Locked<'_> {
    type Target = FileState;

    fn deref(&self) -> &FileState {
        &self.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut FileState {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let file = self.file;
        file.shown.store(shown(&self.state), Ordering::Release);
        file.unlinked.store(self.state.unlinked, Ordering::Release);
    }
}
