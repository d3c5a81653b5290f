//! Boot assembly: every pool in our records is assembled from its recorded members by UUID, never from a scan.

use crate::md;
use crate::names;
use crate::pools::{export_value, wait_until};
use crate::service::Storage;
use cairn_core::alert::AlertLevel;
use cairn_core::command::Invocation;
use std::time::Duration;

/// What boot assembly did with one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// It was already running.
    AlreadyRunning,
    /// Assembled with every recorded member.
    Complete,
    /// Started without these members (degraded).
    Degraded(Vec<String>),
    /// Could not be started.
    Failed(String),
}

impl Storage {
    /// Assemble every pool of our records that is not running. Waits up to `wait` for the
    /// recorded member disks to appear (udev coldplug runs alongside cairnd), then runs
    /// `mdadm --assemble /dev/md/<pool> --uuid=<recorded> --run <present members>`, activates
    /// the volume group and re-adds stale members with a resync. A pool started with members
    /// missing is reported by [`Storage::check_pools`] with a critical alert. Blocks.
    pub fn assemble_pools(&self, wait: Duration) -> Vec<(String, Assembled)> {
        let mut out = Vec::new();
        for rec in self.records().pools {
            if md::read_array(self.paths(), &rec.name).is_some_and(|a| a.is_running()) {
                out.push((rec.name.clone(), Assembled::AlreadyRunning));
                continue;
            }
            let present = wait_until(
                &format!("the member disks of pool {}", rec.name),
                wait,
                || {
                    let disks = self.refresh_disks().ok()?;
                    rec.members
                        .iter()
                        .all(|m| disks.iter().any(|d| d.id == *m))
                        .then_some(())
                },
            );
            let disks = self.refresh_disks().unwrap_or_default();
            let (found, missing): (Vec<_>, Vec<_>) = rec
                .members
                .iter()
                .partition(|m| disks.iter().any(|d| d.id == **m));
            if present.is_err() {
                tracing::warn!(
                    "storage: pool {}: members {missing:?} did not appear within {:?}; assembling without them",
                    rec.name,
                    wait
                );
            }
            // Only members whose superblock is this pool's, and only the freshest: a member
            // with an older event count (it missed writes) stays out and is re-added with a
            // resync below, never trusted as it is.
            let mut examined: Vec<(String, u64)> = Vec::new();
            for id in &found {
                let Some(d) = disks.iter().find(|d| d.id == **id) else {
                    continue;
                };
                let dev = d.dev.display().to_string();
                let out = self.runner().run(&Invocation::new(
                    "mdadm",
                    ["--examine", "--export", dev.as_str()],
                ));
                let text = out
                    .ok()
                    .filter(|o| o.success())
                    .map(|o| o.stdout_text())
                    .unwrap_or_default();
                if export_value(&text, "MD_UUID").as_deref() != Some(rec.md_uuid.as_str()) {
                    tracing::warn!(
                        "storage: pool {}: member {id} does not carry the pool's superblock; left out",
                        rec.name
                    );
                    continue;
                }
                let events = export_value(&text, "MD_EVENTS")
                    .and_then(|e| e.parse().ok())
                    .unwrap_or(0);
                examined.push((dev, events));
            }
            let freshest = examined.iter().map(|(_, e)| *e).max().unwrap_or(0);
            let md_dev = names::md_path(&rec.name).display().to_string();
            let mut args = vec![
                "--assemble".to_string(),
                md_dev.clone(),
                format!("--uuid={}", rec.md_uuid),
                "--run".to_string(),
            ];
            for (dev, events) in &examined {
                if *events < freshest {
                    tracing::warn!(
                        "storage: pool {}: {dev} is stale (events {events} < {freshest}); assembling without it, it will be re-added with a resync",
                        rec.name
                    );
                } else {
                    args.push(dev.clone());
                }
            }
            let result = match self.run_step(
                &format!("assembling pool {}", rec.name),
                &Invocation::new("mdadm", args),
            ) {
                Err(e) => Assembled::Failed(cairn_core::boot::error_chain(&e)),
                Ok(_) => {
                    let vg = names::vg_name(&rec.name);
                    let activated = wait_until(
                        &format!("/dev/md/{} after assembly", rec.name),
                        Duration::from_secs(10),
                        || md::kernel_name(self.paths(), &rec.name),
                    )
                    .and_then(|_| {
                        // An array started degraded with --run comes up auto-read-only (md
                        // would switch on the first write): make it read-write at once, so
                        // the pool's state and a failure to write show up at boot.
                        self.run_step(
                            &format!("making pool {} read-write", rec.name),
                            &Invocation::new("mdadm", ["--readwrite", md_dev.as_str()]),
                        )
                    })
                    .and_then(|_| {
                        self.run_step(
                            &format!("activating volume group {vg}"),
                            &Invocation::new("vgchange", ["--activate", "y", vg.as_str()]),
                        )
                    });
                    match activated {
                        Err(e) => Assembled::Failed(cairn_core::boot::error_chain(&e)),
                        Ok(_) if missing.is_empty() => Assembled::Complete,
                        Ok(_) => {
                            Assembled::Degraded(missing.iter().map(|s| s.to_string()).collect())
                        }
                    }
                }
            };
            if let Assembled::Failed(why) = &result {
                self.alerts().raise(
                    &crate::pools::degraded_key(&rec.name),
                    AlertLevel::Critical,
                    &format!("pool {} could not be started at boot: {why}", rec.name),
                );
            }
            tracing::info!("storage: pool {}: {result:?}", rec.name);
            out.push((rec.name.clone(), result));
        }
        self.readd_stale();
        self.check_pools();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake::{add_virtio_disks, record_raid5_tank};
    use crate::md::fake::add_array;
    use crate::paths::SystemPaths;
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::sync::Arc;

    #[test]
    fn assembles_from_the_records_and_runs_degraded_with_an_alert() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        add_virtio_disks(root, &["B", "C"]);
        record_raid5_tank(root, "aa:bb:cc:dd");
        let r = Arc::new(RecordingRunner::new());
        r.expect(
            "mdadm",
            &["--examine", "--export", "/dev/vdb"],
            CommandOutput::ok("MD_UUID=aa:bb:cc:dd\nMD_EVENTS=40\n"),
        );
        r.expect(
            "mdadm",
            &["--examine", "--export", "/dev/vdc"],
            CommandOutput::ok("MD_UUID=aa:bb:cc:dd\nMD_EVENTS=40\n"),
        );
        let a = Arc::new(RecordingAlerts::default());
        let s = Storage::open(
            r.clone(),
            &root.join("state"),
            a.clone(),
            SystemPaths::under(root),
        )
        .unwrap();
        // What mdadm leaves behind: a running array without the missing member.
        add_array(
            root,
            "tank",
            "md127",
            3,
            1,
            ("idle", "none"),
            &[("vdb", "0", "in_sync"), ("vdc", "1", "in_sync")],
        );
        std::fs::remove_file(root.join("dev/md/tank")).unwrap();
        let link = root.join("dev/md/tank");
        // mdadm --assemble creates the link: simulate by creating it before the wait ends.
        std::os::unix::fs::symlink("../md127", &link).unwrap();
        // The array is "running" already in the tree, so take it down for the first check:
        std::fs::write(root.join("sys/block/md127/md/array_state"), "inactive\n").unwrap();
        let res = s.assemble_pools(Duration::from_millis(300));
        assert_eq!(
            res,
            [(
                "tank".to_string(),
                Assembled::Degraded(vec!["virtio-D".into()])
            )]
        );
        let lines = r.command_lines();
        assert_eq!(
            lines[..2],
            [
                "mdadm --examine --export /dev/vdb",
                "mdadm --examine --export /dev/vdc"
            ]
        );
        assert_eq!(
            lines[2],
            "mdadm --assemble /dev/md/tank --uuid=aa:bb:cc:dd --run /dev/vdb /dev/vdc"
        );
        // Started degraded it would be auto-read-only: made read-write before the VG is used.
        assert_eq!(lines[3], "mdadm --readwrite /dev/md/tank");
        assert_eq!(lines[4], "vgchange --activate y cairn-tank");
        // Still "inactive" in the recorded tree: the pool is reported failed, critically.
        assert_eq!(a.level("pool/tank/degraded"), Some(AlertLevel::Critical));
    }

