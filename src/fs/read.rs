//! Reads through a handle: from the open state for files being written,
//! else from whole cached blocks, with a read-ahead chain per handle. It
//! must not change a file.

pub mod ahead;

use std::ops::{Deref, Range};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::handles::Handle;
use super::read::ahead::ReadAhead;
use super::{Fs, Result};
use crate::cache::blocks::{Access, Block, BlockKey, Reservation};
use crate::sync::lock;
use crate::workers::Workers;

/// The bytes of a read: a piece of one cached block, handed on without a
/// copy, or bytes of its own (a read across blocks, or of a file being
/// written).
#[derive(Debug)]
pub enum ReadData {
    Owned(Vec<u8>),
    InBlock(Block, Range<usize>),
}

impl Deref for ReadData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ReadData::Owned(bytes) => bytes,
            ReadData::InBlock(block, range) => block.get(range.clone()).unwrap_or_default(),
        }
    }
}

impl<T: AsRef<[u8]> + ?Sized> PartialEq<T> for ReadData {
    fn eq(&self, other: &T) -> bool {
        **self == *other.as_ref()
    }
}

impl Fs {
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<ReadData> {
        let Handle {
            ino,
            file,
            ahead,
            failures_seen,
            ..
        } = self.handle(fh)?;
        let (path, version) = {
            let mut st = file.lock();
            if st.failures > failures_seen {
                // What this descriptor wrote never arrived: the server's
                // bytes would not be what it wrote.
                return Err(st.lost());
            }
            let path = self.any_path_of(ino)?;
            if st.reads_bypass_cache() {
                return st
                    .read(&*self.remote, &path, offset, size as usize)
                    .map(ReadData::Owned);
            }
            (path, st.version)
        };
        let access = {
            let mut ra = lock(&ahead);
            if ra.sequential(offset) {
                if self.remote.reads_in_one_stream() {
                    self.join_chain(&mut ra, ino, version, offset, size as usize);
                }
                Access::Stream
            } else {
                Access::Random
            }
        };
        let data = self.read_blocks(ino, &path, version, offset, size as usize, access)?;
        self.read_ahead(&ahead, ino, &path, version, offset, data.len());
        Ok(data)
    }

    fn block_key(ino: u64, version: (u64, SystemTime), index: u64) -> BlockKey {
        BlockKey {
            file: ino,
            size: version.0,
            mtime: version.1,
            index,
        }
    }

    /// Serves a read of a clean file from whole blocks (fetched on a miss).
    /// A stream's blocks stay in the cache's stream share, and each one it
    /// has read to the end is the first to go from there (see
    /// cache/blocks.rs): the kernel keeps those pages.
    fn read_blocks(
        &self,
        ino: u64,
        path: &Path,
        version: (u64, SystemTime),
        offset: u64,
        len: usize,
        access: Access,
    ) -> Result<ReadData> {
        let size = version.0;
        if offset >= size || len == 0 {
            return Ok(ReadData::Owned(Vec::new()));
        }
        let end = size.min(offset + len as u64);
        let bs = self.cfg.block_size;
        let (first, last) = (offset / bs, (end - 1) / bs);
        let mut out = Vec::new();
        for index in first..=last {
            let start = index * bs;
            let key = Self::block_key(ino, version, index);
            let block = self
                .blocks
                .get_or_fetch(&key, access, || self.remote.read(path, start, bs as usize))?;
            let from = (offset.max(start) - start) as usize;
            let to = ((end.min(start + bs)) - start) as usize;
            if from >= block.len() {
                break;
            }
            if access == Access::Stream && to >= block.len() {
                self.blocks.stream_done(&key);
            }
            let short = block.len() < to;
            let to = to.min(block.len());
            if first == last {
                // Within one block (most reads): no copy.
                return Ok(ReadData::InBlock(block, from..to));
            }
            if out.is_empty() {
                out.reserve_exact((end - offset) as usize);
            }
            out.extend_from_slice(&block[from..to]);
            if short {
                // The file is shorter than it was: stop at its real end.
                break;
            }
        }
        Ok(ReadData::Owned(out))
    }

    /// Where the remote reads a file best in one stream
    /// (`Remote::reads_in_one_stream`), a sequential read reaching past the
    /// blocks its running read-ahead chain has queued appends its own
    /// blocks to the chain (promised) and waits for them there: fetched
    /// apart, out of order, they would cost a second stream (or a new
    /// connection) while the chain's stream already brings them. Elsewhere
    /// fetching them at once, in parallel, is faster.
    fn join_chain(
        &self,
        ra: &mut ReadAhead<Reservation>,
        ino: u64,
        version: (u64, SystemTime),
        offset: u64,
        len: usize,
    ) {
        let (bs, size) = (self.cfg.block_size, version.0);
        if offset >= size || len == 0 {
            return;
        }
        let last = (size.min(offset + len as u64) - 1) / bs;
        for index in ra.join(offset / bs, last) {
            if let Some(promise) = self.blocks.reserve(&Self::block_key(ino, version, index)) {
                ra.queue(index, Some(promise));
            }
        }
    }

    /// After a sequential read, promises the blocks wanted ahead of it and
    /// makes sure this handle's read-ahead chain runs: one task that fetches
    /// them in order (see read/ahead.rs), so the reader finds them cached.
    fn read_ahead(
        &self,
        ahead: &Arc<Mutex<ReadAhead<Reservation>>>,
        ino: u64,
        path: &Path,
        version: (u64, SystemTime),
        offset: u64,
        len: usize,
    ) {
        let bs = self.cfg.block_size;
        {
            let mut ra = lock(ahead);
            let wanted = ra.after_read(
                offset,
                len,
                bs,
                version.0.div_ceil(bs),
                self.cfg.read_ahead_blocks as u64,
            );
            for index in wanted {
                // A running chain promises the block now; a starting one
                // when it begins (see read/ahead.rs).
                let promise = if ra.running() {
                    match self.blocks.reserve(&Self::block_key(ino, version, index)) {
                        Some(promise) => Some(promise),
                        None => continue, // cached, or being fetched
                    }
                } else {
                    None
                };
                ra.queue(index, promise);
            }
            if !ra.start() {
                return;
            }
        }
        let workers = self
            .prefetch
            .get_or_init(|| Workers::new("prefetch", self.cfg.prefetch_threads, 64));
        let (blocks, remote) = (self.blocks.clone(), self.remote.clone());
        let (path, chain) = (path.to_path_buf(), ahead.clone());
        let queued = workers.try_spawn(Box::new(move || {
            lock(&chain).begin(|index| blocks.reserve(&Self::block_key(ino, version, index)));
            loop {
                let Some((index, promise)) = lock(&chain).next_block() else {
                    return;
                };
                match remote.read(&path, index * bs, bs as usize) {
                    Ok(data) => promise.fill(Arc::new(data)),
                    Err(e) => {
                        tracing::debug!("read-ahead of {} failed: {e}", path.display());
                        lock(&chain).end();
                        return;
                    }
                }
            }
        }));
        if !queued {
            // Every prefetch worker is busy: a later read tries again.
            lock(ahead).end();
        }
    }
}
