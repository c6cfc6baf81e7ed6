//! `LIST` lines in Unix (`ls -l`) style.
//!
//! Owns: anchoring a line on its date, mode bits, the size field (or a
//! device's `major, minor`), the year `ls` leaves out, and `name -> target`.
//! Must not: vet names (the caller does, through `Found::into_entry`) or
//! read a clock (`now` is given).

use std::time::SystemTime;

use super::time::{civil_from_days, secs_to_system, Civil, SECS_PER_DAY};
use super::{field_spans, find, is_digits, list_attr, parse_small, parse_u64, split_once, Found};
use crate::remote::{unix_secs, Kind};

/// How far after `now` a year-less `Mmm dd hh:mm` date may lie. `ls` prints
/// the time instead of the year for roughly the last six months; allowing the
/// same span into the future also absorbs clock skew and future-dated files.
const YEARLESS_FUTURE_LIMIT_SECS: i64 = 183 * SECS_PER_DAY;

// Unix style

/// How many fields may stand between the mode and the size: links and owner
/// at least (some servers print no group), and at most links, owner and a
/// group name holding one blank (Windows servers: `Domain Users`).
const UNIX_OWNER_FIELDS: std::ops::RangeInclusive<usize> = 2..=4;

/// Fields before the name at most: mode, the owner fields, size (or `major,`
/// and `minor`), month, day, time or year.
const UNIX_FIELDS_BEFORE_NAME: usize = 10;

/// Parse `mode links owner [group] size Mmm dd hh:mm|yyyy name`.
///
/// The fields between mode and date vary (group missing on some servers,
/// `major, minor` for devices), so the line is anchored on the date: the
/// first month-day-time triple whose preceding field is a size and that
/// leaves [`UNIX_OWNER_FIELDS`] fields after the mode.
pub(super) fn parse_unix(line: &[u8], now: SystemTime) -> Option<Found<'_>> {
    let spans = field_spans(line, UNIX_FIELDS_BEFORE_NAME);
    let field = |i: usize| spans.get(i).map(|&(start, end)| &line[start..end]);
    let (kind, is_device, perm) = parse_mode(field(0)?)?;

    // The month follows the mode, the owner fields and at least one size field.
    let first_month_at = 1 + UNIX_OWNER_FIELDS.start() + 1;
    let last_month_at = UNIX_FIELDS_BEFORE_NAME - 3;
    for month_at in first_month_at..=last_month_at {
        let Some(month) = field(month_at).and_then(month_number) else {
            continue;
        };
        let Some(day) = field(month_at + 1).and_then(|f| parse_small(f, 1, 2)) else {
            continue;
        };
        let Some(tail) = field(month_at + 2).and_then(parse_time_or_year) else {
            continue;
        };
        let Some(size_at) = locate_size(&field, month_at, is_device) else {
            continue;
        };
        let owner_fields = size_at.first_field() - 1;
        if !UNIX_OWNER_FIELDS.contains(&owner_fields) {
            continue;
        }
        let Some(mtime) = unix_date(month, day, tail, now) else {
            continue;
        };
        let size = match size_at {
            SizeAt::Bytes { digits, .. } => match parse_u64(digits) {
                Some(size) => size,
                None => {
                    // A size we cannot represent would make reads lie; skip the entry.
                    tracing::debug!(line = %line.escape_ascii(), "skipping a LIST line: size too large");
                    return None;
                }
            },
            SizeAt::Device { .. } => 0,
        };
        let (_, date_end) = *spans.get(month_at + 2)?;
        let rest = line.get(date_end + 1..)?;
        let (name, link_target) = match kind {
            Kind::Symlink => split_link(rest),
            _ => (rest, None),
        };
        return Some(Found {
            name,
            link_target,
            attr: list_attr(kind, size, perm, mtime),
            time_precise: false,
        });
    }
    None
}

