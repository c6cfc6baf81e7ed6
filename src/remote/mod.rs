//! The remote side: `trait Remote` (blocking, path-based), the types it speaks,
//! and one implementation per protocol behind a connection pool.
//!
//! Nothing here knows about FUSE or the caches. Paths are absolute paths on the
//! server, as bytes (`Path` on Unix), so non-UTF-8 names round-trip.

pub mod ftp;
pub mod netrc;
pub mod pool;
pub mod progress;
pub mod resolve;
pub mod secrets;
pub mod sftp;
pub mod sftp_ext;
pub mod ssh;
pub mod text;

#[cfg(test)]
pub mod memory;

use std::ffi::OsString;
use std::io;
use std::path::Path;
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

/// What a protocol can do; the filesystem logic chooses its strategy from this.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// `write` at any offset of an existing file (SFTP). Without it, writes are
    /// staged locally and uploaded whole with `upload`.
    pub random_write: bool,
    pub symlinks: bool,
    /// `rename` replaces an existing target atomically.
    pub atomic_rename: bool,
    /// The file times the protocol can carry.
    pub times: TimeRange,
}

/// The file times a protocol can carry, in whole seconds since the epoch.
/// A time outside is refused (`Error::TimeOutOfRange`), never stored as
/// something else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub earliest: i64,
    pub latest: i64,
}

impl TimeRange {
    /// SFTP v3: an unsigned 32-bit count of seconds, 1970 to 2106-02-07.
    pub const SFTP_V3: TimeRange = TimeRange {
        earliest: 0,
        latest: u32::MAX as i64,
    };
    /// FTP's `YYYYMMDDhhmmss` (MFMT, SITE UTIME, MDTM): servers take no
    /// time before 1970, and the year has four digits.
    pub const FTP: TimeRange = TimeRange {
        earliest: 0,
        latest: 253_402_300_799, // 9999-12-31 23:59:59 UTC
    };

