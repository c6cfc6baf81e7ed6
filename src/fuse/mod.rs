//! The FUSE adapter: the `fuser::Filesystem` impl over `fs::Fs`.
//!
//! Each request is handed, with its `Reply`, to a worker thread so the
//! dispatcher never waits on the network (invariant 1); metadata and
//! data requests have separate workers so a slow read never delays a `stat`.
//! What the caches alone can answer without waiting (readdir pages, a cached
//! directory's opendir and getattr) is answered on the dispatcher itself.
//! This is the one place where errors (which know their errno) become
//! replies to the kernel. It owns kernel options
//! (READDIRPLUS, max_write, open flags) and notifications to the kernel,
//! and passes on the TTL the caches use; it must not contain filesystem
//! logic.
//!
//! Mounting, unmounting and the kernel's mount options are in `mount`; the
//! child that unmounts after a crash in `watchdog`; type translations in
//! `convert`. No other part of the program names a fuser type.

mod convert;
pub mod flush;
pub mod mount;
pub mod watchdog;

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use fuser::{
    AccessFlags, Errno, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    Request, TimeOrNow, WriteFlags,
};

use crate::errno::ToErrno;
use crate::fs::{self, Fs, Opened, SetAttrs};
use crate::remote::{self, Attr, Kind};
use crate::workers::{Job, Workers};
use convert::{file_attr, fopen_flags, open_flags, time_set};

/// Largest write the kernel may send in one request.
const MAX_WRITE: u32 = 1 << 20;
const META_THREADS: usize = 8;
const DATA_THREADS: usize = 16;
const QUEUE: usize = 4096;
/// Attributes shown for "." and ".." in readdirplus (the kernel ignores them).
const DOT_ATTR: Attr = Attr {
    kind: Kind::Dir,
    size: 4096,
    perm: 0o755,
    uid: 0,
    gid: 0,
    atime: std::time::UNIX_EPOCH,
    mtime: std::time::UNIX_EPOCH,
    ctime: std::time::UNIX_EPOCH,
    nlink: 2,
};

pub struct FuseAdapter {
    fs: Arc<Fs>,
    meta: OnceLock<Workers>,
    data: OnceLock<Workers>,
    /// Set once the session exists (see `notifier_slot`).
    notifier: Arc<OnceLock<Notifier>>,
}

impl FuseAdapter {
    pub fn new(fs: Arc<Fs>) -> FuseAdapter {
        FuseAdapter {
            fs,
            meta: OnceLock::new(),
            data: OnceLock::new(),
            notifier: Arc::default(),
        }
    }

    /// Where the caller puts the session's notifier once the session that
    /// takes this adapter exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    fn meta(&self, job: impl FnOnce(&Fs) + Send + 'static) {
        let fs = self.fs.clone();
        let job: Job = Box::new(move || job(&fs));
        self.meta
            .get_or_init(|| Workers::new("meta", META_THREADS, QUEUE))
            .spawn(job);
    }

    fn data(&self, job: impl FnOnce(&Fs) + Send + 'static) {
        let fs = self.fs.clone();
        let job: Job = Box::new(move || job(&fs));
        self.data
            .get_or_init(|| Workers::new("data", DATA_THREADS, QUEUE))
            .spawn(job);
    }
}

/// The errno a local filesystem would give (invariant 5): each
/// layer's error knows its own.
pub fn errno(e: &fs::Error) -> Errno {
    Errno::from_i32(e.to_errno())
}

fn fail(op: &str, e: &fs::Error) -> Errno {
    crate::stats::get().error(e.to_errno());
    match e {
        fs::Error::Remote(remote::Error::NotFound) => {
            tracing::trace!("{op}: {e}")
        }
        _ => tracing::debug!("{op}: {e}"),
    }
    errno(e)
}

/// Makes the kernel drop its cached attributes of `ino` (not its pages:
/// an open without keep-cache does that).
fn forget_kernel_attrs(notifier: &OnceLock<Notifier>, ino: INodeNo) {
    let Some(notifier) = notifier.get() else {
        return;
    };
    if let Err(e) = notifier.inval_inode(ino, -1, 0) {
        tracing::debug!("cannot invalidate the attributes of inode {}: {e}", ino.0);
    }
}

