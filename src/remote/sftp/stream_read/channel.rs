//! The raw SFTP channel of the pipelined reader: opened with a large
//! receive window, the SFTP handshake on it (INIT, VERSION, and the
//! server's read limit from `limits@openssh.com`), and reading and writing
//! packets, or parts of them, on it. It owns the channel and frees it when
//! dropped (before its session); which requests are in flight and what
//! their replies mean is the reader's business, not this file's. Every
//! call but `open` expects the caller to hold the session lock.

use libssh2_sys as raw;

use super::super::ext::{read_exact, read_into, write_all};
use super::super::status::map_session_code;
use super::super::wire::{self, Packet, Reply};
use super::IN_FLIGHT;
use crate::remote::{Error, Result};

/// Receive window of the channel: the requests in flight and a little
/// more, so the server never waits for a window adjustment.
const WINDOW: u32 = (IN_FLIGHT + (2 << 20)) as u32;
/// SSH packet size: libssh2 takes no packet over 40000 bytes.
const PACKET_SIZE: u32 = 32 << 10;
/// Request sizes: at most this, and a server that allows less than
/// `MIN_CHUNK` is read as before.
const MAX_CHUNK: u64 = 1 << 20;
const MIN_CHUNK: u64 = 16 << 10;
/// What to ask for when the server says it has no limit.
const UNLIMITED_CHUNK: u64 = 256 << 10;
/// Longest reply other than DATA (status, handle, version, limits).
pub(super) const MAX_SMALL_REPLY: usize = 256 << 10;
/// The id of the handshake's one request (the reader's own come after).
const LIMITS_ID: u32 = u32::MAX;

pub(super) struct Channel {
    session: ssh2::Session,
    raw: *mut raw::LIBSSH2_CHANNEL,
}

// The pointer is only used while holding the session's own lock
// (`Session::raw`), exactly as ssh2 does for its own handles.
unsafe impl Send for Channel {}

impl Channel {
    /// The channel and the size of its READ requests (a power of two);
    /// `Ok(None)` when the server offers no `limits@openssh.com`, or
    /// refuses one more channel; an error leaves the session in doubt.
    pub fn open(session: &ssh2::Session) -> Result<Option<(Channel, u64)>> {
        let channel = {
            let mut guard = session.raw();
            // SAFETY: the guard gives exclusive access to a live session;
            // the type names a live byte string of that length.
            unsafe {
                raw::libssh2_channel_open_ex(
                    &mut *guard,
                    b"session".as_ptr().cast(),
                    7,
                    WINDOW,
                    PACKET_SIZE,
                    std::ptr::null(),
                    0,
                )
            }
        };
        if channel.is_null() {
            return match ssh2::Error::last_session_error(session).map(|e| e.code()) {
                Some(ssh2::ErrorCode::Session(
                    raw::LIBSSH2_ERROR_CHANNEL_FAILURE | raw::LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED,
                )) => Ok(None),
                _ => Err(Error::Transport(
                    "could not open an SFTP channel for reading".into(),
                )),
            };
        }
        // On `None` or an error, dropping it frees the channel.
        let channel = Channel {
            session: session.clone(),
            raw: channel,
        };
        let chunk = {
            let _guard = session.raw();
            channel.start()?
        };
        Ok(chunk.map(|chunk| (channel, chunk)))
    }

