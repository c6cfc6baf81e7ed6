//! Making a logged-in control connection: TCP (or implicit TLS) within the
//! deadline, `AUTH TLS`, the greeting, login, binary type, passive or active
//! mode, FEAT.
//!
//! Turns greeting, TLS and login failures into the errors the user must see
//! at start-up (`Setup`), and a full server (`421`) into `Busy`. Knows
//! nothing of files.

use std::io;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use suppaftp::types::FileType;
use suppaftp::{FtpError, Mode, RustlsFtpStream, Status};

use super::reply::{self, error_code, is_not_implemented, map_err, map_io};
use super::tls::{self, TimeoutTlsConnector, TlsSetup};
use super::wire::RawBytes;
use super::{FtpConnection, FtpSettings, Learned, Login, Security};
use crate::remote::{Error, Result};

/// What every connection of a mount shares: where and how to connect, the
/// login, the TLS set-up and what was learned about the server.
pub(super) struct Core {
    pub(super) settings: FtpSettings,
    login: Login,
    tls: Option<TlsSetup>,
    pub(super) learned: Learned,
    /// Owner shown for every file: the local user (remote ids mean nothing here).
    pub(super) ids: (u32, u32),
}

impl Core {
    /// Checks the TLS settings (trust roots) once; connects nothing yet.
    pub(super) fn new(settings: FtpSettings, login: Login) -> Result<Core> {
        let tls = match settings.security {
            Security::Plain => None,
            Security::ExplicitTls | Security::ImplicitTls => {
                if settings.no_verify_cert {
                    tracing::warn!(
                        "TLS certificate verification is off (no_verify_cert): the server is not authenticated"
                    );
                }
                Some(TlsSetup::new(
                    settings.cafile.as_deref(),
                    settings.no_verify_cert,
                )?)
            }
        };
        // SAFETY: getuid/getgid have no preconditions.
        let ids = unsafe { (libc::getuid(), libc::getgid()) };
        Ok(Core {
            settings,
            login,
            tls,
            learned: Learned::new(),
            ids,
        })
    }

    fn tls_connector(&self) -> Option<TimeoutTlsConnector> {
        self.tls
            .as_ref()
            .map(|t| t.connector(self.settings.timeout))
    }

    /// TCP connection (and TLS, and the greeting) up to the login prompt.
    fn open_control(&self) -> Result<RustlsFtpStream> {
        let s = &self.settings;
        match (s.security, self.tls_connector()) {
            (Security::ImplicitTls, Some(tls)) => self.open_implicit(tls),
            (_, tls) => {
                let tcp = connect_tcp(&s.host, s.port, s.timeout)?;
                let ftp = RustlsFtpStream::connect_with_stream(tcp)
                    .map_err(|e| self.greeting_error(e))?;
                match tls {
                    Some(tls) => ftp.into_secure(tls, &s.host).map_err(|e| self.tls_error(e)),
                    None => Ok(ftp),
                }
            }
        }
    }

    /// Implicit TLS: suppaftp connects without a timeout, so the whole
    /// connect runs on a helper thread that we stop waiting for at the
    /// deadline (it then ends on its own and its connection is dropped).
    fn open_implicit(&self, tls: TimeoutTlsConnector) -> Result<RustlsFtpStream> {
        let (host, port, timeout) = (
            self.settings.host.clone(),
            self.settings.port,
            self.settings.timeout,
        );
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("ftps-connect".into())
            .spawn(move || {
                let result =
                    RustlsFtpStream::connect_secure_implicit((host.as_str(), port), tls, &host);
                let _ = tx.send(result);
            })
            .map_err(Error::Io)?;
        let result = if timeout.is_zero() {
            rx.recv()
                .map_err(|_| Error::Transport("implicit TLS connect failed".into()))?
        } else {
            match rx.recv_timeout(timeout) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => return Err(Error::TimedOut),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Transport("implicit TLS connect failed".into()))
                }
            }
        };
        let mut ftp = result.map_err(|e| self.tls_error(e))?;
        // suppaftp wraps every data connection in TLS once it has a TLS
        // connector; the server has to be told so too, as after AUTH TLS.
        for line in ["PBSZ 0", "PROT P"] {
            ftp.custom_command(line, &[Status::CommandOk])
                .map_err(|e| match error_code(&e) {
                    Some(_) => Error::Setup(format!("{line} refused: {}", reply_text(&e))),
                    None => map_err(e, line),
                })?;
        }
        Ok(ftp)
    }

    fn greeting_error(&self, e: FtpError) -> Error {
        match error_code(&e) {
            Some(421) => Error::Busy(format!("server refused a connection: {}", reply_text(&e))),
            Some(_) => Error::Setup(format!(
                "{}:{} refused the connection: {}",
                self.settings.host,
                self.settings.port,
                reply_text(&e)
            )),
            None => map_err(e, "connecting"),
        }
    }

    /// A failure while setting up TLS: certificate problems are start-up
    /// errors the user must see as they are.
    fn tls_error(&self, e: FtpError) -> Error {
        let host = &self.settings.host;
        match e {
            FtpError::ConnectionError(io) => match tls::tls_failure(&io) {
                Some(msg) => Error::Setup(format!(
                    "TLS with {host} failed: {msg} (trust its CA with -o cafile=PATH, or skip the check with -o no_verify_cert)"
                )),
                None => map_io(io, "TLS handshake"),
            },
            FtpError::SecureError(msg) => Error::Setup(format!("TLS with {host} failed: {msg}")),
            other if error_code(&other) == Some(421) => Error::Busy(reply_text(&other)),
            other if error_code(&other).is_some() => Error::Setup(format!(
                "{host} does not do FTPS (AUTH TLS): {}",
                reply_text(&other)
            )),
            other => map_err(other, "starting TLS"),
        }
    }

    fn log_in(&self, ftp: &mut RustlsFtpStream) -> Result<()> {
        let user = &self.login.user;
        match ftp.login(user.as_str(), self.login.password()) {
            Ok(()) => Ok(()),
            Err(e) => match error_code(&e) {
                Some(421) => Err(Error::Busy(reply_text(&e))),
                Some(_) => Err(Error::Setup(format!(
                    "login failed for {user} on {}: {}{}",
                    self.settings.host,
                    reply_text(&e),
                    self.login.hint()
                ))),
                None => Err(map_err(e, "login")),
            },
        }
    }

    fn configure(&self, mut ftp: RustlsFtpStream) -> RustlsFtpStream {
        let timeout = self.settings.timeout;
        ftp.set_encoding(RawBytes);
        // PASV answers from behind NAT often name an unreachable (or a
        // third party's) address: always use the control connection's.
        ftp.set_passive_nat_workaround(true);
        ftp = ftp.passive_stream_builder(move |addr| {
            let s = connect_addr(addr, timeout).map_err(FtpError::ConnectionError)?;
            tls::set_deadlines(&s, timeout).map_err(FtpError::ConnectionError)?;
            Ok(s)
        });
        if self.settings.active {
            let accept = if timeout.is_zero() {
                Duration::from_secs(60)
            } else {
                timeout
            };
            ftp = ftp.active_mode(accept);
        } else if self.learned.epsv_refused.load(Ordering::Relaxed) {
            ftp.set_mode(Mode::Passive);
        } else {
            ftp.set_mode(Mode::ExtendedPassive);
        }
        ftp
    }
}

