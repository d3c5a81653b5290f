//! The self-test schedule: short tests weekly, long tests monthly (per-disk intervals),
//! staggered across disks so they do not all test at once. Pure functions of the clock.

use serde::{Deserialize, Serialize};

const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// Which self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestKind {
    Short,
    Long,
}

impl TestKind {
    /// smartctl's name (`-t short` / `-t long`).
    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::Short => "short",
            TestKind::Long => "long",
        }
    }
}

/// What the scheduler remembers per disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    /// When the service first saw the disk (the schedule starts from there).
    pub first_seen: u64,
    #[serde(default)]
    pub last_short: Option<u64>,
    #[serde(default)]
    pub last_long: Option<u64>,
}

/// One disk as the scheduler sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub enabled: bool,
    pub short_days: u32,
    pub long_days: u32,
    pub record: &'a TestRecord,
}

/// The first slot `k * period + phase` strictly after `after`.
fn next_slot(after: u64, period: u64, phase: u64) -> u64 {
    if after < phase {
        phase
    } else {
        ((after - phase) / period + 1) * period + phase
    }
}

/// Disk `index` of `count`'s phase within `period`, spread evenly. Short tests start on
/// even hours, long tests on odd hours (offset by half a period as well), so a short test
/// of one disk never starts in the same hour as a long test of another.
fn phase(index: usize, count: usize, period: u64, long: bool) -> u64 {
    let spread = period * index as u64 / count.max(1) as u64;
    let offset = if long { period / 2 } else { 0 };
    let even = ((spread + offset) % period) / (2 * HOUR) * (2 * HOUR);
    if long {
        even + HOUR
    } else {
        even
    }
}

/// The tests due at `now`. Disks are staggered by their position in id order. A long test
/// that is due replaces a short one (it covers it). A disk whose test ran longer ago than
/// several periods gets one test, not one per missed period.
pub fn due(candidates: &[Candidate], now: u64) -> Vec<(String, TestKind)> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(b.id));
    let n = sorted.len();
    let mut out = Vec::new();
    for (i, c) in sorted.into_iter().enumerate() {
        if !c.enabled {
            continue;
        }
        let long_p = u64::from(c.long_days.max(1)) * DAY;
        let short_p = u64::from(c.short_days.max(1)) * DAY;
        let r = c.record;
        let long_after = r.last_long.unwrap_or(r.first_seen);
        let short_after = r.last_short.max(r.last_long).unwrap_or(r.first_seen);
        if next_slot(long_after, long_p, phase(i, n, long_p, true)) <= now {
            out.push((c.id.to_string(), TestKind::Long));
        } else if next_slot(short_after, short_p, phase(i, n, short_p, false)) <= now {
            out.push((c.id.to_string(), TestKind::Short));
        }
    }
    out
}

/// When the next test of `kind` is due for candidate `id` among `candidates` (for display).
pub fn next_due(candidates: &[Candidate], id: &str, kind: TestKind) -> Option<u64> {
    let mut ids: Vec<&str> = candidates.iter().map(|c| c.id).collect();
    ids.sort();
    let i = ids.iter().position(|x| *x == id)?;
    let c = candidates.iter().find(|c| c.id == id)?;
    if !c.enabled {
        return None;
    }
    let r = c.record;
    Some(match kind {
        TestKind::Long => {
            let p = u64::from(c.long_days.max(1)) * DAY;
            next_slot(
                r.last_long.unwrap_or(r.first_seen),
                p,
                phase(i, ids.len(), p, true),
            )
        }
        TestKind::Short => {
            let p = u64::from(c.short_days.max(1)) * DAY;
            next_slot(
                r.last_short.max(r.last_long).unwrap_or(r.first_seen),
                p,
                phase(i, ids.len(), p, false),
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(records: &[TestRecord]) -> Vec<Candidate<'_>> {
        const IDS: [&str; 4] = ["disk-a", "disk-b", "disk-c", "disk-d"];
        records
            .iter()
            .enumerate()
            .map(|(i, r)| Candidate {
                id: IDS[i],
                enabled: true,
                short_days: 7,
                long_days: 30,
                record: r,
            })
            .collect()
    }

    /// Simulate `days` days in hourly steps, recording each test as run when due.
    fn simulate(n: usize, days: u64) -> Vec<(u64, String, TestKind)> {
        let mut recs = vec![TestRecord::default(); n];
        let mut log = Vec::new();
        for hour in 0..days * 24 {
            let now = hour * HOUR;
            let due = due(&cands(&recs), now);
            for (id, kind) in due {
                let i = ["disk-a", "disk-b", "disk-c", "disk-d"]
                    .iter()
                    .position(|x| *x == id)
                    .unwrap();
                match kind {
                    TestKind::Short => recs[i].last_short = Some(now),
                    TestKind::Long => recs[i].last_long = Some(now),
                }
                log.push((now, id, kind));
            }
        }
        log
    }

    #[test]
    fn each_disk_gets_weekly_short_and_monthly_long_tests() {
        let log = simulate(4, 120);
        for id in ["disk-a", "disk-b", "disk-c", "disk-d"] {
            let longs = log
                .iter()
                .filter(|(_, d, k)| d == id && *k == TestKind::Long);
            let shorts = log
                .iter()
                .filter(|(_, d, k)| d == id && *k == TestKind::Short);
            let (nl, ns) = (longs.count(), shorts.count());
            assert!((3..=4).contains(&nl), "{id}: {nl} long tests in 120 days");
            // 120 days ≈ 17 weeks; a week that has a long test skips its short one.
            assert!(
                (12..=17).contains(&ns),
                "{id}: {ns} short tests in 120 days"
            );
        }
    }

    #[test]
    fn tests_are_staggered_across_disks() {
        let log = simulate(4, 60);
        let mut at: std::collections::BTreeMap<u64, usize> = Default::default();
        for (t, _, _) in &log {
            *at.entry(*t).or_default() += 1;
        }
        assert!(
            at.values().all(|n| *n == 1),
            "two disks tested in the same hour: {at:?}"
        );
        let longs: Vec<u64> = log
            .iter()
            .filter(|(_, _, k)| *k == TestKind::Long)
            .map(|(t, _, _)| *t)
            .take(4)
            .collect();
        assert!(
            longs.windows(2).all(|w| w[1] - w[0] >= 5 * DAY),
            "{longs:?}"
        );
    }

    #[test]
    fn a_long_absence_gives_one_test_not_a_backlog() {
        let r = TestRecord {
            first_seen: 0,
            last_short: Some(0),
            last_long: Some(0),
        };
        let c = cands(std::slice::from_ref(&r));
        let due = due(&c, 400 * DAY);
        assert_eq!(due, vec![("disk-a".to_string(), TestKind::Long)]);
    }

    #[test]
    fn disabled_disks_are_never_tested_and_next_due_is_consistent() {
        let r = TestRecord::default();
        let mut c = cands(std::slice::from_ref(&r));
        let when = next_due(&c, "disk-a", TestKind::Short).unwrap();
        assert!(due(&c, when - 1).is_empty());
        assert_eq!(due(&c, when).len(), 1);
        c[0].enabled = false;
        assert!(due(&c, 1000 * DAY).is_empty());
        assert_eq!(next_due(&c, "disk-a", TestKind::Short), None);
    }
}
