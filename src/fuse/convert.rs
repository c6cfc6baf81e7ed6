//! Translation between the kernel's types (as fuser gives them) and the
//! filesystem layer's: attributes, times to set, open flags, and the open
//! reply's flags. Pure functions; no request handling, no errno.

use fuser::{FileAttr, FileType, FopenFlags, INodeNo, OpenAccMode, OpenFlags, TimeOrNow};

use crate::fs::{self, Opened, TimeSet};
use crate::remote::{Attr, Kind};

pub(super) fn file_attr(ino: u64, attr: &Attr) -> FileAttr {
    let kind = match attr.kind {
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::File | Kind::Other => FileType::RegularFile,
    };
    FileAttr {
        ino: INodeNo(ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.atime,
        mtime: attr.mtime,
        ctime: attr.ctime.max(attr.mtime),
        crtime: attr.mtime,
        kind,
        perm: attr.perm,
        // Directories: the two names every directory has, as the
        // protocols do not count its subdirectories.
        nlink: if attr.kind == Kind::Dir {
            attr.nlink.max(2)
        } else {
            attr.nlink
        },
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub(super) fn time_set(t: Option<TimeOrNow>) -> Option<TimeSet> {
    t.map(|t| match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(t),
    })
}

/// `base` plus keep-cache where the kernel's cached pages are still right.
pub(super) fn fopen_flags(base: FopenFlags, opened: &Opened) -> FopenFlags {
    if opened.keep_cache {
        base | FopenFlags::FOPEN_KEEP_CACHE
    } else {
        base
    }
}

pub(super) fn open_flags(flags: i32) -> fs::OpenFlags {
    let acc = OpenFlags(flags).acc_mode();
    fs::OpenFlags {
        write: acc != OpenAccMode::O_RDONLY,
        truncate: flags & libc::O_TRUNC != 0,
        append: flags & libc::O_APPEND != 0,
        exclusive: flags & libc::O_EXCL != 0,
    }
}
