//! Pool health: pulled members are failed out of md, degraded/failed pools raise a critical alert, stale members are re-added with a resync.

use crate::md;
use crate::names;
use crate::pools::{degraded_key, export_value};
use crate::service::Storage;
use crate::status::{pool_status, MemberState, PoolState, PoolStatus};
use cairn_core::alert::AlertLevel;
use cairn_core::command::Invocation;

/// The alert key of a member that came back with older data and is being resynced.
pub fn stale_key(pool: &str, disk: &str) -> String {
    format!("pool/{pool}/member/{disk}/stale")
}

impl Storage {
    /// Look at every pool once: members whose device vanished are failed and removed from
    /// the array (md itself notices only on the next I/O), then the degraded alert is raised
    /// or cleared. Returns the statuses. Blocks briefly (reads sysfs, maybe runs mdadm).
    pub fn check_pools(&self) -> Vec<PoolStatus> {
        let disks = match self.refresh_disks() {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("storage: inventory failed: {e}");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for rec in self.records().pools {
            if self.is_busy(&format!("destroy:{}", rec.name)) {
                // Its array is being stopped on purpose: no alert for that.
                continue;
            }
            let mut array = md::read_array(self.paths(), &rec.name);
            if array
                .as_ref()
                .is_some_and(|a| a.members.iter().any(|m| !m.present))
            {
                let md_dev = names::md_path(&rec.name).display().to_string();
                let inv = Invocation::new(
                    "mdadm",
                    [
                        md_dev.as_str(),
                        "--fail",
                        "detached",
                        "--remove",
                        "detached",
                    ],
                );
                match self.runner().run(&inv) {
                    Ok(o) if o.success() => {
                        tracing::warn!("storage: pool {}: a member disk was pulled; failed it out of the array", rec.name)
                    }
                    Ok(o) => {
                        tracing::warn!("storage: {} failed: {}", inv.display(), o.stderr_text())
                    }
                    Err(e) => tracing::warn!("storage: {}: {e}", inv.display()),
                }
                array = md::read_array(self.paths(), &rec.name);
            }
            let status = pool_status(&rec, &disks, array.as_ref());
            self.publish_health(&status);
            out.push(status);
        }
        out
    }

    /// Raise or clear the pool's alerts for `status`.
    fn publish_health(&self, status: &PoolStatus) {
        let key = degraded_key(&status.name);
        let all_there = status
            .members
            .iter()
            .all(|m| matches!(m.state, MemberState::InSync | MemberState::Rebuilding));
        if self.is_building(&status.name) {
            match status.state {
                PoolState::Healthy if status.sync.is_none() => {
                    self.set_building(&status.name, false);
                }
                PoolState::Healthy | PoolState::Rebuilding if all_there => {
                    // The initial build of a new pool: nothing was lost.
                    return;
                }
                _ => {}
            }
        }
        match status.state {
            PoolState::Healthy => {
                self.alerts()
                    .clear(&key, &format!("pool {} is healthy again", status.name));
            }
            PoolState::Failed => {
                self.alerts().raise(
                    &key,
                    AlertLevel::Critical,
                    &format!("pool {} has failed: {}", status.name, status.reason),
                );
            }
            PoolState::Degraded | PoolState::Rebuilding => {
                let missing: Vec<&str> = status
                    .members
                    .iter()
                    .filter(|m| !matches!(m.state, MemberState::InSync))
                    .map(|m| m.disk.as_str())
                    .collect();
                // The message stays the same while the rebuild advances: one notification
                // for the loss, one for the recovery.
                self.alerts().raise(
                    &key,
                    AlertLevel::Critical,
                    &format!(
                        "pool {} ({}) is degraded: no longer redundant against a disk loss until {} is replaced or rebuilt",
                        status.name,
                        status.level,
                        if missing.is_empty() { "the missing member".to_string() } else { missing.join(", ") }
                    ),
                );
            }
        }
        for m in &status.members {
            if m.state == MemberState::InSync {
                self.alerts().clear(
                    &stale_key(&status.name, &m.disk),
                    &format!("{} is in sync again", m.disk),
                );
            }
        }
    }

    /// Re-add members of our pools that are present but outside their running array (a disk
    /// that came back after being pulled, or was missing at boot). Its superblock must carry
    /// the pool's UUID; md resyncs it (from the write-intent bitmap when it can) — it is
    /// never trusted as it is. Raises a warning alert per re-added disk.
    pub fn readd_stale(&self) {
        let disks = match self.refresh_disks() {
            Ok(d) => d,
            Err(_) => return,
        };
        for rec in self.records().pools {
            let Some(array) = md::read_array(self.paths(), &rec.name).filter(|a| a.is_running())
            else {
                continue;
            };
            let Ok(_busy) = self.claim(&[format!("pool:{}", rec.name)]) else {
                continue;
            };
            for id in &rec.members {
                let Some(d) = disks.iter().find(|d| d.id == *id) else {
                    continue;
                };
                if array.members.iter().any(|m| m.name == d.name) {
                    continue;
                }
                let dev = d.dev.display().to_string();
                let examined = self.runner().run(&Invocation::new(
                    "mdadm",
                    ["--examine", "--export", dev.as_str()],
                ));
                let uuid = examined
                    .ok()
                    .filter(|o| o.success())
                    .and_then(|o| export_value(&o.stdout_text(), "MD_UUID"));
                if uuid.as_deref() != Some(rec.md_uuid.as_str()) {
                    tracing::warn!(
                        "storage: member {id} of pool {} is present without the pool's superblock ({uuid:?}); leaving it alone: replace it",
                        rec.name
                    );
                    continue;
                }
                let md_dev = names::md_path(&rec.name).display().to_string();
                let readd = Invocation::new("mdadm", [md_dev.as_str(), "--re-add", dev.as_str()]);
                let ok = self.runner().run(&readd).is_ok_and(|o| o.success())
                    || self
                        .runner()
                        .run(&Invocation::new(
                            "mdadm",
                            [md_dev.as_str(), "--add", dev.as_str()],
                        ))
                        .is_ok_and(|o| o.success());
                if ok {
                    self.alerts().raise(
                        &stale_key(&rec.name, id),
                        AlertLevel::Warning,
                        &format!(
                            "disk {id} of pool {} came back with older data; it was re-added and is being resynced",
                            rec.name
                        ),
                    );
                } else {
                    tracing::error!("storage: could not re-add {id} to pool {}", rec.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake::{
        add_disk, add_virtio_disks, record_raid5_tank, remove_disk, virtio,
    };
    use crate::md::fake::add_array;
    use crate::paths::SystemPaths;
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::sync::Arc;

    fn setup(root: &std::path::Path) -> (Arc<RecordingRunner>, Arc<RecordingAlerts>, Storage) {
        add_virtio_disks(root, &["B", "C", "D"]);
        record_raid5_tank(root, "u1");
        let r = Arc::new(RecordingRunner::new());
        let a = Arc::new(RecordingAlerts::default());
        let s = Storage::open(
            r.clone(),
            &root.join("state"),
            a.clone(),
            SystemPaths::under(root),
        )
        .unwrap();
        (r, a, s)
    }

    #[test]
    fn a_pulled_member_is_failed_out_and_raises_then_clears_the_alert() {
        let t = tempfile::tempdir().unwrap();
        let (r, a, s) = setup(t.path());
        let all = [
            ("vdb", "0", "in_sync"),
            ("vdc", "1", "in_sync"),
            ("vdd", "2", "in_sync"),
        ];
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &all);
        assert_eq!(s.check_pools()[0].state, PoolState::Healthy);
        assert_eq!(a.level("pool/tank/degraded"), None);
        assert!(r.calls().is_empty());

        // vdd is pulled: md still lists it (no I/O yet).
        remove_disk(t.path(), "vdd");
        let st = s.check_pools();
        assert_eq!(
            r.command_lines(),
            ["mdadm /dev/md/tank --fail detached --remove detached"]
        );
        // (The recorded tree does not change by itself: md still shows it, but the inventory
        // no longer has the disk, so the member is missing.)
        assert_eq!(st[0].members[2].state, MemberState::Missing);
        add_array(t.path(), "tank", "md127", 3, 1, ("idle", "none"), &all[..2]);
        assert_eq!(s.check_pools()[0].state, PoolState::Degraded);
        assert_eq!(a.level("pool/tank/degraded"), Some(AlertLevel::Critical));
        let changes = a.changes.lock().unwrap().len();
        s.check_pools();
        assert_eq!(
            a.changes.lock().unwrap().len(),
            changes,
            "no repeat notification"
        );

        add_disk(
            t.path(),
            &virtio("vdd", "254:48", "E:ID_SERIAL=D\nS:disk/by-id/virtio-D\n"),
        );
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &all);
        assert_eq!(s.check_pools()[0].state, PoolState::Healthy);
        assert_eq!(a.level("pool/tank/degraded"), None);
    }

    #[test]
    fn the_initial_build_of_a_new_pool_raises_no_alert() {
        let t = tempfile::tempdir().unwrap();
        let (_r, a, s) = setup(t.path());
        s.set_building("tank", true);
        let building = [
            ("vdb", "0", "in_sync"),
            ("vdc", "1", "in_sync"),
            ("vdd", "2", ""),
        ];
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            1,
            ("recover", "10 / 100"),
            &building,
        );
        assert_eq!(s.check_pools()[0].state, PoolState::Rebuilding);
        assert_eq!(a.level("pool/tank/degraded"), None);
        let all = [
            ("vdb", "0", "in_sync"),
            ("vdc", "1", "in_sync"),
            ("vdd", "2", "in_sync"),
        ];
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &all);
        s.check_pools();
        assert!(!s.is_building("tank"));
        // From now on a rebuild is a degradation.
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            1,
            ("recover", "10 / 100"),
            &building,
        );
        s.check_pools();
        assert_eq!(a.level("pool/tank/degraded"), Some(AlertLevel::Critical));
    }

    #[test]
    fn a_returning_member_is_re_added_only_with_our_uuid() {
        let t = tempfile::tempdir().unwrap();
        let (r, a, s) = setup(t.path());
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            1,
            ("idle", "none"),
            &[("vdb", "0", "in_sync"), ("vdc", "1", "in_sync")],
        );
        r.expect("mdadm", &["--examine"], CommandOutput::ok("MD_UUID=u1\n"));
        s.readd_stale();
        assert_eq!(
            r.command_lines(),
            [
                "mdadm --examine --export /dev/vdd",
                "mdadm /dev/md/tank --re-add /dev/vdd"
            ]
        );
        assert_eq!(
            a.level("pool/tank/member/virtio-D/stale"),
            Some(AlertLevel::Warning)
        );

        let t = tempfile::tempdir().unwrap();
        let (r, _a, s) = setup(t.path());
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            1,
            ("idle", "none"),
            &[("vdb", "0", "in_sync"), ("vdc", "1", "in_sync")],
        );
        r.expect(
            "mdadm",
            &["--examine"],
            CommandOutput::ok("MD_UUID=other\n"),
        );
        s.readd_stale();
        assert_eq!(r.command_lines(), ["mdadm --examine --export /dev/vdd"]);
    }
}
