//! Pool lifecycle on the service: plan (dry run), create, status, destroy with typed confirmation.

use crate::error::StorageError;
use crate::inventory::Disk;
use crate::level::Level;
use crate::md;
use crate::names;
use crate::plan::{self, Candidate, CreatePlan};
use crate::records::PoolRecord;
use crate::service::Storage;
use crate::status::{pool_status, PoolStatus};
use crate::wipefs;
use cairn_core::alert::Progress;
use cairn_core::command::Invocation;
use cairn_core::shown::clip;
use std::time::{Duration, Instant};

/// A request to create a pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    pub name: String,
    pub level: String,
    /// Disks by id, by-id path, kernel name or /dev path.
    pub disks: Vec<String>,
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Poll `check` every 200 ms until it returns `Some`, or fail after `limit` naming `what`.
pub(crate) fn wait_until<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, StorageError> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() >= limit {
            return Err(StorageError::Timeout {
                what: what.to_string(),
                seconds: limit.as_secs(),
            });
        }
        // poll interval of a bounded wait on kernel state (no event to wait on)
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Parse `KEY=value` lines (`mdadm --detail --export`, `--examine --export`).
pub(crate) fn export_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.trim().to_string())
}

impl Storage {
    /// Resolve the request's disks and check everything; nothing changes. The plan shows the
    /// usable capacity and the commands.
    pub fn plan_pool(&self, req: &CreatePool) -> Result<CreatePlan, StorageError> {
        plan::validate_name(&req.name)?;
        let level = Level::parse(&req.level).ok_or_else(|| {
            StorageError::invalid(
                "level",
                format!(
                    "must be one of {}",
                    Level::ALL.map(Level::as_str).join(", ")
                ),
            )
        })?;
        let disks = self.refresh_disks()?;
        let mut cands = Vec::new();
        for (i, s) in req.disks.iter().enumerate() {
            let disk = disks.iter().find(|d| d.matches(s)).ok_or_else(|| {
                StorageError::invalid(format!("disks[{i}]"), format!("no disk {}", clip(s)))
            })?;
            cands.push(Candidate {
                signatures: self.fresh_signatures(disk)?,
                disk: disk.clone(),
            });
        }
        plan::plan_create(&req.name, level, &cands, &self.records())
    }

    /// What `wipefs` finds on `disk` now (not trusting udev's cached probe), unless the disk
    /// is refused anyway.
    fn fresh_signatures(&self, disk: &Disk) -> Result<Vec<String>, StorageError> {
        if plan::refuse_in_use(disk, &self.records()).is_some() {
            return Ok(Vec::new());
        }
        wipefs::list(self.runner(), &disk.dev.display().to_string())
    }

    /// Create a pool (blocks; minutes on big disks are spent in the background resync, not
    /// here). Validation errors change nothing; a tool failure part-way is rolled back.
    pub fn create_pool(
        &self,
        req: &CreatePool,
        progress: &dyn Progress,
    ) -> Result<PoolStatus, StorageError> {
        let plan = self.plan_pool(req)?;
        self.create_planned(&plan, progress)
    }

