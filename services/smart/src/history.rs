//! Per-disk SMART history: the last polls and one point per day, bounded, plus the counter
//! baseline the rules compare against.

use crate::verdict::{Counters, Verdict};
use serde::{Deserialize, Serialize};

/// How many recent polls are kept.
pub const MAX_POLLS: usize = 48;
/// How many daily points are kept.
pub const MAX_DAILY: usize = 365;

/// One evaluated poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub time: u64,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_on_hours: Option<u64>,
    #[serde(default)]
    pub counters: Counters,
}

/// A disk's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// The most recent polls, oldest first (at most [`MAX_POLLS`]).
    #[serde(default)]
    pub polls: Vec<Sample>,
    /// One point per UTC day (the day's last poll, with the day's worst verdict), oldest
    /// first (at most [`MAX_DAILY`]).
    #[serde(default)]
    pub daily: Vec<Sample>,
    /// Counter values the rules accept: 0 unless the admin acknowledged higher ones; for
    /// the CRC counter (199), the value first seen. `None` until the first poll.
    #[serde(default)]
    pub baseline: Option<Counters>,
}

fn severity(v: Verdict) -> u8 {
    match v {
        Verdict::Healthy => 0,
        Verdict::Unavailable => 1,
        Verdict::Warning => 2,
        Verdict::Failing => 3,
    }
}

impl History {
    /// Add a sample, dropping the oldest beyond the bounds.
    pub fn record(&mut self, s: Sample) {
        if self.baseline.is_none() {
            self.baseline = Some(Counters {
                crc_errors: s.counters.crc_errors,
                ..Counters::default()
            });
        }
        let day = s.time / 86_400;
        match self.daily.last_mut() {
            Some(last) if last.time / 86_400 == day => {
                let worst = if severity(last.verdict) > severity(s.verdict) {
                    last.verdict
                } else {
                    s.verdict
                };
                *last = Sample {
                    verdict: worst,
                    ..s.clone()
                };
            }
            _ => self.daily.push(s.clone()),
        }
        self.polls.push(s);
        let extra = self.polls.len().saturating_sub(MAX_POLLS);
        self.polls.drain(..extra);
        let extra = self.daily.len().saturating_sub(MAX_DAILY);
        self.daily.drain(..extra);
    }

    /// The newest sample.
    pub fn last(&self) -> Option<&Sample> {
        self.polls.last()
    }

    /// Rewrite every stored counter set (baseline and samples) with `f`; whether anything
    /// changed (then the history must be saved).
    pub fn migrate(&mut self, f: impl Fn(&Counters) -> Counters) -> bool {
        let mut changed = false;
        let mut apply = |c: &mut Counters| {
            let new = f(c);
            if new != *c {
                *c = new;
                changed = true;
            }
        };
        if let Some(b) = self.baseline.as_mut() {
            apply(b);
        }
        for s in self.polls.iter_mut().chain(self.daily.iter_mut()) {
            apply(&mut s.counters);
        }
        changed
    }

    /// Accept the current counter values: the rules warn again only when they grow.
    pub fn acknowledge(&mut self, now: &Counters) {
        self.baseline = Some(now.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(time: u64, verdict: Verdict, t: i64) -> Sample {
        Sample {
            time,
            verdict,
            temperature_c: Some(t),
            power_on_hours: None,
            counters: Counters {
                crc_errors: Some(3),
                ..Counters::default()
            },
        }
    }

    #[test]
    fn polls_and_days_are_bounded() {
        let mut h = History::default();
        for i in 0..(MAX_DAILY as u64 + 10) {
            h.record(s(i * 86_400 + 10, Verdict::Healthy, 30));
            h.record(s(i * 86_400 + 20, Verdict::Healthy, 31));
        }
        assert_eq!(h.polls.len(), MAX_POLLS);
        assert_eq!(h.daily.len(), MAX_DAILY);
        assert_eq!(h.daily.last().unwrap().temperature_c, Some(31));
        assert!(h.polls.windows(2).all(|w| w[0].time < w[1].time));
    }

    #[test]
    fn a_day_keeps_its_worst_verdict_and_latest_values() {
        let mut h = History::default();
        h.record(s(100, Verdict::Failing, 60));
        h.record(s(200, Verdict::Healthy, 40));
        assert_eq!(h.daily.len(), 1);
        assert_eq!(h.daily[0].verdict, Verdict::Failing);
        assert_eq!(h.daily[0].temperature_c, Some(40));
        h.record(s(86_400 + 5, Verdict::Healthy, 41));
        assert_eq!(h.daily.len(), 2);
        assert_eq!(h.daily[1].verdict, Verdict::Healthy);
    }

    #[test]
    fn migrating_rewrites_the_baseline_and_every_sample_once() {
        let mut h = History::default();
        let mut first = s(1, Verdict::Warning, 30);
        first.counters.command_timeouts = Some(51_540_393_996);
        h.record(first.clone());
        h.acknowledge(&first.counters);
        let low = |c: &Counters| Counters {
            command_timeouts: c.command_timeouts.map(|v| v & 0xffff),
            ..c.clone()
        };
        assert!(h.migrate(low));
        assert_eq!(h.baseline.as_ref().unwrap().command_timeouts, Some(12));
        assert_eq!(h.polls[0].counters.command_timeouts, Some(12));
        assert_eq!(h.daily[0].counters.command_timeouts, Some(12));
        assert!(!h.migrate(low), "a second run changes nothing");
    }

    #[test]
    fn the_first_sample_sets_the_crc_baseline_only() {
        let mut h = History::default();
        let mut first = s(1, Verdict::Warning, 30);
        first.counters.reallocated_sectors = Some(8);
        h.record(first.clone());
        let b = h.baseline.clone().unwrap();
        assert_eq!(b.crc_errors, Some(3));
        assert_eq!(b.reallocated_sectors, None);
        h.acknowledge(&first.counters);
        assert_eq!(h.baseline.unwrap().reallocated_sectors, Some(8));
    }
}
