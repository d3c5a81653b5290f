//! Dates of the proleptic Gregorian calendar in UTC from and to days since 1970-01-01
//! (Howard Hinnant's algorithms), for schedules and for times shown in messages.

/// (year, month 1–12, day 1–31) of day `days` since 1970-01-01 (negative: before it).
pub fn date_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // doy is 0..=365 and mp 0..=11 (doe is 0..146_097 by rem_euclid): the day is 1..=31 and
    // the month 1..=12, so neither cast can lose anything.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of year `y`, month `m` (1–12), day `d`: the inverse of
/// [`date_from_days`].
pub fn days_from_date(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM UTC` for unix seconds (for messages).
pub fn format_utc(unix_s: u64) -> String {
    // u64::MAX / 86_400 is below 2^48: the day count always fits an i64.
    let days = i64::try_from(unix_s / 86_400).unwrap_or(i64::MAX / 2);
    let (y, m, d) = date_from_days(days);
    let secs = unix_s % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31 23:59 UTC");
    }

    #[test]
    fn known_dates_both_ways() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (11_016, (2000, 2, 29)),
            (20_415, (2025, 11, 23)),
            (20_780, (2026, 11, 23)),
        ] {
            assert_eq!(date_from_days(days), date, "{days}");
            assert_eq!(days_from_date(date.0, date.1, date.2), days, "{date:?}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        let mut prev = date_from_days(-1);
        for days in 0..146_097 {
            let date = date_from_days(days);
            assert_eq!(days_from_date(date.0, date.1, date.2), days);
            assert!(date > prev, "{date:?} after {prev:?}");
            prev = date;
        }
    }
}
