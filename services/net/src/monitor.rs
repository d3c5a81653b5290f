//! Link alerts: a bond member down, a bond with no active member, a flapping link — raised
//! once per change and cleared on recovery.

use crate::status::LinkStatus;
use cairn_core::alert::{AlertLevel, AlertSink};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// Carrier changes within [`FLAP_WINDOW`] that count as flapping.
pub const FLAP_CHANGES: usize = 4;
/// The window for flapping; the alert clears after a quiet window.
pub const FLAP_WINDOW: Duration = Duration::from_secs(60);

/// Remembers what it has raised and carrier history; fed one status snapshot at a time.
#[derive(Default)]
pub struct AlertTracker {
    raised: BTreeSet<String>,
    carrier: BTreeMap<String, bool>,
    changes: BTreeMap<String, VecDeque<Instant>>,
}

impl AlertTracker {
    /// Compare `links` with what was seen before and raise or clear alerts in `sink`.
    pub fn update(&mut self, links: &[LinkStatus], now: Instant, sink: &dyn AlertSink) {
        let mut want: BTreeMap<String, (AlertLevel, String)> = BTreeMap::new();
        for l in links.iter().filter(|l| l.managed) {
            if let Some(b) = &l.bond {
                for m in &b.members {
                    if m.mii_status != "up" {
                        want.insert(
                            format!("net/{}/member/{}", l.name, m.name),
                            (
                                AlertLevel::Warning,
                                format!("bond {}: member {} is down", l.name, m.name),
                            ),
                        );
                    }
                }
                let no_active = if b.mode == "active-backup" {
                    b.active.is_none()
                } else {
                    !b.members.iter().any(|m| m.mii_status == "up")
                };
                if l.up && no_active {
                    want.insert(
                        format!("net/{}/no-active", l.name),
                        (
                            AlertLevel::Critical,
                            format!("bond {} has no active member: its traffic is down", l.name),
                        ),
                    );
                }
            }
            // Flapping: carrier changes within the window.
            let prev = self.carrier.insert(l.name.clone(), l.carrier);
            let q = self.changes.entry(l.name.clone()).or_default();
            if prev.is_some_and(|p| p != l.carrier) {
                q.push_back(now);
            }
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > FLAP_WINDOW)
            {
                q.pop_front();
            }
            let key = format!("net/{}/flapping", l.name);
            let flapping = q.len() >= FLAP_CHANGES;
            // Once raised, it stays until a quiet window passed.
            if flapping || (self.raised.contains(&key) && !q.is_empty()) {
                want.insert(
                    key,
                    (
                        AlertLevel::Warning,
                        format!(
                            "link {} is flapping: {} carrier changes in the last {} s",
                            l.name,
                            q.len(),
                            FLAP_WINDOW.as_secs()
                        ),
                    ),
                );
            }
        }
        for (key, (level, msg)) in &want {
            if !self.raised.contains(key) {
                sink.raise(key, *level, msg);
                self.raised.insert(key.clone());
            }
        }
        let gone: Vec<String> = self
            .raised
            .iter()
            .filter(|k| !want.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            sink.clear(&key, "recovered");
            self.raised.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{BondStatus, MemberStatus};
    use cairn_core::alert::RecordingAlerts;

    fn bond(ens5_up: bool, active: Option<&str>) -> Vec<LinkStatus> {
        let member = |n: &str, up: bool| MemberStatus {
            name: n.into(),
            mii_status: if up { "up".into() } else { "down".into() },
            link_failures: None,
            active: active == Some(n),
        };
        vec![LinkStatus {
            name: "bond0".into(),
            index: 9,
            kind: "bond".into(),
            mac: None,
            mtu: 1500,
            up: true,
            carrier: true,
            speed_mbps: None,
            duplex: None,
            addresses: vec![],
            master: None,
            managed: true,
            bond: Some(BondStatus {
                mode: "active-backup".into(),
                miimon: 100,
                active: active.map(String::from),
                primary: None,
                members: vec![member("ens4", true), member("ens5", ens5_up)],
            }),
            bridge_ports: vec![],
            vlan_id: None,
            vlan_parent: None,
        }]
    }

    #[test]
    fn member_down_fires_once_and_clears() {
        let sink = RecordingAlerts::default();
        let mut t = AlertTracker::default();
        let now = Instant::now();
        t.update(&bond(true, Some("ens5")), now, &sink);
        assert!(sink.changes.lock().unwrap().is_empty());
        t.update(&bond(false, Some("ens4")), now, &sink);
        t.update(&bond(false, Some("ens4")), now, &sink);
        assert_eq!(
            sink.level("net/bond0/member/ens5"),
            Some(AlertLevel::Warning)
        );
        assert_eq!(sink.changes.lock().unwrap().len(), 1);
        t.update(&bond(true, Some("ens4")), now, &sink);
        assert_eq!(sink.level("net/bond0/member/ens5"), None);
        assert_eq!(sink.changes.lock().unwrap().len(), 2);
    }

    #[test]
    fn no_active_member_is_critical() {
        let sink = RecordingAlerts::default();
        let mut t = AlertTracker::default();
        t.update(&bond(false, None), Instant::now(), &sink);
        assert_eq!(
            sink.level("net/bond0/no-active"),
            Some(AlertLevel::Critical)
        );
        t.update(&bond(false, Some("ens4")), Instant::now(), &sink);
        assert_eq!(sink.level("net/bond0/no-active"), None);
    }

    #[test]
    fn flapping_needs_several_changes_and_clears_after_a_quiet_window() {
        let sink = RecordingAlerts::default();
        let mut t = AlertTracker::default();
        let start = Instant::now();
        let mut links = bond(true, Some("ens4"));
        for i in 0..4u64 {
            links[0].carrier = i % 2 == 0;
            t.update(&links, start + Duration::from_secs(i), &sink);
        }
        assert_eq!(
            sink.level("net/bond0/flapping"),
            None,
            "4 snapshots are 3 changes"
        );
        links[0].carrier = !links[0].carrier;
        t.update(&links, start + Duration::from_secs(6), &sink);
        assert_eq!(sink.level("net/bond0/flapping"), Some(AlertLevel::Warning));
        t.update(&links, start + Duration::from_secs(30), &sink);
        assert_eq!(sink.level("net/bond0/flapping"), Some(AlertLevel::Warning));
        t.update(&links, start + Duration::from_secs(200), &sink);
        assert_eq!(sink.level("net/bond0/flapping"), None);
    }
}