/// Kind, whether a device (`c`/`b`, whose size field is `major, minor`), and
/// permission bits from a mode field such as `drwxr-sr-x`, allowing one
/// trailing marker: `+` (ACL), `.` (SELinux context) or `@` (macOS xattrs).
fn parse_mode(field: &[u8]) -> Option<(Kind, bool, u16)> {
    let mode = match field {
        [mode @ .., b'+' | b'.' | b'@'] if mode.len() == 10 => mode,
        mode if mode.len() == 10 => mode,
        _ => return None,
    };
    let [type_char, bits @ ..] = mode else {
        return None;
    };
    let (kind, is_device) = match type_char {
        b'-' => (Kind::File, false),
        b'd' => (Kind::Dir, false),
        b'l' => (Kind::Symlink, false),
        b'c' | b'b' => (Kind::Other, true),
        // FIFO, socket, Solaris door.
        b'p' | b's' | b'D' => (Kind::Other, false),
        _ => return None,
    };
    Some((kind, is_device, parse_perm_bits(bits)?))
}

/// Permission bits from the nine `rwx` characters, including setuid, setgid
/// and sticky (`s`/`S`, `t`/`T`: lower case means the execute bit is set too).
fn parse_perm_bits(bits: &[u8]) -> Option<u16> {
    const SPECIAL: [u16; 3] = [0o4000, 0o2000, 0o1000];
    let mut perm = 0;
    for (triad, chunk) in bits.chunks_exact(3).enumerate() {
        let &[r, w, x] = chunk else {
            return None;
        };
        let read = match r {
            b'r' => 4,
            b'-' => 0,
            _ => return None,
        };
        let write = match w {
            b'w' => 2,
            b'-' => 0,
            _ => return None,
        };
        let (exec, special) = match (triad, x) {
            (_, b'x') => (1, false),
            (_, b'-') => (0, false),
            (0 | 1, b's') | (2, b't') => (1, true),
            (0 | 1, b'S') | (2, b'T') => (0, true),
            // Solaris shows mandatory locking (setgid without group execute) as `l`.
            (1, b'l' | b'L') => (0, true),
            _ => return None,
        };
        perm |= (read | write | exec) << (6 - 3 * triad);
        if special {
            perm |= SPECIAL[triad];
        }
    }
    Some(perm)
}

/// Where the size is, judged from the fields just before the date.
enum SizeAt<'a> {
    /// A byte count in field `at`.
    Bytes { at: usize, digits: &'a [u8] },
    /// A device's `major, minor` (one or two fields), starting at field `at`.
    Device { at: usize },
}

impl SizeAt<'_> {
    fn first_field(&self) -> usize {
        match self {
            SizeAt::Bytes { at, .. } | SizeAt::Device { at } => *at,
        }
    }
}

fn locate_size<'a>(
    field: &impl Fn(usize) -> Option<&'a [u8]>,
    month_at: usize,
    is_device: bool,
) -> Option<SizeAt<'a>> {
    let last = field(month_at - 1)?;
    if is_device {
        // `4,   0` (two fields) or `4,0` (one).
        if is_digits(last) {
            let major = field(month_at - 2).and_then(|f| f.strip_suffix(b","));
            if major.is_some_and(is_digits) {
                return Some(SizeAt::Device { at: month_at - 2 });
            }
        } else if let Some((major, minor)) = split_once(last, b',') {
            if is_digits(major) && is_digits(minor) {
                return Some(SizeAt::Device { at: month_at - 1 });
            }
        }
    }
    is_digits(last).then_some(SizeAt::Bytes {
        at: month_at - 1,
        digits: last,
    })
}

/// The part of a Unix-style date after the day.
#[derive(Clone, Copy)]
enum DateTail {
    Time { hour: u32, minute: u32 },
    Year(i64),
}

fn parse_time_or_year(field: &[u8]) -> Option<DateTail> {
    match split_once(field, b':') {
        Some((hour, minute)) => Some(DateTail::Time {
            hour: parse_small(hour, 1, 2)?,
            minute: parse_small(minute, 2, 2)?,
        }),
        None => Some(DateTail::Year(i64::from(parse_small(field, 4, 4)?))),
    }
}

