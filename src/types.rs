//! The data types every layer speaks: what a path names (`Kind`, `Attr`),
//! a listing entry, filesystem figures and a change of attributes. A leaf:
//! it imports nothing of the crate, so the caches, the filesystem logic and
//! the remote layer can all use it without pointing an arrow upwards.

use std::ffi::OsString;
use std::time::{SystemTime, UNIX_EPOCH};

/// What kind of object a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Attributes of a remote object, as far as the protocol tells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (`mode & 0o7777`).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub atime: SystemTime,
    pub mtime: SystemTime,
    /// When its attributes last changed. Neither SFTP v3 nor FTP carries
    /// it, so remotes give the mtime; the filesystem layer moves it
    /// forward for changes made through the mount.
    pub ctime: SystemTime,
    /// Names it has. SFTP v3 and FTP do not tell, so remotes give 1; the
    /// filesystem layer gives 0 for an open file whose name is gone.
    pub nlink: u32,
}

impl Attr {
    /// The version of a file's content, as far as caches can tell: size and mtime.
    pub fn version(&self) -> (u64, SystemTime) {
        (self.size, self.mtime)
    }
}

/// One entry of a directory listing. `name` is a single component: never empty,
/// `.`, `..`, or containing `/` or NUL (implementations drop such entries).
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: OsString,
    pub attr: Attr,
}

/// Filesystem figures for statfs, in the units statvfs(3) uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatFs {
    pub bsize: u32,
    pub frsize: u32,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: u32,
}

impl StatFs {
    /// For servers that cannot tell (FTP, SFTP without `statvfs`): a large,
    /// fixed, all-free filesystem, so tools that check for room (cp, rsync,
    /// installers) go ahead, and the usual 255-byte name limit — as sshfs
    /// reports then.
    pub fn unknown() -> StatFs {
        const BLOCK: u32 = 4096;
        const BLOCKS: u64 = (1 << 50) / BLOCK as u64; // 1 PiB
        StatFs {
            bsize: BLOCK,
            frsize: BLOCK,
            blocks: BLOCKS,
            bfree: BLOCKS,
            bavail: BLOCKS,
            files: 1 << 30,
            ffree: 1 << 30,
            namelen: 255,
        }
    }
}

/// A change of attributes. Times are always set together (SFTP setstat sends
/// both), so callers resolve "now" and "omit" before calling.
#[derive(Clone, Copy, Debug)]
pub enum SetAttr {
    Mode(u32),
    Owner(Option<u32>, Option<u32>),
    Size(u64),
    Times {
        atime: SystemTime,
        mtime: SystemTime,
    },
}

/// Whole seconds since the epoch, rounded down (so 0.5 s before the epoch
/// is -1).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let d = before.duration();
            let whole = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                whole.saturating_add(1).saturating_neg()
            } else {
                whole.saturating_neg()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unix_secs_rounds_down_on_both_sides_of_the_epoch() {
        assert_eq!(unix_secs(UNIX_EPOCH), 0);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(2500)), -3);
    }
}
