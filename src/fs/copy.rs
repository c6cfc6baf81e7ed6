//! copy_file_range(2) between two open files of the mount, made by the
//! server itself (`Remote::copy_range`), so the bytes never cross the
//! network: `cp` inside a mount costs a few requests, not the file twice.
//!
//! It owns only the order of things: the source's pending writes reach
//! the server first, the destination is readied as a write readies it
//! (its temporary copy, its write bit, its own pending writes), and its
//! size, loss record and caches are updated after. Where the bytes live
//! is the open state's decision, the copy itself the remote's. It must
//! never copy through the mount itself: when the server cannot, the error
//! tells the kernel to do the ordinary read-and-write copy.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::file_state::{Content, FileState};
use super::{Error, Fs, Result, WriteLoss};
use crate::remote::{self, Remote};

/// Most bytes one call copies: the kernel's reply carries 32 bits, and a
/// shorter count just makes the caller ask again for the rest.
const MAX_PER_CALL: u64 = 1 << 30;

/// A copy this call cannot make on the server, though others may: the
/// kernel copies it by reading and writing.
fn not_this_one(why: &str) -> Error {
    remote::Error::Unsupported(why.into()).into()
}

impl Fs {
    /// Copies up to `len` bytes of the file open as `fh_in`, from `off_in`,
    /// into the file open as `fh_out` at `off_out`; returns how many (0 at
    /// the source's end). `Error::NoServerCopy` once the server showed it
    /// cannot copy at all.
    pub fn copy_file_range(
        &self,
        fh_in: u64,
        off_in: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
    ) -> Result<u64> {
        if self.no_server_copy.load(Ordering::Relaxed) {
            return Err(Error::NoServerCopy);
        }
        let src = self.handle(fh_in)?;
        let dst = self.handle(fh_out)?;
        if !dst.write {
            return Err(Error::BadHandle);
        }
        self.writable()?;
        if src.ino == dst.ino {
            // The server refuses to copy a file onto itself.
            return Err(not_this_one("a copy within one file"));
        }
        // Both states locked, in ascending inode order (the lock order).
        let (low, high) = if src.ino < dst.ino {
            (&src.file, &dst.file)
        } else {
            (&dst.file, &src.file)
        };
        let (low, high) = (low.lock(), high.lock());
        let (mut from, mut to) = if src.ino < dst.ino {
            (low, high)
        } else {
            (high, low)
        };
        if to.failures > dst.failures_seen {
            return Err(to.lost());
        }
        if off_in >= from.size {
            return Ok(0);
        }
        let len = len.min(from.size - off_in).min(MAX_PER_CALL);
        if len == 0 {
            return Ok(0);
        }
        let (path_in, path_out) = (self.any_path_of(src.ino)?, self.any_path_of(dst.ino)?);
        if [&from.content, &to.content]
            .iter()
            .any(|c| matches!(c, Content::Local { .. }))
        {
            // Content staged here: the server does not hold it.
            return Err(not_this_one("content staged locally"));
        }
        from.send_pending(&*self.remote, &path_in)?;
        let source = from.data_path(&path_in).to_path_buf();
        drop(from);
        let copied = to.copy_in(&*self.remote, &path_out, &source, off_in, off_out, len);
        self.remove_orphaned_temps(&mut to);
        let size = to.size;
        drop(to);
        let copied = match copied {
            Err(Error::Remote(remote::Error::Unsupported(why))) => {
                tracing::info!(
                    "the server cannot copy files itself ({why}): copies cross the network"
                );
                self.no_server_copy.store(true, Ordering::Relaxed);
                return Err(Error::NoServerCopy);
            }
            other => other?,
        };
        self.note_change(dst.ino);
        self.meta.update(&path_out, |a| {
            a.size = size;
            a.mtime = SystemTime::now();
        });
        Ok(copied)
    }
}

impl FileState {
    /// Has the server copy `len` bytes of `from` (the source's bytes on the
    /// server) at `from_off` into this file at `off`, as a write of them.
    /// A failure other than "the server cannot" loses the file's writes,
    /// as a failed write does.
    fn copy_in(
        &mut self,
        remote: &dyn Remote,
        path: &Path,
        from: &Path,
        from_off: u64,
        off: u64,
        len: u64,
    ) -> Result<u64> {
        if let Some(e) = &self.error {
            return Err(Error::WriteFailed(e.clone()));
        }
        let copied = self.copy_unchecked(remote, path, from, from_off, off, len);
        match &copied {
            Ok(n) => {
                self.size = self.size.max(off + n);
                self.dirty = true;
                self.times = None;
            }
            // Nothing was written: the kernel writes these bytes itself.
            Err(Error::Remote(remote::Error::Unsupported(_))) => {
                if self.content.temp().is_some() {
                    // A temporary copy was begun: the commit must put it
                    // in place even if nothing else is written.
                    self.dirty = true;
                }
            }
            Err(e) => {
                if self.error.is_none() {
                    self.lose(WriteLoss::of(e));
                }
            }
        }
        copied
    }