/// The listed date as UTC (servers don't say their zone; UTC is the best
/// guess, and the caller may refine it with `MDTM`).
fn unix_date(month: u32, day: u32, tail: DateTail, now: SystemTime) -> Option<SystemTime> {
    let secs = match tail {
        DateTail::Year(year) => Civil::date(year, month, day).to_unix()?,
        DateTail::Time { hour, minute } => infer_year(month, day, hour, minute, now)?,
    };
    secs_to_system(secs, 0)
}

/// `ls` leaves out the year for recent dates: take the latest year that puts
/// the date no more than [`YEARLESS_FUTURE_LIMIT_SECS`] after `now`.
fn infer_year(month: u32, day: u32, hour: u32, minute: u32, now: SystemTime) -> Option<i64> {
    let now = unix_secs(now);
    let (this_year, _, _) = civil_from_days(now.div_euclid(SECS_PER_DAY));
    let limit = now.saturating_add(YEARLESS_FUTURE_LIMIT_SECS);
    // Three candidates always include one within the limit, except for
    // Feb 29 far from a leap year, which no server lists as recent.
    (this_year - 1..=this_year + 1)
        .rev()
        .filter_map(|year| {
            Civil {
                hour,
                minute,
                ..Civil::date(year, month, day)
            }
            .to_unix()
        })
        .find(|&secs| secs <= limit)
}

const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// 1-based month from an English abbreviation (the C locale `ls` uses).
fn month_number(field: &[u8]) -> Option<u32> {
    let index = MONTHS.iter().position(|m| field.eq_ignore_ascii_case(m))?;
    u32::try_from(index + 1).ok()
}

