//! SFTP over ssh2: one `SftpConnection` per SSH session, driven by the pool.
//!
//! Owns the follow-up checks where SFTP v3 answers only "failure" (the
//! status codes themselves are mapped in `status`) and keeps at most one
//! open read handle per connection, so sequential reads do not pay an
//! open/close round trip per call. A write handle is kept open only while
//! the pool parks the connection for one writer (`write_kept`), and closed
//! (its status checked) at `close_kept`; a plain `write` closes its own
//! before it returns. Must not cache anything else. The OpenSSH extensions ssh2 lacks are in `ext`, the SYMLINK
//! argument order in `symlink_order`.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ssh2::{ErrorCode, File, FileStat, Sftp};

mod ext;
mod small_put;
mod status;
mod stream_read;
mod symlink_order;
mod wire;
mod write;

use super::explain::{self, Expect, Looks, Refusals};
use super::pool::{Connection, Connector, Generation};
use super::ssh::{self, Credentials, SshSettings};
use super::{Attr, Caps, DirEntry, Error, IdNames, Kind, Result, SetAttr, StatFs, TimeRange};
use ext::SftpExt;
use status::{map_err, map_io, FX_EOF, FX_OP_UNSUPPORTED};
use stream_read::StreamReader;
use symlink_order::probe_symlink_order;
pub use symlink_order::SymlinkOrder;

/// libssh2 asks the server for 4x the caller's buffer; larger single reads
/// keep the pipe full. The pool's callers read whole blocks (>= 1 MiB).
const READ_CHUNK: usize = 1 << 20;
const MIN_READ_CALL: usize = 32 << 10;
/// A read that continues the handle's last one (a stream read block after
/// block) calls libssh2 with up to this much, so it keeps 4x as much in
/// flight, past the end of this block: the next block's data is then on its
/// way while this one is taken, and a long link never waits a whole round
/// trip between blocks. (A seek drops what is in flight; a read that does
/// not continue asks only for its own bytes.)
const STREAM_READ_CALL: usize = 1 << 20;

/// Most names one listing may have (about 200 bytes each in memory).
const MAX_LISTING_ENTRIES: usize = 1_000_000;
/// A whole listing may take this many times the mount's timeout.
const LIST_TIMEOUTS: u32 = 3;

/// A cached handle is reopened when what its path names changed through
/// the mount (see `Generation`), and in any case after this long (changes
/// made by others).
const HANDLE_MAX_AGE: Duration = Duration::from_secs(2);

/// How SFTP v3 reads a bare "failure" the follow-up looks cannot narrow
/// down (as it was), and its plain rename refuses an existing target.
const REFUSALS: Refusals = Refusals {
    unexplained_is_denied: false,
    rename_replaces_files: false,
};

/// The follow-up looks that explain a bare "failure".
impl Looks for &Sftp {
    fn kind(&mut self, path: &Path) -> Result<Kind> {
        let st = self.lstat(path).map_err(|e| map_err(e, "stat"))?;
        Ok(attr_from_stat(&st).kind)
    }

    fn has_entries(&mut self, dir: &Path) -> Result<bool> {
        let entries = self.readdir(dir).map_err(|e| map_err(e, "readdir"))?;
        Ok(!entries.is_empty())
    }
}

fn to_time(secs: Option<u64>) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.unwrap_or(0))
}

/// Seconds as SFTP v3 carries them (unsigned 32 bits): a time outside
/// that range is refused, never sent as 0 or cut to 32 bits.
fn to_secs(t: SystemTime) -> Result<u64> {
    let secs = TimeRange::SFTP_V3.secs(t)?;
    u64::try_from(secs).map_err(|_| Error::TimeOutOfRange)
}

pub fn attr_from_stat(st: &FileStat) -> Attr {
    let mode = st.perm.unwrap_or(0o644);
    let kind = match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFREG => Kind::File,
        0 => Kind::File,
        _ => Kind::Other,
    };
    Attr {
        kind,
        size: st.size.unwrap_or(0),
        perm: (mode & 0o7777) as u16,
        uid: st.uid.unwrap_or(0),
        gid: st.gid.unwrap_or(0),
        atime: to_time(st.atime),
        mtime: to_time(st.mtime),
        ctime: to_time(st.mtime),
        nlink: 1,
    }
}

/// A single path component a server may legitimately send in a listing.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// Makes SSH sessions with an SFTP channel.
pub struct SftpConnector {
    pub settings: SshSettings,
    pub credentials: Arc<Credentials>,
    /// The host key of the first connection, the only one later ones accept.
    pub host_key: ssh::HostKeyPin,
    /// The server's SYMLINK argument order, learned on the first connection.
    pub symlink_order: std::sync::OnceLock<SymlinkOrder>,
}

