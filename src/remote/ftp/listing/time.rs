//! FTP timestamps: `YYYYMMDDhhmmss[.fraction]` in UTC, read (`MDTM`,
//! the `modify` fact) and written (`MFMT`, `SITE UTIME`), and the calendar
//! math the listing parsers share.
//!
//! Must not: read a clock, or write a time the format cannot say (before
//! 1970 or after 9999: refused).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{is_digits, parse_small, split_once};
use crate::remote::{Error, TimeRange};

pub(super) const SECS_PER_DAY: i64 = 86_400;

/// Parse an `MDTM` reply value `YYYYMMDDhhmmss[.sss]` (UTC). Surrounding
/// whitespace is ignored.
pub fn parse_mdtm(s: &str) -> Option<SystemTime> {
    parse_timeval(s.trim().as_bytes())
}

// Times

/// `YYYYMMDDhhmmss[.fraction]`, UTC (the `modify` fact and `MDTM`).
pub(super) fn parse_timeval(value: &[u8]) -> Option<SystemTime> {
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
pub(super) struct Civil {
    pub(super) year: i64,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
}

impl Civil {
    pub(super) fn date(year: i64, month: u32, day: u32) -> Self {
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
    pub(super) fn to_unix(self) -> Option<i64> {
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
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

pub(super) fn secs_to_system(secs: i64, nanos: u32) -> Option<SystemTime> {
    let whole = match u64::try_from(secs) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after))?,
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?,
    };
    whole.checked_add(Duration::from_nanos(u64::from(nanos)))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::testkit::utc;
    use super::*;

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

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::super::testkit::LAST_FTP_SECOND;
    use super::*;
    use crate::testing::proptest_config as config;

    proptest! {
        #![proptest_config(config())]

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
    }
}
