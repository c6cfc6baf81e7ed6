//! Streaming upload of a new, locally staged file while it is written
//! (servers without random writes): the upload to a temporary
//! name runs alongside the writes, reading the staging file as it grows,
//! so close only waits for the tail instead of for the whole file.
//!
//! It owns the uploader thread and the temporary file it writes. It works
//! only while writes arrive in order from offset 0; anything else cancels
//! it, and the caller falls back to uploading the staged file whole.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::remote::{self, Remote};
use crate::sync::{lock, wait};

/// Streams at once per process: each holds a data connection for as long
/// as its file is open, which must not starve other transfers.
const MAX_ACTIVE: usize = 1;
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct Tail {
    /// Bytes of the staging file written so far (contiguously from 0).
    written: u64,
    complete: bool,
    cancelled: bool,
}

#[derive(Default)]
struct Shared {
    tail: Mutex<Tail>,
    grew: Condvar,
}

pub struct Streamer {
    shared: Arc<Shared>,
    uploader: Option<JoinHandle<remote::Result<()>>>,
    temp: PathBuf,
}

impl Streamer {
    /// A directory above the temporary file was renamed from `from` to `to`.
    pub fn moved(&mut self, from: &Path, to: &Path) {
        crate::remote::private_names::move_under(&mut self.temp, from, to);
    }

    /// Starts uploading `file` (empty so far) to `temp`, unless enough
    /// streams are running already.
    pub fn start(remote: Arc<dyn Remote>, file: &File, temp: PathBuf) -> Option<Streamer> {
        if ACTIVE.fetch_add(1, Ordering::SeqCst) >= MAX_ACTIVE {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let started = file.try_clone().and_then(|file| {
            let shared = Arc::new(Shared::default());
            let mut reader = TailReader {
                file,
                pos: 0,
                shared: shared.clone(),
            };
            let target = temp.clone();
            let uploader = std::thread::Builder::new()
                .name("stream-upload".into())
                .spawn(move || {
                    let result = remote.upload(&target, &mut reader, false);
                    let cancelled = lock(&reader.shared.tail).cancelled;
                    if result.is_err() || cancelled {
                        let _ = remote.unlink(&target);
                    }
                    ACTIVE.fetch_sub(1, Ordering::SeqCst);
                    result
                })?;
            Ok((shared, uploader))
        });
        match started {
            Ok((shared, uploader)) => Some(Streamer {
                shared,
                uploader: Some(uploader),
                temp,
            }),
            Err(e) => {
                ACTIVE.fetch_sub(1, Ordering::SeqCst);
                tracing::debug!("cannot start a streaming upload: {e}");
                None
            }
        }
    }

    /// Records a write of the staging file. False when it was not the next
    /// bytes in order: the stream must then be cancelled.
    pub fn wrote(&self, offset: u64, len: u64) -> bool {
        let mut tail = lock(&self.shared.tail);
        if offset != tail.written {
            return false;
        }
        tail.written += len;
        self.shared.grew.notify_all();
        true
    }

    /// Waits for the upload of exactly `size` bytes; on success the content
    /// is under the returned temporary name.
    pub fn finish(mut self, size: u64) -> remote::Result<PathBuf> {
        {
            let mut tail = lock(&self.shared.tail);
            if tail.written != size {
                return Err(remote::Error::Invalid);
            }
            tail.complete = true;
            self.shared.grew.notify_all();
        }
        let result = match self.uploader.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(remote::Error::Failure("the upload thread failed".into())),
        };
        result.map(|()| self.temp.clone())
    }
}

impl Drop for Streamer {
    /// Cancels an unfinished stream; its thread removes the temporary file.
    fn drop(&mut self) {
        if self.uploader.is_some() {
            lock(&self.shared.tail).cancelled = true;
            self.shared.grew.notify_all();
        }
    }
}

/// Reads the staging file as it grows; ends when the stream is complete.
struct TailReader {
    file: File,
    pos: u64,
    shared: Arc<Shared>,
}

impl Read for TailReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tail = lock(&self.shared.tail);
        loop {
            if tail.cancelled {
                return Err(io::Error::other("streaming upload cancelled"));
            }
            if self.pos < tail.written {
                let n = buf.len().min((tail.written - self.pos) as usize);
                drop(tail);
                let got = self.file.read_at(&mut buf[..n], self.pos)?;
                self.pos += got as u64;
                return Ok(got);
            }
            if tail.complete {
                return Ok(0);
            }
            tail = wait(&self.shared.grew, tail);
        }
    }
}
