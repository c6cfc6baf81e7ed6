//! The two OpenSSH SFTP extensions that `ssh2` does not wrap:
//! `posix-rename@openssh.com` (rename over an existing file, atomically) and
//! `statvfs@openssh.com` (for `df`).
//!
//! `ssh2::Sftp` hides its raw pointer, so this opens a second, raw SFTP
//! channel on the same session and calls libssh2 directly. It owns that
//! channel and nothing else; it must be dropped before its session.

use std::ffi::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use libssh2_sys as raw;

use super::{Error, Result, StatFs};

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
}

/// LIBSSH2_FX_OP_UNSUPPORTED: the server does not offer the extension.
const FX_OP_UNSUPPORTED: u64 = 8;

/// A raw SFTP channel on a session, used only for the extensions.
pub struct SftpExt {
    session: ssh2::Session,
    sftp: *mut raw::LIBSSH2_SFTP,
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
            return Err(super::sftp::map_sftp_code(code as i32, "extension"));
        }
        Err(super::sftp::map_session_code(rc))
    }
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
