//! What SFTP and libssh2 errors mean for the remote layer: SFTP status
//! codes and libssh2 session codes mapped to `Error`, including the ones
//! ssh2's `Read`/`Write` impls reduce to a bare message.
//!
//! Only maps; explaining a bare "failure" by looking at the path is done
//! by the connection, which can ask the server.

use std::io;

use ssh2::ErrorCode;

use crate::remote::Error;

/// SFTP status codes (draft-ietf-secsh-filexfer, v3 and later).
pub(super) const FX_OK: i32 = 0;
pub(super) const FX_EOF: i32 = 1;
pub(super) const FX_NO_SUCH_FILE: i32 = 2;
pub(super) const FX_PERMISSION_DENIED: i32 = 3;
pub(super) const FX_BAD_MESSAGE: i32 = 5;
pub(super) const FX_NO_CONNECTION: i32 = 6;
pub(super) const FX_CONNECTION_LOST: i32 = 7;
pub(super) const FX_OP_UNSUPPORTED: i32 = 8;
pub(super) const FX_NO_SUCH_PATH: i32 = 10;
pub(super) const FX_FILE_ALREADY_EXISTS: i32 = 11;
pub(super) const FX_WRITE_PROTECT: i32 = 12;
pub(super) const FX_NO_SPACE: i32 = 14;
pub(super) const FX_QUOTA_EXCEEDED: i32 = 15;
pub(super) const FX_DIR_NOT_EMPTY: i32 = 18;
pub(super) const FX_NOT_A_DIRECTORY: i32 = 19;
pub(super) const FX_FILE_IS_A_DIRECTORY: i32 = 24;

pub(super) fn map_sftp_code(code: i32, what: &str) -> Error {
    match code {
        FX_NO_SUCH_FILE | FX_NO_SUCH_PATH => Error::NotFound,
        FX_PERMISSION_DENIED => Error::PermissionDenied,
        FX_FILE_ALREADY_EXISTS => Error::Exists,
        FX_WRITE_PROTECT => Error::ReadOnly,
        FX_NO_SPACE | FX_QUOTA_EXCEEDED => Error::NoSpace,
        FX_DIR_NOT_EMPTY => Error::NotEmpty,
        FX_NOT_A_DIRECTORY => Error::NotADirectory,
        FX_FILE_IS_A_DIRECTORY => Error::IsADirectory,
        FX_OP_UNSUPPORTED => Error::Unsupported(what.to_string()),
        FX_BAD_MESSAGE => Error::Invalid,
        FX_NO_CONNECTION | FX_CONNECTION_LOST => {
            Error::Transport(format!("{what}: connection lost"))
        }
        FX_EOF => Error::Failure(format!("{what}: unexpected end of file")),
        _ => Error::Failure(format!("{what}: SFTP status {code}")),
    }
}

pub(super) fn map_session_code(code: i32) -> Error {
    if code == libssh2_sys::LIBSSH2_ERROR_TIMEOUT
        || code == libssh2_sys::LIBSSH2_ERROR_SOCKET_TIMEOUT
    {
        Error::TimedOut
    } else if code == libssh2_sys::LIBSSH2_ERROR_INVAL {
        // Refused before anything was sent (e.g. a NUL in a path).
        Error::Invalid
    } else {
        // Any other session-level error leaves the transport in an unknown
        // state: the connection must be dropped.
        Error::Transport(format!("SSH error {code}"))
    }
}

pub(super) fn map_err(e: ssh2::Error, what: &str) -> Error {
    match e.code() {
        ErrorCode::SFTP(code) => map_sftp_code(code, what),
        ErrorCode::Session(code) => {
            let mut err = map_session_code(code);
            if let Error::Transport(msg) = &mut err {
                *msg = format!("{what}: {}", e.message());
            }
            err
        }
    }
}

pub(super) fn map_io(e: io::Error, what: &str) -> Error {
    // ssh2's Read/Write impls turn its error into an io::Error that keeps
    // only the message. A server status (no space, permission denied...)
    // still has ssh2's fixed message for its code: recover the code from it,
    // so that it is not taken for a broken connection.
    let msg = e.to_string();
    let status = (1..=21).find(|&code| {
        let known = ssh2::Error::from_errno(ErrorCode::SFTP(code));
        known.message() != "unknown error" && known.message() == msg
    });
    match status {
        Some(code) => map_sftp_code(code, what),
        None if e.kind() == io::ErrorKind::TimedOut => Error::TimedOut,
        None => Error::Transport(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_io(code: ErrorCode) -> io::Error {
        ssh2::Error::from_errno(code).into()
    }

    #[test]
    fn server_statuses_survive_ssh2s_io_errors() {
        let e = via_io(ErrorCode::SFTP(FX_NO_SPACE));
        assert!(matches!(map_io(e, "write"), Error::NoSpace));
        let e = via_io(ErrorCode::SFTP(FX_PERMISSION_DENIED));
        assert!(matches!(map_io(e, "write"), Error::PermissionDenied));
        let e = via_io(ErrorCode::SFTP(FX_QUOTA_EXCEEDED));
        assert!(matches!(map_io(e, "write"), Error::NoSpace));
    }

    #[test]
    fn session_failures_still_break_the_connection() {
        let e = via_io(ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_TIMEOUT));
        assert!(matches!(map_io(e, "read"), Error::TimedOut));
        let e = via_io(ErrorCode::Session(libssh2_sys::LIBSSH2_ERROR_SOCKET_SEND));
        assert!(map_io(e, "read").breaks_connection());
    }
}
