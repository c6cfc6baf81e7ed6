//! FTP and FTPS over suppaftp: one `FtpConnection` per control connection,
//! driven by the pool (`pool::Connection`), and the `FtpConnector` that makes
//! them (plain, explicit `AUTH TLS`, or implicit TLS).
//!
//! Owns the FTP dialogue: login, binary type, passive mode (EPSV, falling
//! back to PASV, always to the control connection's address) or active mode,
//! listings (MLSD where FEAT offers MLST, else `CWD` + `LIST -a`), stat from
//! the parent's listing refined by MDTM, streamed ranged reads (`REST` +
//! `RETR`, kept open for the next sequential read), uploads (`STOR`/`APPE`),
//! and the mapping of replies to `Error` with follow-up looks where the server
//! only says "550". Every path is sent absolute, so the working directory
//! never matters; names are carried as raw bytes (`wire`).
//!
//! Must not: cache anything beyond what one connection needs (the open
//! download stream) and the facts learned about the server (`Learned`); log
//! a password; let a server-given name with `/`, NUL, `.` or `..` through
//! (`listing` drops them); reuse a control connection after a protocol error
//! (any such error is `Transport`, and the pool drops the connection).
//!
//! Limits FTP imposes: no random writes (the filesystem layer stages and
//! uploads whole files or appended tails), no symlink creation, no owners;
//! an exclusive create is a look then a `STOR` (another client can slip in
//! between); times can be set only where the server has `MFMT` or
//! `SITE UTIME`; `statfs` is synthetic. Names are never converted: bytes
//! that are not UTF-8 reach the server exactly as listed.

mod connect;
pub mod listing;
mod login;
mod reply;
mod tls;
mod wire;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lru::LruCache;
use suppaftp::{FtpError, Mode, RustlsFtpStream, Status, TransferStream};

pub use login::Login;

use self::connect::{reply_text, Core, ServerFeatures};
use self::listing::ParsedEntry;
use self::reply::{code, error_code, is_not_implemented, is_refusal, map_err, map_io};
use self::tls::RustlsStream;
use self::wire::path_arg;
use super::pool::{Connection, Connector, Generation};
use super::progress::{Progress, ProgressReader};
use super::{Attr, Caps, DirEntry, Error, Kind, Result, SetAttr, StatFs, TimeRange};

/// A download stream left open for the next sequential read is reused only
/// this soon after its last read: later, the file may have changed (the same
/// bound as SFTP's cached handles), and the server's data timeout nears.
const STREAM_IDLE_MAX: Duration = Duration::from_secs(2);

/// A listing larger than this is refused rather than held in memory.
const MAX_LISTING_BYTES: u64 = 256 << 20;

/// Upload copy buffer.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Exact modification times (from MDTM) remembered for listings.
const EXACT_MTIMES: usize = 8192;

/// How long a connection that is being thrown away may still wait for the
/// server (the reply to an abandoned transfer).
const ABANDON_WAIT: Duration = Duration::from_secs(2);

/// How the control connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Plain,
    /// `AUTH TLS` on the plain port (`ftps://`).
    ExplicitTls,
    /// TLS from the first byte (`-o ftps_implicit`, port 990).
    ImplicitTls,
}

/// Where and how to connect. The caller resolves every default.
#[derive(Clone, Debug)]
pub struct FtpSettings {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Active mode (`PORT`/`EPRT`) instead of passive.
    pub active: bool,
    /// Bound on connecting and on every blocking socket operation. Zero: none.
    pub timeout: Duration,
    pub cafile: Option<PathBuf>,
    pub no_verify_cert: bool,
}

/// Facts learned about the server by one connection and used by all.
struct Learned {
    /// `EPSV` is refused: use `PASV`.
    epsv_refused: AtomicBool,
    /// `LIST -a` is refused: use plain `LIST`.
    list_a_refused: AtomicBool,
    /// `SITE UTIME` is refused.
    utime_refused: AtomicBool,
    /// The two-argument `MDTM` set a time (and so is understood) ...
    mdtm_set_works: AtomicBool,
    /// ... or is not understood.
    mdtm_set_refused: AtomicBool,
    /// How many connections have broken so far (see `FtpConnection::ensure_alive`).
    failures: AtomicU64,
    /// path → (size, listing mtime, exact mtime): listings show a time of
    /// minute or day precision; once MDTM told the exact time of a file with
    /// that listing time and size, listings show the exact time too, so
    /// `list` and `stat` agree on a file's version.
    exact_mtimes: Mutex<LruCache<PathBuf, (u64, SystemTime, SystemTime)>>,
}

impl Learned {
    fn new() -> Learned {
        Learned {
            epsv_refused: AtomicBool::new(false),
            list_a_refused: AtomicBool::new(false),
            utime_refused: AtomicBool::new(false),
            mdtm_set_works: AtomicBool::new(false),
            mdtm_set_refused: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            exact_mtimes: Mutex::new(LruCache::new(
                NonZeroUsize::MIN.saturating_add(EXACT_MTIMES - 1),
            )),
        }
    }

    fn mtimes(
        &self,
    ) -> std::sync::MutexGuard<'_, LruCache<PathBuf, (u64, SystemTime, SystemTime)>> {
        crate::sync::lock(&self.exact_mtimes)
    }

    fn exact_mtime(&self, path: &Path, size: u64, listed: SystemTime) -> Option<SystemTime> {
        match self.mtimes().get(path) {
            Some(&(s, l, exact)) if s == size && l == listed => Some(exact),
            _ => None,
        }
    }

    fn forget(&self, path: &Path) {
        self.mtimes().pop(path);
    }

    /// A rename moves what was learned of a file's time with it.
    fn moved(&self, from: &Path, to: &Path) {
        let mut mtimes = self.mtimes();
        mtimes.pop(to);
        if let Some(known) = mtimes.pop(from) {
            mtimes.put(to.to_path_buf(), known);
        }
    }
}