    /// Whole seconds of `t` (rounded down), if the protocol can carry them.
    pub fn secs(&self, t: SystemTime) -> Result<i64> {
        let secs = unix_secs(t);
        if (self.earliest..=self.latest).contains(&secs) {
            Ok(secs)
        } else {
            Err(Error::TimeOutOfRange)
        }
    }
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

/// Errors from the remote layer. `fuse.rs` maps them to errno (through the
/// filesystem layer's error), nowhere else. The text they carry often comes
/// from the server: it is shown with control characters escaped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such file or directory")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("permission denied")]
    PermissionDenied,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("no space left on the server")]
    NoSpace,
    #[error("not supported by the server: {}", text::escape_controls(.0))]
    Unsupported(String),
    #[error("read-only")]
    ReadOnly,
    #[error("invalid argument")]
    Invalid,
    /// A file time the protocol cannot carry (see `TimeRange`).
    #[error("time out of the range the server can store")]
    TimeOutOfRange,
    #[error("operation timed out")]
    TimedOut,
    /// The connection broke (or answered garbage); it has been discarded.
    #[error("connection lost: {}", text::escape_controls(.0))]
    Transport(String),
    /// The server said no, for a reason we could not narrow down.
    #[error("server failure: {}", text::escape_controls(.0))]
    Failure(String),
    /// Start-up problems: authentication, host key, bad address. Shown to the
    /// user as they are.
    #[error("{}", text::escape_controls(.0))]
    Setup(String),
    /// The server refused a new connection because it has too many (FTP
    /// `421` at connect). The pool waits for one of its own connections
    /// instead of failing.
    #[error("server busy: {}", text::escape_controls(.0))]
    Busy(String),
    #[error("local I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// Whether the connection that produced this error must be thrown away
    /// (DESIGN invariant 2: never reuse a connection after a timeout).
    pub fn breaks_connection(&self) -> bool {
        matches!(self, Error::TimedOut | Error::Transport(_))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A remote filesystem, reached through a pool of connections.
///
/// Every call is blocking and bounded by the configured timeout. Calls may run
/// concurrently from many threads; the implementation spreads them over its
/// connections. `meta` calls (stat, list, …) must not queue behind bulk
/// transfers.
pub trait Remote: Send + Sync {
    fn caps(&self) -> Caps;

    /// Whether `fresh` (from `stat`) shows the same content of `path` as
    /// `cached` did (perhaps from a listing, which some protocols give with
    /// a coarser mtime): compared by version unless the protocol knows
    /// better.
    fn same_version(&self, path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        let _ = path;
        cached.version() == fresh.version()
    }

    /// Attributes of `path` itself (lstat: a symlink is not followed).
    fn stat(&self, path: &Path) -> Result<Attr>;

    /// Fresh attributes of `path`, which the caches knew as `known`, for
    /// an open that must see changes made on the server: as `stat`, but a
    /// protocol whose stat is costly may ask only what tells the content's
    /// version, and keep the rest of `known`.
    fn stat_again(&self, path: &Path, known: &Attr) -> Result<Attr> {
        let _ = known;
        self.stat(path)
    }

    /// All entries of a directory except `.` and `..`.
    fn list(&self, path: &Path) -> Result<Vec<DirEntry>>;

    /// Up to `len` bytes at `offset`. Shorter only at end of file.
    fn read(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>>;

    /// Write `data` at `offset` of an existing file (requires `caps().random_write`).
    fn write(&self, path: &Path, offset: u64, data: &[u8]) -> Result<()>;

    /// Replace (or, with `append`, extend) the whole content of `path` with the
    /// bytes of `src`, read from its start. Creates the file if needed.
    fn upload(&self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()>;

    /// Create an empty regular file. With `exclusive`, fail with `Exists` if
    /// the name is taken; otherwise truncate an existing file.
    fn create(&self, path: &Path, mode: u32, exclusive: bool) -> Result<()>;

    fn setattr(&self, path: &Path, change: SetAttr) -> Result<()>;

    fn mkdir(&self, path: &Path, mode: u32) -> Result<()>;
    fn rmdir(&self, path: &Path) -> Result<()>;
    fn unlink(&self, path: &Path) -> Result<()>;

    /// Rename, replacing an existing file or empty directory at `to`
    /// atomically where the server can.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;

    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    fn readlink(&self, path: &Path) -> Result<std::path::PathBuf>;

    /// A new name `to` for the file `from` (a hard link). `NotPermitted`
    /// where the protocol or server cannot make one.
    fn link(&self, from: &Path, to: &Path) -> Result<()> {
        let _ = (from, to);
        Err(Error::NotPermitted)
    }

    fn statfs(&self, path: &Path) -> Result<StatFs>;

    /// Ask the server to commit a file to stable storage, where it can.
    fn fsync(&self, path: &Path) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Whatever text an error carries (often the server's), its message
    /// has no control characters.
    #[test]
    fn error_messages_escape_server_text() {
        let hostile = "bad\n[fake log line]\u{1b}]0;title\u{7}";
        for e in [
            Error::Unsupported(hostile.into()),
            Error::Transport(hostile.into()),
            Error::Failure(hostile.into()),
            Error::Setup(hostile.into()),
            Error::Busy(hostile.into()),
        ] {
            let shown = e.to_string();
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            assert!(shown.contains("bad\\n[fake log line]\\u{1b}]0;title\\u{7}"));
        }
    }

    #[test]
    fn unix_secs_rounds_down_on_both_sides_of_the_epoch() {
        assert_eq!(unix_secs(UNIX_EPOCH), 0);
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_millis(1500)), 1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(2)), -2);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_millis(2500)), -3);
    }

    #[test]
    fn a_time_range_refuses_what_it_cannot_carry() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let sftp = TimeRange::SFTP_V3;
        assert_eq!(sftp.secs(at(0)).ok(), Some(0));
        assert_eq!(sftp.secs(at(4_294_967_295)).ok(), Some(4_294_967_295));
        assert!(matches!(
            sftp.secs(at(4_294_967_296)),
            Err(Error::TimeOutOfRange)
        ));
        let pre_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert!(matches!(sftp.secs(pre_1970), Err(Error::TimeOutOfRange)));
        let ftp = TimeRange::FTP;
        assert!(ftp.secs(at(4_294_967_296)).is_ok(), "FTP goes past 2106");
        assert!(matches!(ftp.secs(pre_1970), Err(Error::TimeOutOfRange)));
    }
}
