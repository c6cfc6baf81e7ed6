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
mod directory;
pub mod listing;
mod login;
mod read_stream;
mod reply;
mod session;
mod setattr;
mod stat;
mod tls;
mod transfer;
mod wire;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use suppaftp::{Mode, RustlsFtpStream, Status};

pub use login::Login;

use self::connect::{Core, ServerFeatures};
use self::read_stream::StreamCosts;
use self::reply::map_err;
use self::stat::ExactTimes;
use self::transfer::OpenRead;
use self::wire::path_arg;
use super::explain::Expect;
use super::pool::{Connection, Connector, Generation};
use super::{Attr, Caps, DirEntry, Error, Kind, Result, SetAttr, StatFs, TimeRange};

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
    /// What MDTM told of the exact times of listed files.
    exact_mtimes: ExactTimes,
    /// Listings come from `MLSD`, whose times are exact.
    listings_precise: AtomicBool,
    /// What restarting and continuing a download cost.
    stream_costs: StreamCosts,
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
            exact_mtimes: ExactTimes::new(),
            listings_precise: AtomicBool::new(false),
            stream_costs: StreamCosts::default(),
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
            exact_times: false,
            resize_rewrites: true,
            symlinks: false,
            // RNTO replaces an existing file on vsftpd and most servers.
            atomic_rename: true,
            times: TimeRange::FTP,
            // MFMT and SITE CHMOD act on what a listed link points to.
            setattr_follows_symlinks: true,
        }
    }

    /// A download is one stream from an offset; another costs a restart.
    fn reads_in_one_stream(&self) -> bool {
        true
    }

    /// A `LIST` time is coarse; a file's is exact once MDTM told it.
    fn listed_as_stat(&self, path: &Path, listed: &Attr) -> bool {
        let learned = &self.core.learned;
        listed.kind != Kind::File
            || learned.listings_precise.load(Ordering::Relaxed)
            || learned.exact_mtimes.is_exact(path, listed)
    }

    /// A listing's time may be coarse (minutes or days) where a stat asks
    /// MDTM: the same file if its listing still shows the cached time and
    /// that listed time was refined to exactly the fresh one.
    fn same_version(&self, path: &Path, cached: &Attr, fresh: &Attr) -> bool {
        self.core
            .learned
            .exact_mtimes
            .same_version(path, cached, fresh.size, fresh.mtime)
    }
}

/// One logged-in control connection, with the download it may keep open.
/// Its operations live by concern: `session` (its life and errors),
/// `transfer` (data connections), `directory` (listings), `stat` and
/// `setattr`.
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

impl Connection for FtpConnection {
    fn stat(&mut self, path: &Path) -> Result<Attr> {
        self.run(|c| c.stat_inner(path))
    }

    fn stat_again(&mut self, path: &Path, known: &Attr) -> Result<Attr> {
        self.run(|c| c.version_check(path, known))
    }

    fn stat_listed(&mut self, path: &Path, listed: &Attr) -> Result<Attr> {
        self.run(|c| c.complete_listed(path, listed))
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
            match self.stream_skip(path, offset, generation) {
                Some(0) => {}
                Some(gap) => {
                    if !self.skip_read(gap)? {
                        // The file ended before `offset`.
                        return Ok(Vec::new());
                    }
                }
                None => self.start_read(path, offset, generation)?,
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

    fn continues_read(&self, path: &Path, offset: u64) -> bool {
        self.stream_continues(path, offset)
    }

    fn holds_read(&self) -> bool {
        self.stream_held()
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
        self.run(|c| c.set_attr(path, change))
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
            c.learned().exact_mtimes.forget(path);
            c.ftp.rm(&arg).map_err(|e| {
                let err = map_err(e, "DELE");
                c.explain(err, path, Expect::NotDir)
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
            c.learned().exact_mtimes.moved(from, to);
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
