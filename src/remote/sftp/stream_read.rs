//! Pipelined reads for servers that tell their read limit
//! (`limits@openssh.com`, OpenSSH 8.8 and later).
//!
//! libssh2 asks for at most 30000 bytes per READ request and keeps as much
//! in flight as its channel's receive window allows, which bounds one
//! connection's speed on a long link. This opens an SFTP channel of its
//! own on the connection's session, with a large receive window, asks the
//! server's max-read-length, and keeps up to `IN_FLIGHT` bytes of READ
//! requests of that size in flight; each reply is read straight into the
//! caller's buffer (one copy, out of libssh2's packet). A read that
//! continues where the last one ended keeps requesting past its own end,
//! so the next block of a stream is on its way while this one is handed
//! over; any other read asks only for its own bytes.
//!
//! It owns that channel, one read handle on it and the requests in flight,
//! and nothing else: it only reads (writes, listings and the rest stay on
//! the connection's libssh2 channel), and it must be dropped before its
//! session. A server without the extension, or one that opens no further
//! channel, gets `None` from `open`, and the connection reads as before.
//! Packets are laid out in `wire`, the channel and the handshake are in
//! `channel`; replies may come in any order.

use std::collections::VecDeque;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::status::{map_sftp_code, FX_EOF};
use super::wire::{self, Packet, Reply};
use super::HANDLE_MAX_AGE;
use crate::remote::pool::Generation;
use crate::remote::{Error, Result};
use channel::Channel;

mod channel;

/// Bytes of READ requests kept in flight by a stream: 8 MiB fill a link
/// of 400 MiB/s at 20 ms round trip. It is also what libssh2 may hold
/// unread for the channel (the receive window is just above it).
const IN_FLIGHT: u64 = 8 << 20;

/// A read handle of the stream.
struct OpenFile {
    path: PathBuf,
    handle: Vec<u8>,
    /// `Generation::names` when opened, `Generation::writes` when read.
    names: u64,
    writes: u64,
    opened: Instant,
}

#[derive(Clone, Copy, Debug)]
struct Request {
    id: u32,
    offset: u64,
    len: u64,
}

/// A reply that came before the replies to earlier requests.
enum Early {
    Data(Vec<u8>),
    Status(u32),
}

pub struct StreamReader {
    channel: Channel,
    /// Bytes per READ request: a power of two, so requests aligned to it
    /// never cross a block boundary.
    chunk: u64,
    next_id: u32,
    file: Option<OpenFile>,
    /// Offset of the next byte the stream hands out.
    pos: u64,
    /// Bytes received from `pos` on, not handed out yet.
    carry: Vec<u8>,
    /// Requests sent, not answered yet: contiguous from `pos + carry.len()`.
    inflight: VecDeque<Request>,
    /// Offset after the last request sent.
    requested_to: u64,
    early: Vec<(u32, Early)>,
    /// Where the server said the file ends, while the stream goes on.
    eof: Option<u64>,
    /// After a short reply (the end is near): one request at a time.
    cautious: bool,
    /// A read ended at `pos`: a read there continues the stream.
    read_before: bool,
}

impl StreamReader {
    /// `Ok(None)` when the server offers no `limits@openssh.com`, or
    /// refuses one more channel; an error leaves the session in doubt.
    pub fn open(session: &ssh2::Session) -> Result<Option<StreamReader>> {
        let Some((channel, chunk)) = Channel::open(session)? else {
            return Ok(None);
        };
        tracing::debug!("pipelined SFTP reads of {chunk} bytes per request");
        Ok(Some(StreamReader {
            channel,
            chunk,
            next_id: 0,
            file: None,
            pos: 0,
            carry: Vec::new(),
            inflight: VecDeque::new(),
            requested_to: 0,
            early: Vec::new(),
            eof: None,
            cautious: false,
            read_before: false,
        }))
    }

