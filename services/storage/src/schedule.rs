//! Pure schedulers with an injected clock: which scheduled snapshots to take and prune, and when a pool's scrub is due.

/// Scheduled snapshots of one share: how many of each kind to keep (0 = none taken).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSchedule {
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
}

/// The most snapshots of one kind a schedule may keep.
pub const MAX_RETAIN: u32 = 500;

impl SnapshotSchedule {
    /// Check the retention counts; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, n) in [
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
        ] {
            if n > MAX_RETAIN {
                return Err((field, format!("must be at most {MAX_RETAIN}")));
            }
        }
        Ok(())
    }
}

/// A kind of scheduled snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Hourly,
    Daily,
    Weekly,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Hourly, Kind::Daily, Kind::Weekly];

    fn word(self) -> &'static str {
        match self {
            Kind::Hourly => "hourly",
            Kind::Daily => "daily",
            Kind::Weekly => "weekly",
        }
    }

    /// Length of one period in seconds.
    fn period(self) -> u64 {
        match self {
            Kind::Hourly => 3600,
            Kind::Daily => 86_400,
            Kind::Weekly => 7 * 86_400,
        }
    }

    /// The period `t` falls in (weeks start on Monday 00:00 UTC; 1970-01-01 was a Thursday).
    fn slot(self, t: u64) -> u64 {
        match self {
            Kind::Weekly => (t + 3 * 86_400) / self.period(),
            _ => t / self.period(),
        }
    }

    fn keep(self, s: &SnapshotSchedule) -> u32 {
        match self {
            Kind::Hourly => s.hourly,
            Kind::Daily => s.daily,
            Kind::Weekly => s.weekly,
        }
    }
}

/// The name of a scheduled snapshot of `kind` taken at `t`: `auto-<kind>-YYYYMMDDTHHMMZ`.
pub fn auto_name(kind: Kind, t: u64) -> String {
    let (y, mo, d, h, mi) = civil(t);
    format!("auto-{}-{y:04}{mo:02}{d:02}t{h:02}{mi:02}z", kind.word())
}

/// Parse a scheduled snapshot's name back into its kind and time (minute precision).
pub fn parse_auto_name(name: &str) -> Option<(Kind, u64)> {
    let rest = name.strip_prefix("auto-")?;
    let (word, stamp) = rest.split_once('-')?;
    let kind = Kind::ALL.into_iter().find(|k| k.word() == word)?;
    let b = stamp.as_bytes();
    if b.len() != 14 || b[8] != b't' || b[13] != b'z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<u64>().ok();
    let (y, mo, d, h, mi) = (n(0..4)?, n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    Some((
        kind,
        days_from_civil(y, mo, d)? * 86_400 + h * 3600 + mi * 60,
    ))
}

/// What the snapshot scheduler wants done for one share.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SnapshotPlan {
    /// Names of snapshots to take now.
    pub create: Vec<String>,
    /// Names of scheduled snapshots past their retention, to delete.
    pub prune: Vec<String>,
}

/// Decide, at `now`, which scheduled snapshots to take (a kind with a retention count and
/// none taken in the current period) and which to prune (the oldest beyond each kind's
/// count, counting the ones about to be taken). Manual snapshots (any other name) are never
/// touched.
pub fn plan_snapshots(now: u64, schedule: &SnapshotSchedule, existing: &[String]) -> SnapshotPlan {
    let mut plan = SnapshotPlan::default();
    for kind in Kind::ALL {
        let keep = kind.keep(schedule) as usize;
        let mut mine: Vec<(u64, &String)> = existing
            .iter()
            .filter_map(|n| match parse_auto_name(n) {
                Some((k, t)) if k == kind => Some((t, n)),
                _ => None,
            })
            .collect();
        mine.sort();
        let current = kind.slot(now);
        let new_name = auto_name(kind, now);
        let taken = mine.iter().any(|(t, _)| kind.slot(*t) == current);
        let will_create = keep > 0 && !taken && !existing.contains(&new_name);
        if will_create {
            plan.create.push(new_name);
        }
        let total = mine.len() + usize::from(will_create);
        let excess = total.saturating_sub(keep);
        plan.prune.extend(
            mine.iter()
                .take(excess.min(mine.len()))
                .map(|(_, n)| (*n).clone()),
        );
    }
    plan
}

/// The default interval between scheduled scrubs of a pool (about a month).
pub const DEFAULT_SCRUB_DAYS: u32 = 30;

