//! Parsing of FTP directory listings into [`DirEntry`]: `LIST` output in Unix
//! (`ls -l`) and DOS/IIS styles, `MLSD`/`MLST` fact lines (RFC 3659), and
//! `MDTM` reply values.
//!
//! Everything here is a pure function of the bytes it is given (and of `now`,
//! which callers pass in): no I/O, no clock, no connection state, so every
//! server quirk can be tested from captured output.
//!
//! Names stay bytes from the wire to the `OsString`, so non-UTF-8 names round
//! trip. A name that is empty, `.`, `..`, or contains `/` or NUL never becomes
//! an entry: a hostile server must not be able to make the filesystem show
//! `../x` or `a/b` as a directory entry.
//!
//! Servers give no access time; `atime` is set to `mtime`. `LIST` gives owner
//! and group as names (or numbers we cannot trust to mean local ids), so `uid`
//! and `gid` are 0 there and the caller overrides them.
//!
//! This module owns what every dialect shares: the entry types, the vetting
//! of names (`Found::into_entry`) and the byte helpers. Each dialect lives in
//! its own file (`unix`, `dos`, `mlsd`), FTP timestamps in `time`.

mod dos;
mod mlsd;
#[cfg(test)]
mod testkit;
mod time;
mod unix;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::SystemTime;

pub use self::mlsd::{parse_mlsd, parse_mlst_line, MlstFacts};
pub use self::time::{ftp_time, parse_mdtm};

use crate::remote::{Attr, DirEntry, Kind};

/// Permissions shown when the listing tells none (DOS style, MLSD without
/// `UNIX.mode`).
const DEFAULT_FILE_PERM: u16 = 0o644;
const DEFAULT_DIR_PERM: u16 = 0o755;
const DEFAULT_LINK_PERM: u16 = 0o777;

/// Which `LIST` format a line was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListingStyle {
    /// `ls -l` style: `-rw-r--r-- 1 owner group 123 Jan 17 10:22 name`.
    Unix,
    /// DOS/IIS style: `01-17-24  10:22AM  <DIR>  name`.
    Dos,
}

/// One usable entry of a listing.
#[derive(Clone, Debug)]
pub struct ParsedEntry {
    pub entry: DirEntry,
    /// Where a symlink points, when the listing tells.
    pub link_target: Option<OsString>,
    /// False when the listing gave only minute or day precision (or no time at
    /// all), so the caller may ask `MDTM` for the exact time.
    pub time_precise: bool,
}

/// Parse `LIST` output (the whole body). Each line is tried as Unix style,
/// then as DOS/IIS style. Lines that are neither (`total 12`, garbage) and
/// entries with unusable names are skipped and logged at debug level; blank
/// lines are skipped silently.
pub fn parse_list(body: &[u8], now: SystemTime) -> Vec<ParsedEntry> {
    lines(body)
        .filter(|line| !is_blank_line(line))
        .filter_map(|line| parse_list_line(line, now).map(|(_, entry)| entry))
        .collect()
}

/// Parse one `LIST` line, telling which style it was read as. `None` for
/// lines that are no entry and for entries with unusable names (both logged).
///
/// In Unix style the name starts after exactly one blank following the time
/// or year field, as `ls -l` prints it, so leading blanks of a name survive.
/// In DOS style the name starts at the first non-blank after the size (IIS
/// pads that column), so leading blanks are lost there. Trailing blanks are
/// kept in both.
pub fn parse_list_line(line: &[u8], now: SystemTime) -> Option<(ListingStyle, ParsedEntry)> {
    let line = strip_eol(line);
    let (style, found) = if let Some(found) = unix::parse_unix(line, now) {
        (ListingStyle::Unix, found)
    } else if let Some(found) = dos::parse_dos(line) {
        (ListingStyle::Dos, found)
    } else {
        tracing::debug!(line = %line.escape_ascii(), "skipping a LIST line that is no entry");
        return None;
    };
    found.into_entry().map(|entry| (style, entry))
}

// ---------------------------------------------------------------------------
// What all parsers produce