    /// Reads `len` bytes of `path` at `offset` (fewer at the end of the
    /// file), as `Connection::read`.
    pub fn read(
        &mut self,
        path: &Path,
        offset: u64,
        len: usize,
        generation: Generation,
    ) -> Result<Vec<u8>> {
        let session = self.channel.session();
        let _guard = session.raw();
        let result = self.read_locked(path, offset, len, generation);
        if result.as_ref().is_err_and(|e| !e.breaks_connection()) {
            // The channel is at a packet boundary with nothing in flight
            // (see `fail`); the next read starts afresh.
            self.read_before = false;
        }
        result
    }

    fn read_locked(
        &mut self,
        path: &Path,
        offset: u64,
        len: usize,
        generation: Generation,
    ) -> Result<Vec<u8>> {
        let same_file = self
            .file
            .as_ref()
            .is_some_and(|f| f.path == path && f.names == generation.names);
        let continuing = same_file && self.read_before && self.pos == offset;
        let aged = self
            .file
            .as_ref()
            .is_none_or(|f| f.opened.elapsed() >= HANDLE_MAX_AGE);
        let writes_seen = self
            .file
            .as_ref()
            .is_some_and(|f| f.writes == generation.writes);
        self.read_before = false;
        if !same_file || (!continuing && aged) {
            self.close_file()?;
            self.open_file(path, generation)?;
            self.restart_at(offset);
        } else if !continuing || !writes_seen {
            // What is in flight (or its end-of-file mark) is for another
            // place, or may predate those writes.
            self.settle()?;
            self.restart_at(offset);
        }
        if let Some(f) = self.file.as_mut() {
            f.writes = generation.writes;
        }
        if self.eof.is_some_and(|end| offset >= end) {
            // Asked past the end seen: the file may have grown; ask again.
            self.settle()?;
            self.restart_at(offset);
        }
        // Filled as replies come, never zeroed first.
        let mut buf = Vec::with_capacity(len);
        let from_carry = self.carry.len().min(len);
        buf.extend(self.carry.drain(..from_carry));
        self.pos += from_carry as u64;
        let end = offset + len as u64;
        while buf.len() < len && self.eof.is_none_or(|e| self.pos < e) {
            self.send_requests(if continuing { u64::MAX } else { end })?;
            if self.inflight.is_empty() {
                break;
            }
            self.take_front(&mut buf, len)?;
        }
        self.read_before = true;
        Ok(buf)
    }

    /// Sends READ requests from `requested_to` up to `limit`, while less
    /// than `IN_FLIGHT` is in flight, and not past a known end. One write
    /// for them all.
    fn send_requests(&mut self, limit: u64) -> Result<()> {
        let Some(handle) = self.file.as_ref().map(|f| f.handle.clone()) else {
            return Err(Error::Transport("SFTP read without a handle".into()));
        };
        let mut out = Vec::new();
        loop {
            let from = self.pos + self.carry.len() as u64;
            let in_flight = self.requested_to - from;
            let stop = limit.min(self.eof.unwrap_or(u64::MAX));
            if self.requested_to >= stop
                || in_flight + self.chunk > IN_FLIGHT.max(self.chunk)
                || (self.cautious && !self.inflight.is_empty())
            {
                break;
            }
            let at = self.requested_to;
            let len = request_len(at, self.chunk, stop);
            let id = self.take_id();
            let packet = Packet::new(wire::FXP_READ, id)
                .string(&handle)?
                .u64(at)
                .u32(len as u32)
                .finish()?;
            out.extend_from_slice(&packet);
            self.inflight.push_back(Request {
                id,
                offset: at,
                len,
            });
            self.requested_to = at + len;
        }
        if out.is_empty() {
            return Ok(());
        }
        self.channel.write(&out)
    }

