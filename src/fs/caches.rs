//! What the caches hold, and dropping them all on request (`rmount flush`,
//! SIGHUP): for the control thread, never on a request's path.
//!
//! It drops only what can be fetched again: open files' state (data not
//! yet uploaded) is kept. Telling the kernel to drop its own copies is the
//! adapter's job; this only says which inodes and names it may hold.

use std::ffi::OsString;

use super::Fs;
use crate::stats::Held;
use crate::sync::lock;

/// A name the kernel may have cached: `name` in directory `parent` is `ino`.
#[derive(Clone, Debug)]
pub struct KnownName {
    pub ino: u64,
    /// None for the root, and for an inode whose name is gone.
    pub entry: Option<(u64, OsString)>,
}

impl Fs {
    /// What the caches hold now, and how many files have data not yet on
    /// the server.
    pub fn held(&self) -> Held {
        let ((attr_entries, attr_bytes), (listing_entries, listing_bytes)) = self.meta.usage();
        let (block_entries, block_bytes) = self.blocks.held();
        let uploads_pending = lock(&self.open)
            .values()
            .filter(|f| f.shown_size().is_some())
            .count() as u64;
        Held {
            attr_entries,
            attr_bytes,
            listing_entries,
            listing_bytes,
            block_entries,
            block_bytes,
            uploads_pending,
        }
    }

    /// Drops every cache (attributes, listings, blocks, the listings and
    /// versions last shown to the kernel, what connections keep), so that
    /// the next access asks the server. Returns the inodes and names the
    /// kernel may still hold, for it to drop as well.
    pub fn drop_caches(&self) -> Vec<KnownName> {
        self.meta.clear();
        self.blocks.clear();
        lock(&self.snapshots).clear();
        // Opens no longer let the kernel keep its pages or listings.
        lock(&self.shown_versions).clear();
        lock(&self.listing_digests).clear();
        self.remote.forget_kept_state();
        let inodes = lock(&self.inodes);
        inodes
            .all()
            .map(|(ino, path)| {
                let entry = path
                    .parent()
                    .filter(|_| !super::inodes::is_detached(path))
                    .and_then(|dir| Some((inodes.ino(dir)?, path.file_name()?.to_os_string())));
                KnownName { ino, entry }
            })
            .collect()
    }
}
