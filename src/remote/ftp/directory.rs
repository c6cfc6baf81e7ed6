//! Directory listings over the wire: `MLSD`, or `CWD` + `LIST -a` (plain
//! `LIST` where the server refuses the option), read whole within a size
//! bound, parsed by `listing`, and entries finished as the mount shows them.
//!
//! Must not: send a path as `LIST`'s argument (it takes options and glob
//! patterns there), or hold a listing larger than `MAX_LISTING_BYTES`.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use suppaftp::TransferStream;

use super::connect::reply_text;
use super::listing::{self, ParsedEntry};
use super::reply::{error_code, is_not_implemented, map_err, map_io};
use super::tls::RustlsStream;
use super::transfer::DataCmd;
use super::wire::path_arg;
use super::FtpConnection;
use crate::remote::explain::Expect;
use crate::remote::progress::ProgressReader;
use crate::remote::{DirEntry, Error, Kind, Result};

/// A listing larger than this is refused rather than held in memory.
const MAX_LISTING_BYTES: u64 = 256 << 20;

impl FtpConnection {
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
    pub(super) fn list_parsed(&mut self, dir: &Path) -> Result<Vec<ParsedEntry>> {
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
    pub(super) fn finish_entry(&self, dir: &Path, parsed: ParsedEntry) -> DirEntry {
        let mut entry = parsed.entry;
        entry.attr.uid = self.core.ids.0;
        entry.attr.gid = self.core.ids.1;
        if !parsed.time_precise && entry.attr.kind == Kind::File {
            let path = dir.join(&entry.name);
            if let Some(exact) =
                self.learned()
                    .exact_mtimes
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
        self.explain(err, dir, Expect::Dir)
    }
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
