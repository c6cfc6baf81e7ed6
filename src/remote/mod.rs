//! The remote side: `trait Remote` (blocking, path-based), the types it speaks,
//! and one implementation per protocol behind a connection pool.
//!
//! Nothing here knows about FUSE or the caches. Paths are absolute paths on the
//! server, as bytes (`Path` on Unix), so non-UTF-8 names round-trip.

pub mod explain;
pub mod ftp;
pub mod netrc;
pub mod open;
pub mod pool;
pub mod private_names;
pub mod progress;
pub mod rename_aside;
pub mod resolve;
pub mod secrets;
pub mod sftp;
pub mod ssh;
pub mod text;

#[cfg(test)]
pub mod memory;

// The data types every layer speaks live in the leaf module `types`; they
// are re-exported here because the `Remote` trait is where they are used most.
pub use crate::types::{unix_secs, Attr, DirEntry, Kind, SetAttr, StatFs};

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::errno::ToErrno;

/// What a protocol can do; the filesystem logic chooses its strategy from this.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// `write` at any offset of an existing file (SFTP). Without it, writes are
    /// staged locally and uploaded whole with `upload`.
    pub random_write: bool,
    /// A resize replaces the file's content instead of changing it in
    /// place (FTP makes one by uploading): a handle or read stream opened
    /// before may hold the old content, so it is opened anew. Otherwise a
    /// resize is a write like any other.
    pub resize_rewrites: bool,
    pub symlinks: bool,
    /// `rename` replaces an existing target atomically.
    pub atomic_rename: bool,
    /// The file times the protocol can carry.
    pub times: TimeRange,
    /// The server keeps the times it is sent (access time too) to the
    /// second, and a write's time exactly: the filesystem may know a
    /// file's times after a change without asking. Without it (FTP: coarse
    /// listing times, no access times) it asks.
    pub exact_times: bool,
    /// `setattr` of a symlink acts on the file it points to, never on the
    /// link itself: the filesystem logic then sends none for a link.
    pub setattr_follows_symlinks: bool,
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

/// Errors from the remote layer. Each knows its errno (`ToErrno`, below);
/// the FUSE adapter (`fuse/`) asks for it (through the filesystem layer's error), nowhere
/// else. The text they carry often comes from the server: it is shown with
/// control characters escaped.
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
    /// A rename over a file failed after the old file was moved aside
    /// (`rename_aside`), and it could not be put back: it is under
    /// `aside`, so the caller must keep the new one (the source) as well.
    /// Otherwise the failure is `error`.
    #[error("{error}")]
    KeptAside {
        error: Box<Error>,
        aside: std::path::PathBuf,
    },
}

impl Error {
    /// Whether the connection that produced this error must be thrown away
    /// (invariant 2: never reuse a connection after a timeout).
    pub fn breaks_connection(&self) -> bool {
        match self {
            Error::KeptAside { error, .. } => error.breaks_connection(),
            _ => matches!(self, Error::TimedOut | Error::Transport(_)),
        }
    }
}

impl ToErrno for Error {
    /// The errno a local filesystem would give (invariant 5).
    fn to_errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::PermissionDenied => libc::EACCES,
            Error::NotPermitted => libc::EPERM,
            Error::NotADirectory => libc::ENOTDIR,
            Error::IsADirectory => libc::EISDIR,
            Error::NoSpace => libc::ENOSPC,
            Error::Unsupported(_) => libc::ENOTSUP,
            Error::ReadOnly => libc::EROFS,
            Error::Invalid => libc::EINVAL,
            Error::TimeOutOfRange => libc::EOVERFLOW,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::Transport(_) | Error::Failure(_) | Error::Setup(_) | Error::Busy(_) => libc::EIO,
            Error::Io(io) => io.raw_os_error().unwrap_or(libc::EIO),
            Error::KeptAside { error, .. } => error.to_errno(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// The server's names of some user and group ids (`Remote::id_names`), in
/// the order asked; an empty name where the server knows none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdNames {
    pub users: Vec<OsString>,
    pub groups: Vec<OsString>,
}

/// Names the server handles kept open for one writer between its calls
/// (`Remote::write_kept`), until `Remote::close_writer`.
pub type WriterId = u64;

/// A writer id no other writer of this process has.
pub fn new_writer_id() -> WriterId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A remote filesystem, reached through a pool of connections.
///
/// Every call is blocking and bounded by the configured timeout. Calls may run
/// concurrently from many threads; the implementation spreads them over its
/// connections. `meta` calls (stat, list, …) must not queue behind bulk
/// transfers.
pub trait Remote: Send + Sync {
    fn caps(&self) -> Caps;

    /// Whether a file's blocks are best fetched by one stream in order: a
    /// second stream of the same file costs a restart of several round
    /// trips (FTP), so a sequential reader's read past the read-ahead's
    /// queue waits for the read-ahead instead of fetching on its own. By
    /// default no: parallel requests cost nothing extra.
    fn reads_in_one_stream(&self) -> bool {
        false
    }