    /// Create the pool of `plan`, checked by [`Storage::plan_pool`] (which probed the disks):
    /// nothing is probed again. Under the claim of the pool and its disks, only the records are
    /// read again, so a pool made or joined since the check is still refused.
    pub fn create_planned(
        &self,
        plan: &CreatePlan,
        progress: &dyn Progress,
    ) -> Result<PoolStatus, StorageError> {
        let mut keys = vec![format!("pool:{}", plan.name)];
        keys.extend(plan.disks.iter().map(|d| format!("disk:{d}")));
        let _busy = self.claim(&keys)?;
        plan::still_free(plan, &self.records())?;
        let name = plan.name.clone();
        let total = plan.commands.len();
        let mut md_created = false;
        let result = (|| {
            for (i, inv) in plan.commands.iter().enumerate() {
                progress.progress(
                    // i < total: at most 95.
                    u8::try_from(5 + i * 90 / total).unwrap_or(100),
                    &format!("{} ({}/{total})", step_name(inv), i + 1),
                );
                self.run_step(&format!("creating pool {name}: {}", step_name(inv)), inv)?;
                if i == 0 {
                    md_created = true;
                    self.set_building(&name, true);
                    let uuid = self.wait_md(&name)?;
                    self.update_records(|r| {
                        r.pools.push(PoolRecord {
                            name: name.clone(),
                            level: plan.level,
                            md_uuid: uuid,
                            members: plan.disks.clone(),
                            created: now(),
                        })
                    })?;
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            if md_created {
                tracing::error!("storage: creating pool {name} failed ({e}); rolling back");
                self.teardown(&name, &plan.disks);
                self.set_building(&name, false);
                let _ = self.update_records(|r| r.pools.retain(|p| p.name != name));
            }
            return Err(e);
        }
        progress.progress(100, "pool created");
        self.pool_status(&name)
    }

    /// Wait for `/dev/md/<name>` and return the array's UUID.
    fn wait_md(&self, name: &str) -> Result<String, StorageError> {
        wait_until(
            &format!("the array of pool {name} to appear as /dev/md/{name}"),
            Duration::from_secs(30),
            || md::kernel_name(self.paths(), name),
        )?;
        let md = names::md_path(name).display().to_string();
        let out = self.run_step(
            "reading the new array's UUID",
            &Invocation::new("mdadm", ["--detail", "--export", md.as_str()]),
        )?;
        export_value(&out.stdout_text(), "MD_UUID").ok_or_else(|| StorageError::Parse {
            tool: "mdadm --detail --export".into(),
            reason: "no MD_UUID line".into(),
        })
    }

    /// Best effort: remove the VG, stop the array and clear the members' superblocks.
    fn teardown(&self, name: &str, members: &[String]) {
        let md = names::md_path(name).display().to_string();
        let vg = names::vg_name(name);
        let disks = self.refresh_disks().unwrap_or_default();
        let mut cmds = vec![
            Invocation::new("vgremove", ["--force", "--yes", vg.as_str()]),
            Invocation::new("pvremove", ["--force", "--yes", md.as_str()]),
            Invocation::new("mdadm", ["--stop", md.as_str()]),
        ];
        for id in members {
            if let Some(d) = disks.iter().find(|d| d.id == *id) {
                let dev = d.dev.display().to_string();
                cmds.push(Invocation::new(
                    "mdadm",
                    ["--zero-superblock", "--force", dev.as_str()],
                ));
                cmds.push(Invocation::new(
                    "wipefs",
                    ["--all", "--force", dev.as_str()],
                ));
            }
        }
        for inv in cmds {
            match self.runner().run(&inv) {
                Ok(o) if o.success() => {}
                Ok(o) => tracing::warn!("storage: {} failed: {}", inv.display(), o.stderr_text()),
                Err(e) => tracing::warn!("storage: {}: {e}", inv.display()),
            }
        }
    }

    /// The status of pool `name`.
    pub fn pool_status(&self, name: &str) -> Result<PoolStatus, StorageError> {
        let rec = self
            .records()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NoSuchPool(name.to_string()))?;
        let disks = self.refresh_disks()?;
        Ok(pool_status(
            &rec,
            &disks,
            md::read_array(self.paths(), name).as_ref(),
        ))
    }

    /// The status of every pool in our records.
    pub fn pools(&self) -> Result<Vec<PoolStatus>, StorageError> {
        let disks = self.refresh_disks()?;
        Ok(self
            .records()
            .pools
            .iter()
            .map(|r| pool_status(r, &disks, md::read_array(self.paths(), &r.name).as_ref()))
            .collect())
    }

    /// Check a destroy request without changing anything.
    pub fn check_destroy(
        &self,
        name: &str,
        confirm_name: &str,
    ) -> Result<PoolRecord, StorageError> {
        let rec = self
            .records()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NoSuchPool(name.to_string()))?;
        if confirm_name != name {
            return Err(StorageError::invalid(
                "confirm_name",
                format!("type the pool's name ({name}) to confirm that all its data is destroyed"),
            ));
        }
        Ok(rec)
    }

    /// Destroy pool `name` and everything on it: unmount its shares, remove the volume group,
    /// stop the array, clear the members' superblocks, forget the record. Blocks.
    pub fn destroy_pool(
        &self,
        name: &str,
        confirm_name: &str,
        progress: &dyn Progress,
    ) -> Result<(), StorageError> {
        let rec = self.check_destroy(name, confirm_name)?;
        let _busy = self.claim(&[format!("pool:{name}"), format!("destroy:{name}")])?;
        progress.progress(5, "unmounting shares");
        let prefix = format!("{}/{name}/", names::SHARES_ROOT);
        let vg_mapper = format!("/dev/mapper/{}-", names::vg_name(name).replace('-', "--"));
        let vg_dev = format!("/dev/{}/", names::vg_name(name));
        let mounts = std::fs::read_to_string(self.paths().proc.join("mounts")).unwrap_or_default();
        let mut points: Vec<String> = mounts
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((f.next()?.to_string(), f.next()?.to_string()))
            })
            .filter(|(src, mp)| {
                src.starts_with(&vg_mapper) || src.starts_with(&vg_dev) || mp.starts_with(&prefix)
            })
            .map(|(_, mp)| mp)
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for mp in &points {
            self.run_step(
                &format!("unmounting {mp}"),
                &Invocation::new("umount", [mp.as_str()]),
            )?;
        }
        let vg = names::vg_name(name);
        let md = names::md_path(name).display().to_string();
        if md::kernel_name(self.paths(), name).is_some() {
            progress.progress(30, "removing the volume group");
            self.run_step(
                "removing the volume group",
                &Invocation::new("vgremove", ["--force", "--yes", vg.as_str()]),
            )?;
            self.run_step(
                "removing the physical volume",
                &Invocation::new("pvremove", ["--force", "--yes", md.as_str()]),
            )?;
            progress.progress(60, "stopping the array");
            self.run_step(
                "stopping the array",
                &Invocation::new("mdadm", ["--stop", md.as_str()]),
            )?;
        }
        progress.progress(80, "clearing the member disks");
        let disks = self.refresh_disks()?;
        for id in &rec.members {
            if let Some(d) = disks.iter().find(|d| d.id == *id) {
                let dev = d.dev.display().to_string();
                // A member left out of the array has a superblock too; clear it either way.
                let _ = self.runner().run(&Invocation::new(
                    "mdadm",
                    ["--zero-superblock", "--force", dev.as_str()],
                ));
                self.run_step(
                    &format!("wiping member {id}"),
                    &Invocation::new("wipefs", ["--all", "--force", dev.as_str()]),
                )?;
            }
        }
        self.update_records(|r| r.pools.retain(|p| p.name != name))?;
        self.alerts()
            .clear(&degraded_key(name), &format!("pool {name} was destroyed"));
        progress.progress(100, "pool destroyed");
        Ok(())
    }
}

