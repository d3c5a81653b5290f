//! Read-only btrfs snapshots of shares in `<share>/.snapshots/<name>`: manual and scheduled, list, delete, restore as a new share.

use crate::btrfs;
use crate::data_error::DataError;
use crate::schedule::{self, SnapshotSchedule};
use crate::service::Storage;
use crate::share::{records_lock, SNAPSHOT_DIR};
use crate::volume::validate_name;
use cairn_core::alert::{AlertLevel, Progress};
use cairn_core::command::{run_ok, Invocation};
use std::path::PathBuf;

/// One read-only snapshot of a share.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub pool: String,
    pub share: String,
    pub name: String,
    /// Where its files can be read on the node.
    pub path: String,
    /// Creation time as btrfs reports it (`YYYY-MM-DD HH:MM:SS`, node time).
    pub created: String,
    /// Whether the snapshot schedule took it (and will prune it).
    pub scheduled: bool,
}

/// What one run of the snapshot schedules did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScheduleRun {
    /// `share@snapshot` taken.
    pub created: Vec<String>,
    /// `share@snapshot` pruned.
    pub pruned: Vec<String>,
    /// Shares whose schedule failed, with the reason.
    pub failed: Vec<(String, String)>,
}

impl Storage {
    fn snapshot_path(&self, pool: &str, share: &str, snap: &str) -> PathBuf {
        self.share_mountpoint(pool, share)
            .join(SNAPSHOT_DIR)
            .join(snap)
    }

    fn mounted_share(&self, pool: &str, share: &str) -> Result<PathBuf, DataError> {
        validate_name("share", share)?;
        self.pool_usable(pool)?;
        self.share_record(pool, share)?;
        let mnt = self.share_mountpoint(pool, share);
        if !self.is_mounted(&mnt) {
            return Err(DataError::invalid("share", "the share is not mounted"));
        }
        Ok(mnt)
    }

    /// The snapshots of share `share`, oldest first.
    pub fn snapshots(&self, pool: &str, share: &str) -> Result<Vec<Snapshot>, DataError> {
        let mnt = self.mounted_share(pool, share)?;
        let out = run_ok(self.runner(), &btrfs::list_snapshots(&mnt))
            .map_err(|e| DataError::command(format!("list the snapshots of share {share}"), e))?;
        let prefix = format!("{SNAPSHOT_DIR}/");
        Ok(btrfs::parse_snapshot_list(&out.stdout_text())
            .into_iter()
            .filter_map(|e| {
                let name = e.path.strip_prefix(&prefix)?;
                if name.contains('/') {
                    return None;
                }
                Some(Snapshot {
                    pool: pool.to_string(),
                    share: share.to_string(),
                    name: name.to_string(),
                    path: mnt.join(SNAPSHOT_DIR).join(name).display().to_string(),
                    created: e.otime,
                    scheduled: schedule::parse_auto_name(name).is_some(),
                })
            })
            .collect())
    }

    fn find_snapshot(&self, pool: &str, share: &str, snap: &str) -> Result<Snapshot, DataError> {
        validate_name("snapshot", snap)?;
        self.snapshots(pool, share)?
            .into_iter()
            .find(|s| s.name == snap)
            .ok_or_else(|| DataError::NoSuchSnapshot {
                share: share.to_string(),
                snapshot: snap.to_string(),
            })
    }

    fn take_snapshot(&self, pool: &str, share: &str, snap: &str) -> Result<(), DataError> {
        let mnt = self.share_mountpoint(pool, share);
        run_ok(
            self.runner(),
            &btrfs::snapshot_readonly(&mnt, &self.snapshot_path(pool, share, snap)),
        )
        .map_err(|e| DataError::command(format!("snapshot share {share} as {snap}"), e))?;
        Ok(())
    }

    /// Take a manual read-only snapshot `snap` of share `share`.
    pub fn create_snapshot(
        &self,
        pool: &str,
        share: &str,
        snap: &str,
    ) -> Result<Snapshot, DataError> {
        validate_name("name", snap)?;
        if snap.starts_with("auto-") {
            return Err(DataError::invalid(
                "name",
                "names starting with `auto-` are reserved for scheduled snapshots",
            ));
        }
        if self.snapshots(pool, share)?.iter().any(|s| s.name == snap) {
            return Err(DataError::Exists {
                what: "snapshot",
                name: snap.to_string(),
            });
        }
        self.take_snapshot(pool, share, snap)?;
        self.sync_previous_versions(pool, share);
        self.find_snapshot(pool, share, snap)
    }