/// What a parser found on one line, before the name is vetted.
struct Found<'a> {
    name: &'a [u8],
    link_target: Option<&'a [u8]>,
    attr: Attr,
    time_precise: bool,
}

impl Found<'_> {
    /// The entry, unless its name is not a single safe path component.
    fn into_entry(self) -> Option<ParsedEntry> {
        if !is_valid_name(self.name) {
            tracing::debug!(name = %self.name.escape_ascii(), "dropping an entry with an unusable name");
            return None;
        }
        Some(ParsedEntry {
            entry: DirEntry {
                name: OsString::from_vec(self.name.to_vec()),
                attr: self.attr,
            },
            link_target: self
                .link_target
                .filter(|target| !target.is_empty())
                .map(|target| OsString::from_vec(target.to_vec())),
            time_precise: self.time_precise,
        })
    }
}

/// A single path component a server may legitimately send in a listing.
fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

fn default_perm(kind: Kind) -> u16 {
    match kind {
        Kind::Dir => DEFAULT_DIR_PERM,
        Kind::Symlink => DEFAULT_LINK_PERM,
        Kind::File | Kind::Other => DEFAULT_FILE_PERM,
    }
}

/// Attributes from a `LIST` line: no ids, no access time.
fn list_attr(kind: Kind, size: u64, perm: u16, mtime: SystemTime) -> Attr {
    Attr {
        kind,
        size,
        perm,
        uid: 0,
        gid: 0,
        atime: mtime,
        mtime,
        ctime: mtime,
        nlink: 1,
    }
}

// ---------------------------------------------------------------------------
// Bytes

/// Lines of a body; `\r\n` and bare `\n` both end a line.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    body.split(|&b| b == b'\n').map(strip_eol)
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_blank_line(line: &[u8]) -> bool {
    line.iter().all(|&b| is_blank(b))
}

fn trim_start_blanks(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_blank(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// Byte ranges of the first `max` blank-separated fields of `line`.
fn field_spans(line: &[u8], max: usize) -> Vec<(usize, usize)> {
    let mut spans = Vec::with_capacity(max);
    let mut at = 0;
    while spans.len() < max {
        let Some(start) = line[at..]
            .iter()
            .position(|&b| !is_blank(b))
            .map(|i| at + i)
        else {
            break;
        };
        let end = line[start..]
            .iter()
            .position(|&b| is_blank(b))
            .map_or(line.len(), |i| start + i);
        spans.push((start, end));
        at = end;
    }
    spans
}

/// The next blank-separated field and what follows it (starting with the
/// blank).
fn next_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let bytes = trim_start_blanks(bytes);
    if bytes.is_empty() {
        return None;
    }
    let end = bytes
        .iter()
        .position(|&b| is_blank(b))
        .unwrap_or(bytes.len());
    Some(bytes.split_at(end))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

fn strip_prefix_ignore_case<'a>(bytes: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = bytes.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &bytes[prefix.len()..])
}

fn is_digits(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit)
}

/// A decimal number, `None` on anything but digits or on overflow.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    u32::try_from(parse_u64(digits)?).ok()
}

