//! File names on the FTP control connection: raw bytes carried losslessly
//! through suppaftp's `&str` API.
//!
//! FTP sends names as bytes, and Unix names need not be UTF-8. suppaftp takes
//! every argument as `&str` and encodes command lines through an
//! [`Encoding`]; ours ([`RawBytes`]) is a bijection between byte strings and a
//! subset of `String`s: valid UTF-8 passes through, and every byte that is not
//! part of valid UTF-8 becomes one private-use character
//! (`U+F700 + byte`), which encodes back to that byte. A genuine character in
//! that private-use range is escaped byte by byte too, so no name is ever
//! mangled or confused with another: non-UTF-8 names are listed, opened and
//! renamed exactly as the server has them.
//!
//! This module only converts; it never touches a connection.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use suppaftp::Encoding;

use crate::remote::{Error, Result};

/// Escape characters are `ESCAPE_BASE + byte` for bytes 0x80..=0xFF (ASCII
/// bytes are always valid UTF-8 and never escaped).
const ESCAPE_BASE: u32 = 0xF700;
const ESCAPE_FIRST: u32 = ESCAPE_BASE + 0x80;
const ESCAPE_LAST: u32 = ESCAPE_BASE + 0xFF;

fn is_escape(c: char) -> bool {
    (ESCAPE_FIRST..=ESCAPE_LAST).contains(&u32::from(c))
}

fn push_escaped(out: &mut String, byte: u8) {
    // Bytes below 0x80 never reach here; the range check keeps this total.
    match char::from_u32(ESCAPE_BASE + u32::from(byte)) {
        Some(c) if byte >= 0x80 => out.push(c),
        _ => out.push(char::from(byte)),
    }
}

/// The `String` that stands for `bytes` on the wire.
pub fn bytes_to_wire(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    push_escaped(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// The bytes a wire `String` stands for (inverse of [`bytes_to_wire`]).
pub fn wire_to_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if is_escape(c) {
            // In range, so the difference fits a byte.
            out.push((u32::from(c) - ESCAPE_BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
}

/// A path as a command argument. CR and LF would end the command line early
/// (and NUL cannot be in a Unix path anyway): such a name is refused before
/// anything is sent.
pub fn path_arg(path: &Path) -> Result<String> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(Error::Invalid);
    }
    Ok(bytes_to_wire(bytes))
}

/// suppaftp [`Encoding`] that carries raw bytes (see the module comment).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Encoding for RawBytes {
    fn decode(&self, bytes: &[u8]) -> String {
        bytes_to_wire(bytes)
    }

    fn encode(&self, text: &str) -> io::Result<Vec<u8>> {
        Ok(wire_to_bytes(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(bytes: &[u8]) {
        let wire = bytes_to_wire(bytes);
        assert_eq!(wire_to_bytes(&wire), bytes, "wire form {wire:?}");
    }

    #[test]
    fn utf8_names_pass_through_unchanged() {
        assert_eq!(bytes_to_wire("café ☕.txt".as_bytes()), "café ☕.txt");
        assert_eq!(wire_to_bytes("café ☕.txt"), "café ☕.txt".as_bytes());
    }

    #[test]
    fn invalid_utf8_round_trips() {
        round_trip(b"caf\xe9.txt");
        round_trip(b"\xff\xfe\x80");
        round_trip(b"a\xc3");
        round_trip(b"\xed\xa0\x80"); // an encoded surrogate: not UTF-8
    }

    #[test]
    fn genuine_escape_range_characters_round_trip() {
        let name = "x\u{F7A0}y\u{F780}\u{F7FF}".as_bytes();
        round_trip(name);
        // And they do not collide with the escape of a raw byte.
        assert_ne!(bytes_to_wire(name), bytes_to_wire(b"x\xa0y\x80\xff"));
    }

    #[test]
    fn every_two_byte_sequence_round_trips() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                round_trip(&[a, b, b'/', a]);
            }
        }
    }

    #[test]
    fn command_breaking_names_are_refused() {
        assert!(matches!(
            path_arg(Path::new("/a\r\nDELE b")),
            Err(Error::Invalid)
        ));
        assert!(matches!(path_arg(Path::new("/a\nb")), Err(Error::Invalid)));
        assert_eq!(
            path_arg(Path::new("/dir/a b")).ok().as_deref(),
            Some("/dir/a b")
        );
    }

    #[test]
    fn the_encoding_is_the_same_mapping() {
        let bytes = b"/d/\xe9t\xc3\xa9";
        let text = RawBytes.decode(bytes);
        assert_eq!(RawBytes.encode(&text).ok().as_deref(), Some(&bytes[..]));
    }
}
