//! The OpenSSH SFTP extensions that `ssh2` does not wrap:
//! `posix-rename@openssh.com` (rename over an existing file, atomically),
//! `statvfs@openssh.com` (for `df`), `hardlink@openssh.com` (link),
//! `copy-data` (a copy made by the server itself, OpenSSH 9.0) and
//! `users-groups-by-id@openssh.com` (owners' names, OpenSSH 9.1).
//!
//! `ssh2::Sftp` hides its raw pointer, so this opens a second, raw SFTP
//! channel on the same session and calls libssh2 directly. It owns that
//! channel and nothing else; it must be dropped before its session.
//! libssh2 has no call for the last three: their requests (and the
//! OPEN/CLOSE of the handles copy-data needs, which libssh2 keeps to
//! itself) are written to the channel and their replies read back here,
//! whole packets at a time, so the channel stays at a packet boundary for
//! libssh2's own requests. The packets themselves are laid out in `wire`.

use std::ffi::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libssh2_sys as raw;

use super::wire::{self, Packet, Reply};
use crate::remote::{Error, IdNames, Result, StatFs};

extern "C" {
    // Exported by the libssh2 that libssh2-sys builds (1.11), not declared by it.
    fn libssh2_sftp_posix_rename_ex(
        sftp: *mut raw::LIBSSH2_SFTP,
        source: *const c_char,
        source_len: usize,
        dest: *const c_char,
        dest_len: usize,
    ) -> c_int;
    fn libssh2_sftp_statvfs(
        sftp: *mut raw::LIBSSH2_SFTP,
        path: *const c_char,
        path_len: usize,
        st: *mut raw::LIBSSH2_SFTP_STATVFS,
    ) -> c_int;
    fn libssh2_sftp_get_channel(sftp: *mut raw::LIBSSH2_SFTP) -> *mut raw::LIBSSH2_CHANNEL;
}

/// LIBSSH2_FX_OP_UNSUPPORTED: the server does not offer the extension.
const FX_OP_UNSUPPORTED: u64 = 8;

/// Longest reply accepted: OpenSSH sends at most 256 KiB.
const MAX_REPLY: usize = 1 << 20;
/// A server copies this much per copy-data request: a few seconds of
/// disk work at most, well within the mount's timeout.
const COPY_CHUNK: u64 = 64 << 20;
/// Ids of each kind per users-groups-by-id request: far below the 256 KiB
/// a request may have.
const ID_BATCH: usize = 1024;
/// Request ids of our own requests: far from the ones libssh2 counts up
/// from 0 (replies are read at once, so they could not mix anyway).
const OWN_REQUEST_IDS: u32 = 0xf000_0000;

/// A raw SFTP channel on a session, used only for the extensions.
pub struct SftpExt {
    session: ssh2::Session,
    sftp: *mut raw::LIBSSH2_SFTP,
    /// Our next request id.
    next_id: u32,
    /// Replies read while waiting for another (a server may answer
    /// requests sent together in any order), by id; ids still to be
    /// answered are in `due`.
    early: Vec<Reply>,
    due: Vec<u32>,
}

// The pointer is only used while holding the session's own lock
// (`Session::raw`), exactly as ssh2 does for its own handles.
unsafe impl Send for SftpExt {}

impl SftpExt {
    /// `Ok(None)` when the server refuses one more channel (`MaxSessions`);
    /// any other failure leaves the session in doubt.
    pub fn open(session: &ssh2::Session) -> Result<Option<SftpExt>> {
        let sftp = {
            let mut guard = session.raw();
            // SAFETY: the guard gives exclusive access to a live session.
            unsafe { raw::libssh2_sftp_init(&mut *guard) }
        };
        if !sftp.is_null() {
            return Ok(Some(SftpExt {
                session: session.clone(),
                sftp,
                next_id: OWN_REQUEST_IDS,
                early: Vec::new(),
                due: Vec::new(),
            }));
        }
        match ssh2::Error::last_session_error(session).map(|e| e.code()) {
            Some(ssh2::ErrorCode::Session(
                raw::LIBSSH2_ERROR_CHANNEL_FAILURE | raw::LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED,
            )) => Ok(None),
            _ => Err(Error::Transport(
                "could not open an SFTP channel for extensions".into(),
            )),
        }
    }