/// The alert key of a pool that is degraded or failed.
pub fn degraded_key(pool: &str) -> String {
    format!("pool/{pool}/degraded")
}

fn step_name(inv: &Invocation) -> &'static str {
    match inv.program.as_str() {
        "mdadm" => "creating the md array",
        "pvcreate" => "creating the physical volume",
        "vgcreate" => "creating the volume group",
        "lvcreate" => "creating the thin pool",
        _ => "running a tool",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake::add_virtio_disks;
    use crate::md::fake::add_array;
    use crate::paths::SystemPaths;
    use crate::status::PoolState;
    use cairn_core::alert::{NoProgress, RecordingAlerts};
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::path::Path;
    use std::sync::Arc;

    fn four_disks(root: &Path) {
        add_virtio_disks(root, &["B", "C", "D", "E"]);
    }

    fn storage(root: &Path, r: Arc<RecordingRunner>) -> Storage {
        Storage::open(
            r,
            &root.join("state"),
            Arc::new(RecordingAlerts::default()),
            SystemPaths::under(root),
        )
        .unwrap()
    }

    fn req(disks: &[&str]) -> CreatePool {
        CreatePool {
            name: "tank".into(),
            level: "raid5".into(),
            disks: disks.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn create_runs_the_plan_and_records_the_pool() {
        let t = tempfile::tempdir().unwrap();
        four_disks(t.path());
        // The array "appears" when mdadm --create runs: pre-create it in the tree.
        add_array(
            t.path(),
            "tank",
            "md127",
            4,
            0,
            ("resync", "10 / 100"),
            &[
                ("vdb", "0", "in_sync"),
                ("vdc", "1", "in_sync"),
                ("vdd", "2", "in_sync"),
                ("vde", "3", "in_sync"),
            ],
        );
        let r = Arc::new(RecordingRunner::new());
        r.expect(
            "mdadm",
            &["--detail", "--export"],
            CommandOutput::ok("MD_LEVEL=raid5\nMD_UUID=11:22:33:44\n"),
        );
        let s = storage(t.path(), r.clone());
        let st = s
            .create_pool(&req(&["vdb", "virtio-C", "/dev/vdd", "vde"]), &NoProgress)
            .unwrap();
        assert_eq!(st.state, PoolState::Healthy);
        assert_eq!(st.sync.unwrap().action, "resync");
        let lines = r.command_lines();
        assert_eq!(
            lines[..4],
            [
                "wipefs --json /dev/vdb",
                "wipefs --json /dev/vdc",
                "wipefs --json /dev/vdd",
                "wipefs --json /dev/vde"
            ]
        );
        assert!(
            lines[4].starts_with("mdadm --create /dev/md/tank"),
            "{lines:?}"
        );
        assert_eq!(lines[5], "mdadm --detail --export /dev/md/tank");
        assert_eq!(
            lines[6..],
            [
                "pvcreate --yes /dev/md/tank",
                "vgcreate cairn-tank /dev/md/tank",
                "lvcreate --yes --type thin-pool --extents 90%VG --chunksize 512k --name thin cairn-tank"
            ]
        );
        let rec = s.records();
        assert_eq!(rec.pools[0].md_uuid, "11:22:33:44");
        assert_eq!(
            rec.pools[0].members,
            ["virtio-B", "virtio-C", "virtio-D", "virtio-E"]
        );
        // Persisted.
        let again = storage(t.path(), Arc::new(RecordingRunner::new()));
        assert_eq!(again.records(), rec);
        assert_eq!(again.pool("tank").unwrap().name, "tank");
    }

    #[test]
    fn a_disk_with_a_filesystem_is_refused_and_nothing_runs_but_the_probe() {
        let t = tempfile::tempdir().unwrap();
        four_disks(t.path());
        let r = Arc::new(RecordingRunner::new());
        r.expect(
            "wipefs",
            &["--json", "/dev/vdd"],
            CommandOutput::ok(r#"{"signatures":[{"type":"ext4"}]}"#),
        );
        let s = storage(t.path(), r.clone());
        let e = s
            .create_pool(&req(&["vdb", "vdc", "vdd"]), &NoProgress)
            .unwrap_err();
        assert_eq!(e.field(), Some("disks[2]"));
        assert!(e.to_string().contains("ext4"));
        assert!(r
            .command_lines()
            .iter()
            .all(|l| l.starts_with("wipefs --json")));
        assert!(s.records().pools.is_empty());
        let e = s.plan_pool(&req(&["vdb", "nope", "vdc"])).unwrap_err();
        assert_eq!(e.field(), Some("disks[1]"));
        let e = s
            .plan_pool(&CreatePool {
                level: "raid7".into(),
                ..req(&[])
            })
            .unwrap_err();
        assert_eq!(e.field(), Some("level"));
    }

    #[test]
    fn a_failed_step_rolls_back() {
        let t = tempfile::tempdir().unwrap();
        four_disks(t.path());
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &[]);
        let r = Arc::new(RecordingRunner::new());
        r.expect("mdadm", &["--detail"], CommandOutput::ok("MD_UUID=u\n"));
        r.expect("vgcreate", &[], CommandOutput::failed(5, "boom"));
        let s = storage(t.path(), r.clone());
        let e = s
            .create_pool(&req(&["vdb", "vdc", "vdd"]), &NoProgress)
            .unwrap_err();
        assert!(e.to_string().contains("volume group"), "{e}");
        let lines = r.command_lines();
        assert!(
            lines.contains(&"mdadm --stop /dev/md/tank".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"mdadm --zero-superblock --force /dev/vdb".to_string()));
        assert!(s.records().pools.is_empty());
    }

    #[test]
    fn destroy_needs_the_typed_name() {
        let t = tempfile::tempdir().unwrap();
        four_disks(t.path());
        add_array(t.path(), "tank", "md127", 3, 0, ("idle", "none"), &[]);
        let r = Arc::new(RecordingRunner::new());
        r.expect("mdadm", &["--detail"], CommandOutput::ok("MD_UUID=u\n"));
        let s = storage(t.path(), r.clone());
        s.create_pool(&req(&["vdb", "vdc", "vdd"]), &NoProgress)
            .unwrap();
        let before = r.calls().len();
        let e = s.destroy_pool("tank", "tnak", &NoProgress).unwrap_err();
        assert_eq!(e.field(), Some("confirm_name"));
        assert_eq!(r.calls().len(), before);
        s.destroy_pool("tank", "tank", &NoProgress).unwrap();
        let lines = r.command_lines()[before..].to_vec();
        assert_eq!(
            lines[..3],
            [
                "vgremove --force --yes cairn-tank",
                "pvremove --force --yes /dev/md/tank",
                "mdadm --stop /dev/md/tank"
            ]
        );
        assert!(lines.contains(&"wipefs --all --force /dev/vdd".to_string()));
        assert!(s.records().pools.is_empty());
    }
}
