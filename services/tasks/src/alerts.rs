//! Alerts shared by all domains: raised once per change, cleared on recovery, listed, and
//! published on the event bus.

use crate::alert::{severity, ActiveAlert, Alert, AlertState};
use crate::clock::now_s;
use crate::events::{EventBus, EventKind};
use cairn_core::alert::AlertLevel;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// How many recent alert changes are kept for listing.
pub const KEEP_RECENT: usize = 200;

#[derive(Default)]
struct Inner {
    active: BTreeMap<String, ActiveAlert>,
    recent: VecDeque<Alert>,
}

/// The node's alerts; cloning shares them.
#[derive(Clone)]
pub struct AlertRegistry {
    inner: Arc<Mutex<Inner>>,
    bus: EventBus,
}

impl AlertRegistry {
    /// A registry without alerts, publishing every change on `bus`.
    pub fn new(bus: EventBus) -> Self {
        AlertRegistry {
            inner: Arc::new(Mutex::new(Inner::default())),
            bus,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, inner: &mut Inner, alert: Alert) {
        if inner.recent.len() == KEEP_RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(alert.clone());
        self.bus.publish(EventKind::Alert(alert));
    }

    /// Report that condition `key` is wrong. Fires only when it is new or its level or
    /// message changed; returns whether it fired. Domains call this on every check.
    pub fn raise(&self, key: &str, level: AlertLevel, message: &str) -> bool {
        let now = now_s();
        let mut inner = self.lock();
        let since = match inner.active.get(key) {
            Some(a) if a.level == level && a.message == message => return false,
            Some(a) => a.since,
            None => now,
        };
        inner.active.insert(
            key.to_string(),
            ActiveAlert {
                key: key.to_string(),
                level,
                message: message.to_string(),
                since,
                updated: now,
            },
        );
        let alert = Alert {
            key: key.to_string(),
            level,
            state: AlertState::Raised,
            message: message.to_string(),
            time: now,
        };
        self.publish(&mut inner, alert);
        true
    }

    /// Report that condition `key` is fine. Fires (a `cleared` change with `message`) only
    /// when it was raised; returns whether it fired.
    pub fn clear(&self, key: &str, message: &str) -> bool {
        let mut inner = self.lock();
        let Some(was) = inner.active.remove(key) else {
            return false;
        };
        let alert = Alert {
            key: key.to_string(),
            level: was.level,
            state: AlertState::Cleared,
            message: message.to_string(),
            time: now_s(),
        };
        self.publish(&mut inner, alert);
        true
    }

    /// Active alerts, most severe first, then oldest first.
    pub fn active(&self) -> Vec<ActiveAlert> {
        let mut v: Vec<ActiveAlert> = self.lock().active.values().cloned().collect();
        v.sort_by(|a, b| {
            severity(b.level)
                .cmp(&severity(a.level))
                .then(a.since.cmp(&b.since))
        });
        v
    }

    /// Recent changes, newest first.
    pub fn recent(&self) -> Vec<Alert> {
        self.lock().recent.iter().rev().cloned().collect()
    }
}

/// Domains (storage, SMART, network, VMs) raise and clear alerts through this trait.
impl cairn_core::alert::AlertSink for AlertRegistry {
    fn raise(&self, key: &str, level: AlertLevel, message: &str) -> bool {
        AlertRegistry::raise(self, key, level, message)
    }

    fn clear(&self, key: &str, message: &str) -> bool {
        AlertRegistry::clear(self, key, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(sub: &mut crate::events::Subscription) -> Vec<(AlertState, String)> {
        let mut out = Vec::new();
        while let Ok(ev) = sub.events.try_recv() {
            if let EventKind::Alert(a) = ev.kind {
                out.push((a.state, a.message));
            }
        }
        out
    }

    #[test]
    fn fires_once_per_change_and_clears_on_recovery() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let reg = AlertRegistry::new(bus);
        assert!(reg.raise("pool/tank", AlertLevel::Warning, "85 % full"));
        assert!(
            !reg.raise("pool/tank", AlertLevel::Warning, "85 % full"),
            "same: no repeat"
        );
        assert!(
            reg.raise("pool/tank", AlertLevel::Critical, "95 % full"),
            "worse: fires"
        );
        assert!(reg.clear("pool/tank", "70 % full"));
        assert!(!reg.clear("pool/tank", "70 % full"), "already clear");
        assert!(!reg.clear("disk/x", "fine"), "never raised");
        assert_eq!(
            changes(&mut sub),
            vec![
                (AlertState::Raised, "85 % full".into()),
                (AlertState::Raised, "95 % full".into()),
                (AlertState::Cleared, "70 % full".into()),
            ]
        );
        assert!(reg.active().is_empty());
        assert_eq!(reg.recent().len(), 3);
        assert_eq!(reg.recent()[0].state, AlertState::Cleared, "newest first");
        assert_eq!(reg.recent()[0].level, AlertLevel::Critical);
    }

    #[test]
    fn active_sorted_by_severity_and_recent_capped() {
        let reg = AlertRegistry::new(EventBus::new());
        reg.raise("a", AlertLevel::Info, "i");
        reg.raise("b", AlertLevel::Critical, "c");
        reg.raise("c", AlertLevel::Warning, "w");
        let keys: Vec<_> = reg.active().into_iter().map(|a| a.key).collect();
        assert_eq!(keys, vec!["b", "c", "a"]);
        for i in 0..KEEP_RECENT {
            reg.raise("flap", AlertLevel::Info, &i.to_string());
        }
        assert_eq!(reg.recent().len(), KEEP_RECENT);
        assert_eq!(reg.recent()[0].message, (KEEP_RECENT - 1).to_string());
    }
}
