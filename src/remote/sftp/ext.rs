//! The OpenSSH SFTP extensions that `ssh2` does not wrap:
//! `posix-rename@openssh.com` (rename over an existing file, atomically),
//! `statvfs@openssh.com` (for `df`) and `hardlink@openssh.com` (link).
//!
//! `ssh2::Sftp` hides its raw pointer, so this opens a second, raw SFTP
//! channel on the same session and calls libssh2 directly. It owns that
//! channel and nothing else; it must be dropped before its session.
//! libssh2 has no call for hardlink: that request is written to the
//! channel and its status read back here, whole packets at a time, so the
//! channel stays at a packet boundary for libssh2's own requests.

use std::ffi::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libssh2_sys as raw;

use crate::remote::{Error, Result, StatFs};

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

/// SFTP packet types and status (draft-ietf-secsh-filexfer-02).
const SSH_FXP_STATUS: u8 = 101;
const SSH_FXP_EXTENDED: u8 = 200;
const FX_OK: u32 = 0;
/// Longest status reply accepted (code, message and language tag).
const MAX_STATUS_REPLY: usize = 64 << 10;
/// Request ids of our own requests: far from the ones libssh2 counts up
/// from 0 (replies are read at once, so they could not mix anyway).
const OWN_REQUEST_IDS: u32 = 0xf000_0000;

/// A raw SFTP channel on a session, used only for the extensions.
pub struct SftpExt {
    session: ssh2::Session,
    sftp: *mut raw::LIBSSH2_SFTP,
    /// Our next request id.
    next_id: u32,
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
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) | OWN_REQUEST_IDS;
        let packet = extended_request(
            id,
            b"hardlink@openssh.com",
            &[from.as_os_str().as_bytes(), to.as_os_str().as_bytes()],
        )?;
        let _guard = self.session.raw();
        // SAFETY: live channel; the session lock is held for the whole
        // exchange, so no other call uses the session meanwhile.
        let channel = unsafe { libssh2_sftp_get_channel(self.sftp) };
        if channel.is_null() {
            return Err(Error::Transport("hardlink: no SFTP channel".into()));
        }
        write_all(channel, &packet)?;
        let mut len = [0u8; 4];
        read_exact(channel, &mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(9..=MAX_STATUS_REPLY).contains(&len) {
            return Err(Error::Transport(format!("hardlink: a {len}-byte reply")));
        }
        let mut reply = vec![0u8; len];
        read_exact(channel, &mut reply)?;
        match parse_status(&reply, id) {
            Some(FX_OK) => Ok(true),
            Some(code) if u64::from(code) == FX_OP_UNSUPPORTED => Ok(false),
            Some(code) => Err(super::status::map_sftp_code(
                i32::try_from(code).unwrap_or(i32::MAX),
                "hardlink",
            )),
            None => Err(Error::Transport("hardlink: an unexpected reply".into())),
        }
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

/// An `SSH_FXP_EXTENDED` request: length, type, id, the extension's name
/// and its string arguments.
fn extended_request(id: u32, name: &[u8], args: &[&[u8]]) -> Result<Vec<u8>> {
    let mut body = vec![SSH_FXP_EXTENDED];
    body.extend_from_slice(&id.to_be_bytes());
    for field in std::iter::once(name).chain(args.iter().copied()) {
        let len = u32::try_from(field.len()).map_err(|_| Error::Invalid)?;
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(field);
    }
    let len = u32::try_from(body.len()).map_err(|_| Error::Invalid)?;
    let mut packet = len.to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    Ok(packet)
}

/// The status code of an `SSH_FXP_STATUS` reply (without its length) to
/// request `id`; None for anything else.
fn parse_status(reply: &[u8], id: u32) -> Option<u32> {
    let word = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = reply.get(at..at + 4)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    };
    if *reply.first()? != SSH_FXP_STATUS || word(1)? != id {
        return None;
    }
    word(5)
}

/// Writes all of `data` to the channel (blocking, within the session's
/// timeout). Caller holds the session lock.
fn write_all(channel: *mut raw::LIBSSH2_CHANNEL, mut data: &[u8]) -> Result<()> {
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
fn read_exact(channel: *mut raw::LIBSSH2_CHANNEL, buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: live channel, session lock held, `rest` a live slice.
        let n = unsafe {
            raw::libssh2_channel_read_ex(channel, 0, rest.as_mut_ptr().cast(), rest.len())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hardlink_request_is_laid_out_as_openssh_reads_it() {
        let packet =
            extended_request(7, b"hardlink@openssh.com", &[b"/a", b"/bc"]).expect("packet");
        let mut want = Vec::new();
        want.extend_from_slice(&(1u32 + 4 + 4 + 20 + 4 + 2 + 4 + 3).to_be_bytes());
        want.push(200);
        want.extend_from_slice(&7u32.to_be_bytes());
        want.extend_from_slice(&20u32.to_be_bytes());
        want.extend_from_slice(b"hardlink@openssh.com");
        want.extend_from_slice(&2u32.to_be_bytes());
        want.extend_from_slice(b"/a");
        want.extend_from_slice(&3u32.to_be_bytes());
        want.extend_from_slice(b"/bc");
        assert_eq!(packet, want);
    }

    #[test]
    fn only_a_status_for_our_request_is_taken() {
        let status = |kind: u8, id: u32, code: u32| {
            let mut r = vec![kind];
            r.extend_from_slice(&id.to_be_bytes());
            r.extend_from_slice(&code.to_be_bytes());
            r.extend_from_slice(&0u32.to_be_bytes()); // message
            r.extend_from_slice(&0u32.to_be_bytes()); // language
            r
        };
        assert_eq!(parse_status(&status(101, 9, 0), 9), Some(0));
        assert_eq!(parse_status(&status(101, 9, 8), 9), Some(8));
        assert_eq!(parse_status(&status(101, 8, 0), 9), None, "another id");
        assert_eq!(parse_status(&status(102, 9, 0), 9), None, "not a status");
        assert_eq!(parse_status(&[101, 0, 0], 9), None, "cut short");
    }
}
