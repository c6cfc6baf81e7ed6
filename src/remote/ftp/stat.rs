//! What a path is: stat from the parent's listing (or `MLST`), its coarse
//! time refined by `MDTM` and remembered (`ExactTimes`) so listings and
//! stats agree on a file's version; the cheap `SIZE` + `MDTM` version check
//! for an open; the existence check before an exclusive create; and the
//! follow-up looks that explain a bare refusal (`remote::explain`).
//!
//! Must not: remember anything but exact times of files, each tied to the
//! size and listing time it was learned for.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use lru::LruCache;
use suppaftp::Status;

use super::reply::{self, error_code, map_err};
use super::wire::{self, path_arg};
use super::{listing, FtpConnection};
use crate::remote::explain::{self, Expect, Looks, Refusals};
use crate::remote::{Attr, Error, Kind, Result};

/// Exact modification times (from MDTM) remembered for listings.
const EXACT_MTIMES: usize = 8192;

/// path → (size, listing mtime, exact mtime): listings show a time of
/// minute or day precision; once MDTM told the exact time of a file with
/// that listing time and size, listings show the exact time too, so `list`
/// and `stat` agree on a file's version.
pub(super) struct ExactTimes(Mutex<LruCache<PathBuf, (u64, SystemTime, SystemTime)>>);

impl ExactTimes {
    pub(super) fn new() -> ExactTimes {
        ExactTimes(Mutex::new(LruCache::new(
            NonZeroUsize::MIN.saturating_add(EXACT_MTIMES - 1),
        )))
    }

    fn mtimes(
        &self,
    ) -> std::sync::MutexGuard<'_, LruCache<PathBuf, (u64, SystemTime, SystemTime)>> {
        crate::sync::lock(&self.0)
    }

    pub(super) fn exact_mtime(
        &self,
        path: &Path,
        size: u64,
        listed: SystemTime,
    ) -> Option<SystemTime> {
        match self.mtimes().get(path) {
            Some(&(s, l, exact)) if s == size && l == listed => Some(exact),
            _ => None,
        }
    }

    /// MDTM told `exact` for the file listed with `size` and `listed`.
    fn remember(&self, path: &Path, size: u64, listed: SystemTime, exact: SystemTime) {
        self.mtimes().put(path.to_path_buf(), (size, listed, exact));
    }

    /// Whether `listed` shows the exact time MDTM told for this size.
    pub(super) fn is_exact(&self, path: &Path, listed: &Attr) -> bool {
        matches!(self.mtimes().peek(path), Some(&(s, _, exact)) if s == listed.size && exact == listed.mtime)
    }

    pub(super) fn forget(&self, path: &Path) {
        self.mtimes().pop(path);
    }

    /// A rename moves what was learned of a file's time with it.
    pub(super) fn moved(&self, from: &Path, to: &Path) {
        let mut mtimes = self.mtimes();
        mtimes.pop(to);
        if let Some(known) = mtimes.pop(from) {
            mtimes.put(to.to_path_buf(), known);
        }
    }

    /// Whether the file known as `known` (perhaps from a listing, with a
    /// coarse time) is the one that now has `size` and the exact `mtime`:
    /// the same time, or a listed time MDTM refined to just that one.
    pub(super) fn same_version(
        &self,
        path: &Path,
        known: &Attr,
        size: u64,
        mtime: SystemTime,
    ) -> bool {
        known.size == size
            && (known.mtime == mtime
                || self.exact_mtime(path, known.size, known.mtime) == Some(mtime))
    }
}

impl FtpConnection {
    pub(super) fn stat_inner(&mut self, path: &Path) -> Result<Attr> {
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

    /// The stat of a file a fresh listing showed as `listed`: its exact
    /// time from MDTM (remembered for later listings), where the listing's
    /// is coarse; no listing again.
    pub(super) fn complete_listed(&mut self, path: &Path, listed: &Attr) -> Result<Attr> {
        let mut attr = listed.clone();
        if !self.features.mlst && attr.kind == Kind::File && self.features.mdtm {
            self.refine_mtime(path, &mut attr, listed.mtime)?;
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
                    .exact_mtimes
                    .remember(path, attr.size, listed, exact);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) if e.breaks_connection() => Err(e),
            // A file MDTM will not tell about keeps the listing's time.
            Err(_) => Ok(()),
        }
    }

    pub(super) fn mdtm(&mut self, path: &Path) -> Result<Option<SystemTime>> {
        let resp = self
            .ftp
            .custom_command(format!("MDTM {}", path_arg(path)?), &[Status::File])
            .map_err(|e| map_err(e, "MDTM"))?;
        let text = reply::text(&resp);
        Ok(text.get(4..).and_then(listing::parse_mdtm))
    }

    pub(super) fn mlst_facts(&mut self, path: &Path) -> Result<listing::MlstFacts> {
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
    pub(super) fn version_check(&mut self, path: &Path, known: &Attr) -> Result<Attr> {
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
        let exact_mtimes = &self.learned().exact_mtimes;
        if exact_mtimes.same_version(path, known, size, exact) {
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
    pub(super) fn exists(&mut self, path: &Path) -> Result<bool> {
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
    pub(super) fn explain(&mut self, err: Error, path: &Path, expect: Expect) -> Error {
        explain::explain(err, path, expect, REFUSALS, self)
    }

    /// RNTO failed: compare the two sides as rename(2) would.
    pub(super) fn explain_rename(&mut self, err: Error, from: &Path, to: &Path) -> Error {
        explain::explain_rename(err, from, to, REFUSALS, self)
    }
}

/// A bare `550` the follow-up looks cannot narrow down is most often a
/// refusal; RNTO replaces an existing file on vsftpd and most servers.
const REFUSALS: Refusals = Refusals {
    unexplained_is_denied: true,
    rename_replaces_files: true,
};

/// The follow-up looks that explain a bare refusal.
impl Looks for FtpConnection {
    fn kind(&mut self, path: &Path) -> Result<Kind> {
        Ok(self.stat_inner(path)?.kind)
    }

    fn has_entries(&mut self, dir: &Path) -> Result<bool> {
        Ok(!self.list_parsed(dir)?.is_empty())
    }
}