impl Connector for SftpConnector {
    type Conn = SftpConnection;

    fn connect(&self) -> Result<SftpConnection> {
        let session = ssh::connect(&self.settings, &self.credentials, &self.host_key)?;
        let symlink_order = *self
            .symlink_order
            .get_or_init(|| probe_symlink_order(&session).unwrap_or(SymlinkOrder::TargetFirst));
        let sftp = session.sftp().map_err(|e| map_err(e, "starting SFTP"))?;
        Ok(SftpConnection {
            symlink_order,
            list_time: self.settings.timeout.max(Duration::from_secs(1)) * LIST_TIMEOUTS,
            ext: None,
            ext_refused: false,
            stream: None,
            stream_missing: false,
            sftp,
            session,
            reader: None,
            kept: None,
            raw_kept: None,
        })
    }

    fn caps(&self) -> Caps {
        Caps {
            random_write: true,
            exact_times: true,
            resize_rewrites: false,
            symlinks: true,
            atomic_rename: true,
            times: TimeRange::SFTP_V3,
            setattr_follows_symlinks: true,
        }
    }
}

struct CachedHandle {
    path: PathBuf,
    file: ssh2::File,
    pos: u64,
    generation: u64,
    /// `Generation::writes` when the handle last read.
    writes: u64,
    opened: Instant,
    /// A read ended at `pos`: a read there continues a stream.
    read_before: bool,
}

impl CachedHandle {
    fn fresh_for(&self, path: &Path, generation: u64) -> bool {
        self.path == path && self.generation == generation && self.opened.elapsed() < HANDLE_MAX_AGE
    }

    fn seek_to(&mut self, offset: u64) -> Result<()> {
        if self.pos != offset {
            self.file
                .seek(SeekFrom::Start(offset))
                .map_err(|e| map_io(e, "seek"))?;
            self.pos = offset;
        }
        Ok(())
    }
}

pub struct SftpConnection {
    // Fields drop in this order: handles and channels before the session.
    reader: Option<CachedHandle>,
    /// The write handle kept open for the writer this connection is
    /// parked for, and the path it was opened with.
    kept: Option<(PathBuf, File)>,
    /// Or that handle, of a new file, on the extensions' channel
    /// (`small_put`): dropped only with that channel.
    raw_kept: Option<small_put::RawKept>,
    /// Pipelined reads on a channel of their own, where the server tells
    /// its read limit (opened on the first read); else `reader` serves.
    stream: Option<StreamReader>,
    stream_missing: bool,
    /// Opened on first use: most connections never rename or statfs, and
    /// each channel costs the server another process.
    ext: Option<SftpExt>,
    ext_refused: bool,
    symlink_order: SymlinkOrder,
    /// How long one whole listing may take.
    list_time: Duration,
    sftp: Sftp,
    session: ssh2::Session,
}

impl SftpConnection {
    fn drop_handles(&mut self) {
        self.reader = None;
        if let Some(stream) = self.stream.as_mut() {
            if let Err(e) = stream.forget() {
                // Its channel is in doubt: the next read opens another.
                tracing::debug!("closing the stream's read handle: {e}");
                self.stream = None;
            }
        }
    }

    /// The pipelined reader; None where the server cannot have one.
    fn stream(&mut self) -> Result<Option<&mut StreamReader>> {
        if self.stream.is_none() && !self.stream_missing {
            match StreamReader::open(&self.session)? {
                Some(stream) => self.stream = Some(stream),
                None => {
                    tracing::debug!("no pipelined reads: the server does not tell its read limit");
                    self.stream_missing = true;
                }
            }
        }
        Ok(self.stream.as_mut())
    }

    /// The extensions' channel; None when the server opens no second
    /// channel (`MaxSessions 1`): the extensions are then missing, as on
    /// servers that lack them.
    fn ext(&mut self) -> Result<Option<&mut SftpExt>> {
        if self.raw_kept.is_some() {
            // Never with replies of its requests still unread: the kept
            // handle is closed first (the pool closes it before any other
            // use of a parked connection; this only keeps it so).
            if let Err(e) = self.close_kept_handle() {
                tracing::debug!("closing a kept handle before another request: {e}");
            }
        }
        if self.ext.is_none() && !self.ext_refused {
            match SftpExt::open(&self.session)? {
                Some(ext) => self.ext = Some(ext),
                None => {
                    tracing::debug!("the server opens no channel for SFTP extensions");
                    self.ext_refused = true;
                }
            }
        }
        Ok(self.ext.as_mut())
    }

