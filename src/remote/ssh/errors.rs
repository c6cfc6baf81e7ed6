//! Which libssh2 session errors mean what: a timeout, a broken transport
//! (the connection is unusable), or neither. Only classifies; the messages
//! are made where the errors happen.

use libssh2_sys as raw;
use ssh2::ErrorCode;

pub(super) fn session_code(e: &ssh2::Error) -> Option<i32> {
    match e.code() {
        ErrorCode::Session(c) => Some(c),
        ErrorCode::SFTP(_) => None,
    }
}

pub(super) fn is_timeout(e: &ssh2::Error) -> bool {
    matches!(
        session_code(e),
        Some(raw::LIBSSH2_ERROR_TIMEOUT | raw::LIBSSH2_ERROR_SOCKET_TIMEOUT)
    )
}

/// Errors after which the connection is unusable.
pub(super) fn is_transport(e: &ssh2::Error) -> bool {
    matches!(
        session_code(e),
        Some(
            raw::LIBSSH2_ERROR_BANNER_RECV
                | raw::LIBSSH2_ERROR_BANNER_SEND
                | raw::LIBSSH2_ERROR_INVALID_MAC
                | raw::LIBSSH2_ERROR_SOCKET_SEND
                | raw::LIBSSH2_ERROR_DECRYPT
                | raw::LIBSSH2_ERROR_SOCKET_DISCONNECT
                | raw::LIBSSH2_ERROR_PROTO
                | raw::LIBSSH2_ERROR_SOCKET_RECV
                | raw::LIBSSH2_ERROR_ENCRYPT
                | raw::LIBSSH2_ERROR_BAD_SOCKET
        )
    )
}

pub(super) fn is_fatal(e: &ssh2::Error) -> bool {
    is_timeout(e) || is_transport(e)
}