impl Core {
    pub(super) fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A logged-in connection in binary mode, its features known.
    pub(super) fn connect(self: &Arc<Core>) -> Result<FtpConnection> {
        let ftp = self.open_control()?;
        let mut ftp = self.configure(ftp);
        self.log_in(&mut ftp)?;
        // suppaftp starts in ASCII mode, which would rewrite line endings.
        ftp.transfer_type(FileType::Binary)
            .map_err(|e| map_err(e, "TYPE I"))?;
        let features = ServerFeatures::ask(&mut ftp)?;
        self.learned
            .listings_precise
            .store(features.mlst, Ordering::Relaxed);
        let mode = if self.settings.active {
            Mode::Active
        } else if self.learned.epsv_refused.load(Ordering::Relaxed) {
            Mode::Passive
        } else {
            Mode::ExtendedPassive
        };
        tracing::debug!("connected to {}: {features:?}", self.settings.host);
        Ok(FtpConnection::new(self.clone(), ftp, features, mode))
    }
}

/// Opens a TCP connection to any address of `host`, within `timeout` each.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let addrs = crate::remote::resolve::resolve(host, port, timeout)?;
    let mut last = None;
    for addr in addrs {
        match connect_addr(addr, timeout) {
            Ok(s) => {
                tls::set_deadlines(&s, timeout).map_err(Error::Io)?;
                // Commands are small and wait for their reply.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Error::TimedOut
        }
        Some(e) => Error::Setup(format!("cannot connect to {host}:{port}: {e}")),
        None => Error::Setup(format!("{host} has no address")),
    })
}

fn connect_addr(addr: std::net::SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    if timeout.is_zero() {
        TcpStream::connect(addr)
    } else {
        TcpStream::connect_timeout(&addr, timeout)
    }
}

/// The text of the server's reply inside an error, or the error itself.
pub(super) fn reply_text(e: &FtpError) -> String {
    match e {
        FtpError::UnexpectedResponse(resp) => reply::text(resp),
        other => other.to_string(),
    }
}

/// What FEAT says the server can do.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct ServerFeatures {
    pub(super) mlst: bool,
    pub(super) mfmt: bool,
    pub(super) mdtm: bool,
    pub(super) size: bool,
}

impl ServerFeatures {
    fn ask(ftp: &mut RustlsFtpStream) -> Result<ServerFeatures> {
        let feat = match ftp.feat() {
            Ok(f) => f,
            // No FEAT (RFC 959 servers): nothing optional.
            Err(e) if error_code(&e).is_some_and(is_not_implemented) => {
                return Ok(ServerFeatures::default())
            }
            Err(e) => return Err(map_err(e, "FEAT")),
        };
        let has = |name: &str| feat.keys().any(|k| k.eq_ignore_ascii_case(name));
        if has("UTF8") {
            // Tells servers that convert names (IIS, FileZilla) to use UTF-8;
            // a refusal changes nothing for us.
            if let Err(e) = ftp.opts("UTF8", Some("ON")) {
                if error_code(&e).is_none() {
                    return Err(map_err(e, "OPTS UTF8"));
                }
            }
        }
        Ok(ServerFeatures {
            mlst: has("MLST"),
            mfmt: has("MFMT"),
            mdtm: has("MDTM"),
            size: has("SIZE"),
        })
    }
}
