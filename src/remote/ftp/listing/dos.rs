//! `LIST` lines in DOS/IIS style: `MM-DD-YY  hh:mmAM  <DIR>|size  name`.
//!
//! Owns: the DOS date and 12-hour clock and the century of two-digit years.
//! Must not: vet names (the caller does, through `Found::into_entry`).

use super::time::{secs_to_system, Civil};
use super::{
    default_perm, is_digits, list_attr, next_field, parse_small, parse_u64, split_once,
    trim_start_blanks, Found,
};
use crate::remote::Kind;

/// Two-digit DOS years below this are 20xx, the rest 19xx (as IIS clients
/// conventionally read them).
const DOS_CENTURY_PIVOT: u32 = 70;

// DOS / IIS style

/// Parse `MM-DD-YY[YY]  hh:mm[AM|PM]  <DIR>|size  name`.
pub(super) fn parse_dos(line: &[u8]) -> Option<Found<'_>> {
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

#[cfg(test)]
mod tests {
    use super::super::parse_list;
    use super::super::testkit::*;
    use crate::remote::Kind;

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
}

#[cfg(test)]
mod proptests {
    use std::os::unix::ffi::OsStrExt;

    use proptest::prelude::*;

    use super::super::testkit::prop_now as now;
    use super::super::{parse_list_line, ListingStyle};
    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

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