/// Makes logged-in control connections for the pool.
pub struct FtpConnector {
    core: Arc<Core>,
}

impl FtpConnector {
    /// Checks the TLS settings (trust roots) once; connects nothing yet.
    pub fn new(settings: FtpSettings, login: Login) -> Result<FtpConnector> {
        Ok(FtpConnector {
            core: Arc::new(Core::new(settings, login)?),
        })
    }
}

impl Connector for FtpConnector {
    type Conn = FtpConnection;

    fn connect(&self) -> Result<FtpConnection> {
        self.core.connect()
    }

    fn caps(&self) -> Caps {
        Caps {
            random_write: false,
            resize_rewrites: true,
            symlinks: false,
            // RNTO replaces an existing file on vsftpd and most servers.
            atomic_rename: true,
            times: TimeRange::FTP,
        }
    }

    /// A listing's time may be coarse (minutes or days) where a stat asks
    /// MDTM: the same file if its listing still shows the cached time and
    /// that listed time was refined to exactly the fresh one.
    fn same_version(&self, path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        cached.version() == fresh.version()
            || (cached.size == fresh.size
                && self
                    .core
                    .learned
                    .exact_mtime(path, cached.size, cached.mtime)
                    == Some(fresh.mtime))
    }
}

/// A download left open after a read that did not reach the end.
struct OpenRead {
    path: PathBuf,
    stream: TransferStream<RustlsStream>,
    pos: u64,
    generation: u64,
    last_used: Instant,
}

