//! The filesystem layer's error and its errno. It adds to the remote
//! layer's errors only what is this layer's own (an unknown handle, a name
//! the kernel must not send, a loss of written data, local staging I/O);
//! every other condition is a `remote::Error`, whoever found it. It must
//! not map the remote layer's errors itself: they know their errno.

use std::fmt;

use crate::errno::ToErrno;
use crate::remote;

/// Errors of the filesystem layer; each knows its errno (`ToErrno`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A condition the remote layer names, whether the server reported it
    /// or this layer found it itself (an inode without a name is "not
    /// found", a change on a read-only mount "read-only"): one variant to
    /// match and one errno for each condition.
    #[error(transparent)]
    Remote(#[from] remote::Error),
    #[error("unknown file handle")]
    BadHandle,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid name")]
    InvalidName,
    #[error("an earlier write failed: {0}")]
    WriteFailed(WriteLoss),
    #[error("local I/O error: {0}")]
    Io(std::io::Error),
    /// The server cannot copy files itself: the kernel copies through the
    /// mount instead, and asks no more (`copy_file_range`).
    #[error("the server cannot copy files itself")]
    NoServerCopy,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// "No such file or directory", as the mount finds it itself.
    pub(super) fn not_found() -> Error {
        Error::Remote(remote::Error::NotFound)
    }
}

impl ToErrno for Error {
    /// The errno a local filesystem would give (invariant 5).
    fn to_errno(&self) -> i32 {
        match self {
            Error::Remote(e) => e.to_errno(),
            Error::BadHandle => libc::EBADF,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::InvalidName => libc::EINVAL,
            Error::WriteFailed(loss) => loss.errno,
            Error::Io(io) => io.raw_os_error().unwrap_or(libc::EIO),
            Error::NoServerCopy => libc::ENOSYS,
        }
    }
}

/// Why written data was lost, kept for every later report of the loss:
/// the message and the errno of the failure itself, so that a close after
/// a write that found the server full still says ENOSPC, not EIO.
#[derive(Clone, Debug)]
pub struct WriteLoss {
    why: String,
    errno: i32,
}

impl WriteLoss {
    pub fn of<E: ToErrno + fmt::Display + ?Sized>(e: &E) -> WriteLoss {
        WriteLoss {
            why: e.to_string(),
            errno: e.to_errno(),
        }
    }
}

/// A loss known only by its message: an I/O error (EIO).
impl From<&str> for WriteLoss {
    fn from(why: &str) -> WriteLoss {
        WriteLoss {
            why: why.to_string(),
            errno: libc::EIO,
        }
    }
}

impl fmt::Display for WriteLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}
