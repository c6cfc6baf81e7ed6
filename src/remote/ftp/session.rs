//! The control connection's life: running an operation (after making sure
//! the connection still works and ending an open download), marking it
//! broken, replacing a dead one, and the errors that end a transfer.
//!
//! Must not: send a command once the dialogue is in an unknown state (any
//! such error is `Transport`, and the pool drops the connection), or wait
//! long for a reply on a connection that is being thrown away.

use std::net::Shutdown;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use suppaftp::{FtpError, Mode, RustlsFtpStream, Status, TransferStream};

use super::connect::{reply_text, Core, ServerFeatures};
use super::reply::{code, error_code, map_err};
use super::tls::RustlsStream;
use super::{wire, FtpConnection, Learned};
use crate::remote::{Error, Result};

/// How long a connection that is being thrown away may still wait for the
/// server (the reply to an abandoned transfer).
const ABANDON_WAIT: Duration = Duration::from_secs(2);

/// The marker of the TLS-reuse failure in error messages.
const REUSE_REFUSED: &str = "TLS session reuse refused";

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
    pub(super) fn new(
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

    pub(super) fn tls(&self) -> bool {
        self.core.uses_tls()
    }

    pub(super) fn learned(&self) -> &Learned {
        &self.core.learned
    }

    /// Runs one operation: first makes sure the connection still works and
    /// ends an open download (FTP allows no other command during a
    /// transfer), then records whether the operation broke the connection.
    pub(super) fn run<R>(&mut self, op: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
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

    pub(super) fn mark_broken(&mut self) {
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
    pub(super) fn ensure_alive(&mut self) -> Result<()> {
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
    pub(super) fn close_reader(&mut self) -> Result<()> {
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
    pub(super) fn abandon(
        &mut self,
        stream: TransferStream<RustlsStream>,
        err: Error,
        what: &str,
    ) -> Error {
        let _ = self.ftp.get_ref().set_read_timeout(Some(ABANDON_WAIT));
        match stream.finish() {
            Err(e) if self.tls() && error_code(&e) == Some(522) => self.transfer_error(e, what),
            _ => self.abandon_error(err, what),
        }
    }

    /// The server stopped reading an upload. Its reply usually says why (a
    /// full disk, a quota) and keeps the dialogue in step, so the connection
    /// stays, with its normal deadline; without a reply it goes.
    pub(super) fn upload_refused(
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
    pub(super) fn transfer_error(&mut self, e: FtpError, what: &str) -> Error {
        if self.tls() && error_code(&e) == Some(522) {
            self.mark_broken();
            return Error::Transport(format!("{what}: {REUSE_REFUSED}: {}", reply_text(&e)));
        }
        map_err(e, what)
    }

    /// A simple command expecting one of `ok`; a refusal is explained.
    pub(super) fn command(&mut self, line: String, ok: &[Status], what: &str) -> Result<()> {
        self.ftp
            .custom_command(line, ok)
            .map(|_| ())
            .map_err(|e| map_err(e, what))
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