/// The kinds of data transfer.
enum DataCmd<'a> {
    Retr(&'a str),
    Stor(&'a str),
    Appe(&'a str),
    /// A listing command line (`LIST -a`, `MLSD /dir`).
    Listing(&'a str),
}

pub struct FtpConnection {
    // Dropped before the control connection it finishes on.
    reader: Option<OpenRead>,
    ftp: RustlsFtpStream,
    features: ServerFeatures,
    mode: Mode,
    core: Arc<Core>,
    /// `Learned::failures` when this connection last knew itself alive.
    seen_failures: u64,
    /// Set once an error left the dialogue in an unknown state.
    broken: bool,
}

impl Drop for FtpConnection {
    fn drop(&mut self) {
        if self.broken {
            // Do not wait for replies that will not come: finishing an open
            // download must fail at once.
            let _ = self.ftp.get_ref().shutdown(Shutdown::Both);
        }
        self.reader = None;
    }
}

impl FtpConnection {
    fn new(
        core: Arc<Core>,
        ftp: RustlsFtpStream,
        features: ServerFeatures,
        mode: Mode,
    ) -> FtpConnection {
        let seen_failures = core.learned.failures.load(Ordering::Relaxed);
        FtpConnection {
            reader: None,
            ftp,
            features,
            mode,
            core,
            seen_failures,
            broken: false,
        }
    }

    fn tls(&self) -> bool {
        self.core.uses_tls()
    }

    fn learned(&self) -> &Learned {
        &self.core.learned
    }

    /// Runs one operation: first makes sure the connection still works and
    /// ends an open download (FTP allows no other command during a
    /// transfer), then records whether the operation broke the connection.
    fn run<R>(&mut self, op: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        let result = self
            .ensure_alive()
            .and_then(|()| self.close_reader())
            .and_then(|()| op(self));
        if let Err(e) = &result {
            if e.breaks_connection() {
                self.mark_broken();
            }
        }
        result
    }

    fn mark_broken(&mut self) {
        if !self.broken {
            self.broken = true;
            self.learned().failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// When another connection broke since this one last worked, the cause
    /// (a server restart, a cut link) may have killed this one too, silently.
    /// The pool does not retry uploads, renames and the like, so check with
    /// a NOOP before sending one, and replace a dead connection by a fresh
    /// one: nothing of the operation has been sent yet.
    fn ensure_alive(&mut self) -> Result<()> {
        if self.broken {
            return Err(Error::Transport("connection already failed".into()));
        }
        let failures = self.learned().failures.load(Ordering::Relaxed);
        if failures == self.seen_failures {
            return Ok(());
        }
        self.seen_failures = failures;
        let alive = self
            .close_reader()
            .and_then(|()| self.ftp.noop().map_err(|e| map_err(e, "NOOP")));
        match alive {
            Ok(()) => Ok(()),
            Err(e) if e.breaks_connection() => {
                tracing::debug!("replacing a dead connection ({e})");
                // Marked first, so that the old connection is dropped
                // without waiting and the fresh one counts this failure seen.
                self.mark_broken();
                // Closed before its replacement opens: never more than
                // max_conns connections, even for a moment.
                let _ = self.ftp.get_ref().shutdown(std::net::Shutdown::Both);
                let fresh = self.core.connect()?;
                drop(std::mem::replace(self, fresh));
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Ends a download left open. Stopping early makes the server answer
    /// `426` (or `226` if it had sent everything already); both are fine.
    /// pure-ftpd answers an abandoned download with one line of statistics
    /// under the code it used last, `150`, and nothing after it.
    fn close_reader(&mut self) -> Result<()> {
        let Some(open) = self.reader.take() else {
            return Ok(());
        };
        match open.stream.finish() {
            Ok(()) => Ok(()),
            Err(FtpError::UnexpectedResponse(resp)) if matches!(code(&resp), 426 | 150) => Ok(()),
            Err(e) => Err(self.transfer_error(e, "ending a download")),
        }
    }

    /// Gives up on a transfer after a data-connection error: the connection
    /// is going to be dropped, so the transfer's reply is waited for only
    /// briefly — but it is read, because it may tell why (`522` below).
    fn abandon(&mut self, stream: TransferStream<RustlsStream>, err: Error, what: &str) -> Error {
        let _ = self.ftp.get_ref().set_read_timeout(Some(ABANDON_WAIT));
        match stream.finish() {
            Err(e) if self.tls() && error_code(&e) == Some(522) => self.transfer_error(e, what),
            _ => self.abandon_error(err, what),
        }
    }

    /// The server stopped reading an upload. Its reply usually says why (a
    /// full disk, a quota) and keeps the dialogue in step, so the connection
    /// stays, with its normal deadline; without a reply it goes.
    fn upload_refused(
        &mut self,
        stream: TransferStream<RustlsStream>,
        err: Error,
        what: &str,
    ) -> Error {
        let deadline = self.ftp.get_ref().read_timeout().ok().flatten();
        let _ = self.ftp.get_ref().set_read_timeout(Some(ABANDON_WAIT));
        match stream.finish() {
            Err(e)
                if error_code(&e).is_some()
                    && self.ftp.get_ref().set_read_timeout(deadline).is_ok() =>
            {
                self.transfer_error(e, what)
            }
            _ => self.abandon_error(err, what),
        }
    }

    /// Marks the connection unusable; the error returned must say so too.
    fn abandon_error(&mut self, err: Error, what: &str) -> Error {
        self.mark_broken();
        if err.breaks_connection() {
            err
        } else {
            Error::Transport(format!("{what}: {err}"))
        }
    }

    /// The error for a transfer's final reply. A `522` on a TLS data
    /// connection means the server wanted the control session resumed and
    /// did not take our resumption (vsftpd then ends the session).
    fn transfer_error(&mut self, e: FtpError, what: &str) -> Error {
        if self.tls() && error_code(&e) == Some(522) {
            self.mark_broken();
            return Error::Transport(format!("{what}: {REUSE_REFUSED}: {}", reply_text(&e)));
        }
        map_err(e, what)
    }

    /// Opens a data transfer, after `REST offset` when `offset > 0`. A server
    /// that refuses `EPSV` gets `PASV` from then on (each connection finds
    /// out at most once; the finding is shared).
    fn open_data(
        &mut self,
        cmd: &DataCmd<'_>,
        offset: u64,
    ) -> std::result::Result<TransferStream<RustlsStream>, FtpError> {
        if self.mode == Mode::ExtendedPassive && self.learned().epsv_refused.load(Ordering::Relaxed)
        {
            self.set_mode(Mode::Passive);
        }
        loop {
            if offset > 0 {
                let offset = usize::try_from(offset).map_err(|_| FtpError::BadResponse)?;
                self.ftp.resume_transfer(offset)?;
            }
            let opened = match cmd {
                DataCmd::Retr(p) => self.ftp.retr_as_stream(p),
                DataCmd::Stor(p) => self.ftp.put_with_stream(p),
                DataCmd::Appe(p) => self.ftp.append_with_stream(p),
                DataCmd::Listing(line) => self
                    .ftp
                    .custom_data_command(line, &[Status::AboutToSend, Status::AlreadyOpen])
                    .map(|(_, stream)| stream),
            };
            match opened {
                // EPSV unknown (500/502) or refused (501/504), or a 229
                // reply without a port. (A 522 is no reason: it also means
                // "data connections must be encrypted", and PASV cannot do
                // the IPv6 that EPSV's 522 is about.)
                Err(e)
                    if self.mode == Mode::ExtendedPassive
                        && error_code(&e).is_some_and(|c| is_not_implemented(c) || c == 229) =>
                {
                    tracing::debug!("EPSV refused ({}); using PASV", reply_text(&e));
                    self.learned().epsv_refused.store(true, Ordering::Relaxed);
                    self.set_mode(Mode::Passive);
                }
                other => return other,
            }
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.ftp.set_mode(mode);
    }

    /// Runs a listing command and returns its whole output.
    fn fetch_listing(&mut self, line: &str) -> Result<Vec<u8>> {
        let stream = match self.open_data(&DataCmd::Listing(line), 0) {
            Ok(stream) => stream,
            Err(e) => return Err(self.transfer_error(e, "listing")),
        };
        self.read_listing(stream)
    }

    /// The whole output of an open listing transfer.
    fn read_listing(&mut self, mut stream: TransferStream<RustlsStream>) -> Result<Vec<u8>> {
        let what = "listing";
        let mut body = Vec::new();
        let mut guarded = ProgressReader {
            inner: &mut stream,
            progress: self.progress(),
        };
        let read = read_all(&mut guarded, &mut body, MAX_LISTING_BYTES);
        if let Err(e) = read {
            let err = map_io(e, what);
            return Err(self.abandon(stream, err, what));
        }
        if body.len() as u64 > MAX_LISTING_BYTES {
            let err = Error::Transport(format!("{what}: more than {MAX_LISTING_BYTES} bytes"));
            return Err(self.abandon(stream, err, what));
        }
        stream.finish().map_err(|e| self.transfer_error(e, what))?;
        Ok(body)
    }

    /// The entries of `dir` as the server lists them.
    fn list_parsed(&mut self, dir: &Path) -> Result<Vec<ParsedEntry>> {
        let arg = path_arg(dir)?;
        if self.features.mlst {
            let body = self
                .fetch_listing(&format!("MLSD {arg}"))
                .map_err(|e| self.explain_dir_failure(e, dir))?;
            return Ok(listing::parse_mlsd(&body));
        }
        // LIST takes options and glob patterns in its argument: list the
        // working directory instead, so any name works.
        self.ftp.cwd(&arg).map_err(|e| {
            let err = map_err(e, "CWD");
            self.explain_dir_failure(err, dir)
        })?;
        let body = if self.learned().list_a_refused.load(Ordering::Relaxed) {
            self.fetch_listing("LIST")?
        } else {
            match self.open_data(&DataCmd::Listing("LIST -a"), 0) {
                // Refused as an option, or taken for a missing file name.
                Err(e)
                    if error_code(&e)
                        .is_some_and(|c| is_not_implemented(c) || c == 450 || c == 550) =>
                {
                    tracing::debug!("LIST -a refused ({}); using LIST", reply_text(&e));
                    self.learned().list_a_refused.store(true, Ordering::Relaxed);
                    self.fetch_listing("LIST")?
                }
                Err(e) => return Err(map_err(e, "listing")),
                Ok(stream) => self.read_listing(stream)?,
            }
        };
        Ok(listing::parse_list(&body, SystemTime::now()))
    }

    /// An entry as the mount shows it: owned by the local user, with the
    /// exact mtime where one is known for this listing time.
    fn finish_entry(&self, dir: &Path, parsed: ParsedEntry) -> DirEntry {
        let mut entry = parsed.entry;
        entry.attr.uid = self.core.ids.0;
        entry.attr.gid = self.core.ids.1;
        if !parsed.time_precise && entry.attr.kind == Kind::File {
            let path = dir.join(&entry.name);
            if let Some(exact) =
                self.learned()
                    .exact_mtime(&path, entry.attr.size, entry.attr.mtime)
            {
                entry.attr.mtime = exact;
                entry.attr.atime = exact;
            }
        }
        entry
    }

    /// A directory could not be entered or listed: say why.
    fn explain_dir_failure(&mut self, err: Error, dir: &Path) -> Error {
        if !is_refusal(&err) {
            return err;
        }
        match self.stat_inner(dir) {
            Ok(attr) if attr.kind != Kind::Dir => Error::NotADirectory,
            Ok(_) => Error::PermissionDenied,
            Err(Error::NotFound) => Error::NotFound,
            Err(Error::NotADirectory) => Error::NotADirectory,
            Err(e) if e.breaks_connection() => e,
            Err(_) => Error::PermissionDenied,
        }
    }

    fn stat_inner(&mut self, path: &Path) -> Result<Attr> {
        if path.parent().is_none() {
            return Ok(self.synthetic_dir());
        }
        if self.features.mlst {
            return self.stat_mlst(path);
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::Invalid);
        };
        let entries = match self.list_parsed(parent) {
            Ok(entries) => entries,
            // Servers often refuse listing a parent (say `/`) whose children
            // (`/pub`) are open: a directory we can enter still exists.
            Err(Error::PermissionDenied) => return self.stat_by_cwd(path, Error::PermissionDenied),
            Err(e) => return Err(e),
        };
        let Some(found) = entries.into_iter().find(|p| p.entry.name == name) else {
            return self.stat_by_cwd(path, Error::NotFound);
        };
        let precise = found.time_precise;
        // As listed: `finish_entry` may put in the exact time learned
        // before, but what is remembered pairs MDTM's with the listed one.
        let listed = found.entry.attr.mtime;
        let mut attr = self.finish_entry(parent, found).attr;
        if !precise && attr.kind == Kind::File && self.features.mdtm {
            self.refine_mtime(path, &mut attr, listed)?;
        }
        Ok(attr)
    }

    /// A path missing from its parent's listing may still be a directory we
    /// can enter (hidden, or the listing was refused).
    fn stat_by_cwd(&mut self, path: &Path, otherwise: Error) -> Result<Attr> {
        match self.ftp.cwd(path_arg(path)?) {
            Ok(()) => Ok(self.synthetic_dir()),
            Err(e) if error_code(&e).is_some_and(|c| (400..600).contains(&c)) => Err(otherwise),
            Err(e) => Err(map_err(e, "CWD")),
        }
    }

    /// The listing's time is of minute or day precision: ask MDTM for the
    /// exact one, and remember it for later listings.
    fn refine_mtime(&mut self, path: &Path, attr: &mut Attr, listed: SystemTime) -> Result<()> {
        match self.mdtm(path) {
            Ok(Some(exact)) => {
                attr.mtime = exact;
                attr.atime = exact;
                self.learned()
                    .mtimes()
                    .put(path.to_path_buf(), (attr.size, listed, exact));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if e.breaks_connection() => Err(e),
            // A file MDTM will not tell about keeps the listing's time.
            Err(_) => Ok(()),
        }
    }

    fn mdtm(&mut self, path: &Path) -> Result<Option<SystemTime>> {
        let resp = self
            .ftp
            .custom_command(format!("MDTM {}", path_arg(path)?), &[Status::File])
            .map_err(|e| map_err(e, "MDTM"))?;
        let text = reply::text(&resp);
        Ok(text.get(4..).and_then(listing::parse_mdtm))
    }

    fn mlst_facts(&mut self, path: &Path) -> Result<listing::MlstFacts> {
        let line = match self.ftp.mlst(Some(&path_arg(path)?)) {
            Ok(line) => line,
            Err(e) if error_code(&e).is_some_and(|c| c == 550 || c == 450) => {
                return Err(Error::NotFound)
            }
            Err(e) => return Err(map_err(e, "MLST")),
        };
        listing::parse_mlst_line(&wire::wire_to_bytes(&line))
            .ok_or_else(|| Error::Transport("MLST: unusable reply".into()))
    }

    fn stat_mlst(&mut self, path: &Path) -> Result<Attr> {
        let facts = self.mlst_facts(path)?;
        let mut attr = facts.attr;
        attr.uid = self.core.ids.0;
        attr.gid = self.core.ids.1;
        if !facts.time_precise && attr.kind == Kind::File && self.features.mdtm {
            let listed = attr.mtime;
            self.refine_mtime(path, &mut attr, listed)?;
        }
        Ok(attr)
    }

    /// What the root (or a directory known only by entering it) looks like:
    /// servers tell nothing about a directory from inside it.
    fn synthetic_dir(&self) -> Attr {
        Attr {
            kind: Kind::Dir,
            size: 0,
            perm: 0o755,
            uid: self.core.ids.0,
            gid: self.core.ids.1,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            nlink: 1,
        }
    }

    /// `stat` for an open of a file known as `known`. With MLST a stat is
    /// one command; without, it lists the whole parent directory, so where
    /// the server has SIZE and MDTM (two commands, no data connection)
    /// those tell whether the file is still the one known. A full stat
    /// only when they cannot: the file is not one any more, or a listing's
    /// coarse time is not yet paired with an exact one (the stat pairs it
    /// for the next time).
    fn version_check(&mut self, path: &Path, known: &Attr) -> Result<Attr> {
        if self.features.mlst
            || known.kind != Kind::File
            || !self.features.size
            || !self.features.mdtm
        {
            return self.stat_inner(path);
        }
        let arg = path_arg(path)?;
        let size = match self.ftp.size(&arg) {
            Ok(size) => size as u64,
            // Gone, or no longer a file: the full stat says which.
            Err(e) if error_code(&e).is_some_and(|c| (400..600).contains(&c)) => {
                return self.stat_inner(path)
            }
            Err(e) => return Err(map_err(e, "SIZE")),
        };
        let exact = match self.mdtm(path) {
            Ok(Some(exact)) => exact,
            Err(e) if e.breaks_connection() => return Err(e),
            _ => return self.stat_inner(path),
        };
        let known_time = known.mtime == exact
            || self
                .learned()
                .exact_mtime(path, known.size, known.mtime)
                .is_some_and(|t| t == exact);
        if size == known.size && known_time {
            // The same file: as known (a listing's time stays as shown).
            return Ok(known.clone());
        }
        if size != known.size {
            return Ok(Attr {
                size,
                mtime: exact,
                atime: exact,
                ctime: exact,
                ..known.clone()
            });
        }
        self.stat_inner(path)
    }

    /// Whether anything exists at `path`, cheaply where the server helps:
    /// SIZE answers for files and CWD for directories, with no data
    /// connection; otherwise the parent is listed.
    fn exists(&mut self, path: &Path) -> Result<bool> {
        if !self.features.size {
            return match self.stat_inner(path) {
                Ok(_) => Ok(true),
                Err(Error::NotFound) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let arg = path_arg(path)?;
        match self.ftp.size(&arg) {
            Ok(_) => return Ok(true),
            Err(e) if error_code(&e).is_some_and(|c| (400..600).contains(&c)) => {}
            Err(e) => return Err(map_err(e, "SIZE")),
        }
        match self.ftp.cwd(&arg) {
            Ok(()) => Ok(true),
            Err(e) if error_code(&e).is_some_and(|c| (400..600).contains(&c)) => Ok(false),
            Err(e) => Err(map_err(e, "CWD")),
        }
    }

    /// A command that answered with a bare refusal: look at the paths to
    /// say why, as a local filesystem would.
    fn explain(&mut self, err: Error, path: &Path, expect: Expect) -> Error {
        if !is_refusal(&err) {
            return err;
        }
        let looked = self.stat_inner(path);
        let parent_missing = |this: &mut Self| {
            path.parent().is_some_and(|p| {
                matches!(
                    this.stat_inner(p),
                    Err(Error::NotFound | Error::NotADirectory)
                )
            })
        };
        match (expect, looked) {
            (_, Err(e)) if e.breaks_connection() => e,
            (Expect::Absent, Ok(_)) => Error::Exists,
            (Expect::Absent, Err(Error::NotFound)) if parent_missing(self) => Error::NotFound,
            (Expect::File, Ok(attr)) if attr.kind == Kind::Dir => Error::IsADirectory,
            (Expect::EmptyDir, Ok(attr)) if attr.kind != Kind::Dir => Error::NotADirectory,
            (Expect::EmptyDir, Ok(_)) => match self.list_parsed(path) {
                Ok(entries) if !entries.is_empty() => Error::NotEmpty,
                Err(e) if e.breaks_connection() => e,
                _ => Error::PermissionDenied,
            },
            (Expect::NewFile, Ok(attr)) if attr.kind == Kind::Dir => Error::IsADirectory,
            (Expect::NewFile, Err(Error::NotFound)) if parent_missing(self) => Error::NotFound,
            (Expect::Absent | Expect::NewFile, _) => Error::PermissionDenied,
            (_, Err(Error::NotFound)) => Error::NotFound,
            (_, Err(Error::NotADirectory)) => Error::NotFound,
            _ => Error::PermissionDenied,
        }
    }

    /// RNTO failed: compare the two sides as rename(2) would.
    fn explain_rename(&mut self, err: Error, from: &Path, to: &Path) -> Error {
        if !is_refusal(&err) {
            return err;
        }
        let src = match self.stat_inner(from) {
            Ok(a) => a,
            Err(e) if e.breaks_connection() => return e,
            Err(_) => return Error::NotFound,
        };
        match self.stat_inner(to) {
            Ok(dst) if dst.kind == Kind::Dir && src.kind != Kind::Dir => Error::IsADirectory,
            Ok(dst) if dst.kind != Kind::Dir && src.kind == Kind::Dir => Error::NotADirectory,
            Ok(_) if src.kind == Kind::Dir => match self.list_parsed(to) {
                Ok(entries) if !entries.is_empty() => Error::NotEmpty,
                Err(e) if e.breaks_connection() => e,
                _ => Error::PermissionDenied,
            },
            Err(e) if e.breaks_connection() => e,
            Err(_) => self.explain(err, to, Expect::NewFile),
            Ok(_) => Error::PermissionDenied,
        }
    }

    /// A simple command expecting one of `ok`; a refusal is explained.
    fn command(&mut self, line: String, ok: &[Status], what: &str) -> Result<()> {
        self.ftp
            .custom_command(line, ok)
            .map(|_| ())
            .map_err(|e| map_err(e, what))
    }

    /// Uploads `src` with STOR or APPE.
    fn store(&mut self, path: &Path, src: &mut dyn Read, append: bool) -> Result<()> {
        let what = if append { "APPE" } else { "STOR" };
        let arg = path_arg(path)?;
        self.learned().forget(path);
        let cmd = if append {
            DataCmd::Appe(&arg)
        } else {
            DataCmd::Stor(&arg)
        };
        let mut stream = match self.open_data(&cmd, 0) {
            Ok(s) => s,
            Err(e) => {
                let err = map_err(e, what);
                return Err(self.explain(err, path, Expect::NewFile));
            }
        };
        let progress = self.progress();
        match copy_into(src, &mut stream, progress) {
            Ok(()) => {}
            Err(Copy::Local(e)) => {
                // The server keeps what it received; the caller's temporary
                // name (or append) makes that harmless.
                tls::end_upload(&mut stream);
                stream.finish().map_err(|e| self.transfer_error(e, what))?;
                return Err(Error::Io(e));
            }
            Err(Copy::Remote(e)) => {
                let err = map_io(e, what);
                return Err(self.upload_refused(stream, err, what));
            }
        }
        tls::end_upload(&mut stream);
        match stream.finish() {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = self.transfer_error(e, what);
                Err(self.explain(err, path, Expect::NewFile))
            }
        }
    }

    fn chmod(&mut self, path: &Path, mode: u32) -> Result<()> {
        let line = format!("CHMOD {:o} {}", mode & 0o7777, path_arg(path)?);
        match self.ftp.site(line) {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_err(e, "SITE CHMOD");
                Err(self.explain(err, path, Expect::Exists))
            }
        }
    }

    /// After creating: the server applied its umask; set exactly what was
    /// asked for where the server lets us (best effort).
    fn apply_mode(&mut self, path: &Path, mode: u32, server_default: u32) -> Result<()> {
        if mode & 0o7777 == server_default {
            return Ok(());
        }
        match self.chmod(path, mode) {
            Err(e) if e.breaks_connection() => Err(e),
            Err(e) => {
                tracing::debug!("cannot set the mode of {}: {e}", path.display());
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Sets the modification time the first way the server knows: `MFMT`
    /// (where FEAT lists it), `SITE UTIME` (ProFTPD, Pure-FTPd; sets the
    /// access time alike), or the two-argument `MDTM` (vsftpd's
    /// `mdtm_write`). Refusals are remembered for the mount.
    fn set_times(&mut self, path: &Path, mtime: SystemTime) -> Result<()> {
        let arg = path_arg(path)?;
        let stamp = listing::ftp_time(mtime)?;
        self.learned().forget(path);
        if self.features.mfmt {
            let result = self.command(format!("MFMT {stamp} {arg}"), &[Status::File], "MFMT");
            return result.map_err(|e| self.explain(e, path, Expect::Exists));
        }
        if !self.learned().utime_refused.load(Ordering::Relaxed) {
            let ok = [
                Status::CommandOk,
                Status::File,
                Status::RequestedFileActionOk,
            ];
            match self.command(format!("SITE UTIME {stamp} {arg}"), &ok, "SITE UTIME") {
                Err(Error::Unsupported(msg)) => {
                    tracing::debug!("SITE UTIME refused ({msg})");
                    self.learned().utime_refused.store(true, Ordering::Relaxed);
                }
                other => return other.map_err(|e| self.explain(e, path, Expect::Exists)),
            }
        }
        if self.features.mdtm && !self.learned().mdtm_set_refused.load(Ordering::Relaxed) {
            return self.set_mtime_by_mdtm(path, &arg, &stamp, mtime);
        }
        Err(Error::Unsupported(
            "setting times (no MFMT, SITE UTIME or MDTM)".into(),
        ))
    }

    /// `MDTM YYYYMMDDhhmmss path`. A server without this form takes the
    /// line for the name of a file, so until it has worked once, success is
    /// checked by reading the time back, and a refusal for an existing file
    /// means the form is unknown rather than that permission was denied.
    fn set_mtime_by_mdtm(
        &mut self,
        path: &Path,
        arg: &str,
        stamp: &str,
        mtime: SystemTime,
    ) -> Result<()> {
        let proven = self.learned().mdtm_set_works.load(Ordering::Relaxed);
        let unsupported = |this: &mut Self| {
            tracing::debug!("MDTM cannot set times here");
            this.learned()
                .mdtm_set_refused
                .store(true, Ordering::Relaxed);
            Error::Unsupported("setting times (no MFMT, SITE UTIME or MDTM)".into())
        };
        match self.command(format!("MDTM {stamp} {arg}"), &[Status::File], "MDTM") {
            Ok(()) if proven => Ok(()),
            Ok(()) => {
                let want = UNIX_EPOCH + Duration::from_secs(whole_secs(mtime));
                if self.mdtm(path)? == Some(want) {
                    self.learned().mdtm_set_works.store(true, Ordering::Relaxed);
                    Ok(())
                } else {
                    Err(unsupported(self))
                }
            }
            Err(e) if is_refusal(&e) => match self.explain(e, path, Expect::File) {
                // MDTM is about files: a directory's time cannot be set.
                Error::IsADirectory => Err(Error::Unsupported("MDTM of a directory".into())),
                Error::PermissionDenied if !proven => Err(unsupported(self)),
                other => Err(other),
            },
            Err(Error::Unsupported(_)) => Err(unsupported(self)),
            Err(e) => Err(e),
        }
    }

    /// Grows a file with zeros (APPE), as truncate(2) past the end does.
    /// Shrinking needs the head downloaded and the file rewritten: the
    /// filesystem layer does that with its staging (it stages every FTP
    /// write), so it is not done here.
    fn extend(&mut self, path: &Path, size: u64) -> Result<()> {
        let attr = self.stat_inner(path)?;
        match attr.kind {
            Kind::Dir => Err(Error::IsADirectory),
            _ if size == attr.size => Ok(()),
            _ if size > attr.size => {
                self.store(path, &mut io::repeat(0).take(size - attr.size), true)
            }
            _ => Err(Error::Unsupported(
                "shrinking a file in place over FTP".into(),
            )),
        }
    }

    /// The login directory, for `ftp://host/~/…`-style relative paths.
    pub fn home(&mut self) -> Result<PathBuf> {
        let pwd = self.ftp.pwd().map_err(|e| map_err(e, "PWD"))?;
        let bytes = wire::wire_to_bytes(&pwd);
        if !bytes.starts_with(b"/") {
            return Err(Error::Setup(format!(
                "the server's login directory is not a path: {pwd:?}"
            )));
        }
        Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }
}

fn whole_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The marker of the TLS-reuse failure in error messages.
const REUSE_REFUSED: &str = "TLS session reuse refused";

/// What an operation needs at a path, to explain a refusal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The operation creates the path (MKD).
    Absent,
    /// The operation writes a file at the path, new or existing (STOR).
    NewFile,
    /// The operation removes a file (DELE).
    File,
    /// The operation removes an empty directory (RMD).
    EmptyDir,
    /// Anything else that needs the path to exist.
    Exists,
}

/// Reads to the end, up to one byte past `max` (the caller checks). A TLS
/// data connection closed without close_notify counts as its end: the
/// transfer's reply on the (protected) control connection says whether all
/// of it arrived.
fn read_all(src: &mut impl Read, out: &mut Vec<u8>, max: u64) -> io::Result<()> {
    match src.take(max + 1).read_to_end(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(e),
    }
}

enum Copy {
    Local(io::Error),
    Remote(io::Error),
}

fn copy_into(
    src: &mut dyn Read,
    dst: &mut impl Write,
    mut progress: Progress,
) -> std::result::Result<(), Copy> {
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Local(e)),
        };
        // Piece by piece, so that a server that drips its reads trips the
        // minimum-progress rule.
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let started = Instant::now();
            let sent = match dst.write(rest) {
                Ok(0) => return Err(Copy::Remote(io::ErrorKind::WriteZero.into())),
                Ok(sent) => sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Copy::Remote(e)),
            };
            progress
                .account(sent, started.elapsed())
                .map_err(Copy::Remote)?;
            rest = &rest[sent..];
        }
    }
    dst.flush().map_err(Copy::Remote)
}

impl Connection for FtpConnection {
    fn stat(&mut self, path: &Path) -> Result<Attr> {
        self.run(|c| c.stat_inner(path))
    }

    fn stat_again(&mut self, path: &Path, known: &Attr) -> Result<Attr> {
        self.run(|c| c.version_check(path, known))
    }

    fn list(&mut self, path: &Path) -> Result<Vec<DirEntry>> {
        self.run(|c| {
            let parsed = c.list_parsed(path)?;
            Ok(parsed
                .into_iter()
                .map(|p| c.finish_entry(path, p))
                .collect())
        })
    }

    /// Not through `run`: a download left open by the previous read may be
    /// just the one to continue.
    fn read(
        &mut self,
        path: &Path,
        offset: u64,
        len: usize,
        generation: Generation,
    ) -> Result<Vec<u8>> {
        // FTP changes content only by uploading, which renames count.
        let generation = generation.names;
        let result = self.ensure_alive().and_then(|()| {
            let reuse = matches!(&self.reader, Some(r) if r.path == path
                && r.pos == offset
                && r.generation == generation
                && r.last_used.elapsed() < STREAM_IDLE_MAX);
            if !reuse {
                self.start_read(path, offset, generation)?;
            }
            self.continue_read(len)
        });
        if let Err(e) = &result {
            if e.breaks_connection() {
                self.mark_broken();
            }
        }
        result
    }

    fn write(&mut self, _path: &Path, _offset: u64, _data: &[u8]) -> Result<()> {
        Err(Error::Unsupported("random writes over FTP".into()))
    }

    fn upload(&mut self, path: &Path, src: &mut dyn Read, append: bool) -> Result<()> {
        self.run(|c| c.store(path, src, append))
    }

    fn create(&mut self, path: &Path, mode: u32, exclusive: bool) -> Result<()> {
        self.run(|c| {
            // FTP has no exclusive create: look first (a race with another
            // client remains possible).
            if exclusive && c.exists(path)? {
                return Err(Error::Exists);
            }
            c.store(path, &mut io::empty(), false)?;
            c.apply_mode(path, mode, 0o644)
        })
    }

    fn setattr(&mut self, path: &Path, change: SetAttr) -> Result<()> {
        self.run(|c| match change {
            SetAttr::Mode(mode) => c.chmod(path, mode).map_err(|e| match e {
                Error::Unsupported(_) => Error::Unsupported("SITE CHMOD".into()),
                other => other,
            }),
            SetAttr::Times { mtime, .. } => c.set_times(path, mtime),
            // Truncation to zero is an empty upload, growth an append of
            // zeros (see `extend`).
            SetAttr::Size(0) => c.store(path, &mut io::empty(), false),
            SetAttr::Size(size) => c.extend(path, size),
            SetAttr::Owner(None, None) => Ok(()),
            // FTP cannot change owners: EPERM, as chown(2) tells a user
            // who may not (cp -a and rsync -a go on).
            SetAttr::Owner(..) => Err(Error::NotPermitted),
        })
    }

    fn mkdir(&mut self, path: &Path, mode: u32) -> Result<()> {
        self.run(|c| {
            let arg = path_arg(path)?;
            if let Err(e) = c.ftp.mkdir(&arg) {
                let err = map_err(e, "MKD");
                return Err(c.explain(err, path, Expect::Absent));
            }
            c.apply_mode(path, mode, 0o755)
        })
    }

    fn rmdir(&mut self, path: &Path) -> Result<()> {
        self.run(|c| {
            let arg = path_arg(path)?;
            c.ftp.rmdir(&arg).map_err(|e| {
                let err = map_err(e, "RMD");
                c.explain(err, path, Expect::EmptyDir)
            })
        })
    }

    fn unlink(&mut self, path: &Path) -> Result<()> {
        self.run(|c| {
            let arg = path_arg(path)?;
            c.learned().forget(path);
            c.ftp.rm(&arg).map_err(|e| {
                let err = map_err(e, "DELE");
                c.explain(err, path, Expect::File)
            })
        })
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<()> {
        self.run(|c| {
            let (from_arg, to_arg) = (path_arg(from)?, path_arg(to)?);
            if let Err(e) = c.command(
                format!("RNFR {from_arg}"),
                &[Status::RequestFilePending],
                "RNFR",
            ) {
                return Err(c.explain(e, from, Expect::Exists));
            }
            c.command(
                format!("RNTO {to_arg}"),
                &[Status::RequestedFileActionOk, Status::CommandOk],
                "RNTO",
            )
            .map_err(|e| c.explain_rename(e, from, to))?;
            c.learned().moved(from, to);
            Ok(())
        })
    }

    fn symlink(&mut self, _target: &Path, _link: &Path) -> Result<()> {
        Err(Error::NotPermitted)
    }

    fn readlink(&mut self, path: &Path) -> Result<PathBuf> {
        self.run(|c| {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(Error::Invalid);
            };
            let (kind, target) = if c.features.mlst {
                let facts = c.mlst_facts(path)?;
                (facts.attr.kind, facts.link_target)
            } else {
                let entries = c.list_parsed(parent)?;
                let found = entries
                    .into_iter()
                    .find(|p| p.entry.name == name)
                    .ok_or(Error::NotFound)?;
                (found.entry.attr.kind, found.link_target)
            };
            match (kind, target) {
                (Kind::Symlink, Some(target)) => Ok(PathBuf::from(target)),
                _ => Err(Error::Invalid),
            }
        })
    }

    fn statfs(&mut self, _path: &Path) -> Result<StatFs> {
        // FTP cannot tell free space.
        Ok(StatFs::unknown())
    }

    fn fsync(&mut self, _path: &Path) -> Result<()> {
        // An upload is complete when the server confirms it (226); there is
        // nothing more to ask for.
        Ok(())
    }

    fn keepalive(&mut self) -> Result<()> {
        self.run(|c| c.ftp.noop().map_err(|e| map_err(e, "NOOP")))
    }
}

impl FtpConnection {
    /// Starts a download of `path` at `offset` (REST + RETR).
    fn start_read(&mut self, path: &Path, offset: u64, generation: u64) -> Result<()> {
        self.close_reader()?;
        let arg = path_arg(path)?;
        let stream = match self.open_data(&DataCmd::Retr(&arg), offset) {
            Ok(s) => s,
            Err(e) => {
                let err = map_err(e, "RETR");
                return Err(self.explain(err, path, Expect::File));
            }
        };
        self.reader = Some(OpenRead {
            path: path.to_path_buf(),
            stream,
            pos: offset,
            generation,
            last_used: Instant::now(),
        });
        Ok(())
    }

    /// The minimum-progress rule for a transfer starting now.
    fn progress(&self) -> Progress {
        Progress::new(self.core.settings.timeout)
    }

    /// Reads up to `len` bytes from the open download; at its end, checks the
    /// server's verdict on the transfer.
    fn continue_read(&mut self, len: usize) -> Result<Vec<u8>> {
        let tls = self.tls();
        let Some(open) = self.reader.as_mut() else {
            return Err(Error::Transport("no open download".into()));
        };
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        let mut at_end = false;
        let mut progress = Progress::new(self.core.settings.timeout);
        while filled < len {
            let read = open
                .stream
                .read(&mut buf[filled..])
                .and_then(|n| progress.moved(n).map(|()| n));
            match read {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && tls => {
                    at_end = true;
                    break;
                }
                Err(e) => {
                    let err = map_io(e, "RETR");
                    let Some(open) = self.reader.take() else {
                        return Err(err);
                    };
                    return Err(self.abandon(open.stream, err, "RETR"));
                }
            }
        }
        buf.truncate(filled);
        if at_end {
            if let Some(open) = self.reader.take() {
                open.stream
                    .finish()
                    .map_err(|e| self.transfer_error(e, "RETR"))?;
            }
        } else {
            open.pos += filled as u64;
            open.last_used = Instant::now();
        }
        Ok(buf)
    }
}
