//! The pool's face to the filesystem: `Remote` for `Pool`. Each call here
//! only chooses its policy — which lane (metadata or bulk), whether it may
//! be retried, whether it changes what a path names (so cached handles
//! reopen), what it counts in the live stats — and hands the work to the
//! pool's machinery in `mod.rs`. It must not hold connections itself.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::{counted, no_nul, Connection, Connector, Lane, Pool};
use crate::remote::rename_aside::RenameAside;
use crate::remote::{Attr, Caps, DirEntry, IdNames, Remote, Result, SetAttr, StatFs, WriterId};
use crate::stats::{self, Op};

impl<C: Connector> Remote for Pool<C> {
    fn caps(&self) -> Caps {
        self.connector.caps()
    }
    fn same_version(&self, path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        self.connector.same_version(path, cached, fresh)
    }
    fn reads_in_one_stream(&self) -> bool {
        self.connector.reads_in_one_stream()
    }
    fn forget_kept_state(&self) {
        // As after a change through the mount: no handle or stream opened
        // before is reused, nor data fetched ahead.
        self.names.fetch_add(1, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
    fn stat(&self, path: &Path) -> Result<Attr> {
        let _timed = stats::get().timed(Op::Stat);
        no_nul(path)?;
        self.run(Lane::Meta, true, |c| c.stat(path))
    }
    fn stat_again(&self, path: &Path, known: &Attr) -> Result<Attr> {
        let _timed = stats::get().timed(Op::Stat);
        no_nul(path)?;
        self.run(Lane::Meta, true, |c| c.stat_again(path, known))
    }
    fn list(&self, path: &Path) -> Result<Vec<DirEntry>> {
        let _timed = stats::get().timed(Op::List);
        no_nul(path)?;
        self.run(Lane::Meta, true, |c| c.list(path))
    }
    /// On an idle data connection only: the metadata one stays free for
    /// stats, transfers never wait, and no connection is opened for it
    /// (a login can cost more than the listing saves).
    fn list_in_background(&self, path: &Path) -> Result<Vec<DirEntry>> {
        no_nul(path)?;
        self.run(Lane::Idle, true, |c| c.list(path))
    }
    fn open_spare_connection(&self) -> bool {
        self.open_spare()
    }
    fn listed_as_stat(&self, path: &Path, listed: &Attr) -> bool {
        self.connector.listed_as_stat(path, listed)
    }
    fn stat_listed(&self, path: &Path, listed: &Attr) -> Result<Attr> {
        if self.connector.listed_as_stat(path, listed) {
            return Ok(listed.clone());
        }
        let _timed = stats::get().timed(Op::Stat);
        no_nul(path)?;
        self.run(Lane::Meta, true, |c| c.stat_listed(path, listed))
    }
    fn read(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
        let _timed = stats::get().timed(Op::Read);
        no_nul(path)?;
        let generation = self.generation();
        self.run(Lane::Read(path, offset), true, |c| {
            c.read(path, offset, len, generation)
        })
        .inspect(|data| stats::get().read_bytes(data.len()))
    }
    fn write(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        let _timed = stats::get().timed(Op::Write);
        no_nul(path)?;
        counted(&self.writes, || {
            self.run(Lane::Bulk, false, |c| c.write(path, offset, data))
        })
        .inspect(|()| stats::get().wrote_bytes(data.len()))
    }
    fn upload(&self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()> {
        let _timed = stats::get().timed(Op::Upload);
        no_nul(path)?;
        let src = &mut stats::Uploaded { inner: src };
        self.renaming(|| self.run(Lane::Bulk, false, |c| c.upload(path, src, append)))
    }
    fn create(&self, path: &Path, mode: u32, exclusive: bool) -> Result<()> {
        let _timed = stats::get().timed(Op::Create);
        no_nul(path)?;
        self.renaming(|| self.run(Lane::Meta, false, |c| c.create(path, mode, exclusive)))
    }
    fn create_kept(
        &self,
        writer: WriterId,
        path: &Path,
        mode: u32,
        exclusive: bool,
    ) -> Result<Option<Attr>> {
        let _timed = stats::get().timed(Op::Create);
        no_nul(path)?;
        let mut attr = None;
        self.renaming(|| {
            self.run_kept(writer, |c| {
                let (kept, created) = c.create_kept(path, mode, exclusive)?;
                attr = created;
                Ok(kept)
            })
        })?;
        Ok(attr)
    }
    fn write_kept(&self, writer: WriterId, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        let _timed = stats::get().timed(Op::Write);
        no_nul(path)?;
        counted(&self.writes, || {
            self.run_kept(writer, |c| c.write_kept(path, offset, data))
        })
        .inspect(|()| stats::get().wrote_bytes(data.len()))
    }
    fn close_writer(&self, writer: WriterId) -> Result<()> {
        self.close_parked(writer)
    }
    fn setattr(&self, path: &Path, change: SetAttr) -> Result<()> {
        let _timed = stats::get().timed(Op::Setattr);
        no_nul(path)?;
        let op = || self.run(Lane::Meta, false, |c| c.setattr(path, change));
        match change {
            // A cached handle may hold the content the resize replaced...
            SetAttr::Size(_) if self.connector.caps().resize_rewrites => self.renaming(op),
            // ... or, resized in place, bytes it fetched ahead.
            SetAttr::Size(_) => counted(&self.writes, op),
            _ => op(),
        }
    }
    fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        let _timed = stats::get().timed(Op::Mkdir);
        no_nul(path)?;
        self.run(Lane::Meta, false, |c| c.mkdir(path, mode))
    }
    fn rmdir(&self, path: &Path) -> Result<()> {
        let _timed = stats::get().timed(Op::Rmdir);
        no_nul(path)?;
        self.renaming(|| self.run(Lane::Meta, false, |c| c.rmdir(path)))
    }
    fn unlink(&self, path: &Path) -> Result<()> {
        let _timed = stats::get().timed(Op::Unlink);
        no_nul(path)?;
        self.renaming(|| self.run(Lane::Meta, false, |c| c.unlink(path)))
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        let _timed = stats::get().timed(Op::Rename);
        no_nul(from)?;
        no_nul(to)?;
        RenameAside {
            remote: self,
            rename_once: &|from, to| {
                self.renaming(|| self.run(Lane::Meta, false, |c| c.rename(from, to)))
            },
            mount_id: self.opts.mount_id,
        }
        .rename(from, to)
    }
    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        let _timed = stats::get().timed(Op::Symlink);
        no_nul(target)?;
        no_nul(link)?;
        self.run(Lane::Meta, false, |c| c.symlink(target, link))
    }
    fn readlink(&self, path: &Path) -> Result<PathBuf> {
        let _timed = stats::get().timed(Op::Readlink);
        no_nul(path)?;
        self.run(Lane::Meta, true, |c| c.readlink(path))
    }
    fn link(&self, from: &Path, to: &Path) -> Result<()> {
        let _timed = stats::get().timed(Op::Link);
        no_nul(from)?;
        no_nul(to)?;
        // A new name: like create, it changes what `to` names.
        self.renaming(|| self.run(Lane::Meta, false, |c| c.link(from, to)))
    }
    fn statfs(&self, path: &Path) -> Result<StatFs> {
        let _timed = stats::get().timed(Op::Statfs);
        self.run(Lane::Meta, true, |c| c.statfs(path))
    }
    fn fsync(&self, path: &Path) -> Result<()> {
        let _timed = stats::get().timed(Op::Fsync);
        no_nul(path)?;
        self.run(Lane::Bulk, false, |c| c.fsync(path))
    }
    fn copy_range(
        &self,
        from: &Path,
        from_off: u64,
        to: &Path,
        to_off: u64,
        len: u64,
    ) -> Result<u64> {
        no_nul(from)?;
        no_nul(to)?;
        // A write to `to`, however long the server takes: not retried.
        counted(&self.writes, || {
            self.run(Lane::Bulk, false, |c| {
                c.copy_range(from, from_off, to, to_off, len)
            })
        })
    }
    fn id_names(&self, uids: &[u32], gids: &[u32]) -> Result<IdNames> {
        self.run(Lane::Meta, true, |c| c.id_names(uids, gids))
    }
}