    /// Takes the reply to the oldest request: its bytes go to `dest` (up
    /// to `want` bytes in all), what does not fit to `carry`.
    fn take_front(&mut self, dest: &mut Vec<u8>, want: usize) -> Result<()> {
        let Some(&front) = self.inflight.front() else {
            return Ok(());
        };
        if front.offset != self.pos || !self.carry.is_empty() {
            return Err(Error::Transport("SFTP reads out of step".into()));
        }
        let (n, put) = match self.early_reply(front.id) {
            Some(Early::Data(data)) => {
                let put = data.len().min(want - dest.len());
                dest.extend_from_slice(&data[..put]);
                self.carry.extend_from_slice(&data[put..]);
                (data.len() as u64, put)
            }
            Some(Early::Status(code)) => return self.status_of_front(code),
            None => match self.receive_for_front(front, dest, want)? {
                Ok(n_put) => n_put,
                Err(code) => return self.status_of_front(code),
            },
        };
        self.inflight.pop_front();
        self.pos += put as u64;
        if n > front.len {
            return Err(Error::Transport("SFTP: more data than asked".into()));
        }
        if n < front.len {
            // A short reply (usually the end of the file): the rest of
            // this request is asked again, one request at a time.
            self.cautious = true;
            self.drain()?;
            self.requested_to = self.pos + self.carry.len() as u64;
        } else {
            self.cautious = false;
        }
        Ok(())
    }

    /// Reads replies until the one to `front` (others are kept in
    /// `early`). Its data: (bytes, bytes put in `dest`); a status: its code.
    fn receive_for_front(
        &mut self,
        front: Request,
        dest: &mut Vec<u8>,
        want: usize,
    ) -> Result<std::result::Result<(u64, usize), u32>> {
        loop {
            let (len, kind, id) = self.channel.header()?;
            if id == front.id && kind == wire::FXP_DATA {
                let n = self.channel.data_len(len, front.len)?;
                let put = (n as usize).min(want - dest.len());
                self.channel.append(dest, put)?;
                let rest = n as usize - put;
                self.carry.resize(rest, 0);
                self.channel.read_exact(&mut self.carry)?;
                return Ok(Ok((n, put)));
            }
            let answer = self.answer(len, kind, id)?;
            if id == front.id {
                return match answer {
                    Early::Status(code) => Ok(Err(code)),
                    Early::Data(_) => Err(Error::Transport("SFTP: an unexpected reply".into())),
                };
            }
            if !self.inflight.iter().any(|r| r.id == id) {
                return Err(Error::Transport("SFTP: a reply to no request".into()));
            }
            self.early.push((id, answer));
        }
    }

    /// The front request was answered with a status: the end of the file,
    /// or its error. Either way nothing more is in flight afterwards.
    fn status_of_front(&mut self, code: u32) -> Result<()> {
        let front = self.inflight.pop_front();
        if code == FX_EOF as u32 {
            self.eof = front.map(|r| r.offset);
            self.drain()?;
            self.requested_to = self.pos + self.carry.len() as u64;
            return Ok(());
        }
        let err = map_sftp_code(i32::try_from(code).unwrap_or(i32::MAX), "read");
        self.fail(err)
    }

    /// Returns `err` after bringing the channel to rest, unless that fails.
    fn fail<T>(&mut self, err: Error) -> Result<T> {
        self.settle()?;
        Err(err)
    }

    /// The kept reply to request `id`, if it came early.
    fn early_reply(&mut self, id: u32) -> Option<Early> {
        let at = self.early.iter().position(|(i, _)| *i == id)?;
        Some(self.early.swap_remove(at).1)
    }

    /// The rest of a reply that is not read into a caller's buffer.
    fn answer(&mut self, len: usize, kind: u8, id: u32) -> Result<Early> {
        match kind {
            wire::FXP_DATA => {
                let asked = self
                    .inflight
                    .iter()
                    .find(|r| r.id == id)
                    .map_or(0, |r| r.len);
                let n = self.channel.data_len(len, asked)?;
                let mut data = vec![0u8; n as usize];
                self.channel.read_exact(&mut data)?;
                Ok(Early::Data(data))
            }
            wire::FXP_STATUS => Ok(Early::Status(self.channel.status_code(len)?)),
            _ => Err(Error::Transport("SFTP: an unexpected reply".into())),
        }
    }