/// Split a symlink's `name -> target` at the first arrow. Ambiguous when the
/// name itself contains ` -> `; `ls` output cannot tell, so take the first.
fn split_link(rest: &[u8]) -> (&[u8], Option<&[u8]>) {
    const ARROW: &[u8] = b" -> ";
    match find(rest, ARROW) {
        Some(at) => (&rest[..at], Some(&rest[at + ARROW.len()..])),
        None => (rest, None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_list;
    use super::super::testkit::*;
    use crate::remote::Kind;

    #[test]
    fn vsftpd() {
        // vsftpd formats itself: links %4d, owner/group %-8s (numeric unless
        // text_userdb_names, `ftp` with hide_ids), size %8, day zero-padded.
        let body = b"\
drwxr-xr-x    2 1000     1000         4096 Mar 04 09:15 Documents\r\n\
-rw-r--r--    1 1000     1000       123456 Feb 29 23:59 report.pdf\r\n\
-rw-------    1 1000     1000            0 Nov 30  2022 empty\r\n\
lrwxrwxrwx    1 1000     1000            9 Jan 02 08:00 latest -> Documents\r\n\
drwxr-sr-x    3 0        50           4096 Oct 11  2021 pub\r\n\
-rw-r--r--    1 0        0        1073741824 Feb 19  2016 1GB.zip\r\n\
-rwsr-xr-x    1 0        0           27008 Oct 20 14:03 suidprog\r\n\
-rw-r--r--    1 ftp      ftp           512 Mar 15 11:58 hidden ids.txt\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"Documents", Kind::Dir, 4096, 0o755, at(2024, 3, 4, 9, 15)),
                want(
                    b"report.pdf",
                    Kind::File,
                    123_456,
                    0o644,
                    at(2024, 2, 29, 23, 59),
                ),
                want(b"empty", Kind::File, 0, 0o600, at(2022, 11, 30, 0, 0)),
                link(b"latest", b"Documents", 9, 0o777, at(2024, 1, 2, 8, 0)),
                want(b"pub", Kind::Dir, 4096, 0o2755, at(2021, 10, 11, 0, 0)),
                want(
                    b"1GB.zip",
                    Kind::File,
                    1_073_741_824,
                    0o644,
                    at(2016, 2, 19, 0, 0),
                ),
                want(
                    b"suidprog",
                    Kind::File,
                    27008,
                    0o4755,
                    at(2023, 10, 20, 14, 3),
                ),
                want(
                    b"hidden ids.txt",
                    Kind::File,
                    512,
                    0o644,
                    at(2024, 3, 15, 11, 58),
                ),
            ],
        );
    }

    #[test]
    fn proftpd() {
        // mod_ls: links %3d, owner/group %-8s, size %8, day space-padded
        // (%e); with `ListOptions -a` it also lists `.` and `..`.
        let body = b"\
drwxr-xr-x   5 alice    staff        4096 Mar  4 09:15 .\r\n\
drwxr-xr-x   3 root     root         4096 Nov  2  2022 ..\r\n\
-rw-r--r--   1 alice    staff        1234 Mar  4 09:15 notes.txt\r\n\
drwxrwsr-x   2 alice    staff        4096 Jan 19 17:45 shared\r\n\
-rw-r--r--   1 alice    staff     5242880 Dec  7 23:01 backup 2023-12-07.tar.gz\r\n\
lrwxrwxrwx   1 alice    staff          15 Mar  4 09:15 current -> releases/v1.2.3\r\n\
-rwxr-xr-t   1 alice    staff          64 Aug 30  2023 sticky.sh\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"notes.txt", Kind::File, 1234, 0o644, at(2024, 3, 4, 9, 15)),
                want(b"shared", Kind::Dir, 4096, 0o2775, at(2024, 1, 19, 17, 45)),
                want(
                    b"backup 2023-12-07.tar.gz",
                    Kind::File,
                    5_242_880,
                    0o644,
                    at(2023, 12, 7, 23, 1),
                ),
                link(
                    b"current",
                    b"releases/v1.2.3",
                    15,
                    0o777,
                    at(2024, 3, 4, 9, 15),
                ),
                want(b"sticky.sh", Kind::File, 64, 0o1755, at(2023, 8, 30, 0, 0)),
            ],
        );
    }

    #[test]
    fn pure_ftpd() {
        // Pure-FTPd formats itself with wider owner/group/size columns.
        let body = b"\
drwxr-xr-x    4 1000       1000             4096 Mar  4 09:15 Music\r\n\
-rw-r--r--    1 1000       1000          3145728 Mar  1 21:07 01 - Intro.mp3\r\n\
-rw-r-----    1 1000       1000              512 Jun  1  2019 old.cfg\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"Music", Kind::Dir, 4096, 0o755, at(2024, 3, 4, 9, 15)),
                want(
                    b"01 - Intro.mp3",
                    Kind::File,
                    3_145_728,
                    0o644,
                    at(2024, 3, 1, 21, 7),
                ),
                want(b"old.cfg", Kind::File, 512, 0o640, at(2019, 6, 1, 0, 0)),
            ],
        );
    }

    #[test]
    fn filezilla_server() {
        // FileZilla Server (Windows) fakes Unix style: always `1 ftp ftp`.
        let body = b"\
drwxr-xr-x 1 ftp ftp              0 Mar 04 09:15 My Documents\r\n\
-rw-r--r-- 1 ftp ftp         123456 Jan 01 12:00 New Text Document.txt\r\n\
-rw-r--r-- 1 ftp ftp     4294967296 Dec 31  2019 disk.img\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"My Documents", Kind::Dir, 0, 0o755, at(2024, 3, 4, 9, 15)),
                want(
                    b"New Text Document.txt",
                    Kind::File,
                    123_456,
                    0o644,
                    at(2024, 1, 1, 12, 0),
                ),
                want(
                    b"disk.img",
                    Kind::File,
                    4_294_967_296,
                    0o644,
                    at(2019, 12, 31, 0, 0),
                ),
            ],
        );
    }

    #[test]
    fn busybox_ftpd() {
        // BusyBox ftpd runs its own `ls -lAn`: numeric ids, size %9,
        // `major,  minor` for devices, ctime-style day.
        let body = b"\
-rw-r--r--    1 0        0             1234 Mar  4 09:15 busybox.txt\n\
drwxr-xr-x    2 0        0                0 Mar  4  2022 old dir\n\
crw-rw----    1 0        5           5,   0 Mar  4 09:15 tty\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(
                    b"busybox.txt",
                    Kind::File,
                    1234,
                    0o644,
                    at(2024, 3, 4, 9, 15),
                ),
                want(b"old dir", Kind::Dir, 0, 0o755, at(2022, 3, 4, 0, 0)),
                want(b"tty", Kind::Other, 0, 0o660, at(2024, 3, 4, 9, 15)),
            ],
        );
    }

    #[test]
    fn group_column_missing() {
        // Some BusyBox / Pure-FTPd builds (and `ls -o` style servers) print
        // no group column.
        let body = b"\
-rw-r--r--    1 ftp          1234 Mar  4 09:15 nogroup.txt\r\n\
drwxr-xr-x    2 ftp          4096 Mar  4  2022 no group dir\r\n\
crw-rw----    1 root       4,   1 Mar  4 09:15 tty1\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(
                    b"nogroup.txt",
                    Kind::File,
                    1234,
                    0o644,
                    at(2024, 3, 4, 9, 15),
                ),
                want(
                    b"no group dir",
                    Kind::Dir,
                    4096,
                    0o755,
                    at(2022, 3, 4, 0, 0),
                ),
                want(b"tty1", Kind::Other, 0, 0o660, at(2024, 3, 4, 9, 15)),
            ],
        );
    }

    #[test]
    fn iis_unix_style() {
        // IIS with "UNIX" directory listing style.
        let body = b"\
drwxrwxrwx   1 owner    group               0 Mar  4 09:15 wwwroot\r\n\
-rwxrwxrwx   1 owner    group            1234 Nov 30  2022 web.config\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"wwwroot", Kind::Dir, 0, 0o777, at(2024, 3, 4, 9, 15)),
                want(
                    b"web.config",
                    Kind::File,
                    1234,
                    0o777,
                    at(2022, 11, 30, 0, 0),
                ),
            ],
        );
    }

    #[test]
    fn group_name_with_a_blank() {
        // Windows servers faking Unix style may show a group such as
        // `Domain Users`.
        let body = b"\
-rw-r--r--   1 alice    Domain Users     1234 Mar  4 09:15 report.docx\r\n\
crw-rw----   1 root     Domain Users   4,   1 Mar  4 09:15 tty1\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(
                    b"report.docx",
                    Kind::File,
                    1234,
                    0o644,
                    at(2024, 3, 4, 9, 15),
                ),
                want(b"tty1", Kind::Other, 0, 0o660, at(2024, 3, 4, 9, 15)),
            ],
        );
    }

    // -----------------------------------------------------------------------
    // Unix LIST, special cases

    #[test]
    fn mode_markers_devices_and_special_bits() {
        // GNU `ls -l` as run by servers that shell out: `.` SELinux context,
        // `+` ACL, `@` macOS xattrs; devices print `major, minor`.
        let body = b"\
-rw-r--r--.  1 root root    1234 Mar  4 09:15 selinux.conf\r\n\
drwxrwxr-x+  3 alice staff  4096 Mar  4 09:15 acl dir\r\n\
-rw-r--r--@  1 alice  staff  1234 Mar  4 09:15 mac.txt\r\n\
crw-rw----   1 root tty     4,  0 Mar  4 09:15 tty0\r\n\
brw-rw----   1 root disk    8,  0 Mar  4 09:15 sda\r\n\
crw-rw-rw-   1 0    0         1,3 Mar  4 09:15 null\r\n\
prw-r--r--   1 root root       0 Mar  4 09:15 fifo\r\n\
srwxrwxrwx   1 root root       0 Mar  4 09:15 socket\r\n\
-rwSr-Sr-T   1 root root       0 Mar  4 09:15 specials\r\n\
-rwsr-sr-t   1 root root       0 Mar  4 09:15 specials x\r\n\
-rwxr-lr--   1 root root       0 Mar  4 09:15 solaris lock\r\n";
        let got = parse_list(body, now());
        let t = at(2024, 3, 4, 9, 15);
        check_list(
            &got,
            &[
                want(b"selinux.conf", Kind::File, 1234, 0o644, t),
                want(b"acl dir", Kind::Dir, 4096, 0o775, t),
                want(b"mac.txt", Kind::File, 1234, 0o644, t),
                want(b"tty0", Kind::Other, 0, 0o660, t),
                want(b"sda", Kind::Other, 0, 0o660, t),
                want(b"null", Kind::Other, 0, 0o666, t),
                want(b"fifo", Kind::Other, 0, 0o644, t),
                want(b"socket", Kind::Other, 0, 0o777, t),
                want(b"specials", Kind::File, 0, 0o7644, t),
                want(b"specials x", Kind::File, 0, 0o7755, t),
                want(b"solaris lock", Kind::File, 0, 0o2744, t),
            ],
        );
    }

    #[test]
    fn names_are_kept_byte_for_byte() {
        // The name starts after exactly one blank past the time or year.
        let body = b"\
-rw-r--r--   1 u g  1 Mar  4 09:15 two  inner  spaces\r\n\
-rw-r--r--   1 u g  2 Mar  4 09:15 trailing  \r\n\
-rw-r--r--   1 u g  3 Mar  4 09:15  leading space\r\n\
-rw-r--r--   1 u g  4 Mar  4  2022 year form name\r\n\
-rw-r--r--   1 u g  5 Mar  4  2022  leading after year\r\n\
-rw-r--r--   1 u g  6 Mar  4 09:15 tab\there\r\n\
-rw-r--r--   1 u g  7 Mar  4 09:15 caf\xe9 \xff.txt\r\n\
-rw-r--r--   1 u g  8 Mar  4 09:15 Jan  1 10:00 looks like a date\r\n\
-rw-r--r--   1 u g  9 Mar  4 09:15 not -> a link\r\n\
-rw-r--r--   1 Mar Jan 10 Mar  4 09:15 monthly owners\r\n\
-rw-r--r--   1 u g 11 Mar  4 09:15 semi;colon\r\n";
        let got = parse_list(body, now());
        let (t, y) = (at(2024, 3, 4, 9, 15), at(2022, 3, 4, 0, 0));
        check_list(
            &got,
            &[
                want(b"two  inner  spaces", Kind::File, 1, 0o644, t),
                want(b"trailing  ", Kind::File, 2, 0o644, t),
                want(b" leading space", Kind::File, 3, 0o644, t),
                want(b"year form name", Kind::File, 4, 0o644, y),
                want(b" leading after year", Kind::File, 5, 0o644, y),
                want(b"tab\there", Kind::File, 6, 0o644, t),
                want(b"caf\xe9 \xff.txt", Kind::File, 7, 0o644, t),
                want(b"Jan  1 10:00 looks like a date", Kind::File, 8, 0o644, t),
                want(b"not -> a link", Kind::File, 9, 0o644, t),
                want(b"monthly owners", Kind::File, 10, 0o644, t),
                want(b"semi;colon", Kind::File, 11, 0o644, t),
            ],
        );
    }

    #[test]
    fn symlinks() {
        let body = b"\
lrwxrwxrwx   1 u g 22 Mar  4 09:15 link with spaces -> target with spaces\r\n\
lrwxrwxrwx   1 u g  6 Mar  4 09:15 arrow -> a -> b\r\n\
lrwxrwxrwx   1 u g  4 Mar  4 09:15 notarget\r\n\
lrwxrwxrwx   1 u g 19 Mar  4 09:15 evil -> ../../../etc/passwd\r\n\
lrwxrwxrwx   1 u g  4 Mar  4 09:15 caf\xe9 -> \xe9t\xe9\r\n";
        let got = parse_list(body, now());
        let t = at(2024, 3, 4, 9, 15);
        check_list(
            &got,
            &[
                link(b"link with spaces", b"target with spaces", 22, 0o777, t),
                link(b"arrow", b"a -> b", 6, 0o777, t),
                want(b"notarget", Kind::Symlink, 4, 0o777, t),
                // The target is no name: it is passed on as the server said.
                link(b"evil", b"../../../etc/passwd", 19, 0o777, t),
                link(b"caf\xe9", b"\xe9t\xe9", 4, 0o777, t),
            ],
        );
    }

    #[test]
    fn year_inference_around_new_year() {
        let body = b"\
-rw-r--r-- 1 u g 1 Dec 31 23:59 old year\r\n\
-rw-r--r-- 1 u g 2 Jan 01 00:01 new year\r\n\
-rw-r--r-- 1 u g 3 Jan 03 08:00 tomorrow\r\n\
-rw-r--r-- 1 u g 4 Jun 30 12:00 near future\r\n\
-rw-r--r-- 1 u g 5 Jul 03 10:00 at the limit\r\n\
-rw-r--r-- 1 u g 6 Jul 03 10:01 past the limit\r\n\
-rw-r--r-- 1 u g 7 Jul 10 12:00 last summer\r\n";
        // 2024-01-02 10:00: the limit is 183 days on, 2024-07-03 10:00.
        let got = parse_list(body, at(2024, 1, 2, 10, 0));
        check_list(
            &got,
            &[
                want(b"old year", Kind::File, 1, 0o644, at(2023, 12, 31, 23, 59)),
                want(b"new year", Kind::File, 2, 0o644, at(2024, 1, 1, 0, 1)),
                want(b"tomorrow", Kind::File, 3, 0o644, at(2024, 1, 3, 8, 0)),
                want(b"near future", Kind::File, 4, 0o644, at(2024, 6, 30, 12, 0)),
                want(b"at the limit", Kind::File, 5, 0o644, at(2024, 7, 3, 10, 0)),
                want(
                    b"past the limit",
                    Kind::File,
                    6,
                    0o644,
                    at(2023, 7, 3, 10, 1),
                ),
                want(b"last summer", Kind::File, 7, 0o644, at(2023, 7, 10, 12, 0)),
            ],
        );

        // New Year's Eve, a server clock slightly ahead.
        let body = b"\
-rw-r--r-- 1 u g 1 Jan 01 00:30 next year\r\n\
-rw-r--r-- 1 u g 2 Dec 31 22:00 this year\r\n";
        let got = parse_list(body, at(2023, 12, 31, 23, 0));
        check_list(
            &got,
            &[
                want(b"next year", Kind::File, 1, 0o644, at(2024, 1, 1, 0, 30)),
                want(b"this year", Kind::File, 2, 0o644, at(2023, 12, 31, 22, 0)),
            ],
        );

        // Feb 29 exists only in the leap year; Feb 30 never.
        let body = b"\
-rw-r--r-- 1 u g 1 Feb 29 10:00 leap day\r\n\
-rw-r--r-- 1 u g 2 Feb 30 10:00 no such day\r\n\
-rw-r--r-- 1 u g 3 Feb 29  2023 no leap day\r\n";
        let got = parse_list(body, at(2025, 3, 15, 0, 0));
        check_list(
            &got,
            &[want(
                b"leap day",
                Kind::File,
                1,
                0o644,
                at(2024, 2, 29, 10, 0),
            )],
        );
    }
}

#[cfg(test)]
mod proptests {
    use std::os::unix::ffi::OsStrExt;

    use proptest::prelude::*;

    use super::super::testkit::prop_now as now;
    use super::super::{parse_list_line, ListingStyle};
    use crate::remote::Kind;
    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn a_unix_list_line_reads_back(
            name in "[A-Za-z0-9_][A-Za-z0-9 ._-]{0,20}",
            size in any::<u64>(),
            dir in any::<bool>(),
        ) {
            let mode = if dir { "drwxr-xr-x" } else { "-rw-r--r--" };
            let line = format!("{mode}    1 owner    group {size:>12} Jan 17  2020 {name}");
            let (style, e) = parse_list_line(line.as_bytes(), now())
                .ok_or_else(|| TestCaseError::fail(line.clone()))?;
            prop_assert_eq!(style, ListingStyle::Unix);
            prop_assert_eq!(e.entry.name.as_bytes(), name.as_bytes());
            prop_assert_eq!(e.entry.attr.kind, if dir { Kind::Dir } else { Kind::File });
            if !dir {
                prop_assert_eq!(e.entry.attr.size, size);
            }
        }
    }
}
