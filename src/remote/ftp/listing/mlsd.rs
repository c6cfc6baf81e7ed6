//! `MLSD` and `MLST` fact lines (RFC 3659): `fact=value;fact=value; name`.
//!
//! Owns: splitting facts from the name, the `type` fact (with `OS.unix`
//! symlinks) and the facts that map onto `Attr`. Must not: vet names other
//! than through `Found::into_entry`, or take `MLST`'s path for a name.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::{SystemTime, UNIX_EPOCH};

use super::time::parse_timeval;
use super::{
    default_perm, find, is_blank_line, lines, parse_u32, parse_u64, split_once, strip_eol,
    strip_prefix_ignore_case, Found, ParsedEntry,
};
use crate::remote::{Attr, Kind};

/// The facts of one `MLST` reply: attributes of the path that was asked for.
#[derive(Clone, Debug)]
pub struct MlstFacts {
    pub attr: Attr,
    pub link_target: Option<OsString>,
    /// As in [`ParsedEntry::time_precise`].
    pub time_precise: bool,
}

/// Parse `MLSD` output (the whole body) with [`parse_mlsd_line`]; blank lines
/// are skipped.
pub fn parse_mlsd(body: &[u8]) -> Vec<ParsedEntry> {
    lines(body)
        .filter(|line| !is_blank_line(line))
        .filter_map(parse_mlsd_line)
        .collect()
}

/// Parse one `MLSD`/`MLST` line (`fact=value;fact=value; name`). `None` for
/// unusable lines (logged), for `cdir`/`pdir` entries (`.`, `..`), and for
/// unusable names (logged). A leading blank, as `MLST` replies indent the
/// entry line, is ignored. For the reply to `MLST`, whose name is usually a
/// path (and so no valid entry name), use [`parse_mlst_line`].
pub fn parse_mlsd_line(line: &[u8]) -> Option<ParsedEntry> {
    let line = strip_eol(line);
    let Some((facts, name)) =
        split_facts(line).and_then(|(f, name)| Some((Facts::parse(f)?, name)))
    else {
        tracing::debug!(line = %line.escape_ascii(), "skipping an unusable MLSD line");
        return None;
    };
    let kind = match facts.kind {
        // The directory itself and its parent: never entries.
        TypeFact::CurrentDir | TypeFact::ParentDir => return None,
        other => other.kind(),
    };
    Found {
        name,
        link_target: facts.kind.link_target(),
        attr: facts.attr(kind),
        time_precise: facts.mtime.is_some(),
    }
    .into_entry()
}

/// Parse the facts of an `MLST` reply line (` fact=value;…; /path`). The
/// pathname is not looked at: it is whatever the server echoes for the path
/// asked, often a full path. `cdir` and `pdir` count as directories here.
pub fn parse_mlst_line(line: &[u8]) -> Option<MlstFacts> {
    let line = strip_eol(line);
    let Some(facts) = split_facts(line).and_then(|(f, _)| Facts::parse(f)) else {
        tracing::debug!(line = %line.escape_ascii(), "unusable MLST line");
        return None;
    };
    let kind = match facts.kind {
        TypeFact::CurrentDir | TypeFact::ParentDir => Kind::Dir,
        other => other.kind(),
    };
    Some(MlstFacts {
        attr: facts.attr(kind),
        link_target: facts
            .kind
            .link_target()
            .map(|t| OsString::from_vec(t.to_vec())),
        time_precise: facts.mtime.is_some(),
    })
}

// MLSD / MLST

/// Split an `MLSD`/`MLST` line into its facts and the name. RFC 3659: every
/// fact ends with `;`, one space precedes the name, and fact values contain
/// no `; ` — so the first `; ` ends the facts, and the name (which may hold
/// `;` and spaces) is everything after it.
fn split_facts(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = line.strip_prefix(b" ").unwrap_or(line);
    let end = find(line, b"; ")?;
    Some((&line[..end], &line[end + 2..]))
}

/// The `type` fact.
#[derive(Clone, Copy)]
enum TypeFact<'a> {
    File,
    Dir,
    CurrentDir,
    ParentDir,
    Symlink(Option<&'a [u8]>),
    /// Devices, FIFOs, unknown or missing types.
    Other,
}

