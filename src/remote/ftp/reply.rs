//! FTP replies and suppaftp errors turned into `Error`, and the few pure
//! formatting helpers the connection needs (reply text, `MFMT` times).
//!
//! The mapping here is context-free. Replies that only say "no" (`550`,
//! `553`) come out as [`Error::Failure`] carrying the code, and the connection
//! narrows them down with a follow-up look at the path (see
//! `FtpConnection::explain`). Anything that leaves the control connection in
//! an unknown state — I/O errors, garbage, a positive reply where none was
//! expected — is [`Error::Transport`], so the pool drops the connection.

use suppaftp::types::Response;
use suppaftp::FtpError;

use super::tls::tls_failure;
use crate::remote::text::escape_controls;
use crate::remote::Error;

/// The three-digit code of a reply. suppaftp's `Status` knows only the codes
/// of RFC 959 (a `522` becomes `Unknown`), so read the digits themselves.
pub fn code(resp: &Response) -> u32 {
    match resp.body.get(..3) {
        Some(d) if d.iter().all(u8::is_ascii_digit) => {
            d.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0'))
        }
        _ => resp.status.code(),
    }
}

/// The human part of a reply, on one line, control characters escaped:
/// `530 Login incorrect.`
pub fn text(resp: &Response) -> String {
    let body = String::from_utf8_lossy(&resp.body);
    let joined: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    escape_controls(&joined.join(" ")).into_owned()
}

/// The reply code inside a suppaftp error, if the server answered at all.
pub fn error_code(e: &FtpError) -> Option<u32> {
    match e {
        FtpError::UnexpectedResponse(resp) => Some(code(resp)),
        _ => None,
    }
}

/// Whether a reply code says the command itself is unknown or not allowed
/// with these arguments (as opposed to failing on the path).
pub fn is_not_implemented(code: u32) -> bool {
    matches!(code, 500 | 501 | 502 | 504)
}

/// A suppaftp error as an `Error`; `what` names the operation for messages.
pub fn map_err(e: FtpError, what: &str) -> Error {
    match e {
        FtpError::ConnectionError(io) => map_io(io, what),
        FtpError::SecureError(msg) => Error::Transport(format!("{what}: TLS: {msg}")),
        FtpError::UnexpectedResponse(resp) => map_reply(&resp, what),
        FtpError::BadResponse => {
            Error::Transport(format!("{what}: malformed reply from the server"))
        }
        FtpError::InvalidAddress(e) => {
            Error::Transport(format!("{what}: bad address from the server: {e}"))
        }
        FtpError::DataConnectionAlreadyOpen => {
            Error::Transport(format!("{what}: a data transfer is still open"))
        }
    }
}

/// An I/O error on the control or a data connection.
pub fn map_io(e: std::io::Error, what: &str) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        // Sockets with a read timeout report it as WouldBlock on Linux.
        K::TimedOut | K::WouldBlock => Error::TimedOut,
        // suppaftp refuses a command line with CR/LF before sending anything.
        K::InvalidInput => Error::Invalid,
        _ => match tls_failure(&e) {
            Some(tls) => Error::Transport(format!("{what}: TLS: {tls}")),
            None => Error::Transport(format!("{what}: {e}")),
        },
    }
}

/// A negative (or unexpected) reply.
pub fn map_reply(resp: &Response, what: &str) -> Error {
    let code = code(resp);
    let msg = format!("{what}: {}", text(resp));
    match code {
        // The server is closing the control connection, or the data
        // connection broke: either way the session is not usable.
        421 | 425 | 426 => Error::Transport(msg),
        452 | 552 => Error::NoSpace,
        530 | 532 => Error::PermissionDenied,
        c if is_not_implemented(c) => Error::Unsupported(msg),
        // Explained from context by the caller.
        550 | 553 => Error::Failure(msg),
        400..=599 => Error::Failure(msg),
        // A positive or garbled reply where another was expected: the
        // dialogue is out of step.
        _ => Error::Transport(format!("{msg} (unexpected reply)")),
    }
}

/// Whether an error is a bare "no" that a follow-up look may explain.
pub fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::Failure(_))
}

