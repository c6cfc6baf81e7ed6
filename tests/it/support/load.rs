//! The load lock: the few tests that load the whole machine run alone.
//!
//! The soak tests load both cores with dozens of processes, and the kill -9
//! test waits for the kernel and fusermount3 to drop a dead mount, which
//! under that load was seen to take over 30 s. So they take
//! [`heavy_load`]; every other test, which bounds how long things may take,
//! takes [`light_load`] and shares the machine with the rest. All modules
//! run in one process, so this one lock covers the whole run. Each test
//! holds exactly one guard for its whole run (`on_every_server!` takes it
//! for its tests): taking a second one on the same thread can deadlock
//! behind a waiting [`heavy_load`].
//!
//! Nothing else lives here.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static LOAD: RwLock<()> = RwLock::new(());

/// The guard of an ordinary test: runs alongside other ordinary tests,
/// never alongside a [`heavy_load`] test.
pub fn light_load() -> RwLockReadGuard<'static, ()> {
    LOAD.read().unwrap_or_else(|e| e.into_inner())
}

/// The guard of a test that loads the whole machine: runs alone.
pub fn heavy_load() -> RwLockWriteGuard<'static, ()> {
    LOAD.write().unwrap_or_else(|e| e.into_inner())
}