    /// The result of a call on `path`, with a bare "failure" explained.
    fn explained<T>(
        &self,
        result: std::result::Result<T, ssh2::Error>,
        what: &str,
        path: &Path,
        expect: Expect,
    ) -> Result<T> {
        result.map_err(|e| self.explain_failure(map_err(e, what), path, expect))
    }

    /// SFTP v3 often answers only "failure"; look at the path to say why.
    fn explain_failure(&self, err: Error, path: &Path, expect: Expect) -> Error {
        explain::explain(err, path, expect, REFUSALS, &mut &self.sftp)
    }

    fn open_read(&mut self, path: &Path, generation: u64) -> Result<&mut CachedHandle> {
        let sftp = &self.sftp;
        reuse_or_open(&mut self.reader, path, generation, || {
            sftp.open(path).map_err(|e| map_err(e, "open"))
        })
    }
}

/// The cached handle in `slot` if it is still good for `path`, else a new
/// one from `open` (the stale one is closed first).
fn reuse_or_open<'a>(
    slot: &'a mut Option<CachedHandle>,
    path: &Path,
    generation: u64,
    open: impl FnOnce() -> Result<File>,
) -> Result<&'a mut CachedHandle> {
    if !slot.as_ref().is_some_and(|h| h.fresh_for(path, generation)) {
        *slot = None;
        *slot = Some(CachedHandle {
            path: path.to_path_buf(),
            file: open()?,
            pos: 0,
            generation,
            writes: 0,
            opened: Instant::now(),
            read_before: false,
        });
    }
    slot.as_mut().ok_or(Error::Invalid)
}

impl Connection for SftpConnection {
    fn stat(&mut self, path: &Path) -> Result<Attr> {
        let st = self.sftp.lstat(path).map_err(|e| map_err(e, "stat"))?;
        Ok(attr_from_stat(&st))
    }

