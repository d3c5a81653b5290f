//! Replacing a member (hot replace when the old disk still works) and adding a disk (grow), with rebuild progress.

use crate::error::StorageError;
use crate::inventory::Disk;
use crate::level::Level;
use crate::md;
use crate::names;
use crate::plan::{self, check_candidate, Candidate};
use crate::records::PoolRecord;
use crate::service::Storage;
use crate::status::PoolStatus;
use crate::wipefs;
use cairn_core::alert::Progress;
use cairn_core::command::Invocation;
use cairn_core::shown::clip;
use std::time::{Duration, Instant};

/// A rebuild that makes no progress for this long is reported as stalled.
pub const STALL_LIMIT: Duration = Duration::from_secs(600);

/// How long md may take to start a recovery after a disk was added.
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// A validated replace: the record, the old member's id and the new disk.
#[derive(Debug, Clone)]
pub struct ReplacePlan {
    pub record: PoolRecord,
    pub old: String,
    pub new: Disk,
}

impl Storage {
    fn usable_new_disk(&self, field: &str, s: &str) -> Result<Disk, StorageError> {
        let disks = self.refresh_disks()?;
        let disk = disks
            .iter()
            .find(|d| d.matches(s))
            .cloned()
            .ok_or_else(|| StorageError::invalid(field, format!("no disk {}", clip(s))))?;
        let signatures = if plan::refuse_in_use(&disk, &self.records()).is_some() {
            // Refused anyway (check_candidate says why): no need to probe it.
            Vec::new()
        } else {
            wipefs::list(self.runner(), &disk.dev.display().to_string())?
        };
        check_candidate(
            field,
            &Candidate {
                disk: disk.clone(),
                signatures,
            },
            &self.records(),
        )?;
        Ok(disk)
    }