    /// Reads (and drops) the replies to every request in flight.
    fn drain(&mut self) -> Result<()> {
        for (id, _) in std::mem::take(&mut self.early) {
            self.inflight.retain(|r| r.id != id);
        }
        while !self.inflight.is_empty() {
            let (len, kind, id) = self.channel.header()?;
            let Some(at) = self.inflight.iter().position(|r| r.id == id) else {
                return Err(Error::Transport("SFTP: a reply to no request".into()));
            };
            self.answer(len, kind, id)?;
            self.inflight.remove(at);
        }
        Ok(())
    }

    /// Nothing in flight, nothing kept: the next read starts afresh
    /// (`restart_at` says where).
    fn settle(&mut self) -> Result<()> {
        self.read_before = false;
        self.carry.clear();
        self.eof = None;
        self.cautious = false;
        let drained = self.drain();
        self.requested_to = self.pos;
        drained
    }

    fn restart_at(&mut self, offset: u64) {
        self.pos = offset;
        self.requested_to = offset;
    }

    fn open_file(&mut self, path: &Path, generation: Generation) -> Result<()> {
        let reply = self.exchange(|id| {
            Ok(Packet::new(wire::FXP_OPEN, id)
                .string(path.as_os_str().as_bytes())?
                .u32(wire::FXF_READ)
                .u32(0))
        })?;
        if let Some(handle) = wire::handle(&reply) {
            self.file = Some(OpenFile {
                path: path.to_path_buf(),
                handle,
                names: generation.names,
                writes: generation.writes,
                opened: Instant::now(),
            });
            return Ok(());
        }
        // An OK status is no answer to an OPEN either.
        Err(wire::status_result(&reply, "open")
            .err()
            .unwrap_or_else(|| Error::Transport("open: an unexpected reply".into())))
    }

    /// Closes the read handle, if any, after what is in flight. Caller
    /// holds the session lock.
    fn close_file(&mut self) -> Result<()> {
        self.settle()?;
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let reply = self.exchange(|id| Packet::new(wire::FXP_CLOSE, id).string(&file.handle))?;
        if wire::status_result(&reply, "close").is_err() {
            // A read handle has nothing to commit; the server keeps no
            // state for it either way.
            tracing::debug!("closing a read handle: no OK status");
        }
        Ok(())
    }

    /// Closes the read handle (before a change on the server that an open
    /// handle could hinder).
    pub fn forget(&mut self) -> Result<()> {
        let session = self.channel.session();
        let _guard = session.raw();
        self.close_file()
    }

    fn take_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// One request and its reply, with nothing else in flight. Caller
    /// holds the session lock.
    fn exchange(&mut self, build: impl FnOnce(u32) -> Result<Packet>) -> Result<Reply> {
        let id = self.take_id();
        self.channel.write(&build(id)?.finish()?)?;
        match Reply::parse(self.channel.packet()?) {
            Some(reply) if reply.id == id => Ok(reply),
            _ => Err(Error::Transport("a reply to another request".into())),
        }
    }
}

/// The length of the request at `at`: up to the next multiple of `chunk`
/// (so that requests of a stream are aligned and never cross a block
/// boundary), and not past `stop`.
fn request_len(at: u64, chunk: u64, stop: u64) -> u64 {
    (chunk - at % chunk).min(stop.saturating_sub(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_aligned_and_stop_where_asked() {
        const K: u64 = 1024;
        let chunk = 128 * K;
        // A block of 1 MiB from its start: eight whole requests.
        let mut at = 0;
        let mut lens = Vec::new();
        while at < 1024 * K {
            let len = request_len(at, chunk, 1024 * K);
            lens.push(len);
            at += len;
        }
        assert_eq!(lens, vec![chunk; 8]);
        // From an odd offset: up to the next boundary first.
        assert_eq!(request_len(5 * K, chunk, u64::MAX), chunk - 5 * K);
        // Never past the end asked for.
        assert_eq!(request_len(5 * K, chunk, 9 * K), 4 * K);
        assert_eq!(request_len(9 * K, chunk, 9 * K), 0);
    }
}