    /// Whether `fresh` (from `stat`) shows the same content of `path` as
    /// `cached` did (perhaps from a listing, which some protocols give with
    /// a coarser mtime): compared by version unless the protocol knows
    /// better.
    fn same_version(&self, path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        let _ = path;
        cached.version() == fresh.version()
    }

    /// Forgets what connections keep between calls (open handles, data
    /// read ahead), so that the next calls see the server as it is now
    /// (`rmount flush`).
    fn forget_kept_state(&self) {}

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

    /// As `list`, for work nobody waits for (listing ahead): where the
    /// remote keeps a connection for interactive metadata, not on that
    /// one, so it never delays a `stat`; it may refuse (`Error::Busy`)
    /// rather than wait or open a connection.
    fn list_in_background(&self, path: &Path) -> Result<Vec<DirEntry>> {
        self.list(path)
    }

    /// For much work nobody waits for (listing ahead): where the remote
    /// keeps connections for such work and none is idle, opens one if it
    /// has room (a login, paid on the caller's thread; never the metadata
    /// connection, never a wait for a busy one). Whether one is idle now.
    fn open_spare_connection(&self) -> bool {
        false
    }

    /// Whether `listed`, what a listing of its directory showed for
    /// `path`, is all a `stat` would tell (its mtime as exact). By default
    /// yes; a protocol whose listings may carry a coarser time says no
    /// where they do. Asks nothing of the server.
    fn listed_as_stat(&self, path: &Path, listed: &Attr) -> bool {
        let _ = (path, listed);
        true
    }

    /// `stat` of `path` that a fresh listing showed as `listed`: `listed`
    /// itself where `listed_as_stat`, otherwise what completes it (an
    /// exact time), asking as little as the protocol allows.
    fn stat_listed(&self, path: &Path, listed: &Attr) -> Result<Attr> {
        if self.listed_as_stat(path, listed) {
            return Ok(listed.clone());
        }
        self.stat(path)
    }

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

    /// As `create` (exclusive or truncating), but where the protocol
    /// can, the server's handle stays open for `writer`'s writes
    /// (`write_kept`) until `close_writer`: no close now, no open at the
    /// first write. Returns the new file's attributes where the protocol
    /// learned them in the same exchange (else the caller stats it).
    fn create_kept(
        &self,
        writer: WriterId,
        path: &Path,
        mode: u32,
        exclusive: bool,
    ) -> Result<Option<Attr>> {
        let _ = writer;
        self.create(path, mode, exclusive).map(|()| None)
    }

    /// As `write`, through a handle kept open for `writer` (opened by the
    /// first such write, or by `create_kept`). Success says the server
    /// took the bytes; only `close_writer` says the file is complete.
    fn write_kept(&self, writer: WriterId, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        let _ = writer;
        self.write(path, offset, data)
    }

    /// Closes every handle kept open for `writer`, checking each close's
    /// status (a server may report a failed write only there). Reports
    /// the first failure, including that of a handle closed earlier to
    /// free its connection.
    fn close_writer(&self, writer: WriterId) -> Result<()> {
        let _ = writer;
        Ok(())
    }

    fn setattr(&self, path: &Path, change: SetAttr) -> Result<()>;

    fn mkdir(&self, path: &Path, mode: u32) -> Result<()>;
    fn rmdir(&self, path: &Path) -> Result<()>;
    fn unlink(&self, path: &Path) -> Result<()>;

    /// Rename, replacing an existing file or empty directory at `to`
    /// atomically where the server can (elsewhere by moving the old file
    /// aside first, see `rename_aside`; `Error::KeptAside` when it could
    /// not be put back after a failure).
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

    /// Copies `len` bytes of `from` at `from_off` into the existing file
    /// `to` at `to_off` on the server itself, so the bytes do not cross
    /// the network; returns how many it copied. The caller keeps the range
    /// within `from` (the server may not say where it stopped) and never
    /// names one file twice. `Unsupported` only where the protocol or the
    /// server has no such copy at all (the caller then stops asking).
    fn copy_range(
        &self,
        from: &Path,
        from_off: u64,
        to: &Path,
        to_off: u64,
        len: u64,
    ) -> Result<u64> {
        let _ = (from, from_off, to, to_off, len);
        Err(Error::Unsupported(
            "the protocol cannot copy on the server".into(),
        ))
    }

    /// The server's names of the user ids `uids` and group ids `gids`
    /// (`IdNames`). `Unsupported` where the protocol or the server cannot
    /// tell them.
    fn id_names(&self, uids: &[u32], gids: &[u32]) -> Result<IdNames> {
        let _ = (uids, gids);
        Err(Error::Unsupported(
            "the protocol cannot ask for them".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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