/// A short decimal field of `min..=max` digits (days, hours, years).
fn parse_small(digits: &[u8], min: usize, max: usize) -> Option<u32> {
    if !(min..=max).contains(&digits.len()) {
        return None;
    }
    parse_u32(digits)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::testkit::*;
    use super::*;

    #[test]
    fn reference_clock_matches_date_command() {
        // `date -u -d '2024-03-15 12:00:00' +%s` and friends.
        assert_eq!(now(), UNIX_EPOCH + Duration::from_secs(1_710_504_000));
        assert_eq!(
            at(2024, 3, 4, 9, 15),
            UNIX_EPOCH + Duration::from_secs(1_709_543_700)
        );
        assert_eq!(
            at(2024, 2, 29, 23, 59),
            UNIX_EPOCH + Duration::from_secs(1_709_251_140)
        );
        assert_eq!(
            at(2022, 11, 30, 0, 0),
            UNIX_EPOCH + Duration::from_secs(1_669_766_400)
        );
    }

    #[test]
    fn non_entries_are_skipped() {
        let body = b"\
total 12\r\n\
\r\n\
   \r\n\
garbage line here\r\n\
ls: cannot open directory .: Permission denied\r\n\
-rw-r--r-- 1 a b notanumber Mar  4 09:15 nosize\r\n\
-rw-r--r-- 1 a b 99999999999999999999999 Mar  4 09:15 huge\r\n\
-rw-r--r-- 1 a b 18446744073709551616 Mar  4 09:15 just over\r\n\
-rw-r--r-- 1 a b 1 Foo  4 09:15 badmonth\r\n\
-rw-r--r-- 1 a b 1 Mar 32 09:15 badday\r\n\
-rw-r--r-- 1 a b 1 Mar  4 24:00 badhour\r\n\
-rw-r--r-- 1 a b 1 Mar  4 9:5 badminute\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 \r\n\
-rwxrwxrwz 1 a b 1 Mar  4 09:15 badmode\r\n\
?rw-r--r-- 1 a b 1 Mar  4 09:15 badtype\r\n\
-rw-r--r--x 1 a b 1 Mar  4 09:15 longmode\r\n\
-rw-r--r-- 1 1 Mar  4 09:15 too few fields\r\n\
-rw-r--r-- 1 a b c d 1 Mar  4 09:15 too many fields\r\n\
crw-rw---- 1 a b c d 4, 1 Mar  4 09:15 too many fields\r\n\
01-17-24  10:22XM       <DIR>          badmeridiem\r\n\
13-17-24  10:22AM       <DIR>          badmonth\r\n\
01-17-24  10:22AM       <FILE>         badsize\r\n\
-rw-r--r-- 1 a b 18446744073709551615 Mar  4 09:15 max size\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[want(
                b"max size",
                Kind::File,
                u64::MAX,
                0o644,
                at(2024, 3, 4, 9, 15),
            )],
        );
    }

    #[test]
    fn hostile_names_are_dropped() {
        let body = b"\
-rw-r--r-- 1 a b 1 Mar  4 09:15 ../x\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 a/b\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 /abs\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 trailing/\r\n\
drwxr-xr-x 2 a b 1 Mar  4 09:15 .\r\n\
drwxr-xr-x 2 a b 1 Mar  4 09:15 ..\r\n\
lrwxrwxrwx 1 a b 1 Mar  4 09:15 ../../etc -> /etc\r\n\
lrwxrwxrwx 1 a b 1 Mar  4 09:15 sub/link -> x\r\n\
lrwxrwxrwx 1 a b 1 Mar  4 09:15 .. -> /\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 nul\0byte\r\n\
03-04-24  09:15AM       <DIR>          ..\r\n\
03-04-24  09:15AM       <DIR>          .\r\n\
03-04-24  09:15AM                    1 dir/file\r\n\
03-04-24  09:15AM                    1 ..\\x\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 ...\r\n\
-rw-r--r-- 1 a b 1 Mar  4 09:15 ok.txt\r\n";
        let got = parse_list(body, now());
        let t = at(2024, 3, 4, 9, 15);
        check_list(
            &got,
            &[
                // A backslash is an ordinary byte in a Unix name.
                want(b"..\\x", Kind::File, 1, 0o644, t),
                want(b"...", Kind::File, 1, 0o644, t),
                want(b"ok.txt", Kind::File, 1, 0o644, t),
            ],
        );
    }

    #[test]
    fn list_line_reports_its_style() {
        let unix = parse_list_line(b"-rw-r--r-- 1 a b 1 Mar  4 09:15 x\r\n", now());
        let dos = parse_list_line(b"03-04-24  09:15AM  1 x\r\n", now());
        assert_eq!(unix.map(|(style, _)| style), Some(ListingStyle::Unix));
        assert_eq!(dos.map(|(style, _)| style), Some(ListingStyle::Dos));
        assert!(parse_list_line(b"total 0", now()).is_none());
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::testkit::{body, prop_now as now, safe_entries};
    use super::*;
    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn list_yields_only_safe_names(body in body()) {
            let entries = parse_list(&body, now());
            safe_entries(&entries, &body)?;
        }
    }
}