    /// `Ok(false)` when the server does not offer posix-rename.
    pub fn posix_rename(&self, from: &Path, to: &Path) -> Result<bool> {
        let (from, to) = (from.as_os_str().as_bytes(), to.as_os_str().as_bytes());
        let _guard = self.session.raw();
        // SAFETY: pointers and lengths describe live byte slices; the session
        // lock is held for the whole call.
        let rc = unsafe {
            libssh2_sftp_posix_rename_ex(
                self.sftp,
                from.as_ptr().cast(),
                from.len(),
                to.as_ptr().cast(),
                to.len(),
            )
        };
        self.check(rc).map(|supported| supported.is_some())
    }

    /// `Ok(None)` when the server does not offer statvfs.
    pub fn statvfs(&self, path: &Path) -> Result<Option<StatFs>> {
        let path = path.as_os_str().as_bytes();
        let mut st = raw::LIBSSH2_SFTP_STATVFS {
            f_bsize: 0,
            f_frsize: 0,
            f_blocks: 0,
            f_bfree: 0,
            f_bavail: 0,
            f_files: 0,
            f_ffree: 0,
            f_favail: 0,
            f_fsid: 0,
            f_flag: 0,
            f_namemax: 0,
        };
        let _guard = self.session.raw();
        // SAFETY: as above; `st` is a valid out-parameter.
        let rc =
            unsafe { libssh2_sftp_statvfs(self.sftp, path.as_ptr().cast(), path.len(), &mut st) };
        Ok(self.check(rc)?.map(|()| StatFs {
            bsize: st.f_bsize as u32,
            frsize: st.f_frsize as u32,
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: st.f_files,
            ffree: st.f_ffree,
            namelen: st.f_namemax as u32,
        }))
    }

    /// `Ok(false)` when the server does not offer hardlink: a new name
    /// `to` for the file `from`.
    pub fn hardlink(&mut self, from: &Path, to: &Path) -> Result<bool> {
        let reply = self.exchange(|id| {
            Packet::extended(id, b"hardlink@openssh.com")
                .string(from.as_os_str().as_bytes())?
                .string(to.as_os_str().as_bytes())
        })?;
        status_or_unsupported(&reply, "hardlink")
    }

    /// `Ok(None)` when the server does not offer copy-data; otherwise
    /// copies `len` bytes of `from` at `from_off` into the existing file
    /// `to` at `to_off`, `COPY_CHUNK` per request.
    pub fn copy_data(
        &mut self,
        from: &Path,
        from_off: u64,
        to: &Path,
        to_off: u64,
        len: u64,
    ) -> Result<Option<u64>> {
        let src = self.open_handle(from, wire::FXF_READ)?;
        let dst = match self.open_handle(to, wire::FXF_WRITE) {
            Ok(h) => h,
            Err(e) => return Err(self.close_after(&src, e)),
        };
        let mut done = 0;
        let mut copied = Ok(Some(0));
        while done < len {
            let n = (len - done).min(COPY_CHUNK);
            let reply = self.exchange(|id| {
                Ok(Packet::extended(id, b"copy-data")
                    .string(&src)?
                    .u64(from_off + done)
                    .u64(n)
                    .string(&dst)?
                    .u64(to_off + done))
            });
            match reply.and_then(|r| status_or_unsupported(&r, "copy-data")) {
                Ok(true) => done += n,
                Ok(false) => {
                    copied = Ok(None);
                    break;
                }
                Err(e) => {
                    copied = Err(e);
                    break;
                }
            }
            copied = Ok(Some(done));
        }
        // The destination's CLOSE status counts (invariant 3).
        match copied {
            Err(e) => {
                let e = self.close_after(&dst, e);
                Err(self.close_after(&src, e))
            }
            Ok(c) => {
                let closed = self.close_handle(&dst);
                let _ = self.close_handle(&src);
                closed.map(|()| c)
            }
        }
    }

    /// The server's names of `uids` and `gids`, in requests of at most
    /// `ID_BATCH` ids of each; `Ok(None)` when it does not offer
    /// users-groups-by-id.
    pub fn id_names(&mut self, uids: &[u32], gids: &[u32]) -> Result<Option<IdNames>> {
        let mut names = IdNames::default();
        let (mut u, mut g) = (uids, gids);
        loop {
            let (bu, bg) = (u.len().min(ID_BATCH), g.len().min(ID_BATCH));
            let Some(batch) = self.users_groups_by_id(&u[..bu], &g[..bg])? else {
                return Ok(None);
            };
            names.users.extend(batch.users);
            names.groups.extend(batch.groups);
            (u, g) = (&u[bu..], &g[bg..]);
            if u.is_empty() && g.is_empty() {
                return Ok(Some(names));
            }
        }
    }