/// Whether a pool's scheduled scrub is due at `now`, given when the last one started
/// (`None`: never) and the interval in days (0 disables the schedule).
pub fn scrub_due(now: u64, last: Option<u64>, interval_days: u32) -> bool {
    if interval_days == 0 {
        return false;
    }
    match last {
        None => true,
        Some(t) => now.saturating_sub(t) >= u64::from(interval_days) * 86_400,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` before 1970 or beyond
/// what the types hold.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let days = cairn_core::civil::days_from_date(
        i64::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    );
    u64::try_from(days).ok()
}

/// (year, month, day, hour, minute) of unix time `t` in UTC.
pub fn civil(t: u64) -> (u64, u64, u64, u64, u64) {
    // u64::MAX / 86 400 is far below i64::MAX: the day always fits.
    let day = i64::try_from(t / 86_400).unwrap_or(i64::MAX);
    let (y, m, d) = cairn_core::civil::date_from_days(day);
    let secs = t % 86_400;
    (
        // Day 0 or later is 1970 or later.
        u64::try_from(y).unwrap_or(0),
        u64::from(m),
        u64::from(d),
        secs / 3600,
        secs % 3600 / 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-23 03:17:00 UTC, a Monday.
    const NOW: u64 = 1_795_403_820;

    #[test]
    fn names_round_trip_through_the_calendar() {
        assert_eq!(civil(NOW), (2026, 11, 23, 3, 17));
        assert_eq!(auto_name(Kind::Daily, NOW), "auto-daily-20261123t0317z");
        assert_eq!(
            parse_auto_name("auto-daily-20261123t0317z"),
            Some((Kind::Daily, NOW))
        );
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0));
        assert_eq!(parse_auto_name("auto-daily-20261323t0317z"), None);
        assert_eq!(parse_auto_name("before-upgrade"), None);
        assert_eq!(parse_auto_name("auto-yearly-20261123t0317z"), None);
    }

    #[test]
    fn a_fresh_schedule_takes_one_of_each_enabled_kind() {
        let s = SnapshotSchedule {
            hourly: 24,
            daily: 7,
            weekly: 0,
        };
        let p = plan_snapshots(NOW, &s, &[]);
        assert_eq!(
            p.create,
            vec![
                "auto-hourly-20261123t0317z".to_string(),
                "auto-daily-20261123t0317z".to_string()
            ]
        );
        assert!(p.prune.is_empty());
    }

    #[test]
    fn nothing_is_taken_twice_in_one_period() {
        let s = SnapshotSchedule {
            hourly: 24,
            daily: 7,
            weekly: 4,
        };
        let existing: Vec<String> = plan_snapshots(NOW, &s, &[]).create;
        assert_eq!(existing.len(), 3);
        // 40 minutes later: same hour, same day, same week.
        let p = plan_snapshots(NOW + 40 * 60, &s, &existing);
        assert_eq!(p, SnapshotPlan::default());
        // 43 minutes later the hour has turned (04:00): only a new hourly one.
        let p = plan_snapshots(NOW + 43 * 60, &s, &existing);
        assert_eq!(p.create, vec!["auto-hourly-20261123t0400z".to_string()]);
    }

    #[test]
    fn retention_prunes_the_oldest_of_each_kind_and_keeps_manual_ones() {
        let s = SnapshotSchedule {
            hourly: 3,
            daily: 1,
            weekly: 0,
        };
        let mut existing = vec!["before-upgrade".to_string()];
        existing.extend((1..=3).map(|h| auto_name(Kind::Hourly, NOW - h * 3600)));
        existing.push(auto_name(Kind::Daily, NOW - 86_400));
        existing.push(auto_name(Kind::Weekly, NOW - 86_400));
        let p = plan_snapshots(NOW, &s, &existing);
        assert_eq!(
            p.create,
            vec![
                "auto-hourly-20261123t0317z".to_string(),
                "auto-daily-20261123t0317z".to_string()
            ]
        );
        assert_eq!(
            p.prune,
            vec![
                auto_name(Kind::Hourly, NOW - 3 * 3600),
                auto_name(Kind::Daily, NOW - 86_400),
                auto_name(Kind::Weekly, NOW - 86_400),
            ]
        );
        assert!(!p.prune.contains(&"before-upgrade".to_string()));
    }

    #[test]
    fn weeks_start_on_monday() {
        let s = SnapshotSchedule {
            hourly: 0,
            daily: 0,
            weekly: 2,
        };
        // Sunday 2026-11-22 23:00 belongs to the previous week: Monday takes a new one.
        let sunday = vec![auto_name(Kind::Weekly, NOW - 4 * 3600 - 17 * 60)];
        assert_eq!(plan_snapshots(NOW, &s, &sunday).create.len(), 1);
        // Taken Monday 00:30: still this week on Monday 03:17.
        let monday = vec![auto_name(Kind::Weekly, NOW - 2 * 3600 - 47 * 60)];
        assert!(plan_snapshots(NOW, &s, &monday).create.is_empty());
    }

    #[test]
    fn scrub_is_due_after_its_interval() {
        assert!(scrub_due(NOW, None, 30));
        assert!(!scrub_due(NOW, Some(NOW - 29 * 86_400), 30));
        assert!(scrub_due(NOW, Some(NOW - 30 * 86_400), 30));
        assert!(!scrub_due(NOW, None, 0));
    }

    #[test]
    fn retention_counts_are_bounded() {
        let s = SnapshotSchedule {
            hourly: 501,
            daily: 0,
            weekly: 0,
        };
        assert_eq!(s.validate().unwrap_err().0, "hourly");
        assert!(SnapshotSchedule::default().validate().is_ok());
    }
}