impl<'a> TypeFact<'a> {
    fn parse(value: &'a [u8]) -> Self {
        const UNIX_PREFIX: &[u8] = b"os.unix=";
        if value.eq_ignore_ascii_case(b"file") {
            return TypeFact::File;
        }
        if value.eq_ignore_ascii_case(b"dir") {
            return TypeFact::Dir;
        }
        if value.eq_ignore_ascii_case(b"cdir") {
            return TypeFact::CurrentDir;
        }
        if value.eq_ignore_ascii_case(b"pdir") {
            return TypeFact::ParentDir;
        }
        let Some(unix_type) = strip_prefix_ignore_case(value, UNIX_PREFIX) else {
            return TypeFact::Other;
        };
        // `OS.unix=slink:/target` (proftpd), `OS.unix=symlink` (no target).
        let (name, target) = match split_once(unix_type, b':') {
            Some((name, target)) => (name, Some(target)),
            None => (unix_type, None),
        };
        if name.eq_ignore_ascii_case(b"slink") || name.eq_ignore_ascii_case(b"symlink") {
            TypeFact::Symlink(target)
        } else {
            TypeFact::Other
        }
    }

    fn kind(self) -> Kind {
        match self {
            TypeFact::File => Kind::File,
            TypeFact::Dir | TypeFact::CurrentDir | TypeFact::ParentDir => Kind::Dir,
            TypeFact::Symlink(_) => Kind::Symlink,
            TypeFact::Other => Kind::Other,
        }
    }

    fn link_target(self) -> Option<&'a [u8]> {
        match self {
            TypeFact::Symlink(target) => target.filter(|t| !t.is_empty()),
            _ => None,
        }
    }
}

/// The facts of one line that we can map onto [`Attr`].
struct Facts<'a> {
    kind: TypeFact<'a>,
    size: u64,
    perm: Option<u16>,
    uid: u32,
    gid: u32,
    mtime: Option<SystemTime>,
}

impl<'a> Facts<'a> {
    /// `None` when there is no fact at all, or the size is unreadable (a
    /// wrong size would make reads lie). Other unreadable facts count as
    /// absent. Fact names are case-insensitive (RFC 3659).
    fn parse(text: &'a [u8]) -> Option<Self> {
        let mut any = false;
        let (mut size, mut dir_size) = (None, None);
        let mut facts = Facts {
            kind: TypeFact::Other,
            size: 0,
            perm: None,
            uid: 0,
            gid: 0,
            mtime: None,
        };
        // A `;` inside a value (only plausible in a symlink target) cuts the
        // value short; RFC 3659 does not allow it, so there is no telling.
        for fact in text.split(|&b| b == b';') {
            let Some((name, value)) = split_once(fact, b'=') else {
                continue;
            };
            any = true;
            let is = |wanted: &[u8]| name.eq_ignore_ascii_case(wanted);
            if is(b"type") {
                facts.kind = TypeFact::parse(value);
            } else if is(b"size") {
                size = Some(parse_u64(value)?);
            } else if is(b"sizd") {
                dir_size = Some(parse_u64(value)?);
            } else if is(b"modify") {
                facts.mtime = parse_timeval(value);
            } else if is(b"unix.mode") {
                facts.perm = parse_octal_perm(value);
            } else if is(b"unix.uid") || is(b"unix.owner") {
                facts.uid = parse_u32(value).unwrap_or(facts.uid);
            } else if is(b"unix.gid") || is(b"unix.group") {
                facts.gid = parse_u32(value).unwrap_or(facts.gid);
            }
            // perm, unique, create, lang, media-type, UNIX.ownername, …:
            // nothing in `Attr` to put them in.
        }
        if !any {
            return None;
        }
        facts.size = size.or(dir_size).unwrap_or(0);
        Some(facts)
    }

    fn attr(&self, kind: Kind) -> Attr {
        let mtime = self.mtime.unwrap_or(UNIX_EPOCH);
        Attr {
            kind,
            size: self.size,
            perm: self.perm.unwrap_or_else(|| default_perm(kind)),
            uid: self.uid,
            gid: self.gid,
            atime: mtime,
            mtime,
            ctime: mtime,
            nlink: 1,
        }
    }
}

