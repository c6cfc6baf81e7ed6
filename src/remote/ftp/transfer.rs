//! Data transfers: opening a data connection (EPSV, falling back to PASV
//! for good), streamed ranged downloads (`REST` + `RETR`, kept open for the
//! next sequential read) and uploads (`STOR`/`APPE`).
//!
//! Must not: keep a download open longer than `STREAM_IDLE_MAX`, or read a
//! data connection's end as success before the server's reply says so.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use std::net::TcpStream;
use std::os::fd::AsRawFd;

use suppaftp::{DataStream, FtpError, Mode, Status, TransferStream};

use super::connect::reply_text;
use super::read_stream;
use super::reply::{error_code, is_not_implemented, map_err, map_io};
use super::tls::{self, RustlsStream};
use super::wire::path_arg;
use super::FtpConnection;
use crate::remote::explain::Expect;
use crate::remote::progress::Progress;
use crate::remote::{Error, Result};

/// A download stream left open for the next sequential read is reused only
/// this soon after its last read: later, the file may have changed (the same
/// bound as SFTP's cached handles), and the server's data timeout nears.
pub(super) const STREAM_IDLE_MAX: Duration = Duration::from_secs(2);

/// Upload copy buffer.
const UPLOAD_CHUNK: usize = 1 << 20;

/// Scratch buffer for the bytes a skip forward drops.
const SKIP_CHUNK: u64 = 256 << 10;

/// A download left open after a read that did not reach the end.
pub(super) struct OpenRead {
    pub(super) path: PathBuf,
    pub(super) stream: TransferStream<RustlsStream>,
    pub(super) pos: u64,
    pub(super) generation: u64,
    pub(super) last_used: Instant,
}

/// The kinds of data transfer.
pub(super) enum DataCmd<'a> {
    Retr(&'a str),
    Stor(&'a str),
    Appe(&'a str),
    /// A listing command line (`LIST -a`, `MLSD /dir`).
    Listing(&'a str),
}

impl FtpConnection {
    /// Opens a data transfer, after `REST offset` when `offset > 0`. A server
    /// that refuses `EPSV` gets `PASV` from then on (each connection finds
    /// out at most once; the finding is shared).
    pub(super) fn open_data(
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

    pub(super) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.ftp.set_mode(mode);
    }

    /// How the open download serves a read of `path` at `offset`: the bytes
    /// to skip first (0: it is right there), or None when a new download
    /// has to start.
    pub(super) fn stream_skip(&self, path: &Path, offset: u64, generation: u64) -> Option<u64> {
        let open = self.reader.as_ref()?;
        if open.generation != generation {
            return None;
        }
        self.stream_gap(open, path, offset)
    }

    /// Whether the open download would serve a read of `path` at `offset`
    /// (as far as this connection knows: not the generation).
    pub(super) fn stream_continues(&self, path: &Path, offset: u64) -> bool {
        self.reader
            .as_ref()
            .and_then(|open| self.stream_gap(open, path, offset))
            .is_some()
    }

    /// Whether a download is open and still fresh enough to be continued.
    pub(super) fn stream_held(&self) -> bool {
        self.reader
            .as_ref()
            .is_some_and(|open| open.last_used.elapsed() < STREAM_IDLE_MAX)
    }

    fn stream_gap(&self, open: &OpenRead, path: &Path, offset: u64) -> Option<u64> {
        if open.path != path || open.last_used.elapsed() >= STREAM_IDLE_MAX {
            return None;
        }
        read_stream::skip_to(open.pos, offset, self.learned().stream_costs.skip_limit())
    }

    /// Starts a download of `path` at `offset` (REST + RETR), after ending
    /// the one left open, if any; records what that cost.
    pub(super) fn start_read(&mut self, path: &Path, offset: u64, generation: u64) -> Result<()> {
        let started = Instant::now();
        if let Some(open) = &self.reader {
            tracing::debug!(
                "a read at {offset} of {} ends the download at {} of {}",
                path.display(),
                open.pos,
                open.path.display()
            );
        }
        self.close_reader()?;
        let arg = path_arg(path)?;
        let stream = match self.open_data(&DataCmd::Retr(&arg), offset) {
            Ok(s) => s,
            Err(e) => {
                let err = map_err(e, "RETR");
                return Err(self.explain(err, path, Expect::NotDir));
            }
        };
        self.learned().stream_costs.restarted(started.elapsed());
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
    pub(super) fn progress(&self) -> Progress {
        Progress::new(self.core.settings.timeout)
    }

    /// Reads up to `len` bytes from the open download; at its end, checks the
    /// server's verdict on the transfer.
    pub(super) fn continue_read(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        let started = Instant::now();
        let filled = self.fill(&mut buf, len)?;
        self.learned()
            .stream_costs
            .streamed(filled, started.elapsed());
        Ok(buf)
    }

    /// Reads and drops the next `n` bytes of the open download (a read
    /// further on than the stream is; see `read_stream`). False if the
    /// download ended first: the file is shorter than that.
    pub(super) fn skip_read(&mut self, mut n: u64) -> Result<bool> {
        let mut scratch = Vec::new();
        while n > 0 {
            let want = n.min(SKIP_CHUNK) as usize;
            scratch.clear();
            let got = self.fill(&mut scratch, want)?;
            if got < want {
                return Ok(false);
            }
            n -= got as u64;
        }
        Ok(true)
    }

    /// Appends the next `len` bytes of the open download to `buf` (empty),
    /// fewer only at its end (then the download is finished and its reply
    /// checked). Moves the stream's position on.
    fn fill(&mut self, buf: &mut Vec<u8>, len: usize) -> Result<usize> {
        let tls = self.tls();
        let Some(open) = self.reader.as_mut() else {
            return Err(Error::Transport("no open download".into()));
        };
        let mut at_end = false;
        let mut progress = Progress::new(self.core.settings.timeout);
        let plain = matches!(open.stream.get_ref(), DataStream::Tcp(_));
        if plain {
            buf.reserve_exact(len);
        } else {
            // TLS decrypts into an initialised buffer: zeroed once.
            buf.resize(len, 0);
        }
        let mut filled = 0;
        while filled < len {
            let read = match open.stream.get_mut() {
                DataStream::Tcp(tcp) => recv_into(tcp, buf, len - filled),
                other => other.read(&mut buf[filled..]),
            }
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
        Ok(filled)
    }

    /// Uploads `src` with STOR or APPE.
    pub(super) fn store(&mut self, path: &Path, src: &mut dyn Read, append: bool) -> Result<()> {
        let what = if append { "APPE" } else { "STOR" };
        let arg = path_arg(path)?;
        self.learned().exact_mtimes.forget(path);
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
}

/// One `recv` of at most `max` bytes straight into `buf`'s spare capacity
/// (reserved by the caller), so that a block is never zeroed before the
/// socket fills it: that cost as much CPU as the copy itself.
fn recv_into(tcp: &TcpStream, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    let max = max.min(spare.len());
    // SAFETY: recv writes at most `max` bytes, all within `spare`, which
    // this Vec owns; `set_len` then covers only the bytes it wrote.
    let n = unsafe { libc::recv(tcp.as_raw_fd(), spare.as_mut_ptr().cast(), max, 0) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
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
