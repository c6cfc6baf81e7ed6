//! The SFTP packets `ext` writes and reads itself (draft-ietf-secsh-filexfer-02
//! and OpenSSH's PROTOCOL file): building requests, and taking replies
//! apart. Pure byte work: no I/O, no libssh2, and nothing it cannot parse
//! is ever guessed at (a malformed reply is `None`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use ssh2::FileStat;

use super::status::{map_sftp_code, FX_OK};
use crate::remote::{Error, IdNames, Result};

/// Packet types.
pub const FXP_INIT: u8 = 1;
pub const FXP_VERSION: u8 = 2;
pub const FXP_OPEN: u8 = 3;
pub const FXP_CLOSE: u8 = 4;
pub const FXP_READ: u8 = 5;
pub const FXP_WRITE: u8 = 6;
pub const FXP_LSTAT: u8 = 7;
pub const FXP_FSETSTAT: u8 = 10;
pub const FXP_STATUS: u8 = 101;
pub const FXP_HANDLE: u8 = 102;
pub const FXP_DATA: u8 = 103;
pub const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

/// OPEN flags.
pub const FXF_READ: u32 = 0x01;
pub const FXF_WRITE: u32 = 0x02;
pub const FXF_CREAT: u32 = 0x08;
pub const FXF_TRUNC: u32 = 0x10;
pub const FXF_EXCL: u32 = 0x20;

/// ATTRS flags: which fields follow.
const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
pub const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;

/// A request being built: its length is filled in by `finish`.
pub struct Packet(Vec<u8>);

impl Packet {
    pub fn new(kind: u8, id: u32) -> Packet {
        let mut bytes = vec![0u8; 4];
        bytes.push(kind);
        bytes.extend_from_slice(&id.to_be_bytes());
        Packet(bytes)
    }

    /// An `SSH_FXP_EXTENDED` request for the extension `name`.
    pub fn extended(id: u32, name: &[u8]) -> Packet {
        let mut p = Packet::new(FXP_EXTENDED, id);
        // Extension names are short constants.
        p.0.extend_from_slice(&(name.len() as u32).to_be_bytes());
        p.0.extend_from_slice(name);
        p
    }

    pub fn string(mut self, s: &[u8]) -> Result<Packet> {
        let len = u32::try_from(s.len()).map_err(|_| Error::Invalid)?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(s);
        Ok(self)
    }

    pub fn u32(mut self, v: u32) -> Packet {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Packet {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// The bytes to send, length first.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let len = u32::try_from(self.0.len() - 4).map_err(|_| Error::Invalid)?;
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        Ok(self.0)
    }
}

/// A reply (without its length): its type, the id it answers, the rest.
pub struct Reply {
    pub kind: u8,
    pub id: u32,
    body: Vec<u8>,
}

impl Reply {
    pub fn parse(mut bytes: Vec<u8>) -> Option<Reply> {
        let kind = *bytes.first()?;
        let id = u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?);
        bytes.drain(..5);
        Some(Reply {
            kind,
            id,
            body: bytes,
        })
    }
}

/// Reads fields off the front of a reply's body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        let s = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(s)
    }

    /// `count` strings filling the whole of `blob`.
    fn strings(blob: &[u8], count: usize) -> Option<Vec<OsString>> {
        let mut fields = Fields(blob);
        let mut out = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            out.push(OsString::from_vec(fields.string()?.to_vec()));
        }
        fields.0.is_empty().then_some(out)
    }
}

/// The code of a status reply.
pub fn status(reply: &Reply) -> Option<u32> {
    if reply.kind != FXP_STATUS {
        return None;
    }
    Fields(&reply.body).u32()
}

/// A status reply as a result: OK, the error its code means, or (any
/// other reply) a broken exchange.
pub fn status_result(reply: &Reply, what: &str) -> Result<()> {
    match status(reply) {
        Some(code) if code == FX_OK as u32 => Ok(()),
        Some(code) => Err(map_sftp_code(i32::try_from(code).unwrap_or(i32::MAX), what)),
        None => Err(Error::Transport(format!("{what}: an unexpected reply"))),
    }
}

/// The handle a `SSH_FXP_HANDLE` reply gives.
pub fn handle(reply: &Reply) -> Option<Vec<u8>> {
    if reply.kind != FXP_HANDLE {
        return None;
    }
    let h = Fields(&reply.body).string()?;
    // The draft bounds handles to 256 bytes; an empty one is no handle.
    (!h.is_empty() && h.len() <= 256).then(|| h.to_vec())
}

