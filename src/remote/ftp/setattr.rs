//! Changing attributes over FTP: modes by `SITE CHMOD`, modification times
//! by `MFMT`, `SITE UTIME` or the two-argument `MDTM` (whichever the server
//! has, refusals remembered), and sizes by an empty upload or appended
//! zeros.
//!
//! Must not: shrink a file in place (the filesystem layer stages that), or
//! report a time as set before the server is known to have set it.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use suppaftp::Status;

use super::reply::{is_refusal, map_err};
use super::wire::path_arg;
use super::{listing, FtpConnection};
use crate::remote::explain::Expect;
use crate::remote::{unix_secs, Error, Kind, Result, SetAttr};

impl FtpConnection {
    /// `Connection::setattr`, inside `run`.
    pub(super) fn set_attr(&mut self, path: &Path, change: SetAttr) -> Result<()> {
        match change {
            SetAttr::Mode(mode) => self.chmod(path, mode).map_err(|e| match e {
                Error::Unsupported(_) => Error::Unsupported("SITE CHMOD".into()),
                other => other,
            }),
            SetAttr::Times { mtime, .. } => self.set_times(path, mtime),
            // Truncation to zero is an empty upload, growth an append of
            // zeros (see `extend`).
            SetAttr::Size(0) => self.store(path, &mut io::empty(), false),
            SetAttr::Size(size) => self.extend(path, size),
            SetAttr::Owner(None, None) => Ok(()),
            // FTP cannot change owners: EPERM, as chown(2) tells a user
            // who may not (cp -a and rsync -a go on).
            SetAttr::Owner(..) => Err(Error::NotPermitted),
        }
    }

    pub(super) fn chmod(&mut self, path: &Path, mode: u32) -> Result<()> {
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
    pub(super) fn apply_mode(&mut self, path: &Path, mode: u32, server_default: u32) -> Result<()> {
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
        self.learned().exact_mtimes.forget(path);
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
                let want =
                    UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_secs(mtime)).unwrap_or(0));
                if self.mdtm(path)? == Some(want) {
                    self.learned().mdtm_set_works.store(true, Ordering::Relaxed);
                    Ok(())
                } else {
                    Err(unsupported(self))
                }
            }
            Err(e) if is_refusal(&e) => match self.explain(e, path, Expect::NotDir) {
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
}
