//! What the listing tests share: a naive UTC clock, the `now` they list
//! at, a field-by-field check of parsed entries, and the generators of the
//! property tests.

use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::ParsedEntry;
use crate::remote::Kind;

/// A UTC time counted naively, day by day, so that the expected values
/// do not come from the date math under test.
pub(super) fn utc(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
) -> SystemTime {
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

pub(super) fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> SystemTime {
    utc(year, month, day, hour, minute, 0)
}

/// The `now` most tests list at: 2024-03-15 12:00 UTC.
pub(super) fn now() -> SystemTime {
    at(2024, 3, 15, 12, 0)
}

pub(super) struct Want {
    name: &'static [u8],
    kind: Kind,
    size: u64,
    perm: u16,
    mtime: SystemTime,
    link: Option<&'static [u8]>,
}

pub(super) fn want(
    name: &'static [u8],
    kind: Kind,
    size: u64,
    perm: u16,
    mtime: SystemTime,
) -> Want {
    Want {
        name,
        kind,
        size,
        perm,
        mtime,
        link: None,
    }
}

pub(super) fn link(
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
pub(super) fn check_list(got: &[ParsedEntry], wanted: &[Want]) {
    check(got, wanted, (0, 0), false);
}

pub(super) fn check(got: &[ParsedEntry], wanted: &[Want], ids: (u32, u32), precise: bool) {
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

/// The last second `ftp_time` can write: 9999-12-31 23:59:59 UTC.
pub(super) const LAST_FTP_SECOND: u64 = 253_402_300_799;

/// The `now` the property tests list at (2023-11-14).
pub(super) fn prop_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub(super) fn safe_entries(entries: &[ParsedEntry], body: &[u8]) -> Result<(), TestCaseError> {
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
pub(super) fn body() -> impl Strategy<Value = Vec<u8>> {
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