    /// Starts the SFTP subsystem and learns the request size; None when
    /// the server cannot tell it.
    fn start(&self) -> Result<Option<u64>> {
        // SAFETY: live channel, session lock held; both strings are live
        // byte strings of the lengths given.
        let rc = unsafe {
            raw::libssh2_channel_process_startup(
                self.raw,
                b"subsystem".as_ptr().cast(),
                9,
                b"sftp".as_ptr().cast(),
                4,
            )
        };
        match rc {
            0 => {}
            raw::LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED | raw::LIBSSH2_ERROR_CHANNEL_FAILURE => {
                return Ok(None)
            }
            rc => return Err(map_session_code(rc)),
        }
        // INIT carries no request id: version 3.
        self.write(&Packet::new(wire::FXP_INIT, 3).finish()?)?;
        let version = self.packet()?;
        let offered = wire::version_extensions(&version)
            .ok_or_else(|| Error::Transport("SFTP: no version packet".into()))?
            .iter()
            .any(|name| *name == b"limits@openssh.com");
        if !offered {
            return Ok(None);
        }
        self.write(&Packet::extended(LIMITS_ID, b"limits@openssh.com").finish()?)?;
        let reply = match Reply::parse(self.packet()?) {
            Some(reply) if reply.id == LIMITS_ID => reply,
            _ => return Err(Error::Transport("a reply to another request".into())),
        };
        let Some(max_read) = wire::max_read_length(&reply) else {
            return Ok(None);
        };
        let allowed = match max_read {
            0 => UNLIMITED_CHUNK,
            n => n.min(MAX_CHUNK),
        };
        if allowed < MIN_CHUNK {
            return Ok(None);
        }
        // The largest power of two the server allows.
        Ok(Some(1 << allowed.ilog2()))
    }

    /// The session, for its lock.
    pub fn session(&self) -> ssh2::Session {
        self.session.clone()
    }

    pub fn write(&self, data: &[u8]) -> Result<()> {
        write_all(self.raw, data)
    }

    pub fn read_exact(&self, buf: &mut [u8]) -> Result<()> {
        read_exact(self.raw, buf)
    }

    /// The length, type and id of the next reply; its body is next.
    pub fn header(&self) -> Result<(usize, u8, u32)> {
        let mut head = [0u8; 9];
        self.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
        if len < 5 {
            return Err(Error::Transport(format!("SFTP: a {len}-byte reply")));
        }
        Ok((len, head[4], id))
    }

    /// The data length of a DATA reply of `len` bytes answering a request
    /// of `asked` bytes (its data is next on the channel).
    pub fn data_len(&self, len: usize, asked: u64) -> Result<u64> {
        let mut n = [0u8; 4];
        self.read_exact(&mut n)?;
        let n = u64::from(u32::from_be_bytes(n));
        if len as u64 != 9 + n || n > asked {
            return Err(Error::Transport("SFTP: a malformed data reply".into()));
        }
        Ok(n)
    }

    /// The code of a STATUS reply of `len` bytes (the rest of it is read
    /// and dropped).
    pub fn status_code(&self, len: usize) -> Result<u32> {
        if len > MAX_SMALL_REPLY {
            return Err(Error::Transport(format!("SFTP: a {len}-byte status")));
        }
        let mut body = vec![0u8; len - 5];
        self.read_exact(&mut body)?;
        body.get(..4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .ok_or_else(|| Error::Transport("SFTP: a malformed status".into()))
    }

    /// One whole small packet (without its length).
    pub fn packet(&self) -> Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(5..=MAX_SMALL_REPLY).contains(&len) {
            return Err(Error::Transport(format!("SFTP: a {len}-byte reply")));
        }
        let mut body = vec![0u8; len];
        self.read_exact(&mut body)?;
        Ok(body)
    }

    /// Appends `n` bytes read from the channel to `dest`, whose capacity
    /// must hold them: read straight into its spare room, which is neither
    /// zeroed first nor counted before it is filled.
    pub fn append(&self, dest: &mut Vec<u8>, n: usize) -> Result<()> {
        let spare = dest.spare_capacity_mut();
        if spare.len() < n {
            return Err(Error::Invalid);
        }
        // SAFETY: `spare` has room for `n` bytes, which libssh2 only writes.
        unsafe { read_into(self.raw, spare.as_mut_ptr().cast(), n)? };
        // SAFETY: the `n` bytes after the length were just written.
        unsafe { dest.set_len(dest.len() + n) };
        Ok(())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _guard = self.session.raw();
        // SAFETY: the channel was opened by libssh2_channel_open_ex and is
        // freed exactly once, under the session lock.
        unsafe {
            raw::libssh2_channel_free(self.raw);
        }
    }
}