#[cfg(test)]
mod tests {
    use suppaftp::Status;

    use super::*;

    fn reply(line: &str) -> Response {
        let code: u32 = line[..3].parse().unwrap_or(0);
        Response::new(Status::from(code), format!("{line}\r\n").into_bytes())
    }

    #[test]
    fn codes_outside_rfc959_are_read_from_the_text() {
        let r = reply("522 SSL connection failed: session reuse required");
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(code(&r), 522);
        assert_eq!(code(&reply("550 Failed to open file.")), 550);
    }

    #[test]
    fn reply_text_is_one_line() {
        let r = Response::new(
            Status::NotLoggedIn,
            b"530-Login incorrect.\r\n530 Bye.\r\n".to_vec(),
        );
        assert_eq!(text(&r), "530-Login incorrect. 530 Bye.");
    }

    #[test]
    fn reply_text_escapes_control_characters() {
        let r = Response::new(
            Status::FileUnavailable,
            b"550 no\x1b[2J such\x07 file\r\n".to_vec(),
        );
        assert_eq!(text(&r), "550 no\\u{1b}[2J such\\u{7} file");
        let shown = map_reply(&r, "open").to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }

    #[test]
    fn replies_map_to_errors() {
        let m = |line| map_reply(&reply(line), "op");
        assert!(matches!(m("421 Timeout."), Error::Transport(_)));
        assert!(matches!(
            m("426 Failure writing network stream."),
            Error::Transport(_)
        ));
        assert!(matches!(m("452 Insufficient storage."), Error::NoSpace));
        assert!(matches!(m("552 Quota exceeded."), Error::NoSpace));
        assert!(matches!(m("530 Not logged in."), Error::PermissionDenied));
        assert!(matches!(m("500 Unknown command."), Error::Unsupported(_)));
        assert!(matches!(m("502 Not implemented."), Error::Unsupported(_)));
        assert!(matches!(m("550 Permission denied."), Error::Failure(_)));
        assert!(matches!(m("553 Could not create file."), Error::Failure(_)));
        assert!(matches!(m("451 Local error."), Error::Failure(_)));
        // A positive reply where a refusal or another code was expected.
        assert!(matches!(m("226 Transfer complete."), Error::Transport(_)));
        assert!(matches!(m("150 Here it comes."), Error::Transport(_)));
    }

    #[test]
    fn io_errors_map_to_timeouts_and_transport() {
        use std::io::{Error as IoError, ErrorKind};
        assert!(matches!(
            map_io(IoError::from(ErrorKind::WouldBlock), "x"),
            Error::TimedOut
        ));
        assert!(matches!(
            map_io(IoError::from(ErrorKind::TimedOut), "x"),
            Error::TimedOut
        ));
        assert!(matches!(
            map_io(IoError::from(ErrorKind::ConnectionReset), "x"),
            Error::Transport(_)
        ));
        assert!(matches!(
            map_io(IoError::from(ErrorKind::InvalidInput), "x"),
            Error::Invalid
        ));
        assert!(matches!(
            map_err(FtpError::BadResponse, "x"),
            Error::Transport(_)
        ));
    }
}

/// Property tests: any reply a server sends is read without panicking, and
/// what is shown of it is one line without control characters.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use suppaftp::Status;

    use super::*;

    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_reply_is_read_and_shown_safely(
            status in 0u32..1000,
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let resp = Response::new(Status::from(status), body.clone());
            let c = code(&resp);
            if body.len() >= 3 && body[..3].iter().all(u8::is_ascii_digit) {
                prop_assert!(c < 1000);
            }
            let shown = text(&resp);
            prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
            let err = map_reply(&resp, "op").to_string();
            prop_assert!(!err.chars().any(char::is_control), "{:?}", err);
        }

        #[test]
        fn a_reply_code_reads_back(
            c in 100u32..1000,
            rest in "[ -~]{0,40}",
        ) {
            let resp = Response::new(Status::Unknown, format!("{c} {rest}\r\n").into_bytes());
            prop_assert_eq!(code(&resp), c);
            prop_assert_eq!(text(&resp), format!("{c} {rest}").trim().to_string());
        }
    }
}
