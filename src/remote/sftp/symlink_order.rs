//! The order of SSH_FXP_SYMLINK's two paths, learned from the extensions of
//! the server's SSH_FXP_VERSION reply (read on a channel of its own, as
//! libssh2 does not keep them). Reads that one reply; sends nothing else.

use std::io::{Read, Write};

use super::status::map_err;
use crate::remote::{Error, Result};

/// The order of SSH_FXP_SYMLINK's two paths. OpenSSH (and most servers,
/// following it) reads the target first, the reverse of the draft; a server
/// that follows the draft says so with the `symlink-order@rjk.greenend.org.uk`
/// extension (Green End's gesftpserver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymlinkOrder {
    TargetFirst,
    LinkFirst,
}

/// SSH_FXP_INIT / SSH_FXP_VERSION.
const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
/// A VERSION reply larger than this is not a server we can talk to.
const MAX_VERSION_PACKET: usize = 64 << 10;

/// Reads the extensions of the server's SSH_FXP_VERSION reply on a channel
/// of its own (libssh2 reads them but does not keep them) and returns the
/// SYMLINK order they announce.
pub(super) fn probe_symlink_order(session: &ssh2::Session) -> Result<SymlinkOrder> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::Transport(format!("probing the SFTP server ({what}): {e}"))
    };
    let mut ch = session
        .channel_session()
        .map_err(|e| map_err(e, "opening a channel"))?;
    ch.subsystem("sftp")
        .map_err(|e| map_err(e, "sftp subsystem"))?;
    ch.write_all(&[0, 0, 0, 5, FXP_INIT, 0, 0, 0, 3])
        .map_err(|e| fail("INIT", &e))?;
    let mut len = [0u8; 4];
    ch.read_exact(&mut len).map_err(|e| fail("VERSION", &e))?;
    let len = u32::from_be_bytes(len) as usize;
    if !(5..=MAX_VERSION_PACKET).contains(&len) {
        return Err(fail("VERSION", &format!("bad length {len}")));
    }
    let mut packet = vec![0u8; len];
    ch.read_exact(&mut packet)
        .map_err(|e| fail("VERSION", &e))?;
    let _ = ch.close();
    if packet[0] != FXP_VERSION {
        return Err(fail("VERSION", &format!("packet type {}", packet[0])));
    }
    Ok(symlink_order_in(&parse_extensions(&packet[5..])))
}

/// The (name, value) pairs after a VERSION packet's version field; a
/// truncated pair ends the list.
fn parse_extensions(mut rest: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    fn string<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let s = rest.get(4..4 + len)?;
        *rest = &rest[4 + len..];
        Some(s)
    }
    let mut out = Vec::new();
    while let (Some(name), Some(value)) = (string(&mut rest), string(&mut rest)) {
        out.push((name.to_vec(), value.to_vec()));
    }
    out
}

fn symlink_order_in(extensions: &[(Vec<u8>, Vec<u8>)]) -> SymlinkOrder {
    let draft = extensions.iter().any(|(name, value)| {
        name == b"symlink-order@rjk.greenend.org.uk" && value == b"linkpath-targetpath"
    });
    if draft {
        SymlinkOrder::LinkFirst
    } else {
        SymlinkOrder::TargetFirst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_symlink_order_comes_from_the_version_extensions() {
        let mut packet = Vec::new();
        for s in [&b"posix-rename@openssh.com"[..], b"1"] {
            packet.extend_from_slice(&(s.len() as u32).to_be_bytes());
            packet.extend_from_slice(s);
        }
        let ext = parse_extensions(&packet);
        assert_eq!(symlink_order_in(&ext), SymlinkOrder::TargetFirst);
        for s in [
            &b"symlink-order@rjk.greenend.org.uk"[..],
            b"linkpath-targetpath",
        ] {
            packet.extend_from_slice(&(s.len() as u32).to_be_bytes());
            packet.extend_from_slice(s);
        }
        let ext = parse_extensions(&packet);
        assert_eq!(ext.len(), 2);
        assert_eq!(symlink_order_in(&ext), SymlinkOrder::LinkFirst);
        // A truncated pair ends the list; garbage lengths never panic.
        packet.extend_from_slice(&[0, 0, 0, 9, b'x']);
        assert_eq!(parse_extensions(&packet).len(), 2);
        assert!(parse_extensions(&[0xff, 0xff, 0xff, 0xff]).is_empty());
    }
}