    #[test]
    fn a_stale_or_foreign_member_is_left_out_of_assembly() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        add_virtio_disks(root, &["B", "C", "D"]);
        record_raid5_tank(root, "u");
        let r = Arc::new(RecordingRunner::new());
        r.expect(
            "mdadm",
            &["--examine", "--export", "/dev/vdb"],
            CommandOutput::ok("MD_UUID=u\nMD_EVENTS=90\n"),
        );
        r.expect(
            "mdadm",
            &["--examine", "--export", "/dev/vdc"],
            CommandOutput::ok("MD_UUID=other\nMD_EVENTS=95\n"),
        );
        r.expect(
            "mdadm",
            &["--examine", "--export", "/dev/vdd"],
            CommandOutput::ok("MD_UUID=u\nMD_EVENTS=71\n"),
        );
        let s = Storage::open(
            r.clone(),
            &root.join("state"),
            Arc::new(RecordingAlerts::default()),
            SystemPaths::under(root),
        )
        .unwrap();
        add_array(
            root,
            "tank",
            "md127",
            3,
            2,
            ("idle", "none"),
            &[("vdb", "0", "in_sync")],
        );
        std::fs::write(root.join("sys/block/md127/md/array_state"), "inactive\n").unwrap();
        s.assemble_pools(Duration::from_millis(100));
        assert!(
            r.command_lines()
                .contains(&"mdadm --assemble /dev/md/tank --uuid=u --run /dev/vdb".to_string()),
            "{:?}",
            r.command_lines()
        );
    }
}
