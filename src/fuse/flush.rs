//! Dropping every cache on request (`rmount flush`, SIGHUP): the
//! filesystem's own, then the kernel's copies of entries, attributes and
//! pages of every inode it knows, so the next access asks the server.
//!
//! Runs on the control thread, never on the dispatcher: each notification
//! is a write to the FUSE device that the kernel may make wait for requests
//! in flight. It makes no decision about what to keep (the filesystem does).

use std::sync::{Arc, OnceLock};

use fuser::{INodeNo, Notifier};

use crate::fs::Fs;

/// Drops the mount's caches and the kernel's; cheap to clone.
#[derive(Clone)]
pub struct Flusher {
    pub(super) fs: Arc<Fs>,
    pub(super) notifier: Arc<OnceLock<Notifier>>,
}

impl Flusher {
    pub fn flush(&self) {
        let known = self.fs.drop_caches();
        crate::stats::get().flushed();
        let Some(notifier) = self.notifier.get() else {
            return;
        };
        let mut failed = 0;
        for name in &known {
            // The name first: the next lookup comes to us. Then the
            // inode's attributes and all its pages (offset 0, length 0:
            // to the end).
            if let Some((parent, entry)) = &name.entry {
                failed += notifier.inval_entry(INodeNo(*parent), entry).is_err() as usize;
            }
            failed += notifier.inval_inode(INodeNo(name.ino), 0, 0).is_err() as usize;
        }
        if failed > 0 {
            tracing::debug!("flush: {failed} kernel invalidations failed");
        }
        tracing::info!("caches flushed ({} inodes known)", known.len());
    }
}