    fn running_record(&self, name: &str) -> Result<PoolRecord, StorageError> {
        let rec = self
            .records()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NoSuchPool(name.to_string()))?;
        if !md::read_array(self.paths(), name).is_some_and(|a| a.is_running()) {
            return Err(StorageError::PoolUnusable {
                name: name.to_string(),
                reason: "its array is not running".into(),
            });
        }
        Ok(rec)
    }

    /// Refuse disk `id` (request field `field`) when a pool record names it as a member.
    fn still_not_member(&self, field: &str, id: &str) -> Result<(), StorageError> {
        match self.records().pool_of(id) {
            Some(p) => Err(StorageError::invalid(
                field,
                format!("disk {id} is a member of pool {}", p.name),
            )),
            None => Ok(()),
        }
    }

    /// Check a replace request without changing anything.
    pub fn check_replace(
        &self,
        name: &str,
        old: &str,
        new: &str,
    ) -> Result<ReplacePlan, StorageError> {
        let record = self.running_record(name)?;
        let disks = self.refresh_disks()?;
        let old_id = record
            .members
            .iter()
            .find(|m| m.as_str() == old || disks.iter().any(|d| d.id == **m && d.matches(old)))
            .cloned()
            .ok_or_else(|| {
                StorageError::invalid(
                    "old",
                    format!("{} is not a member of pool {name}", clip(old)),
                )
            })?;
        let new = self.usable_new_disk("new", new)?;
        Ok(ReplacePlan {
            record,
            old: old_id,
            new,
        })
    }

    /// Replace member `old` of pool `name` by blank disk `new` and wait for the rebuild.
    /// A working old disk is hot-replaced (redundancy kept while copying); a missing or
    /// faulty one is removed and the new disk rebuilt from the others. Blocks.
    pub fn replace_disk(
        &self,
        name: &str,
        old: &str,
        new: &str,
        progress: &dyn Progress,
    ) -> Result<PoolStatus, StorageError> {
        let p = self.check_replace(name, old, new)?;
        self.replace_planned(name, &p, progress)
    }

    /// Replace as [`Storage::check_replace`] found (it probed the new disk): nothing is probed
    /// again. Under the claim only the records are read again, so a disk that joined a pool
    /// since the check is still refused. Blocks until the rebuild is done.
    pub fn replace_planned(
        &self,
        name: &str,
        p: &ReplacePlan,
        progress: &dyn Progress,
    ) -> Result<PoolStatus, StorageError> {
        let _busy = self.claim(&[format!("pool:{name}"), format!("disk:{}", p.new.id)])?;
        self.running_record(name)?;
        self.still_not_member("new", &p.new.id)?;
        let md_dev = names::md_path(name).display().to_string();
        let new_dev = plan::disk_path(&p.new);
        let disks = self.refresh_disks()?;
        let array = md::read_array(self.paths(), name);
        let old_disk = disks.iter().find(|d| d.id == p.old);
        let old_member = old_disk.and_then(|d| {
            array
                .as_ref()
                .and_then(|a| a.members.iter().find(|m| m.name == d.name))
        });
        progress.progress(2, &format!("adding {}", p.new.id));
        match (old_disk, old_member) {
            (Some(d), Some(m)) if !m.faulty() => {
                self.run_step(
                    "adding the new disk",
                    &Invocation::new("mdadm", [md_dev.as_str(), "--add", new_dev.as_str()]),
                )?;
                let old_dev = d.dev.display().to_string();
                self.run_step(
                    "starting the hot replace",
                    &Invocation::new(
                        "mdadm",
                        [
                            md_dev.as_str(),
                            "--replace",
                            old_dev.as_str(),
                            "--with",
                            new_dev.as_str(),
                        ],
                    ),
                )?;
            }
            (Some(d), Some(_)) => {
                let old_dev = d.dev.display().to_string();
                self.run_step(
                    "removing the faulty disk",
                    &Invocation::new("mdadm", [md_dev.as_str(), "--remove", old_dev.as_str()]),
                )?;
                self.run_step(
                    "adding the new disk",
                    &Invocation::new("mdadm", [md_dev.as_str(), "--add", new_dev.as_str()]),
                )?;
            }
            _ => {
                // The old disk is gone (or already out of the array): drop md's stale slot.
                let _ = self.runner().run(&Invocation::new(
                    "mdadm",
                    [
                        md_dev.as_str(),
                        "--fail",
                        "detached",
                        "--remove",
                        "detached",
                    ],
                ));
                self.run_step(
                    "adding the new disk",
                    &Invocation::new("mdadm", [md_dev.as_str(), "--add", new_dev.as_str()]),
                )?;
            }
        }
        // From here on the new disk is the member: a reboot mid-rebuild resumes it.
        let new_id = p.new.id.clone();
        self.update_records(|r| {
            if let Some(rec) = r.get_mut(name) {
                for m in rec.members.iter_mut() {
                    if *m == p.old {
                        *m = new_id.clone();
                    }
                }
            }
        })?;
        self.wait_sync(name, progress, 5, 95)?;
        // A hot-replaced old disk is left faulty in the array: take it out.
        if let Some(d) = old_disk {
            let still = md::read_array(self.paths(), name)
                .is_some_and(|a| a.members.iter().any(|m| m.name == d.name));
            if still {
                let old_dev = d.dev.display().to_string();
                self.run_step(
                    "removing the replaced disk",
                    &Invocation::new("mdadm", [md_dev.as_str(), "--remove", old_dev.as_str()]),
                )?;
            }
        }
        progress.progress(100, "rebuild complete");
        self.check_pools();
        self.pool_status(name)
    }

    /// Wait until pool `name`'s array has no sync running and no member missing, reporting
    /// progress mapped into `base..base+span` percent. Fails when the sync stalls for
    /// [`STALL_LIMIT`] or none starts within [`START_LIMIT`] while members are missing.
    pub fn wait_sync(
        &self,
        name: &str,
        progress: &dyn Progress,
        base: u8,
        span: u8,
    ) -> Result<(), StorageError> {
        let started = Instant::now();
        let mut last_done: Option<u64> = None;
        let mut last_move = Instant::now();
        loop {
            let a =
                md::read_array(self.paths(), name).ok_or_else(|| StorageError::PoolUnusable {
                    name: name.to_string(),
                    reason: "its array disappeared during the rebuild".into(),
                })?;
            let syncing = matches!(
                a.sync_action.as_str(),
                "recover" | "resync" | "reshape" | "repair"
            );
            if syncing {
                let pct = a.sync_percent().unwrap_or(0);
                progress.progress(
                    // pct ≤ 100: the share of `span` fits in it.
                    base.saturating_add(
                        u8::try_from(u16::from(pct) * u16::from(span) / 100).unwrap_or(span),
                    )
                    .min(99),
                    &format!(
                        "{}: {pct}%",
                        if a.sync_action == "reshape" {
                            "reshaping"
                        } else {
                            "rebuilding"
                        }
                    ),
                );
                let done = a.sync_completed.map(|(d, _)| d);
                if done != last_done {
                    last_done = done;
                    last_move = Instant::now();
                } else if last_move.elapsed() > STALL_LIMIT {
                    return Err(StorageError::Timeout {
                        what: format!("the rebuild of pool {name} to make progress"),
                        seconds: STALL_LIMIT.as_secs(),
                    });
                }
            } else if a.degraded == 0 {
                return Ok(());
            } else if started.elapsed() > START_LIMIT {
                return Err(StorageError::Timeout {
                    what: format!(
                        "a rebuild of pool {name} to start ({} members still missing)",
                        a.degraded
                    ),
                    seconds: START_LIMIT.as_secs(),
                });
            }
            // poll interval: md reports rebuild progress only through sysfs
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Check an add request without changing anything.
    pub fn check_add(&self, name: &str, disk: &str) -> Result<(PoolRecord, Disk), StorageError> {
        let rec = self.running_record(name)?;
        if md::read_array(self.paths(), name).is_some_and(|a| a.degraded > 0) {
            return Err(StorageError::PoolUnusable {
                name: name.to_string(),
                reason: "it is degraded: replace the missing member before growing it".into(),
            });
        }
        let disk = self.usable_new_disk("disk", disk)?;
        if let Some(min) = self
            .smallest_member(&rec)?
            .filter(|min| disk.size_bytes < *min)
        {
            return Err(StorageError::invalid(
                "disk",
                format!(
                    "{} holds {} bytes, less than the pool's members ({min} bytes)",
                    disk.id, disk.size_bytes
                ),
            ));
        }
        Ok((rec, disk))
    }

    /// The size of the pool's smallest member present now (None: none is present).
    fn smallest_member(&self, rec: &PoolRecord) -> Result<Option<u64>, StorageError> {
        let disks = self.refresh_disks()?;
        Ok(rec
            .members
            .iter()
            .filter_map(|m| disks.iter().find(|d| d.id == *m))
            .map(|d| d.size_bytes)
            .min())
    }

    /// What adding `disk` to pool `name` gives (level, members, usable capacity before and
    /// after), for the admin to see before confirming. Changes nothing.
    pub fn plan_add(&self, name: &str, disk: &str) -> Result<AddPlan, StorageError> {
        let (rec, disk) = self.check_add(name, disk)?;
        let member = self.smallest_member(&rec)?.unwrap_or(disk.size_bytes);
        let n = rec.members.len();
        let level = grown_level(rec.level);
        Ok(AddPlan {
            pool: rec.name.clone(),
            disk: disk.id.clone(),
            level_before: rec.level,
            level,
            members: n + 1,
            usable_bytes_before: rec.level.usable_bytes(n, member),
            usable_bytes: level.usable_bytes(n + 1, member),
        })
    }

    /// Add blank disk `disk` to pool `name` and grow it: a single disk becomes a mirror, a
    /// mirror gets another copy, raid5/6/10 are reshaped onto one more disk and the volume
    /// group and thin pool grow into the new space. Blocks until the sync is done.
    pub fn add_disk(
        &self,
        name: &str,
        disk: &str,
        progress: &dyn Progress,
    ) -> Result<PoolStatus, StorageError> {
        let (_, disk) = self.check_add(name, disk)?;
        self.add_checked(name, &disk, progress)
    }

    /// Add `disk` as [`Storage::check_add`] found it (probed then, not again). Under the claim
    /// the pool's record is read again (its member count sets the new array size), and a
    /// disk that joined a pool since the check is still refused. Blocks until the sync is done.
    pub fn add_checked(
        &self,
        name: &str,
        disk: &Disk,
        progress: &dyn Progress,
    ) -> Result<PoolStatus, StorageError> {
        let _busy = self.claim(&[format!("pool:{name}"), format!("disk:{}", disk.id)])?;
        let rec = self.running_record(name)?;
        self.still_not_member("disk", &disk.id)?;
        let md_dev = names::md_path(name).display().to_string();
        let dev = plan::disk_path(disk);
        let n = rec.members.len() + 1;
        progress.progress(2, &format!("adding {}", disk.id));
        self.run_step(
            "adding the disk",
            &Invocation::new("mdadm", [md_dev.as_str(), "--add", dev.as_str()]),
        )?;
        self.run_step(
            "growing the array",
            &Invocation::new(
                "mdadm",
                [
                    "--grow".to_string(),
                    md_dev.clone(),
                    format!("--raid-devices={n}"),
                ],
            ),
        )?;
        let level = grown_level(rec.level);
        let id = disk.id.clone();
        self.update_records(|r| {
            if let Some(p) = r.get_mut(name) {
                p.members.push(id);
                p.level = level;
            }
        })?;
        self.wait_sync(name, progress, 5, 85)?;
        if matches!(level, Level::Raid5 | Level::Raid6 | Level::Raid10) {
            progress.progress(92, "growing the volume group and thin pool");
            self.run_step(
                "growing the physical volume",
                &Invocation::new("pvresize", [md_dev.as_str()]),
            )?;
            let lv = format!("{}/{}", names::vg_name(name), names::THIN_POOL_LV);
            self.run_step(
                "growing the thin pool",
                &Invocation::new(
                    "lvextend",
                    [
                        "--extents".to_string(),
                        format!("{}%VG", plan::THIN_POOL_PERCENT),
                        lv,
                    ],
                ),
            )?;
        }
        progress.progress(100, "disk added");
        self.pool_status(name)
    }
}

/// What adding one disk to a pool gives, shown before confirming.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AddPlan {
    pub pool: String,
    /// The disk's stable id.
    pub disk: String,
    pub level_before: Level,
    /// The level after the add (a single disk becomes a mirror).
    pub level: Level,
    /// Members after the add.
    pub members: usize,
    pub usable_bytes_before: u64,
    /// Usable capacity after the add (mirrors gain a copy, not space).
    pub usable_bytes: u64,
}