/// `UNIX.mode` is octal (`0755`, `02775`); only permission bits are kept.
fn parse_octal_perm(value: &[u8]) -> Option<u16> {
    if value.is_empty() {
        return None;
    }
    let mode = value.iter().try_fold(0u32, |mode, &b| {
        let digit = (b'0'..=b'7').contains(&b).then(|| u32::from(b - b'0'))?;
        mode.checked_mul(8)?.checked_add(digit)
    })?;
    u16::try_from(mode & 0o7777).ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::time::Duration;

    use super::super::testkit::*;
    use super::*;

    #[test]
    fn mlsd_proftpd() {
        let body = b"\
modify=20240304091500;perm=flcdmpe;type=cdir;unique=FD00U2C0001;UNIX.group=1000;UNIX.groupname=alice;UNIX.mode=0755;UNIX.owner=1000;UNIX.ownername=alice; .\r\n\
modify=20231102080000;perm=flcdmpe;type=pdir;unique=FD00U2;UNIX.group=0;UNIX.groupname=root;UNIX.mode=0755;UNIX.owner=0;UNIX.ownername=root; ..\r\n\
modify=20240304091500;perm=adfrw;size=1234;type=file;unique=FD00U2C0002;UNIX.group=1000;UNIX.groupname=alice;UNIX.mode=0644;UNIX.owner=1000;UNIX.ownername=alice; notes.txt\r\n\
modify=20240119174500;perm=flcdmpe;type=dir;unique=FD00U2C0003;UNIX.group=1000;UNIX.groupname=alice;UNIX.mode=02775;UNIX.owner=1000;UNIX.ownername=alice; shared\r\n\
modify=20240304091500;perm=adfrw;size=15;type=OS.unix=slink:/srv/releases/v1.2.3;unique=FD00U2C0004;UNIX.group=1000;UNIX.groupname=alice;UNIX.mode=0777;UNIX.owner=1000;UNIX.ownername=alice; current\r\n";
        let got = parse_mlsd(body);
        let t = utc(2024, 3, 4, 9, 15, 0);
        check(
            &got,
            &[
                want(b"notes.txt", Kind::File, 1234, 0o644, t),
                want(b"shared", Kind::Dir, 0, 0o2775, utc(2024, 1, 19, 17, 45, 0)),
                link(b"current", b"/srv/releases/v1.2.3", 15, 0o777, t),
            ],
            (1000, 1000),
            true,
        );
    }

    #[test]
    fn mlsd_pure_ftpd() {
        let body = b"\
type=cdir;sizd=4096;modify=20240304091500;UNIX.mode=0755;UNIX.uid=1000;UNIX.gid=100;unique=803g2a1b; .\r\n\
type=pdir;sizd=4096;modify=20231102080000;UNIX.mode=0755;UNIX.uid=0;UNIX.gid=0;unique=803g2; ..\r\n\
type=file;size=123456;modify=20240229235959;UNIX.mode=0600;UNIX.uid=1000;UNIX.gid=100;unique=803g2a1c; secret.key\r\n\
type=dir;sizd=4096;modify=20240101000000;UNIX.mode=0755;UNIX.uid=1000;UNIX.gid=100;unique=803g2a1d; Music\r\n";
        let got = parse_mlsd(body);
        check(
            &got,
            &[
                want(
                    b"secret.key",
                    Kind::File,
                    123_456,
                    0o600,
                    utc(2024, 2, 29, 23, 59, 59),
                ),
                want(b"Music", Kind::Dir, 4096, 0o755, utc(2024, 1, 1, 0, 0, 0)),
            ],
            (1000, 100),
            true,
        );
    }

    #[test]
    fn mlsd_without_unix_facts() {
        // Windows servers (IIS, FileZilla Server): no UNIX.* facts, fact
        // names in any case, fractional seconds.
        let body = b"\
Type=Dir;Modify=20240304091500.123;Perm=el; Program Files\r\n\
type=file;size=0;modify=20240304091500.5;perm=adfrw; New Text Document.txt\r\n\
TYPE=OS.unix=SYMLINK;SIZE=9;MODIFY=20240304091500; nolink\r\n";
        let got = parse_mlsd(body);
        let t = utc(2024, 3, 4, 9, 15, 0);
        check(
            &got,
            &[
                want(
                    b"Program Files",
                    Kind::Dir,
                    0,
                    0o755,
                    t + Duration::from_millis(123),
                ),
                want(
                    b"New Text Document.txt",
                    Kind::File,
                    0,
                    0o644,
                    t + Duration::from_millis(500),
                ),
                want(b"nolink", Kind::Symlink, 9, 0o777, t),
            ],
            (0, 0),
            true,
        );
    }

    #[test]
    fn mlsd_names() {
        let body = b"\
type=file;size=3;modify=20240304091500; a;b c.txt\r\n\
type=file;size=1;modify=20240304091500;  lead\r\n\
type=file;size=2;modify=20240304091500; trail  \r\n\
type=file;size=5;modify=20240304091500; caf\xe9.txt\r\n\
type=file;size=6;modify=20240304091500; type=file; x\r\n\
type=OS.unix=slink:/a b;size=3;modify=20240304091500; spaced target\r\n\
type=OS.unix=chardev;modify=20240304091500; tty0\r\n\
type=file;size=7;modify=20240304091500;UNIX.mode=100644; full mode\n";
        let got = parse_mlsd(body);
        let t = utc(2024, 3, 4, 9, 15, 0);
        check(
            &got,
            &[
                want(b"a;b c.txt", Kind::File, 3, 0o644, t),
                want(b" lead", Kind::File, 1, 0o644, t),
                want(b"trail  ", Kind::File, 2, 0o644, t),
                want(b"caf\xe9.txt", Kind::File, 5, 0o644, t),
                want(b"type=file; x", Kind::File, 6, 0o644, t),
                link(b"spaced target", b"/a b", 3, 0o777, t),
                want(b"tty0", Kind::Other, 0, 0o644, t),
                want(b"full mode", Kind::File, 7, 0o644, t),
            ],
            (0, 0),
            true,
        );
    }

    #[test]
    fn mlsd_unusable_lines() {
        for line in [
            &b"type=file;size=1; ../x"[..],
            b"type=dir; a/b",
            b"type=file; ..",
            b"type=file; .",
            b"type=file; nul\0byte",
            b"type=file;size=abc; badsize",
            b"type=file;size=18446744073709551616; toobig",
            b"no facts here",
            b"; onlyname",
            b"nofacts; name",
            b"type=file;size=3; ",
            b"type=file;size=3;",
            b"",
            b"type=cdir;modify=20240304091500; .",
            b"type=pdir;modify=20240304091500; ..",
            b"type=cdir; /home/alice",
            b"type=cdir; alice",
            b"type=pdir; home",
        ] {
            assert!(parse_mlsd_line(line).is_none(), "{}", line.escape_ascii());
        }
    }

    #[test]
    fn mlsd_imprecise_or_odd_facts() {
        // No usable `modify`: the caller should ask MDTM.
        let body = b"\
type=file;size=7;unique=x;perm=r; nomodify\r\n\
type=file;size=1;modify=2024; badmodify\r\n";
        check(
            &parse_mlsd(body),
            &[
                want(b"nomodify", Kind::File, 7, 0o644, UNIX_EPOCH),
                want(b"badmodify", Kind::File, 1, 0o644, UNIX_EPOCH),
            ],
            (0, 0),
            false,
        );
        // Unreadable mode and ids count as absent.
        let body = b"type=file;size=2;modify=20240304091500;UNIX.mode=0999;UNIX.uid=x;UNIX.gid=-1; badmode\r\n";
        check(
            &parse_mlsd(body),
            &[want(
                b"badmode",
                Kind::File,
                2,
                0o644,
                utc(2024, 3, 4, 9, 15, 0),
            )],
            (0, 0),
            true,
        );
    }

    #[test]
    fn mlst_reply_line() {
        let facts = parse_mlst_line(b" type=file;size=1234;modify=20240304091500;UNIX.mode=0640;UNIX.uid=1000;UNIX.gid=100; /home/alice/notes.txt\r\n");
        let facts = facts.expect("facts");
        assert_eq!(facts.attr.kind, Kind::File);
        assert_eq!(facts.attr.size, 1234);
        assert_eq!(facts.attr.perm, 0o640);
        assert_eq!((facts.attr.uid, facts.attr.gid), (1000, 100));
        assert_eq!(facts.attr.mtime, utc(2024, 3, 4, 9, 15, 0));
        assert!(facts.time_precise);
        assert!(facts.link_target.is_none());

        let dir = parse_mlst_line(b" type=cdir;modify=20240304091500; /home/alice").expect("facts");
        assert_eq!(dir.attr.kind, Kind::Dir);
        assert_eq!(dir.attr.perm, 0o755);

        let link =
            parse_mlst_line(b" type=OS.unix=slink:/etc;modify=20240304091500; /x").expect("facts");
        assert_eq!(link.attr.kind, Kind::Symlink);
        assert_eq!(
            link.link_target.as_deref().map(OsStrExt::as_bytes),
            Some(&b"/etc"[..])
        );

        assert!(parse_mlst_line(b" /home/alice").is_none());
    }
}