    /// One users-groups-by-id request; `Ok(None)` when the server does
    /// not offer it.
    fn users_groups_by_id(&mut self, uids: &[u32], gids: &[u32]) -> Result<Option<IdNames>> {
        let ids = |list: &[u32]| {
            list.iter()
                .flat_map(|i| i.to_be_bytes())
                .collect::<Vec<u8>>()
        };
        let reply = self.exchange(|id| {
            Packet::extended(id, b"users-groups-by-id@openssh.com")
                .string(&ids(uids))?
                .string(&ids(gids))
        })?;
        if reply.kind == wire::FXP_STATUS {
            return status_or_unsupported(&reply, "users-groups-by-id").and_then(|supported| {
                match supported {
                    false => Ok(None),
                    true => Err(Error::Transport("users-groups-by-id: no names".into())),
                }
            });
        }
        wire::id_names(&reply, uids.len(), gids.len())
            .map(Some)
            .ok_or_else(|| Error::Transport("users-groups-by-id: an unexpected reply".into()))
    }

    /// A handle of `path` opened with `flags`.
    fn open_handle(&mut self, path: &Path, flags: u32) -> Result<Vec<u8>> {
        let reply = self.exchange(|id| {
            Ok(Packet::new(wire::FXP_OPEN, id)
                .string(path.as_os_str().as_bytes())?
                .u32(flags)
                .u32(0))
        })?;
        if reply.kind == wire::FXP_HANDLE {
            return wire::handle(&reply)
                .ok_or_else(|| Error::Transport("open: an unexpected reply".into()));
        }
        match status_or_unsupported(&reply, "open") {
            Ok(_) => Err(Error::Transport("open: no handle".into())),
            Err(e) => Err(e),
        }
    }

    fn close_handle(&mut self, handle: &[u8]) -> Result<()> {
        let reply = self.exchange(|id| Packet::new(wire::FXP_CLOSE, id).string(handle))?;
        status_or_unsupported(&reply, "close").map(|_| ())
    }

    /// Closes `handle` after `err`, unless the channel is broken; `err`
    /// stays the error.
    fn close_after(&mut self, handle: &[u8], err: Error) -> Error {
        if !err.breaks_connection() {
            if let Err(e) = self.close_handle(handle) {
                tracing::debug!("closing a handle after an error: {e}");
            }
        }
        err
    }

    /// Sends the request `build` makes for a fresh id and reads its
    /// reply, whole.
    fn exchange(&mut self, build: impl FnOnce(u32) -> Result<Packet>) -> Result<Reply> {
        let id = self.send(build)?;
        self.receive(id)
    }

