//! `ToErrno`: how an error says which errno a local filesystem would give
//! for it. A leaf: each layer implements it for its own error type, next
//! to that type, so the mapping lives with the layer that knows what its
//! errors mean; the FUSE adapter only asks. Nothing here knows any layer.

/// An error that knows its errno (a `libc::E*` value).
pub trait ToErrno {
    fn to_errno(&self) -> i32;
}
