//! Capacity alerts at 85/90/95 %: thin pool data and metadata (`pool/<p>/capacity`) and each share (`pool/<p>/share/<s>/capacity`).

use crate::data_error::DataError;
use crate::lvm;
use crate::names;
use crate::service::Storage;
use cairn_core::alert::{AlertLevel, AlertSink};

/// The thresholds, highest first: at or above the percent, the level.
pub const THRESHOLDS: [(u8, AlertLevel); 3] = [
    (95, AlertLevel::Critical),
    (90, AlertLevel::Warning),
    (85, AlertLevel::Warning),
];

/// The alert key of pool `pool`'s thin pool capacity.
pub fn pool_key(pool: &str) -> String {
    format!("pool/{pool}/capacity")
}

/// The alert key of share `share`'s capacity.
pub fn share_key(pool: &str, share: &str) -> String {
    format!("pool/{pool}/share/{share}/capacity")
}

/// The threshold `percent` is at or above, with its level (`None` below 85 %).
pub fn band(percent: f64) -> Option<(u8, AlertLevel)> {
    THRESHOLDS
        .iter()
        .find(|(t, _)| percent >= f64::from(*t))
        .map(|(t, l)| (*t, *l))
}

/// Raise, change or clear the alert `key` for `what` at `percent`. The message names only
/// the threshold, so the alert changes (and notifies) once per threshold crossed, not on
/// every percent. Returns whether this was a change.
pub fn evaluate(alerts: &dyn AlertSink, key: &str, what: &str, percent: f64) -> bool {
    match band(percent) {
        Some((t, level)) => alerts.raise(key, level, &format!("{what} is over {t} % full")),
        None => alerts.clear(key, &format!("{what} is below 85 % full again")),
    }
}

/// The usage figures one capacity check saw.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Capacity {
    pub pool: String,
    /// Thin pool data and metadata use in percent.
    pub data_percent: f64,
    pub metadata_percent: f64,
    /// Thin pool size (the space all thin LVs share).
    pub size_bytes: u64,
    /// Sum of the virtual sizes of the pool's thin LVs (over-provisioning when above size).
    pub provisioned_bytes: u64,
    /// Each mounted share's used percent ([`crate::btrfs::FsUsage::percent`], read after a
    /// commit).
    pub shares: Vec<ShareUse>,
}

/// How full one share is.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareUse {
    pub share: String,
    pub used_percent: f64,
}

impl Storage {
    /// The LVs of usable pool `pool` and the index of its thin pool among them.
    fn thin_pool_rows(&self, pool: &str) -> Result<(Vec<lvm::LvRow>, usize), DataError> {
        self.pool_usable(pool)?;
        let rows = lvm::list_lvs(self.runner(), pool)?;
        let i = rows
            .iter()
            .position(|r| r.name == names::THIN_POOL_LV)
            .ok_or_else(|| DataError::Parse {
                tool: "lvs".into(),
                reason: format!(
                    "no thin pool `{}` in {}",
                    names::THIN_POOL_LV,
                    names::vg_name(pool)
                ),
            })?;
        Ok((rows, i))
    }

    /// The free space of `pool`'s thin pool (`lvs` only: no share is touched).
    pub fn thin_free_bytes(&self, pool: &str) -> Result<u64, DataError> {
        let (rows, i) = self.thin_pool_rows(pool)?;
        let thin = &rows[i];
        // data_percent is lvs's 0–100 with two decimals: the product fits u64 and is ≥ 0.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let used = (thin.size_bytes as f64 * thin.data_percent.clamp(0.0, 100.0) / 100.0) as u64;
        Ok(thin.size_bytes.saturating_sub(used))
    }

    /// Read the thin pool's and every mounted share's usage of `pool`.
    pub fn capacity(&self, pool: &str) -> Result<Capacity, DataError> {
        let (rows, i) = self.thin_pool_rows(pool)?;
        let thin = &rows[i];
        let provisioned = rows
            .iter()
            .filter(|r| r.attr.starts_with('V'))
            .map(|r| r.size_bytes)
            .sum();
        let mut shares = Vec::new();
        for rec in self
            .share_records()?
            .shares
            .iter()
            .filter(|s| s.pool == pool)
        {
            let mnt = self.share_mountpoint(pool, &rec.name);
            if !self.is_mounted(&mnt) {
                continue;
            }
            // Committed first: btrfs reports writes only after a commit, and an alert that
            // lags the writes can miss 95 % on a small share that fills within 30 s.
            if let Ok(u) = self.fs_usage_committed(&mnt) {
                shares.push(ShareUse {
                    share: rec.name.clone(),
                    used_percent: u.percent(),
                });
            }
        }
        Ok(Capacity {
            pool: pool.to_string(),
            data_percent: thin.data_percent,
            metadata_percent: thin.metadata_percent,
            size_bytes: thin.size_bytes,
            provisioned_bytes: provisioned,
            shares,
        })
    }