    /// Sends the request `build` makes for a fresh id, without waiting
    /// for its reply: the caller reads it with `receive`, in the order
    /// sent, before any other exchange on this channel.
    pub(super) fn send(&mut self, build: impl FnOnce(u32) -> Result<Packet>) -> Result<u32> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) | OWN_REQUEST_IDS;
        let packet = build(id)?.finish()?;
        let _guard = self.session.raw();
        // SAFETY: the session lock is held while the channel is used.
        write_all(self.channel()?, &packet)?;
        self.due.push(id);
        Ok(id)
    }

    /// The reply to the request `id` (sent by `send`), whole. Replies to
    /// other requests sent before it that arrive first are kept for their
    /// own `receive`.
    pub(super) fn receive(&mut self, id: u32) -> Result<Reply> {
        if let Some(at) = self.early.iter().position(|r| r.id == id) {
            return Ok(self.early.swap_remove(at));
        }
        loop {
            let reply = self.read_reply()?;
            let Some(at) = self.due.iter().position(|&d| d == reply.id) else {
                return Err(Error::Transport("a reply to no request".into()));
            };
            self.due.swap_remove(at);
            if reply.id == id {
                return Ok(reply);
            }
            self.early.push(reply);
        }
    }

    fn read_reply(&mut self) -> Result<Reply> {
        let _guard = self.session.raw();
        let channel = self.channel()?;
        let mut len = [0u8; 4];
        read_exact(channel, &mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(5..=MAX_REPLY).contains(&len) {
            return Err(Error::Transport(format!("a {len}-byte reply")));
        }
        let mut body = vec![0u8; len];
        read_exact(channel, &mut body)?;
        Reply::parse(body).ok_or_else(|| Error::Transport("a malformed reply".into()))
    }

    /// The raw channel. Caller holds the session lock.
    fn channel(&self) -> Result<*mut raw::LIBSSH2_CHANNEL> {
        // SAFETY: live SFTP handle; the caller holds the session lock.
        let channel = unsafe { libssh2_sftp_get_channel(self.sftp) };
        if channel.is_null() {
            return Err(Error::Transport("no SFTP channel".into()));
        }
        Ok(channel)
    }

    /// Turns a libssh2 return code into `Some(())` on success, `None` when
    /// the extension is unsupported, or the error. Caller holds the lock.
    fn check(&self, rc: c_int) -> Result<Option<()>> {
        if rc == 0 {
            return Ok(Some(()));
        }
        if rc == raw::LIBSSH2_ERROR_SFTP_PROTOCOL {
            // SAFETY: live channel, lock held by the caller.
            let code = unsafe { raw::libssh2_sftp_last_error(self.sftp) } as u64;
            if code == FX_OP_UNSUPPORTED {
                return Ok(None);
            }
            return Err(super::status::map_sftp_code(code as i32, "extension"));
        }
        Err(super::status::map_session_code(rc))
    }
}

/// Whether a status reply says OK (`true`) or "unsupported" (`false`);
/// any other status is its error, anything else a broken exchange.
fn status_or_unsupported(reply: &Reply, what: &str) -> Result<bool> {
    if wire::status(reply).map(u64::from) == Some(FX_OP_UNSUPPORTED) {
        return Ok(false);
    }
    wire::status_result(reply, what).map(|()| true)
}

/// Writes all of `data` to the channel (blocking, within the session's
/// timeout). Caller holds the session lock.
pub(super) fn write_all(channel: *mut raw::LIBSSH2_CHANNEL, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        // SAFETY: live channel, session lock held, `data` a live slice.
        let n =
            unsafe { raw::libssh2_channel_write_ex(channel, 0, data.as_ptr().cast(), data.len()) };
        match usize::try_from(n) {
            Ok(0) => return Err(Error::Transport("SFTP channel closed".into())),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(_) => return Err(super::status::map_session_code(n as i32)),
        }
    }
    Ok(())
}

/// Fills `buf` from the channel (blocking, within the session's timeout).
/// Caller holds the session lock.
pub(super) fn read_exact(channel: *mut raw::LIBSSH2_CHANNEL, buf: &mut [u8]) -> Result<()> {
    // SAFETY: `buf` is `buf.len()` writable bytes.
    unsafe { read_into(channel, buf.as_mut_ptr(), buf.len()) }
}

/// Fills the `len` bytes at `dest` from the channel (blocking, within the
/// session's timeout). Caller holds the session lock.
///
/// # Safety
/// `dest` must be valid for writes of `len` bytes (they need not be
/// initialised: libssh2 only writes them).
pub(super) unsafe fn read_into(
    channel: *mut raw::LIBSSH2_CHANNEL,
    dest: *mut u8,
    len: usize,
) -> Result<()> {
    let mut filled = 0;
    while filled < len {
        // SAFETY: live channel, session lock held; at most `len - filled`
        // bytes are written after `filled`, within the caller's `len`.
        let n = unsafe {
            raw::libssh2_channel_read_ex(channel, 0, dest.add(filled).cast(), len - filled)
        };
        match usize::try_from(n) {
            Ok(0) => return Err(Error::Transport("SFTP channel closed".into())),
            Ok(n) => filled += n,
            Err(_) => return Err(super::status::map_session_code(n as i32)),
        }
    }
    Ok(())
}

impl Drop for SftpExt {
    fn drop(&mut self) {
        let _guard = self.session.raw();
        // SAFETY: the channel was created by libssh2_sftp_init and is
        // shut down exactly once, under the session lock.
        unsafe {
            raw::libssh2_sftp_shutdown(self.sftp);
        }
    }
}
