//! The filesystem logic: turns kernel-shaped requests (inode numbers, file
//! handles, offsets) into remote calls, through the caches.
//!
//! Owns inodes ↔ paths, open handles, read-ahead, write staging and commit,
//! and cache coherence: every change made here updates or invalidates the
//! affected cache entries at once. It must not name a FUSE type (the adapter in
//! `fuse/` does) nor a protocol (it only sees `dyn Remote` and its `Caps`).
//!
//! This file holds the `Fs` struct, its configuration and the types of its
//! interface; each group of operations is an `impl Fs` in a file of its
//! own (names, attrs, directories, leftovers, handles, read, write).

pub mod access;
mod attrs;
mod caches;
mod copy;
mod directories;
mod error;
mod file_state;
mod handles;
pub mod inodes;
mod leftovers;
mod listings;
mod names;
mod open_file;
mod owners;
mod read;
pub mod write;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use lru::LruCache;

use crate::cache::blocks::BlockCache;
use crate::cache::meta::MetaCache;
use crate::remote::{self, Attr, Remote, StatFs};
use crate::workers::Workers;
use directories::{Snapshot, SNAPSHOTS};
use handles::Handle;
use inodes::Inodes;
use listings::Listings;
use open_file::OpenFile;
use owners::Owners;

pub use error::{Error, Result, WriteLoss};

/// Maps the remote login user's ids to the local user's (`-o idmap=user`).
#[derive(Clone, Copy, Debug)]
pub struct IdMapping {
    pub remote_uid: u32,
    pub remote_gid: u32,
    pub local_uid: u32,
    pub local_gid: u32,
}

/// What the filesystem logic needs from the mount configuration.
#[derive(Clone, Debug)]
pub struct FsConfig {
    pub root: PathBuf,
    pub read_only: bool,
    pub atomic_writes: bool,
    /// Every open looks at the file on the server (one stat) and drops
    /// what is cached of an older version.
    pub close_to_open: bool,
    /// Symlink targets are kept inside the mount (see `contained_target`).
    pub contain_symlinks: bool,
    pub block_size: u64,
    pub read_ahead_blocks: usize,
    pub cache_timeout: Duration,
    pub cache_size: u64,
    pub idmap: Option<IdMapping>,
    /// `-o idmap=names`: owners and groups matched by name (`owners`).
    pub owners_by_name: bool,
    /// The owner and group every file is shown with (`-o uid=`, `-o gid=`).
    pub owner: (Option<u32>, Option<u32>),
    /// Where files are staged for a server without random writes (0700).
    pub staging_dir: PathBuf,
    pub prefetch_threads: usize,
    /// Threads listing subdirectories ahead (listings.rs); 0: none.
    pub list_ahead_threads: usize,
}

/// A name and its attributes, with the inode the kernel knows it by.
#[derive(Clone, Debug)]
pub struct Entry {
    pub ino: u64,
    pub attr: Attr,
}

/// One directory entry for readdir.
#[derive(Clone, Debug)]
pub struct DirItem {
    pub name: OsString,
    pub attr: Attr,
    /// Remote path, to assign an inode when the entry is returned.
    pub path: PathBuf,
}

/// Time values of a utimens call, before resolving "now" and "omit".
#[derive(Clone, Copy, Debug)]
pub enum TimeSet {
    Now,
    At(SystemTime),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SetAttrs {
    /// The change names an open descriptor (ftruncate, futimens…), not
    /// only a path.
    pub by_handle: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFlags {
    pub write: bool,
    pub truncate: bool,
    pub append: bool,
    pub exclusive: bool,
}

pub struct Opened {
    pub fh: u64,
    /// The kernel may keep its page cache (the file did not change).
    pub keep_cache: bool,
    /// The open found attributes newer than those the caches held: the
    /// kernel's copy (its size above all, which bounds its reads) must be
    /// dropped before the open returns.
    pub attrs_changed: bool,
}

pub struct Fs {
    remote: Arc<dyn Remote>,
    cfg: FsConfig,
    inodes: Mutex<Inodes>,
    meta: Arc<MetaCache>,
    /// Listings under way, lookup misses, listing ahead.
    listings: Arc<Listings>,
    blocks: Arc<BlockCache>,
    /// Open-file state per inode, while any handle is open.
    open: Mutex<HashMap<u64, Arc<OpenFile>>>,
    handles: Mutex<HashMap<u64, Handle>>,
    /// Open directories' listing snapshots.
    dirs: Mutex<HashMap<u64, Arc<[DirItem]>>>,
    /// The last listing built from the caches, per directory inode.
    snapshots: Mutex<LruCache<u64, Snapshot>>,
    /// The content version (size, mtime) each file last showed the kernel,
    /// at its last open or commit: an open of the same version lets the
    /// kernel keep its page cache.
    shown_versions: Mutex<HashMap<u64, (u64, SystemTime)>>,
    /// A digest of what each directory listed when last opened (names,
    /// kinds, inode numbers): an opening that lists the same lets the
    /// kernel keep its cached entries.
    listing_digests: Mutex<HashMap<u64, u64>>,
    /// When each inode was last changed through the mount: its ctime, which
    /// servers do not store (shown as the later of this and the mtime).
    changed: Mutex<HashMap<u64, SystemTime>>,
    next_fh: AtomicU64,
    prefetch: OnceLock<Workers>,
    /// This mount's marker is on the server (`start_marker`).
    marked: AtomicBool,
    /// The server showed it cannot copy files itself (`copy_file_range`).
    no_server_copy: AtomicBool,
    /// Owners matched by name (`-o idmap=names`).
    owners: Owners,
    /// Held while the marker is refreshed or removed, so that a refresh
    /// running at unmount cannot make it again after its removal.
    marker_lock: Mutex<()>,
}

impl Fs {
    pub fn new(remote: Arc<dyn Remote>, cfg: FsConfig) -> Fs {
        Fs {
            inodes: Mutex::new(Inodes::new(&cfg.root)),
            meta: Arc::new(MetaCache::new(cfg.cache_timeout)),
            listings: Arc::new(Listings::new(cfg.list_ahead_threads)),
            blocks: Arc::new(BlockCache::new(
                cfg.cache_size,
                cfg.block_size,
                // A stream's read-ahead window, the block it reads and one the
                // kernel may still be reading.
                cfg.read_ahead_blocks as u64 + 2,
            )),
            open: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            shown_versions: Mutex::new(HashMap::new()),
            listing_digests: Mutex::new(HashMap::new()),
            changed: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(LruCache::new(SNAPSHOTS)),
            next_fh: AtomicU64::new(1),
            prefetch: OnceLock::new(),
            marked: AtomicBool::new(false),
            no_server_copy: AtomicBool::new(false),
            owners: Owners::new(cfg.owners_by_name),
            marker_lock: Mutex::new(()),
            remote,
            cfg,
        }
    }

    /// How long the kernel may trust entries and attributes we return.
    pub fn ttl(&self) -> Duration {
        self.meta.ttl()
    }

    fn writable(&self) -> Result<()> {
        if self.cfg.read_only {
            Err(remote::Error::ReadOnly.into())
        } else {
            Ok(())
        }
    }

    pub fn statfs(&self) -> Result<StatFs> {
        Ok(self.remote.statfs(&self.cfg.root)?)
    }
}

#[cfg(test)]
pub(crate) mod tests;