    /// Check `pool`'s capacity and raise or clear its alerts (one per threshold change).
    pub fn check_capacity(&self, pool: &str) -> Result<Capacity, DataError> {
        let c = self.capacity(pool)?;
        let (what, pct) = if c.metadata_percent > c.data_percent {
            (
                format!("thin pool metadata of pool {pool}"),
                c.metadata_percent,
            )
        } else {
            (format!("thin pool of pool {pool}"), c.data_percent)
        };
        evaluate(self.alerts(), &pool_key(pool), &what, pct);
        for s in &c.shares {
            evaluate(
                self.alerts(),
                &share_key(pool, &s.share),
                &format!("share {} of pool {pool}", s.share),
                s.used_percent,
            );
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{storage_with, LVS_EMPTY, LVS_WITH_SHARE, USAGE};
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::{CommandOutput, RecordingRunner};

    #[test]
    fn bands_follow_the_thresholds() {
        assert_eq!(band(84.99), None);
        assert_eq!(band(85.0), Some((85, AlertLevel::Warning)));
        assert_eq!(band(92.0), Some((90, AlertLevel::Warning)));
        assert_eq!(band(95.0), Some((95, AlertLevel::Critical)));
        assert_eq!(band(100.0), Some((95, AlertLevel::Critical)));
    }

    #[test]
    fn one_alert_per_threshold_change_and_cleared_on_recovery() {
        let a = RecordingAlerts::default();
        let k = "pool/tank/capacity";
        assert!(!evaluate(&a, k, "thin pool", 50.0));
        assert!(evaluate(&a, k, "thin pool", 86.0));
        assert!(
            !evaluate(&a, k, "thin pool", 87.5),
            "same band: no new alert"
        );
        assert!(evaluate(&a, k, "thin pool", 91.0));
        assert!(evaluate(&a, k, "thin pool", 96.0));
        assert_eq!(a.level(k), Some(AlertLevel::Critical));
        assert!(!evaluate(&a, k, "thin pool", 97.0));
        assert!(
            evaluate(&a, k, "thin pool", 92.0),
            "going down a band is a change"
        );
        assert_eq!(a.level(k), Some(AlertLevel::Warning));
        assert!(evaluate(&a, k, "thin pool", 40.0));
        assert_eq!(a.level(k), None);
        let changes = a.changes.lock().unwrap();
        assert_eq!(changes.len(), 5);
        assert_eq!(changes[0].2, "thin pool is over 85 % full");
        assert!(changes[4].1.is_none());
    }

    #[test]
    fn check_reads_lvs_and_shares_and_raises_per_source() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE))
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE));
        let (st, _d, alerts) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        let full = LVS_WITH_SHARE
            .replace("\"10.00\"", "\"91.00\"")
            .replace("\"4.12\"", "\"96.50\"");
        st.script("lvs", CommandOutput::ok(full));
        st.runner.expect(
            "btrfs",
            &["filesystem", "usage"],
            CommandOutput::ok(
                USAGE
                    .replace("1572864000", "9200000000")
                    .replace("9104539648", "900000000"),
            ),
        );
        let c = st.check_capacity("tank").unwrap();
        assert!((c.metadata_percent - 96.5).abs() < 1e-9);
        assert_eq!(c.provisioned_bytes, 1 << 30);
        assert_eq!(
            alerts.level("pool/tank/capacity"),
            Some(AlertLevel::Critical)
        );
        assert_eq!(
            alerts.level("pool/tank/share/docs/capacity"),
            Some(AlertLevel::Warning)
        );
        let msg = alerts.active.lock().unwrap()["pool/tank/capacity"]
            .1
            .clone();
        assert!(msg.contains("metadata"), "{msg}");
    }

    #[test]
    fn a_share_is_committed_before_it_is_measured() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE))
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE));
        let (st, _d, alerts) = storage_with(r);
        st.create_share("tank", "docs", 256 << 20).unwrap();
        st.script("lvs", CommandOutput::ok(LVS_WITH_SHARE));
        // Real output of a 256 MiB share with 3 MiB still writable (btrfs.rs's fixtures).
        st.runner.expect(
            "btrfs",
            &["filesystem", "usage"],
            CommandOutput::ok(include_str!("testdata/btrfs-usage-256m-committed.txt")),
        );
        let before = st.runner_lines().len();
        let c = st.check_capacity("tank").unwrap();
        let lines = st.runner_lines()[before..].to_vec();
        let mnt = "/var/lib/cairn/shares/tank/docs";
        let sync = lines
            .iter()
            .position(|l| *l == format!("btrfs filesystem sync {mnt}"));
        let usage = lines
            .iter()
            .position(|l| *l == format!("btrfs filesystem usage -b {mnt}"));
        assert!(
            matches!((sync, usage), (Some(a), Some(b)) if a < b),
            "{lines:?}"
        );
        assert!((c.shares[0].used_percent - 98.30).abs() < 0.01, "{c:?}");
        assert_eq!(
            alerts.level("pool/tank/share/docs/capacity"),
            Some(AlertLevel::Critical)
        );
    }
}