/// The attributes an `SSH_FXP_ATTRS` reply gives (extended attributes,
/// which come last, are not read).
/// The fields of an ATTRS reply, each where the server sent it, as
/// libssh2's own stat gives them (`ssh2::FileStat`).
pub fn attrs(reply: &Reply) -> Option<FileStat> {
    if reply.kind != FXP_ATTRS {
        return None;
    }
    let mut fields = Fields(&reply.body);
    let flags = fields.u32()?;
    let mut attrs = FileStat {
        size: None,
        uid: None,
        gid: None,
        perm: None,
        atime: None,
        mtime: None,
    };
    if flags & ATTR_SIZE != 0 {
        attrs.size = Some(fields.u64()?);
    }
    if flags & ATTR_UIDGID != 0 {
        attrs.uid = Some(fields.u32()?);
        attrs.gid = Some(fields.u32()?);
    }
    if flags & ATTR_PERMISSIONS != 0 {
        attrs.perm = Some(fields.u32()?);
    }
    if flags & ATTR_ACMODTIME != 0 {
        attrs.atime = Some(u64::from(fields.u32()?));
        attrs.mtime = Some(u64::from(fields.u32()?));
    }
    Some(attrs)
}

/// The names a users-groups-by-id reply gives, exactly as many as asked.
pub fn id_names(reply: &Reply, users: usize, groups: usize) -> Option<IdNames> {
    if reply.kind != FXP_EXTENDED_REPLY {
        return None;
    }
    let mut fields = Fields(&reply.body);
    let user_blob = fields.string()?;
    let group_blob = fields.string()?;
    Some(IdNames {
        users: Fields::strings(user_blob, users)?,
        groups: Fields::strings(group_blob, groups)?,
    })
}

/// The names of the extensions a VERSION packet (without its length)
/// offers, or None when it is no well-formed VERSION packet.
pub fn version_extensions(packet: &[u8]) -> Option<Vec<&[u8]>> {
    let (&kind, rest) = packet.split_first()?;
    if kind != FXP_VERSION {
        return None;
    }
    let mut fields = Fields(rest);
    fields.u32()?;
    let mut names = Vec::new();
    while !fields.0.is_empty() {
        names.push(fields.string()?);
        fields.string()?;
    }
    Some(names)
}