    /// Make the share's `@GMT-` links (Windows "Previous Versions" through Samba's
    /// shadow_copy2, decision 0028) match its snapshots. A failure is logged, not returned:
    /// the snapshot itself was taken or deleted.
    fn sync_previous_versions(&self, pool: &str, share: &str) {
        let dir = self.share_mountpoint(pool, share).join(SNAPSHOT_DIR);
        match cairn_files::shadow::sync(&dir) {
            Ok(r) if r.added.is_empty() && r.removed.is_empty() => {}
            Ok(r) => {
                tracing::info!(%pool, %share, added = ?r.added, removed = ?r.removed, "previous-version links updated")
            }
            Err(e) => {
                tracing::warn!(%pool, %share, error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "cannot update the previous-version links")
            }
        }
    }

    /// Delete snapshot `snap` of share `share`.
    pub fn delete_snapshot(&self, pool: &str, share: &str, snap: &str) -> Result<(), DataError> {
        let s = self.find_snapshot(pool, share, snap)?;
        run_ok(
            self.runner(),
            &btrfs::subvolume_delete(&PathBuf::from(&s.path)),
        )
        .map_err(|e| DataError::command(format!("delete snapshot {snap} of share {share}"), e))?;
        self.sync_previous_versions(pool, share);
        Ok(())
    }

    /// Restore snapshot `snap` of `share` as a NEW writable share `new_share` of the same
    /// size: the share is created, then the snapshot's files are copied into it with
    /// `cp -a` (owners, modes, times, links and sparse files kept). The original share and
    /// its snapshots are untouched. A failed copy removes the new share.
    pub fn restore_snapshot(
        &self,
        pool: &str,
        share: &str,
        snap: &str,
        new_share: &str,
        progress: &dyn Progress,
    ) -> Result<crate::share::ShareStatus, DataError> {
        validate_name("new_share", new_share).map_err(|_| {
            DataError::invalid(
                "new_share",
                "must be 1–48 of a-z, 0-9, '-' and '_', starting with a letter or digit",
            )
        })?;
        let src = self.find_snapshot(pool, share, snap)?;
        let size = self.share_record(pool, share)?.size_bytes;
        if self.share_record(pool, new_share).is_ok() {
            return Err(DataError::invalid(
                "new_share",
                "a share of that name exists",
            ));
        }
        progress.progress(5, &format!("creating share {new_share}"));
        let created =
            self.create_share_from(pool, new_share, size, Some(format!("{share}@{snap}")))?;
        progress.progress(20, &format!("copying the files of {share}@{snap}"));
        let copy = Invocation::new(
            "cp",
            [
                "-a".to_string(),
                "--reflink=auto".to_string(),
                "--".to_string(),
                format!("{}/.", src.path),
                format!("{}/", created.mountpoint),
            ],
        );
        if let Err(e) = run_ok(self.runner(), &copy) {
            if let Err(undo) = self.discard_share(pool, new_share) {
                tracing::error!(pool, share = new_share, error = %undo, "cannot remove the half-restored share");
            }
            return Err(DataError::command(
                format!("copy snapshot {snap} into share {new_share}"),
                e,
            ));
        }
        progress.progress(
            100,
            &format!("share {new_share} restored from {share}@{snap}"),
        );
        self.share(pool, new_share)
    }

    /// Set the snapshot schedule of share `share` (retention counts per kind; 0 disables).
    pub fn set_snapshot_schedule(
        &self,
        pool: &str,
        share: &str,
        schedule: SnapshotSchedule,
    ) -> Result<SnapshotSchedule, DataError> {
        schedule
            .validate()
            .map_err(|(field, reason)| DataError::invalid(field, reason))?;
        validate_name("share", share)?;
        self.pool_usable(pool)?;
        let _guard = records_lock();
        let mut records = self.share_records()?;
        let rec = records
            .shares
            .iter_mut()
            .find(|s| s.pool == pool && s.name == share)
            .ok_or_else(|| DataError::NoSuchShare {
                pool: pool.to_string(),
                share: share.to_string(),
            })?;
        rec.schedule = schedule;
        self.save_share_records(&records)?;
        Ok(schedule)
    }