#[cfg(test)]
mod proptests {
    use std::os::unix::ffi::OsStrExt;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::super::testkit::{body, safe_entries, LAST_FTP_SECOND};
    use super::super::time::ftp_time;
    use super::*;
    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn mlsd_yields_only_safe_names(body in body()) {
            let entries = parse_mlsd(&body);
            safe_entries(&entries, &body)?;
            for line in body.split(|&b| b == b'\n') {
                let _ = parse_mlst_line(line);
            }
        }

        #[test]
        fn an_mlsd_line_reads_back(
            name in "[A-Za-z0-9_][A-Za-z0-9 ._-]{0,20}",
            size in any::<u64>(),
            secs in 0..=LAST_FTP_SECOND,
        ) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let modify = ftp_time(t).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let line = format!("type=file;size={size};modify={modify}; {name}\r\n");
            let e = parse_mlsd_line(line.as_bytes()).ok_or_else(|| TestCaseError::fail(line.clone()))?;
            prop_assert_eq!(e.entry.name.as_bytes(), name.as_bytes());
            prop_assert_eq!(e.entry.attr.kind, Kind::File);
            prop_assert_eq!(e.entry.attr.size, size);
            prop_assert_eq!(e.entry.attr.mtime, t);
            prop_assert!(e.time_precise);
        }
    }
}