/// The max-read-length of a `limits@openssh.com` reply (0: no limit).
pub fn max_read_length(reply: &Reply) -> Option<u64> {
    if reply.kind != FXP_EXTENDED_REPLY {
        return None;
    }
    let mut fields = Fields(&reply.body);
    let _max_packet = fields.u64()?;
    fields.u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s);
        v
    }

    fn reply(kind: u8, id: u32, body: &[u8]) -> Reply {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(body);
        Reply::parse(bytes).expect("a reply")
    }

    #[test]
    fn a_hardlink_request_is_laid_out_as_openssh_reads_it() {
        let packet = Packet::extended(7, b"hardlink@openssh.com")
            .string(b"/a")
            .and_then(|p| p.string(b"/bc"))
            .and_then(Packet::finish)
            .expect("packet");
        let mut want = Vec::new();
        want.extend_from_slice(&(1u32 + 4 + 4 + 20 + 4 + 2 + 4 + 3).to_be_bytes());
        want.push(200);
        want.extend_from_slice(&7u32.to_be_bytes());
        want.extend(string(b"hardlink@openssh.com"));
        want.extend(string(b"/a"));
        want.extend(string(b"/bc"));
        assert_eq!(packet, want);
    }

    #[test]
    fn a_copy_data_request_is_laid_out_as_openssh_reads_it() {
        let packet = Packet::extended(9, b"copy-data")
            .string(b"RH")
            .map(|p| p.u64(5).u64(1 << 33))
            .and_then(|p| p.string(b"W"))
            .map(|p| p.u64(7))
            .and_then(Packet::finish)
            .expect("packet");
        let mut body = vec![200];
        body.extend_from_slice(&9u32.to_be_bytes());
        body.extend(string(b"copy-data"));
        body.extend(string(b"RH"));
        body.extend_from_slice(&5u64.to_be_bytes());
        body.extend_from_slice(&(1u64 << 33).to_be_bytes());
        body.extend(string(b"W"));
        body.extend_from_slice(&7u64.to_be_bytes());
        let mut want = (body.len() as u32).to_be_bytes().to_vec();
        want.extend(body);
        assert_eq!(packet, want);
    }

    #[test]
    fn only_well_formed_replies_are_taken() {
        let status_body = |code: u32| {
            let mut b = code.to_be_bytes().to_vec();
            b.extend(string(b"msg"));
            b.extend(string(b""));
            b
        };
        assert_eq!(status(&reply(101, 9, &status_body(0))), Some(0));
        assert_eq!(status(&reply(101, 9, &status_body(8))), Some(8));
        assert_eq!(
            status(&reply(102, 9, &status_body(0))),
            None,
            "not a status"
        );
        assert_eq!(status(&reply(101, 9, &[0, 0])), None, "cut short");
        assert!(Reply::parse(vec![101, 0, 0]).is_none(), "no id");

        assert_eq!(handle(&reply(102, 1, &string(b"h1"))), Some(b"h1".to_vec()));
        assert_eq!(handle(&reply(102, 1, &string(b""))), None, "empty");
        assert_eq!(handle(&reply(102, 1, &[0, 0, 0, 9, 1])), None, "cut short");
        assert_eq!(handle(&reply(102, 1, &string(&[7; 300]))), None, "too long");
    }

    #[test]
    fn attributes_are_read_as_their_flags_say() {
        let mut body = (ATTR_SIZE | ATTR_UIDGID | ATTR_PERMISSIONS | ATTR_ACMODTIME)
            .to_be_bytes()
            .to_vec();
        body.extend_from_slice(&4096u64.to_be_bytes());
        for v in [1000u32, 100, 0o100644, 7, 9] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        let got = attrs(&reply(105, 2, &body)).expect("attrs");
        let want = FileStat {
            size: Some(4096),
            uid: Some(1000),
            gid: Some(100),
            perm: Some(0o100644),
            atime: Some(7),
            mtime: Some(9),
        };
        assert_eq!(got, want);
        // Only the permissions: the rest is absent, not zero.
        let mut body = ATTR_PERMISSIONS.to_be_bytes().to_vec();
        body.extend_from_slice(&0o100600u32.to_be_bytes());
        let got = attrs(&reply(105, 2, &body)).expect("attrs");
        assert_eq!((got.perm, got.size), (Some(0o100600), None));
        assert!(attrs(&reply(105, 2, &body[..6])).is_none(), "cut short");
        assert!(attrs(&reply(101, 2, &body)).is_none(), "not attrs");
    }

    #[test]
    fn version_and_limits_replies_are_read() {
        let mut version = vec![FXP_VERSION, 0, 0, 0, 3];
        version.extend(string(b"posix-rename@openssh.com"));
        version.extend(string(b"1"));
        version.extend(string(b"limits@openssh.com"));
        version.extend(string(b"1"));
        let names = version_extensions(&version).expect("a version packet");
        assert_eq!(
            names,
            [&b"posix-rename@openssh.com"[..], b"limits@openssh.com"]
        );
        assert_eq!(version_extensions(&[FXP_VERSION, 0, 0, 0, 3]), Some(vec![]));
        version.pop();
        assert!(version_extensions(&version).is_none(), "cut short");
        assert!(version_extensions(&[FXP_HANDLE, 0, 0, 0, 3]).is_none());

        let mut limits = Vec::new();
        for v in [262_144u64, 261_120, 261_120, 1024] {
            limits.extend_from_slice(&v.to_be_bytes());
        }
        assert_eq!(max_read_length(&reply(201, 4, &limits)), Some(261_120));
        assert_eq!(max_read_length(&reply(201, 4, &limits[..12])), None);
        assert_eq!(max_read_length(&reply(101, 4, &limits)), None);
    }

    #[test]
    fn owner_names_come_back_in_the_order_asked() {
        let blob = |names: &[&[u8]]| names.iter().flat_map(|n| string(n)).collect::<Vec<u8>>();
        let mut body = string(&blob(&[b"alice", b""]));
        body.extend(string(&blob(&[b"staff"])));
        let names = id_names(&reply(201, 3, &body), 2, 1).expect("names");
        assert_eq!(names.users, [OsString::from("alice"), OsString::new()]);
        assert_eq!(names.groups, [OsString::from("staff")]);
        // Fewer or more names than asked: no answer at all.
        assert!(id_names(&reply(201, 3, &body), 3, 1).is_none());
        assert!(id_names(&reply(201, 3, &body), 1, 1).is_none());
        assert!(id_names(&reply(101, 3, &body), 2, 1).is_none());
    }
}