    /// Run every share's snapshot schedule at `now` (unix seconds): take what is due, prune
    /// what is past retention. A failing share raises `pool/<p>/share/<s>/snapshots` and the
    /// others still run; success clears it.
    pub fn run_snapshot_schedules(&self, now: u64) -> Result<ScheduleRun, DataError> {
        let mut run = ScheduleRun::default();
        let records = self.share_records()?;
        for rec in records
            .shares
            .iter()
            .filter(|r| r.schedule != SnapshotSchedule::default())
        {
            // A pool not assembled yet or a share not mounted (boot, a failed mount: its
            // own alert says so) is skipped, not reported as a failing schedule.
            if self.pool_usable(&rec.pool).is_err()
                || !self.is_mounted(&self.share_mountpoint(&rec.pool, &rec.name))
            {
                continue;
            }
            let key = format!("pool/{}/share/{}/snapshots", rec.pool, rec.name);
            match self.run_one_schedule(rec, now, &mut run) {
                Ok(()) => {
                    self.alerts().clear(
                        &key,
                        &format!("scheduled snapshots of {} work again", rec.name),
                    );
                }
                Err(e) => {
                    tracing::warn!(pool = %rec.pool, share = %rec.name, error = %e, "scheduled snapshot failed");
                    self.alerts().raise(
                        &key,
                        AlertLevel::Warning,
                        &format!("scheduled snapshots of share {} are failing: {e}", rec.name),
                    );
                    run.failed.push((rec.name.clone(), e.to_string()));
                }
            }
        }
        Ok(run)
    }

    fn run_one_schedule(
        &self,
        rec: &crate::share::ShareRecord,
        now: u64,
        run: &mut ScheduleRun,
    ) -> Result<(), DataError> {
        let names: Vec<String> = self
            .snapshots(&rec.pool, &rec.name)?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let plan = schedule::plan_snapshots(now, &rec.schedule, &names);
        for snap in &plan.create {
            self.take_snapshot(&rec.pool, &rec.name, snap)?;
            run.created.push(format!("{}@{snap}", rec.name));
        }
        for snap in &plan.prune {
            let path = self.snapshot_path(&rec.pool, &rec.name, snap);
            run_ok(self.runner(), &btrfs::subvolume_delete(&path)).map_err(|e| {
                DataError::command(format!("prune snapshot {snap} of share {}", rec.name), e)
            })?;
            run.pruned.push(format!("{}@{snap}", rec.name));
        }
        if !plan.create.is_empty() || !plan.prune.is_empty() {
            self.sync_previous_versions(&rec.pool, &rec.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{storage_with, LVS_EMPTY, LVS_WITH_SHARE};
    use cairn_core::alert::NoProgress;
    use cairn_core::command::{CommandOutput, RecordingRunner};

    const LIST: &str = "ID 257 gen 9 cgen 9 top level 5 otime 2026-11-23 03:00:00 path .snapshots\n\
        ID 260 gen 12 cgen 12 top level 257 otime 2026-11-23 03:10:00 path .snapshots/before\n\
        ID 261 gen 13 cgen 13 top level 257 otime 2026-11-23 02:00:00 path .snapshots/auto-hourly-20261123t0200z\n";

    fn with_share(r: RecordingRunner) -> (crate::testing::TestStorage, tempfile::TempDir) {
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY)).expect(
            "lvs",
            &[],
            CommandOutput::ok(LVS_WITH_SHARE),
        );
        let (st, dir, _a) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        (st, dir)
    }

    #[test]
    fn list_shows_only_snapshots_in_the_snapshot_dir() {
        let r = RecordingRunner::new();
        r.expect("btrfs", &["subvolume", "list"], CommandOutput::ok(LIST));
        let (st, _d) = with_share(r);
        let v = st.snapshots("tank", "docs").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "before");
        assert!(!v[0].scheduled && v[1].scheduled);
        assert_eq!(
            v[0].path,
            "/var/lib/cairn/shares/tank/docs/.snapshots/before"
        );
    }

    #[test]
    fn manual_snapshot_is_read_only_and_names_are_checked() {
        let r = RecordingRunner::new();
        r.expect("btrfs", &["subvolume", "list"], CommandOutput::ok(LIST))
            .expect("btrfs", &["subvolume", "list"], CommandOutput::ok(LIST))
            .expect(
                "btrfs",
                &["subvolume", "list"],
                CommandOutput::ok(format!(
                    "{LIST}ID 262 gen 14 cgen 14 top level 257 otime 2026-11-23 03:20:00 path .snapshots/v2\n"
                )),
            );
        let (st, _d) = with_share(r);
        assert_eq!(
            st.create_snapshot("tank", "docs", "auto-x")
                .unwrap_err()
                .field(),
            Some("name")
        );
        assert!(matches!(
            st.create_snapshot("tank", "docs", "before").unwrap_err(),
            DataError::Exists { .. }
        ));
        let s = st.create_snapshot("tank", "docs", "v2").unwrap();
        assert_eq!(s.created, "2026-11-23 03:20:00");
        assert!(st.runner_lines().contains(
            &"btrfs subvolume snapshot -r /var/lib/cairn/shares/tank/docs /var/lib/cairn/shares/tank/docs/.snapshots/v2"
                .to_string()
        ));
    }