    fn list(&mut self, path: &Path) -> Result<Vec<DirEntry>> {
        let mut dir = self.sftp.opendir(path).map_err(|e| map_err(e, "opendir"))?;
        let mut entries = Vec::new();
        // One deadline for the whole listing, and a bound on its size: a
        // server that keeps sending names must not hold the call, or fill
        // memory, without end. Either way the connection is dropped (it is
        // still in the middle of that listing).
        let deadline = Instant::now() + self.list_time;
        loop {
            if entries.len() >= MAX_LISTING_ENTRIES {
                return Err(Error::Transport(format!(
                    "the listing of {} has more than {MAX_LISTING_ENTRIES} names",
                    path.display()
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::TimedOut);
            }
            match dir.readdir() {
                Ok((name, st)) => {
                    let bytes = name.as_os_str().as_bytes();
                    if name.as_os_str() == "." || name.as_os_str() == ".." {
                        continue;
                    }
                    if !valid_name(bytes) {
                        tracing::warn!(
                            "ignoring an invalid name in a listing of {}",
                            path.display()
                        );
                        continue;
                    }
                    entries.push(DirEntry {
                        name: name.into_os_string(),
                        attr: attr_from_stat(&st),
                    });
                }
                Err(e) if e.code() == ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_FILE) => break,
                Err(e) if e.code() == ErrorCode::SFTP(FX_EOF) => break,
                Err(e) => return Err(map_err(e, "readdir")),
            }
        }
        Ok(entries)
    }

    fn read(
        &mut self,
        path: &Path,
        offset: u64,
        len: usize,
        generation: Generation,
    ) -> Result<Vec<u8>> {
        if let Some(stream) = self.stream()? {
            return stream.read(path, offset, len, generation);
        }
        let handle = self.open_read(path, generation.names)?;
        if handle.writes != generation.writes {
            // What libssh2 fetched ahead (and its end-of-file mark) may
            // predate those writes; a seek drops it, even to where it is.
            handle.pos = u64::MAX;
            handle.writes = generation.writes;
        }
        let continuing = handle.read_before && handle.pos == offset;
        handle.seek_to(offset)?;
        handle.read_before = false;
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            // libssh2 keeps 4x the buffer in flight and drops what is in
            // flight on the next seek; asking for a quarter of what remains
            // keeps the pipe full without fetching past `len`, unless a
            // stream goes on (see STREAM_READ_CALL).
            let want = if continuing {
                (len - filled).min(STREAM_READ_CALL)
            } else {
                ((len - filled) / 4)
                    .clamp(MIN_READ_CALL, READ_CHUNK)
                    .min(len - filled)
            };
            match handle.file.read(&mut buf[filled..filled + want]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.reader = None;
                    return Err(map_io(e, "read"));
                }
            }
        }
        buf.truncate(filled);
        handle.pos = offset + filled as u64;
        handle.read_before = true;
        Ok(buf)
    }

    fn write(&mut self, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
        self.write_once(path, offset, data)
    }

    fn write_kept(&mut self, path: &Path, offset: u64, data: &[u8]) -> Result<bool> {
        self.write_through_kept(path, offset, data)
    }

    fn create_kept(
        &mut self,
        path: &Path,
        mode: u32,
        exclusive: bool,
    ) -> Result<(bool, Option<Attr>)> {
        self.close_kept()?;
        if let Some(attr) = self.create_raw_kept(path, mode, exclusive)? {
            return Ok((true, attr));
        }
        let file = self.open_new(path, mode, exclusive)?;
        self.kept = Some((path.to_path_buf(), file));
        Ok((true, None))
    }

    fn close_kept(&mut self) -> Result<()> {
        self.close_kept_handle()
    }

    fn upload(&mut self, path: &Path, src: &mut dyn io::Read, append: bool) -> Result<()> {
        self.upload_whole(path, src, append)
    }

    fn create(&mut self, path: &Path, mode: u32, exclusive: bool) -> Result<()> {
        let mut file = self.open_new(path, mode, exclusive)?;
        file.close().map_err(|e| map_err(e, "close"))
    }

    fn setattr(&mut self, path: &Path, change: SetAttr) -> Result<()> {
        self.drop_handles();
        let mut st = FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: None,
            atime: None,
            mtime: None,
        };
        match change {
            SetAttr::Mode(mode) => st.perm = Some(mode & 0o7777),
            SetAttr::Owner(uid, gid) => {
                // SFTP sets uid and gid together: fill in the missing one.
                let cur = self.sftp.lstat(path).map_err(|e| map_err(e, "stat"))?;
                st.uid = uid.or(cur.uid);
                st.gid = gid.or(cur.gid);
            }
            SetAttr::Size(size) => st.size = Some(size),
            SetAttr::Times { atime, mtime } => {
                st.atime = Some(to_secs(atime)?);
                st.mtime = Some(to_secs(mtime)?);
            }
        }
        let result = self.sftp.setstat(path, st);
        self.explained(result, "setstat", path, Expect::Exists)
    }

    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<()> {
        let result = self.sftp.mkdir(path, (mode & 0o7777) as i32);
        self.explained(result, "mkdir", path, Expect::Absent)
    }

    fn rmdir(&mut self, path: &Path) -> Result<()> {
        self.drop_handles();
        let result = self.sftp.rmdir(path);
        self.explained(result, "rmdir", path, Expect::EmptyDir)
    }

    fn unlink(&mut self, path: &Path) -> Result<()> {
        self.drop_handles();
        let result = self.sftp.unlink(path);
        self.explained(result, "unlink", path, Expect::NotDir)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<()> {
        self.drop_handles();
        let posix = match self.ext()? {
            Some(ext) => ext.posix_rename(from, to),
            None => Ok(false),
        };
        match posix {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => return Err(self.explain_rename(e, from, to)),
        }
        // No posix-rename: plain SFTP rename refuses an existing target.
        let result = self.sftp.rename(from, to, None);
        result
            .map_err(|e| map_err(e, "rename"))
            .map_err(|e| self.explain_rename(e, from, to))
    }

    fn symlink(&mut self, target: &Path, link: &Path) -> Result<()> {
        // ssh2 sends its two arguments in order; OpenSSH reads the target
        // first (see `SymlinkOrder`).
        let result = match self.symlink_order {
            SymlinkOrder::TargetFirst => self.sftp.symlink(target, link),
            SymlinkOrder::LinkFirst => self.sftp.symlink(link, target),
        };
        self.explained(result, "symlink", link, Expect::Absent)
    }

    fn readlink(&mut self, path: &Path) -> Result<PathBuf> {
        self.sftp.readlink(path).map_err(|e| map_err(e, "readlink"))
    }

    fn link(&mut self, from: &Path, to: &Path) -> Result<()> {
        let linked = match self.ext()? {
            Some(ext) => ext.hardlink(from, to),
            None => Ok(false),
        };
        match linked {
            Ok(true) => Ok(()),
            // Without hardlink@openssh.com SFTP v3 has no way: as FTP.
            Ok(false) => Err(Error::NotPermitted),
            Err(e) => Err(self.explain_failure(e, to, Expect::Absent)),
        }
    }

    fn statfs(&mut self, path: &Path) -> Result<StatFs> {
        let st = match self.ext()? {
            Some(ext) => ext.statvfs(path)?,
            None => None,
        };
        Ok(st.unwrap_or_else(StatFs::unknown))
    }

    fn fsync(&mut self, path: &Path) -> Result<()> {
        // fsync@openssh.com works on a handle. Opened read-only: the file
        // may be read-only, and fsync(2) needs no write access either.
        let mut file = self
            .sftp
            .open(path)
            .map_err(|e| map_err(e, "open for fsync"))?;
        match file.fsync() {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::SFTP(FX_OP_UNSUPPORTED) => {}
            Err(e) => return Err(map_err(e, "fsync")),
        }
        file.close().map_err(|e| map_err(e, "close"))
    }

    fn copy_range(
        &mut self,
        from: &Path,
        from_off: u64,
        to: &Path,
        to_off: u64,
        len: u64,
    ) -> Result<u64> {
        // What the cached handle fetched ahead may predate the copy.
        self.drop_handles();
        let copied = match self.ext()? {
            Some(ext) => ext.copy_data(from, from_off, to, to_off, len),
            None => Ok(None),
        };
        match copied {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(Error::Unsupported(
                "no copy-data: OpenSSH 9.0 or later has it".into(),
            )),
            Err(e) => Err(self.explain_failure(e, to, Expect::Exists)),
        }
    }

    fn id_names(&mut self, uids: &[u32], gids: &[u32]) -> Result<IdNames> {
        let names = match self.ext()? {
            Some(ext) => ext.id_names(uids, gids)?,
            None => None,
        };
        names.ok_or_else(|| {
            Error::Unsupported(
                "no users-groups-by-id@openssh.com: OpenSSH 9.1 or later has it".into(),
            )
        })
    }

    fn keepalive(&mut self) -> Result<()> {
        // A tiny request proves the server still answers. (libssh2's own
        // keepalive sends nothing unless an interval was configured.)
        self.sftp
            .realpath(Path::new("."))
            .map(|_| ())
            .map_err(|e| map_err(e, "ping"))
    }
}

