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

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::remote::{Attr, DirEntry, Error, Kind, TimeRange};

/// Permissions shown when the listing tells none (DOS style, MLSD without
/// `UNIX.mode`).
const DEFAULT_FILE_PERM: u16 = 0o644;
const DEFAULT_DIR_PERM: u16 = 0o755;
const DEFAULT_LINK_PERM: u16 = 0o777;

/// How far after `now` a year-less `Mmm dd hh:mm` date may lie. `ls` prints
/// the time instead of the year for roughly the last six months; allowing the
/// same span into the future also absorbs clock skew and future-dated files.
const YEARLESS_FUTURE_LIMIT_SECS: i64 = 183 * SECS_PER_DAY;

const SECS_PER_DAY: i64 = 86_400;

/// Two-digit DOS years below this are 20xx, the rest 19xx (as IIS clients
/// conventionally read them).
const DOS_CENTURY_PIVOT: u32 = 70;

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

/// The facts of one `MLST` reply: attributes of the path that was asked for.
#[derive(Clone, Debug)]
pub struct MlstFacts {
    pub attr: Attr,
    pub link_target: Option<OsString>,
    /// As in [`ParsedEntry::time_precise`].
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
    let (style, found) = if let Some(found) = parse_unix(line, now) {
        (ListingStyle::Unix, found)
    } else if let Some(found) = parse_dos(line) {
        (ListingStyle::Dos, found)
    } else {
        tracing::debug!(line = %line.escape_ascii(), "skipping a LIST line that is no entry");
        return None;
    };
    found.into_entry().map(|entry| (style, entry))
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

/// Parse an `MDTM` reply value `YYYYMMDDhhmmss[.sss]` (UTC). Surrounding
/// whitespace is ignored.
pub fn parse_mdtm(s: &str) -> Option<SystemTime> {
    parse_timeval(s.trim().as_bytes())
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
fn parse_unix(line: &[u8], now: SystemTime) -> Option<Found<'_>> {
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
    let now = system_to_secs(now);
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

// ---------------------------------------------------------------------------
// DOS / IIS style

/// Parse `MM-DD-YY[YY]  hh:mm[AM|PM]  <DIR>|size  name`.
fn parse_dos(line: &[u8]) -> Option<Found<'_>> {
    let (date, rest) = next_field(line)?;
    let (month, day, year) = parse_dos_date(date)?;

    let (clock, rest) = next_field(rest)?;
    let digits_end = clock
        .iter()
        .position(|&b| !(b.is_ascii_digit() || b == b':'))
        .unwrap_or(clock.len());
    let (hour_minute, mut meridiem) = clock.split_at(digits_end);
    let (hour, minute) = split_once(hour_minute, b':')?;
    let (hour, minute) = (parse_small(hour, 1, 2)?, parse_small(minute, 2, 2)?);

    let (mut size_field, mut rest) = next_field(rest)?;
    // Some servers put a blank between the time and AM/PM.
    if meridiem.is_empty()
        && (size_field.eq_ignore_ascii_case(b"AM") || size_field.eq_ignore_ascii_case(b"PM"))
    {
        meridiem = size_field;
        (size_field, rest) = next_field(rest)?;
    }
    let hour = to_24_hour(hour, meridiem)?;

    let (kind, size) = if size_field.eq_ignore_ascii_case(b"<DIR>") {
        (Kind::Dir, 0)
    } else if is_digits(size_field) {
        // Oversized: skip the line rather than show a wrong length.
        (Kind::File, parse_u64(size_field)?)
    } else {
        return None;
    };
    let mtime = secs_to_system(
        Civil {
            hour,
            minute,
            ..Civil::date(year, month, day)
        }
        .to_unix()?,
        0,
    )?;
    Some(Found {
        name: trim_start_blanks(rest),
        link_target: None,
        attr: list_attr(kind, size, default_perm(kind), mtime),
        time_precise: false,
    })
}

/// `MM-DD-YY`, `MM-DD-YYYY` (also with `/`) → (month, day, year).
fn parse_dos_date(field: &[u8]) -> Option<(u32, u32, i64)> {
    let mut parts = field.split(|&b| b == b'-' || b == b'/');
    let month = parse_small(parts.next()?, 1, 2)?;
    let day = parse_small(parts.next()?, 1, 2)?;
    let year_field = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let year = match year_field.len() {
        2 => {
            let yy = parse_small(year_field, 2, 2)?;
            if yy < DOS_CENTURY_PIVOT {
                2000 + yy
            } else {
                1900 + yy
            }
        }
        4 => parse_small(year_field, 4, 4)?,
        _ => return None,
    };
    Some((month, day, i64::from(year)))
}

fn to_24_hour(hour: u32, meridiem: &[u8]) -> Option<u32> {
    if meridiem.is_empty() {
        (hour <= 23).then_some(hour)
    } else if !(1..=12).contains(&hour) {
        None
    } else if meridiem.eq_ignore_ascii_case(b"AM") {
        Some(hour % 12)
    } else if meridiem.eq_ignore_ascii_case(b"PM") {
        Some(hour % 12 + 12)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Times

/// `YYYYMMDDhhmmss[.fraction]`, UTC (the `modify` fact and `MDTM`).
fn parse_timeval(value: &[u8]) -> Option<SystemTime> {
    let (whole, fraction) = match split_once(value, b'.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (value, None),
    };
    if whole.len() != 14 || !is_digits(whole) {
        return None;
    }
    let part = |from: usize, to: usize| parse_small(&whole[from..to], to - from, to - from);
    let civil = Civil {
        year: i64::from(part(0, 4)?),
        month: part(4, 6)?,
        day: part(6, 8)?,
        hour: part(8, 10)?,
        minute: part(10, 12)?,
        second: part(12, 14)?,
    };
    let nanos = match fraction {
        Some(fraction) => fraction_nanos(fraction)?,
        None => 0,
    };
    secs_to_system(civil.to_unix()?, nanos)
}

/// Nanoseconds from the digits after the decimal point; digits beyond the
/// ninth are below what `SystemTime` keeps and are dropped.
fn fraction_nanos(digits: &[u8]) -> Option<u32> {
    if !is_digits(digits) {
        return None;
    }
    Some((0..9).fold(0, |nanos, i| {
        nanos * 10 + digits.get(i).map_or(0, |&d| u32::from(d - b'0'))
    }))
}

/// A calendar date and time of day, UTC.
#[derive(Clone, Copy)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    fn date(year: i64, month: u32, day: u32) -> Self {
        Civil {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
        }
    }

    /// Seconds since the epoch, or `None` for an impossible date or time.
    /// A leap second (`:60`) is accepted, as RFC 3659 allows it, and lands
    /// on the next minute.
    fn to_unix(self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour <= 23
            && self.minute <= 59
            && self.second <= 60;
        if !valid {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let time = i64::from(self.hour * 3600 + self.minute * 60 + self.second);
        days.checked_mul(SECS_PER_DAY)?.checked_add(time)
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`: years counted from March so the leap day comes last).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    // Both are small and positive by construction.
    let day = u32::try_from(day_of_year - (153 * month_from_march + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from((month_from_march + 2) % 12 + 1).unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYYMMDDhhmmss` in UTC, as `MFMT` and `SITE UTIME` take it: the
/// inverse of [`parse_mdtm`]. A time before 1970 (FTP servers take no
/// negative times) or after the year 9999 is refused, not sent as another.
pub fn ftp_time(t: SystemTime) -> Result<String, Error> {
    let secs = TimeRange::FTP.secs(t)?;
    let (y, m, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let rem = secs.rem_euclid(SECS_PER_DAY);
    Ok(format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    ))
}

fn system_to_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    }
}

fn secs_to_system(secs: i64, nanos: u32) -> Option<SystemTime> {
    let whole = match u64::try_from(secs) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after))?,
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?,
    };
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
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
    use super::*;

    // -----------------------------------------------------------------------
    // Helpers

    /// A UTC time counted naively, day by day, so that the expected values
    /// do not come from the date math under test.
    fn utc(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> SystemTime {
        let days_in = |y: i64, m: u32| match m {
            2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        assert!(year >= 1970);
        let mut days: u64 = 0;
        for y in 1970..year {
            days += (1..=12).map(|m| days_in(y, m)).sum::<u64>();
        }
        for m in 1..month {
            days += days_in(year, m);
        }
        days += u64::from(day - 1);
        let secs = days * 86_400 + u64::from(hour * 3600 + minute * 60 + second);
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> SystemTime {
        utc(year, month, day, hour, minute, 0)
    }

    /// The `now` most tests list at: 2024-03-15 12:00 UTC.
    fn now() -> SystemTime {
        at(2024, 3, 15, 12, 0)
    }

    struct Want {
        name: &'static [u8],
        kind: Kind,
        size: u64,
        perm: u16,
        mtime: SystemTime,
        link: Option<&'static [u8]>,
    }

    fn want(name: &'static [u8], kind: Kind, size: u64, perm: u16, mtime: SystemTime) -> Want {
        Want {
            name,
            kind,
            size,
            perm,
            mtime,
            link: None,
        }
    }

    fn link(
        name: &'static [u8],
        target: &'static [u8],
        size: u64,
        perm: u16,
        mtime: SystemTime,
    ) -> Want {
        Want {
            link: Some(target),
            ..want(name, Kind::Symlink, size, perm, mtime)
        }
    }

    /// Every listed field of every entry, in order. LIST entries have no ids
    /// and imprecise times.
    fn check_list(got: &[ParsedEntry], wanted: &[Want]) {
        check(got, wanted, (0, 0), false);
    }

    fn check(got: &[ParsedEntry], wanted: &[Want], ids: (u32, u32), precise: bool) {
        let names: Vec<_> = got
            .iter()
            .map(|e| e.entry.name.as_bytes().escape_ascii().to_string())
            .collect();
        assert_eq!(got.len(), wanted.len(), "entries: {names:?}");
        for (got, want) in got.iter().zip(wanted) {
            let name = want.name.escape_ascii().to_string();
            let attr = &got.entry.attr;
            assert_eq!(got.entry.name.as_bytes(), want.name, "name");
            assert_eq!(attr.kind, want.kind, "kind of {name}");
            assert_eq!(attr.size, want.size, "size of {name}");
            assert_eq!(attr.perm, want.perm, "perm of {name}: {:o}", attr.perm);
            assert_eq!(attr.mtime, want.mtime, "mtime of {name}");
            assert_eq!(attr.atime, want.mtime, "atime of {name}");
            assert_eq!((attr.uid, attr.gid), ids, "ids of {name}");
            assert_eq!(
                got.link_target.as_ref().map(|t| t.as_bytes()),
                want.link,
                "link of {name}"
            );
            assert_eq!(got.time_precise, precise, "time_precise of {name}");
        }
    }

    use std::os::unix::ffi::OsStrExt;

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

    // -----------------------------------------------------------------------
    // Unix LIST, per server

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

    // -----------------------------------------------------------------------
    // DOS / IIS LIST

    #[test]
    fn iis_dos_style() {
        // IIS default: MM-DD-YY, 12-hour clock, <DIR> or a right-aligned size.
        let body = b"\
03-04-24  09:15AM       <DIR>          aspnet_client\r\n\
02-29-24  11:59PM               123456 Annual Report 2023.xlsx\r\n\
12-25-23  12:00AM                    0 midnight.txt\r\n\
03-01-24  12:30PM                 4096 noon.txt\r\n\
01-17-99  10:22AM                 1000 y2k.txt\r\n\
01-17-24  10:22AM                 1000 trailing  \r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"aspnet_client", Kind::Dir, 0, 0o755, at(2024, 3, 4, 9, 15)),
                want(
                    b"Annual Report 2023.xlsx",
                    Kind::File,
                    123_456,
                    0o644,
                    at(2024, 2, 29, 23, 59),
                ),
                want(
                    b"midnight.txt",
                    Kind::File,
                    0,
                    0o644,
                    at(2023, 12, 25, 0, 0),
                ),
                want(b"noon.txt", Kind::File, 4096, 0o644, at(2024, 3, 1, 12, 30)),
                want(b"y2k.txt", Kind::File, 1000, 0o644, at(1999, 1, 17, 10, 22)),
                want(
                    b"trailing  ",
                    Kind::File,
                    1000,
                    0o644,
                    at(2024, 1, 17, 10, 22),
                ),
            ],
        );
    }

    #[test]
    fn iis_four_digit_years_and_24_hour_clock() {
        let body = b"\
03-04-2024  09:15AM       <DIR>          Program Files\r\n\
03-04-2024  01:05PM                 1234 a  b.txt\r\n\
03-04-24  13:05       <DIR>          logs\r\n\
03-04-24  00:00                   12 zero.txt\r\n\
03/04/2024  09:15 PM                 7 slashes and spaced pm.txt\r\n";
        let got = parse_list(body, now());
        check_list(
            &got,
            &[
                want(b"Program Files", Kind::Dir, 0, 0o755, at(2024, 3, 4, 9, 15)),
                want(b"a  b.txt", Kind::File, 1234, 0o644, at(2024, 3, 4, 13, 5)),
                want(b"logs", Kind::Dir, 0, 0o755, at(2024, 3, 4, 13, 5)),
                want(b"zero.txt", Kind::File, 12, 0o644, at(2024, 3, 4, 0, 0)),
                want(
                    b"slashes and spaced pm.txt",
                    Kind::File,
                    7,
                    0o644,
                    at(2024, 3, 4, 21, 15),
                ),
            ],
        );
    }

    // -----------------------------------------------------------------------
    // MLSD / MLST

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

    // -----------------------------------------------------------------------
    // MDTM and date math

    #[test]
    fn mdtm() {
        let t = utc(2024, 3, 4, 9, 15, 0);
        assert_eq!(parse_mdtm("20240304091500"), Some(t));
        assert_eq!(parse_mdtm(" 20240304091500\r\n"), Some(t));
        assert_eq!(
            parse_mdtm("20240304091500.250"),
            Some(t + Duration::from_millis(250))
        );
        assert_eq!(
            parse_mdtm("20240304091500.5"),
            Some(t + Duration::from_millis(500))
        );
        assert_eq!(
            parse_mdtm("20240304091500.1234567891"),
            Some(t + Duration::from_nanos(123_456_789))
        );
        assert_eq!(parse_mdtm("19700101000000"), Some(UNIX_EPOCH));
        assert_eq!(
            parse_mdtm("19691231235959"),
            Some(UNIX_EPOCH - Duration::from_secs(1))
        );
        // A leap second lands on the next minute.
        assert_eq!(parse_mdtm("19991231235960"), Some(utc(2000, 1, 1, 0, 0, 0)));
        for bad in [
            "",
            "2024030409150",
            "202403040915000",
            "20241304091500",
            "20240230000000",
            "20240304241500",
            "20240304096000",
            "20240304091561",
            "20240304091500.",
            "20240304091500.x",
            "2024-03-04 09:15",
            "191240304091500", // the classic Y2K bug: "19" + (year - 1900)
            "+2024030409150",
        ] {
            assert_eq!(parse_mdtm(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn civil_days_round_trip() {
        for days in (-1_000_000..1_000_000).step_by(97) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(
            Civil::date(2024, 2, 29)
                .to_unix()
                .map(|secs| UNIX_EPOCH + Duration::from_secs(secs as u64)),
            Some(utc(2024, 2, 29, 0, 0, 0))
        );
    }

    #[test]
    fn ftp_time_formats_utc() {
        let stamp = |t: SystemTime| ftp_time(t).ok();
        assert_eq!(stamp(UNIX_EPOCH).as_deref(), Some("19700101000000"));
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!(stamp(t).as_deref(), Some("20231114221320"));
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(stamp(leap).as_deref(), Some("20000229010101"));
        let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        assert_eq!(stamp(last).as_deref(), Some("99991231235959"));
    }

    #[test]
    fn ftp_time_refuses_what_the_format_cannot_say() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert!(matches!(ftp_time(before), Err(Error::TimeOutOfRange)));
        let year_10000 = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert!(matches!(ftp_time(year_10000), Err(Error::TimeOutOfRange)));
    }

    #[test]
    fn ftp_time_round_trips_through_the_mdtm_parser() {
        for secs in [0u64, 86_399, 86_400, 1_234_567_890, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let stamp = ftp_time(t).expect("a time FTP can carry");
            assert_eq!(parse_mdtm(&stamp), Some(t));
        }
    }
}

/// Property tests: no server listing makes a parser panic, every entry is
/// a single safe name, no line yields more than one entry, and what
/// `ftp_time` writes `parse_mdtm` reads back.
#[cfg(test)]
mod proptests {
    use std::os::unix::ffi::OsStrExt;

    use proptest::prelude::*;

    use super::*;

    use crate::testing::proptest_config as config;

    /// The last second `ftp_time` can write: 9999-12-31 23:59:59 UTC.
    const LAST_FTP_SECOND: u64 = 253_402_300_799;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn safe_entries(entries: &[ParsedEntry], body: &[u8]) -> Result<(), TestCaseError> {
        let lines = body.split(|&b| b == b'\n').count();
        prop_assert!(
            entries.len() <= lines,
            "{} entries from {lines} lines",
            entries.len()
        );
        for e in entries {
            let name = e.entry.name.as_bytes();
            prop_assert!(!name.is_empty());
            prop_assert!(
                !name.contains(&b'/') && !name.contains(&0),
                "{:?}",
                e.entry.name
            );
            prop_assert!(name != b"." && name != b"..", "{:?}", e.entry.name);
        }
        Ok(())
    }

    /// Bytes, or lines that look like listings, to reach the parsers'
    /// deeper branches more often than random bytes would.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let line = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..80),
            "[-dlcbps][-rwxsStT]{9}[+.@]? {1,3}[0-9]{1,3} [a-z]{0,8} [a-z]{0,8} {1,3}[0-9]{0,20} [A-Za-z]{3} {1,2}[0-9]{1,2} {1,2}([0-9]{4}|[0-9]{1,2}:[0-9]{2}) [^\n]{0,20}"
                .prop_map(String::into_bytes),
            "[0-9]{2}-[0-9]{2}-[0-9]{2,4} +[0-9]{1,2}:[0-9]{2}(AM|PM)? +(<DIR>|[0-9]{1,20}) +[^\n]{0,20}"
                .prop_map(String::into_bytes),
            "( ?)([A-Za-z.]{1,10}=[^;\n]{0,20};){0,6} [^\n]{0,20}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(line, 0..8).prop_map(|lines| lines.join(&b"\r\n"[..]))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn list_yields_only_safe_names(body in body()) {
            let entries = parse_list(&body, now());
            safe_entries(&entries, &body)?;
        }

        #[test]
        fn mlsd_yields_only_safe_names(body in body()) {
            let entries = parse_mlsd(&body);
            safe_entries(&entries, &body)?;
            for line in body.split(|&b| b == b'\n') {
                let _ = parse_mlst_line(line);
            }
        }

        #[test]
        fn mdtm_never_panics(s in "\\PC{0,30}") {
            let _ = parse_mdtm(&s);
        }

        #[test]
        fn ftp_time_reads_back(secs in 0..=LAST_FTP_SECOND) {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let written = ftp_time(t).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(written.len(), 14);
            prop_assert_eq!(parse_mdtm(&written), Some(t));
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

        #[test]
        fn a_dos_list_line_reads_back(
            name in "[A-Za-z0-9_][A-Za-z0-9._-]{0,20}",
            size in any::<u64>(),
        ) {
            let line = format!("01-17-24  10:22AM {size:>20} {name}");
            let (style, e) = parse_list_line(line.as_bytes(), now())
                .ok_or_else(|| TestCaseError::fail(line.clone()))?;
            prop_assert_eq!(style, ListingStyle::Dos);
            prop_assert_eq!(e.entry.name.as_bytes(), name.as_bytes());
            prop_assert_eq!(e.entry.attr.size, size);
        }
    }
}