    fn copy_unchecked(
        &mut self,
        remote: &dyn Remote,
        path: &Path,
        from: &Path,
        from_off: u64,
        off: u64,
        len: u64,
    ) -> Result<u64> {
        self.start_temp(remote, path)?;
        self.make_writable(remote, path)?;
        self.send_pending(remote, path)?;
        Ok(remote.copy_range(from, from_off, self.data_path(path), off, len)?)
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::super::{inodes, OpenFlags};
    use super::*;
    use crate::errno::ToErrno;
    use crate::fs::tests::setup;

    fn rw() -> OpenFlags {
        OpenFlags {
            write: true,
            ..Default::default()
        }
    }

    /// `cp src dst`: opens the source, creates the destination.
    fn open_pair(fs: &Fs, src: &str, dst: &str) -> (u64, u64, u64) {
        let src = fs.lookup(inodes::ROOT, OsStr::new(src)).expect("lookup");
        let fh_in = fs.open(src.ino, OpenFlags::default()).expect("open").fh;
        let (entry, out) = fs
            .create(inodes::ROOT, OsStr::new(dst), 0o644, rw())
            .expect("create");
        (fh_in, out.fh, entry.ino)
    }

    fn close(fs: &Fs, fh: u64) {
        fs.flush(fh).expect("flush");
        fs.release(fh).expect("release");
    }

    #[test]
    fn a_copy_is_made_on_the_server_and_committed_at_close() {
        let (mem, fs, _s) = setup(true);
        mem.put_file("/a", b"0123456789");
        let (fh_in, fh_out, ino) = open_pair(&fs, "a", "b");
        // Asked for more than there is: the source's end bounds it.
        assert_eq!(
            fs.copy_file_range(fh_in, 2, fh_out, 0, 100).expect("copy"),
            8
        );
        assert_eq!(
            fs.copy_file_range(fh_in, 10, fh_out, 8, 100).expect("copy"),
            0
        );
        assert_eq!(mem.copies.load(Ordering::SeqCst), 1);
        assert_eq!(
            fs.getattr(ino).expect("getattr").size,
            8,
            "the size shows at once"
        );
        assert_eq!(fs.read(fh_out, 0, 100).expect("read"), b"23456789");
        // A new file is written under its own name (it had nothing to
        // protect): the bytes are there before the close.
        assert_eq!(mem.content("/b").as_deref(), Some(&b"23456789"[..]));
        close(&fs, fh_out);
        close(&fs, fh_in);
        assert_eq!(mem.content("/b").as_deref(), Some(&b"23456789"[..]));
        assert_eq!(mem.names().len(), 3, "no stray names: {:?}", mem.names());
    }

    #[test]
    fn pending_writes_of_both_files_reach_the_server_before_the_copy() {
        let (mem, fs, _s) = setup(true);
        mem.put_file("/a", b"old-old-old");
        let a = fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup");
        let writer = fs.open(a.ino, rw()).expect("open").fh;
        fs.write(writer, 0, b"NEW").expect("write");
        let (fh_in, fh_out, _) = open_pair(&fs, "a", "b");
        fs.write(fh_out, 0, b"head:").expect("write");
        assert_eq!(
            fs.copy_file_range(fh_in, 0, fh_out, 5, 11).expect("copy"),
            11
        );
        fs.write(fh_out, 16, b":tail").expect("write");
        for fh in [fh_out, fh_in, writer] {
            close(&fs, fh);
        }
        assert_eq!(
            mem.content("/b").as_deref(),
            Some(&b"head:NEW-old-old:tail"[..])
        );
    }

    #[test]
    fn without_a_server_copy_the_kernel_copies_and_is_told_once() {
        let (mem, fs, _s) = setup(true);
        mem.put_file("/a", b"data");
        mem.no_server_copy.store(true, Ordering::SeqCst);
        let (fh_in, fh_out, _) = open_pair(&fs, "a", "b");
        for _ in 0..2 {
            let e = fs
                .copy_file_range(fh_in, 0, fh_out, 0, 4)
                .expect_err("no copy");
            assert_eq!(e.to_errno(), libc::ENOSYS);
        }
        // The ordinary copy that follows works and lands whole.
        fs.write(fh_out, 0, b"data").expect("write");
        close(&fs, fh_out);
        assert_eq!(mem.content("/b").as_deref(), Some(&b"data"[..]));
    }

    #[test]
    fn copies_the_server_cannot_make_fall_back_one_by_one() {
        // Without random writes the destination is staged here.
        let (mem, fs, _s) = setup(false);
        mem.put_file("/a", b"data");
        let (fh_in, fh_out, _) = open_pair(&fs, "a", "b");
        let e = fs
            .copy_file_range(fh_in, 0, fh_out, 0, 4)
            .expect_err("staged");
        assert_eq!(e.to_errno(), libc::EOPNOTSUPP);
        // A file onto itself.
        let (mem, fs, _s) = setup(true);
        mem.put_file("/a", b"data");
        let a = fs.lookup(inodes::ROOT, OsStr::new("a")).expect("lookup");
        let fh = fs.open(a.ino, rw()).expect("open").fh;
        let e = fs.copy_file_range(fh, 0, fh, 4, 4).expect_err("same file");
        assert_eq!(e.to_errno(), libc::EOPNOTSUPP);
        assert_eq!(mem.copies.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_failed_server_copy_is_a_lost_write() {
        let (mem, fs, _s) = setup(true);
        mem.put_file("/a", b"data");
        let (fh_in, fh_out, _) = open_pair(&fs, "a", "b");
        mem.full.store(true, Ordering::SeqCst);
        let e = fs
            .copy_file_range(fh_in, 0, fh_out, 0, 4)
            .expect_err("full");
        assert_eq!(e.to_errno(), libc::ENOSPC);
        mem.full.store(false, Ordering::SeqCst);
        let e = fs.flush(fh_out).expect_err("the close reports the loss");
        assert_eq!(e.to_errno(), libc::ENOSPC);
        assert_eq!(mem.content("/b"), Some(Vec::new()), "nothing half-copied");
    }
}