impl SftpConnection {
    fn explain_rename(&self, err: Error, from: &Path, to: &Path) -> Error {
        explain::explain_rename(err, from, to, REFUSALS, &mut &self.sftp)
    }

    /// The login directory, for `user@host:` paths.
    pub fn home(&self) -> Result<PathBuf> {
        self.sftp
            .realpath(Path::new("."))
            .map_err(|e| map_err(e, "realpath"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use status::{FX_NO_SUCH_FILE, FX_PERMISSION_DENIED};

    #[test]
    fn times_sftp_v3_cannot_carry_are_refused() {
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(to_secs(at(0)).ok(), Some(0));
        assert_eq!(to_secs(at(1_600_000_000)).ok(), Some(1_600_000_000));
        assert_eq!(
            to_secs(at(u64::from(u32::MAX))).ok(),
            Some(u64::from(u32::MAX))
        );
        let before_1970 = UNIX_EPOCH - Duration::from_secs(86_400);
        assert!(matches!(to_secs(before_1970), Err(Error::TimeOutOfRange)));
        let just_before = UNIX_EPOCH - Duration::from_millis(1);
        assert!(matches!(to_secs(just_before), Err(Error::TimeOutOfRange)));
        let after_2106 = at(u64::from(u32::MAX) + 1);
        assert!(matches!(to_secs(after_2106), Err(Error::TimeOutOfRange)));
    }

    #[test]
    fn a_failed_explaining_stat_keeps_a_broken_connection_visible() {
        /// A look that fails with what `map_err` makes of an SFTP error.
        struct FailedLook(ErrorCode);
        impl Looks for FailedLook {
            fn kind(&mut self, _: &Path) -> Result<Kind> {
                Err(map_err(ssh2::Error::from_errno(self.0), "stat"))
            }
            fn has_entries(&mut self, _: &Path) -> Result<bool> {
                Ok(false)
            }
        }
        let failed_look = |code| {
            let failure = Error::Failure("rename".into());
            explain::explain(
                failure,
                Path::new("/f"),
                Expect::Exists,
                REFUSALS,
                &mut FailedLook(code),
            )
        };
        let gone = ErrorCode::SFTP(FX_NO_SUCH_FILE);
        assert!(matches!(failed_look(gone), Error::NotFound));
        let cut = ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_SOCKET_RECV);
        assert!(failed_look(cut).breaks_connection());
        let denied = ErrorCode::SFTP(FX_PERMISSION_DENIED);
        assert!(matches!(failed_look(denied), Error::Failure(_)));
    }
}