fn reply_entry(fs: &Fs, reply: ReplyEntry, result: fs::Result<fs::Entry>, op: &str) {
    match result {
        Ok(e) => reply.entry(&fs.ttl(), &file_attr(e.ino, &e.attr), Generation(0)),
        Err(e) => reply.error(fail(op, &e)),
    }
}

fn reply_empty(reply: ReplyEmpty, result: fs::Result<()>, op: &str) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(fail(op, &e)),
    }
}

impl fuser::Filesystem for FuseAdapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let wanted = [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_ATOMIC_O_TRUNC,
            // Drop cached pages when a file's mtime or size changes.
            InitFlags::FUSE_AUTO_INVAL_DATA,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_BIG_WRITES,
        ];
        for flag in wanted {
            if config.add_capabilities(flag).is_err() {
                tracing::debug!("kernel lacks {flag:?}");
            }
        }
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_os_string();
        self.meta(move |fs| reply_entry(fs, reply, fs.lookup(parent.0, &name), "lookup"));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        // A directory's cached attributes are answered right here.
        if let Some(attr) = self.fs.getattr_cached_dir(ino.0) {
            return reply.attr(&self.fs.ttl(), &file_attr(ino.0, &attr));
        }
        self.meta(move |fs| match fs.getattr(ino.0) {
            Ok(attr) => reply.attr(&fs.ttl(), &file_attr(ino.0, &attr)),
            Err(e) => reply.error(fail("getattr", &e)),
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = SetAttrs {
            by_handle: fh.is_some(),
            mode,
            uid,
            gid,
            size,
            atime: time_set(atime),
            mtime: time_set(mtime),
        };
        // A truncate may wait behind buffered writes: data lane.
        let job = move |fs: &Fs| match fs.setattr(ino.0, changes) {
            Ok(attr) => reply.attr(&fs.ttl(), &file_attr(ino.0, &attr)),
            Err(e) => reply.error(fail("setattr", &e)),
        };
        if size.is_some() {
            self.data(job)
        } else {
            self.meta(job)
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.meta(move |fs| match fs.readlink(ino.0) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(fail("readlink", &e)),
        });
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name.to_os_string();
        self.meta(move |fs| {
            reply_entry(fs, reply, fs.mkdir(parent.0, &name, mode & !umask), "mkdir")
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_os_string();
        self.meta(move |fs| reply_empty(reply, fs.unlink(parent.0, &name), "unlink"));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_os_string();
        self.meta(move |fs| reply_empty(reply, fs.rmdir(parent.0, &name), "rmdir"));
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target) = (link_name.to_os_string(), target.to_path_buf());
        self.meta(move |fs| {
            reply_entry(fs, reply, fs.symlink(parent.0, &name, &target), "symlink")
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            reply.error(Errno::from_i32(libc::EINVAL));
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (name, newname) = (name.to_os_string(), newname.to_os_string());
        self.data(move |fs| {
            reply_empty(
                reply,
                fs.rename(parent.0, &name, newparent.0, &newname, no_replace),
                "rename",
            )
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let name = newname.to_os_string();
        // It may first commit what an open file holds: data lane.
        self.data(move |fs| reply_entry(fs, reply, fs.link(ino.0, newparent.0, &name), "link"));
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let flags = open_flags(flags.0);
        let notifier = self.notifier.clone();
        self.meta(move |fs| match fs.open(ino.0, flags) {
            Ok(o) => {
                if o.attrs_changed {
                    // Before the reply, so that no read of this open goes
                    // by the old size: the kernel asks for the attributes
                    // again (the caches answer, fresh from the open).
                    forget_kernel_attrs(&notifier, ino);
                }
                reply.opened(FileHandle(o.fh), fopen_flags(FopenFlags::empty(), &o))
            }
            Err(e) => reply.error(fail("open", &e)),
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.data(move |fs| match fs.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(fail("read", &e)),
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let data = data.to_vec();
        self.data(move |fs| match fs.write(fh.0, offset, &data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(fail("write", &e)),
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        self.data(move |fs| reply_empty(reply, fs.flush(fh.0), "flush"));
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.data(move |fs| reply_empty(reply, fs.release(fh.0), "release"));
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.data(move |fs| reply_empty(reply, fs.fsync(fh.0), "fsync"));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // The kernel caches the entries it reads (CACHE_DIR), so that a
        // listing that did not change costs no readdir at all.
        let reply_opened = |reply: ReplyOpen, o: Opened| {
            reply.opened(
                FileHandle(o.fh),
                fopen_flags(FopenFlags::FOPEN_CACHE_DIR, &o),
            )
        };
        // A cached listing is answered right here, without a worker hop.
        if let Some(o) = self.fs.opendir_cached(ino.0) {
            return reply_opened(reply, o);
        }
        self.meta(move |fs| match fs.opendir(ino.0) {
            Ok(o) => reply_opened(reply, o),
            Err(e) => reply.error(fail("opendir", &e)),
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        // Served from the listing taken at opendir: no network, so right
        // here on the dispatcher rather than through a worker.
        let fs = &*self.fs;
        // Offsets 0 and 1 are "." and ".."; entry j has offset j + 3.
        if offset == 0 && reply.add(ino, 1, FileType::Directory, ".") {
            return reply.ok();
        }
        if offset <= 1 && reply.add(INodeNo(1), 2, FileType::Directory, "..") {
            return reply.ok();
        }
        let items = match fs.readdir(fh.0) {
            Ok(items) => items,
            Err(e) => return reply.error(fail("readdir", &e)),
        };
        let from = offset.saturating_sub(2) as usize;
        for (j, item) in items.iter().enumerate().skip(from) {
            let ino = fs.known_ino(&item.path).unwrap_or(u64::MAX - j as u64);
            let kind = file_attr(ino, &item.attr).kind;
            if reply.add(INodeNo(ino), j as u64 + 3, kind, &item.name) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        // As readdir: served from the opendir listing, on the dispatcher.
        let fs = &*self.fs;
        let ttl = fs.ttl();
        // The kernel neither looks up "." and ".." nor uses their
        // attributes, so they get a plain directory's.
        let here = file_attr(ino.0, &DOT_ATTR);
        if offset == 0 && reply.add(ino, 1, ".", &ttl, &here, Generation(0)) {
            return reply.ok();
        }
        if offset <= 1 && reply.add(INodeNo(1), 2, "..", &ttl, &here, Generation(0)) {
            return reply.ok();
        }
        let items = match fs.readdir(fh.0) {
            Ok(items) => items,
            Err(e) => return reply.error(fail("readdirplus", &e)),
        };
        let from = offset.saturating_sub(2) as usize;
        for (j, item) in items.iter().enumerate().skip(from) {
            // Each entry returned counts as a lookup for the kernel.
            let child = fs.remember(item);
            let attr = file_attr(child, &item.attr);
            if reply.add(
                INodeNo(child),
                j as u64 + 3,
                &item.name,
                &ttl,
                &attr,
                Generation(0),
            ) {
                fs.forget(child, 1);
                break;
            }
        }
        reply.ok()
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.meta(move |fs| match fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(fail("statfs", &e)),
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // Also asked for chdir. Without default_permissions the kernel
        // checks nothing itself, so this answers as a local filesystem.
        let caller = fs::access::Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        };
        let wanted = [
            (AccessFlags::R_OK, fs::access::READ),
            (AccessFlags::W_OK, fs::access::WRITE),
            (AccessFlags::X_OK, fs::access::EXEC),
        ];
        let mask = wanted
            .iter()
            .filter(|(flag, _)| mask.contains(*flag))
            .fold(0, |bits, (_, bit)| bits | bit);
        self.meta(move |fs| reply_empty(reply, fs.access(ino.0, caller, mask), "access"));
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        _ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.data(move |fs| {
            match fs.copy_file_range(fh_in.0, offset_in, fh_out.0, offset_out, len) {
                // At most `fs`'s 1 GiB per call.
                Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
                Err(e) => reply.error(fail("copy_file_range", &e)),
            }
        });
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name.to_os_string();
        let flags = open_flags(flags);
        self.meta(
            move |fs| match fs.create(parent.0, &name, mode & !umask, flags) {
                Ok((entry, opened)) => reply.created(
                    &fs.ttl(),
                    &file_attr(entry.ino, &entry.attr),
                    Generation(0),
                    FileHandle(opened.fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(fail("create", &e)),
            },
        );
    }
}