    #[test]
    fn restore_creates_a_new_share_and_copies_the_snapshot() {
        let r = RecordingRunner::new();
        r.expect("btrfs", &["subvolume", "list"], CommandOutput::ok(LIST));
        let (st, _d) = with_share(r);
        st.runner
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE));
        let s = st
            .restore_snapshot("tank", "docs", "before", "docs-old", &NoProgress)
            .unwrap();
        assert_eq!(s.record.restored_from.as_deref(), Some("docs@before"));
        assert_eq!(s.record.size_bytes, 1 << 30);
        let lines = st.runner_lines();
        assert!(lines.contains(
            &"lvcreate -y -V 1073741824b -T cairn-tank/thin -n share-docs-old".to_string()
        ));
        assert!(lines.contains(
            &"cp -a --reflink=auto -- /var/lib/cairn/shares/tank/docs/.snapshots/before/. /var/lib/cairn/shares/tank/docs-old/"
                .to_string()
        ));
        assert_eq!(st.share_records().unwrap().shares.len(), 2);
    }

    #[test]
    fn failed_copy_removes_the_new_share() {
        let r = RecordingRunner::new();
        r.expect("btrfs", &["subvolume", "list"], CommandOutput::ok(LIST))
            .expect(
                "cp",
                &[],
                CommandOutput::failed(1, "No space left on device"),
            );
        let (st, _d) = with_share(r);
        st.runner
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE));
        let e = st
            .restore_snapshot("tank", "docs", "before", "docs-old", &NoProgress)
            .unwrap_err();
        assert!(e.to_string().contains("copy snapshot"));
        assert_eq!(st.share_records().unwrap().shares.len(), 1);
        assert!(st
            .runner_lines()
            .contains(&"lvremove -y cairn-tank/share-docs-old".to_string()));
    }

    #[test]
    fn schedule_skips_an_unmounted_share_without_alerting() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY)).expect(
            "lvs",
            &[],
            CommandOutput::ok(LVS_WITH_SHARE),
        );
        let (st, _d, alerts) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        let s = SnapshotSchedule {
            hourly: 1,
            daily: 0,
            weekly: 0,
        };
        st.set_snapshot_schedule("tank", "docs", s).unwrap();
        st.script("mountpoint", CommandOutput::failed(32, ""));
        let run = st.run_snapshot_schedules(1_795_403_820).unwrap();
        assert_eq!(run, ScheduleRun::default());
        assert!(alerts.changes.lock().unwrap().is_empty());
        assert!(!st
            .runner_lines()
            .iter()
            .any(|l| l.starts_with("btrfs subvolume snapshot")));
    }

    #[test]
    fn schedule_takes_and_prunes_and_is_validated() {
        let r = RecordingRunner::new();
        r.expect("btrfs", &["subvolume", "list"], CommandOutput::ok(LIST));
        let (st, _d) = with_share(r);
        let bad = SnapshotSchedule {
            hourly: 9999,
            daily: 0,
            weekly: 0,
        };
        assert_eq!(
            st.set_snapshot_schedule("tank", "docs", bad)
                .unwrap_err()
                .field(),
            Some("hourly")
        );
        let s = SnapshotSchedule {
            hourly: 1,
            daily: 0,
            weekly: 0,
        };
        st.set_snapshot_schedule("tank", "docs", s).unwrap();
        // 03:17: the 02:00 hourly snapshot is from the previous hour, so a new one is taken
        // and, keeping only one, the old one is pruned; "before" is manual and stays.
        let run = st.run_snapshot_schedules(1_795_403_820).unwrap();
        assert_eq!(
            run.created,
            vec!["docs@auto-hourly-20261123t0317z".to_string()]
        );
        assert_eq!(
            run.pruned,
            vec!["docs@auto-hourly-20261123t0200z".to_string()]
        );
        let lines = st.runner_lines();
        assert!(lines.contains(
            &"btrfs subvolume delete --commit-after /var/lib/cairn/shares/tank/docs/.snapshots/auto-hourly-20261123t0200z"
                .to_string()
        ));
    }
}
