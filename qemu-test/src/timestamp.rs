//! UTC timestamps for results directory names, without a date library.

use std::time::{SystemTime, UNIX_EPOCH};

/// `YYYYmmddTHHMMSSZ` for the given seconds since the Unix epoch.
pub fn utc_compact(secs: u64) -> String {
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// `YYYY-mm-dd HH:MM UTC` for the given seconds since the Unix epoch (for documents).
pub fn utc_readable(secs: u64) -> String {
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(secs / 86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// `utc_readable` for now.
pub fn now_readable() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_readable(secs)
}

/// `utc_compact` for now.
pub fn now_compact() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_compact(secs)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar), for days since
/// 1970-01-01 (never before: the seconds it starts from are unsigned). Returns (year,
/// month 1–12, day 1–31).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc_compact(0), "19700101T000000Z");
        // 2026-11-23 00:21:52 UTC
        assert_eq!(utc_compact(1_795_393_312), "20261123T002152Z");
        // leap day 2024-02-29 12:00:00
        assert_eq!(utc_compact(1_709_208_000), "20240229T120000Z");
        assert_eq!(utc_readable(1_795_393_312), "2026-11-23 00:21 UTC");
    }
}