/// The level a pool has after one more disk: a single disk becomes a mirror.
fn grown_level(level: Level) -> Level {
    if level == Level::Single {
        Level::Raid1
    } else {
        level
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::fake::{
        add_disk, add_virtio_disks, record_raid5_tank, remove_disk, virtio,
    };
    use crate::level::Level;
    use crate::md::fake::add_array;
    use crate::paths::SystemPaths;
    use crate::service::Storage;
    use crate::StorageError;
    use cairn_core::alert::{NoProgress, RecordingAlerts};
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::path::Path;
    use std::sync::Arc;

    fn setup(root: &Path) -> (Arc<RecordingRunner>, Storage) {
        add_virtio_disks(root, &["B", "C", "D", "E"]);
        record_raid5_tank(root, "u");
        let r = Arc::new(RecordingRunner::new());
        let s = Storage::open(
            r.clone(),
            &root.join("state"),
            Arc::new(RecordingAlerts::default()),
            SystemPaths::under(root),
        )
        .unwrap();
        (r, s)
    }

    #[test]
    fn replacing_a_missing_member_adds_the_new_disk_and_updates_the_record() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        remove_disk(t.path(), "vdd");
        // After the add md has rebuilt (idle, nothing missing) by the time we look.
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            0,
            ("idle", "none"),
            &[
                ("vdb", "0", "in_sync"),
                ("vdc", "1", "in_sync"),
                ("vde", "2", "in_sync"),
            ],
        );
        let st = s
            .replace_disk("tank", "virtio-D", "vde", &NoProgress)
            .unwrap();
        assert_eq!(
            r.command_lines(),
            [
                "wipefs --json /dev/vde",
                "mdadm /dev/md/tank --fail detached --remove detached",
                "mdadm /dev/md/tank --add /dev/disk/by-id/virtio-E",
            ]
        );
        assert_eq!(
            s.records().pools[0].members,
            ["virtio-B", "virtio-C", "virtio-E"]
        );
        assert_eq!(st.state, crate::status::PoolState::Healthy);
    }

    #[test]
    fn a_working_member_is_hot_replaced() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            0,
            ("idle", "none"),
            &[
                ("vdb", "0", "in_sync"),
                ("vdc", "1", "in_sync"),
                ("vdd", "2", "in_sync"),
            ],
        );
        s.replace_disk("tank", "vdd", "virtio-E", &NoProgress)
            .unwrap();
        let lines = r.command_lines();
        assert_eq!(
            lines[1],
            "mdadm /dev/md/tank --add /dev/disk/by-id/virtio-E"
        );
        assert_eq!(
            lines[2],
            "mdadm /dev/md/tank --replace /dev/vdd --with /dev/disk/by-id/virtio-E"
        );
        assert_eq!(
            lines[3], "mdadm /dev/md/tank --remove /dev/vdd",
            "{lines:?}"
        );
    }

    #[test]
    fn bad_replace_requests_name_the_field_and_change_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &[]);
        assert_eq!(
            s.replace_disk("tank", "virtio-E", "vde", &NoProgress)
                .unwrap_err()
                .field(),
            Some("old")
        );
        assert_eq!(
            s.replace_disk("tank", "vdb", "vdc", &NoProgress)
                .unwrap_err()
                .field(),
            Some("new")
        );
        r.expect(
            "wipefs",
            &["--json"],
            CommandOutput::ok(r#"{"signatures":[{"type":"ext4"}]}"#),
        );
        let e = s
            .replace_disk("tank", "vdb", "vde", &NoProgress)
            .unwrap_err();
        assert_eq!(e.field(), Some("new"));
        assert!(r
            .command_lines()
            .iter()
            .all(|l| l.starts_with("wipefs --json")));
        assert_eq!(s.records().pools[0].members.len(), 3);
    }

    #[test]
    fn a_checked_replace_and_add_probe_the_new_disk_once() {
        // The API checks before it answers 202 and the task runs what the check found:
        // `wipefs` runs once per new disk, in the check.
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        remove_disk(t.path(), "vdd");
        add_array(
            t.path(),
            "tank",
            "md127",
            3,
            0,
            ("idle", "none"),
            &[
                ("vdb", "0", "in_sync"),
                ("vdc", "1", "in_sync"),
                ("vde", "2", "in_sync"),
            ],
        );
        let plan = s.check_replace("tank", "virtio-D", "vde").unwrap();
        s.replace_planned("tank", &plan, &NoProgress).unwrap();
        let probes = |r: &RecordingRunner| {
            r.command_lines()
                .iter()
                .filter(|l| l.starts_with("wipefs"))
                .count()
        };
        assert_eq!(probes(&r), 1, "{:?}", r.command_lines());

        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(t.path(), "tank", "md127", 4, 0, ("idle", "none"), &[]);
        r.expect("wipefs", &["--json"], CommandOutput::ok(""));
        let (_, disk) = s.check_add("tank", "vde").unwrap();
        s.add_checked("tank", &disk, &NoProgress).unwrap();
        assert_eq!(probes(&r), 1, "{:?}", r.command_lines());
        assert_eq!(s.records().pools[0].members.len(), 4);
    }

    #[test]
    fn a_checked_add_is_refused_when_the_disk_joined_a_pool_since() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(t.path(), "tank", "md127", 4, 0, ("idle", "none"), &[]);
        r.expect("wipefs", &["--json"], CommandOutput::ok(""));
        let (_, disk) = s.check_add("tank", "vde").unwrap();
        s.add_checked("tank", &disk, &NoProgress).unwrap();
        let e = s.add_checked("tank", &disk, &NoProgress).unwrap_err();
        assert!(
            matches!(&e, StorageError::Invalid { field, .. } if field == "disk"),
            "{e}"
        );
        assert_eq!(s.records().pools[0].members.len(), 4);
    }

    #[test]
    fn adding_to_raid5_reshapes_and_grows_lvm() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(t.path(), "tank", "md127", 4, 0, ("idle", "none"), &[]);
        r.expect("wipefs", &["--json"], CommandOutput::ok(""));
        s.add_disk("tank", "vde", &NoProgress).unwrap();
        assert_eq!(
            r.command_lines()[1..],
            [
                "mdadm /dev/md/tank --add /dev/disk/by-id/virtio-E",
                "mdadm --grow /dev/md/tank --raid-devices=4",
                "pvresize /dev/md/tank",
                "lvextend --extents 90%VG cairn-tank/thin",
            ]
        );
        assert_eq!(s.records().pools[0].members.len(), 4);
    }

    #[test]
    fn add_plan_shows_the_capacity_before_and_after_and_runs_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &[]);
        r.expect("wipefs", &["--json"], CommandOutput::ok(""));
        let plan = s.plan_add("tank", "vde").unwrap();
        let member = 262144u64 * 512;
        assert_eq!(plan.disk, "virtio-E");
        assert_eq!(
            (plan.level_before, plan.level),
            (Level::Raid5, Level::Raid5)
        );
        assert_eq!(plan.members, 4);
        assert_eq!(plan.usable_bytes_before, 2 * member);
        assert_eq!(plan.usable_bytes, 3 * member);
        assert!(r.command_lines().iter().all(|l| l.starts_with("wipefs")));
        assert_eq!(s.records().pools[0].members.len(), 3);
    }

    #[test]
    fn adding_to_a_degraded_pool_or_a_smaller_disk_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let (r, s) = setup(t.path());
        add_array(t.path(), "tank", "md127", 3, 1, ("idle", "none"), &[]);
        let e = s.plan_add("tank", "vde").unwrap_err();
        assert!(e.to_string().contains("degraded"), "{e}");
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &[]);
        let mut small = virtio("vdf", "254:80", "E:ID_SERIAL=F\nS:disk/by-id/virtio-F\n");
        small.sectors = 131072;
        add_disk(t.path(), &small);
        r.expect("wipefs", &["--json"], CommandOutput::ok(""));
        let e = s.add_disk("tank", "vdf", &NoProgress).unwrap_err();
        assert_eq!(e.field(), Some("disk"), "{e}");
        assert!(e.to_string().contains("less than"), "{e}");
        assert!(r.command_lines().iter().all(|l| l.starts_with("wipefs")));
        assert_eq!(s.records().pools[0].members.len(), 3);
    }
}
