//! Shares: btrfs filesystems on thin LVs — records, create, resize, delete, status, and mounting them at boot.
//!
//! Records live in `<storage state>/shares.json` (written atomically); the system (LVs,
//! mounts, btrfs usage) is read back for status. All methods block.

use crate::btrfs::{self, FsUsage};
use crate::commit_throttle::Commit;
use crate::data_error::DataError;
use crate::lvm;
use crate::names;
use crate::schedule::SnapshotSchedule;
use crate::service::Storage;
use crate::volume::validate_name;
use cairn_core::alert::AlertLevel;
use cairn_core::command::{run_ok, Invocation};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The smallest share: btrfs needs room for its trees and reserves.
pub const MIN_SHARE_BYTES: u64 = 256 << 20;

/// The directory inside a share that holds its read-only snapshots (a subvolume).
pub const SNAPSHOT_DIR: &str = ".snapshots";

/// Serialises changes to the share records (create, resize, delete, schedule).
static RECORDS: Mutex<()> = Mutex::new(());

/// Hold the share records lock.
pub(crate) fn records_lock() -> MutexGuard<'static, ()> {
    RECORDS.lock().unwrap_or_else(|p| p.into_inner())
}

/// What we remember about one share.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShareRecord {
    pub pool: String,
    pub name: String,
    /// Virtual size of the thin LV.
    pub size_bytes: u64,
    /// Unix seconds of creation.
    pub created: u64,
    /// Scheduled snapshots and their retention.
    #[serde(default)]
    pub schedule: SnapshotSchedule,
    /// The snapshot this share was restored from (`share@snapshot`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
}

/// The records file's shape.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ShareRecords {
    pub shares: Vec<ShareRecord>,
}

/// A share as the API shows it: record plus what the system reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareStatus {
    #[serde(flatten)]
    pub record: ShareRecord,
    /// Where it is mounted on the node.
    pub mountpoint: String,
    pub mounted: bool,
    /// Filesystem usage, when mounted.
    pub usage: Option<FsUsage>,
    /// Used percent of the filesystem (0 when not mounted).
    pub used_percent: f64,
}

/// Unix seconds now.
pub(crate) fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn mkdir(path: &Path) -> Invocation {
    Invocation::new("mkdir", ["-p".to_string(), path.display().to_string()])
}

fn umount(path: &Path) -> Invocation {
    Invocation::new("umount", [path.display().to_string()])
}

impl Storage {
    fn shares_file(&self) -> PathBuf {
        self.state_dir().join("shares.json")
    }

    /// Every share record (of every pool).
    pub fn share_records(&self) -> Result<ShareRecords, DataError> {
        let path = self.shares_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DataError::Records(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ShareRecords::default()),
            Err(e) => Err(DataError::Read(path, e)),
        }
    }

    pub(crate) fn save_share_records(&self, records: &ShareRecords) -> Result<(), DataError> {
        let path = self.shares_file();
        let dir = self.state_dir();
        std::fs::create_dir_all(dir).map_err(|e| DataError::CreateDir(dir.to_path_buf(), e))?;
        let bytes =
            serde_json::to_vec_pretty(records).map_err(|e| DataError::Records(path.clone(), e))?;
        cairn_core::write_atomic(&path, &bytes, 0o600).map_err(|e| DataError::Save(path, e))
    }

    /// The record of share `share` of `pool`.
    pub fn share_record(&self, pool: &str, share: &str) -> Result<ShareRecord, DataError> {
        self.share_records()?
            .shares
            .into_iter()
            .find(|s| s.pool == pool && s.name == share)
            .ok_or_else(|| DataError::NoSuchShare {
                pool: pool.to_string(),
                share: share.to_string(),
            })
    }

    /// Where share `share` of `pool` is mounted.
    pub fn share_mountpoint(&self, pool: &str, share: &str) -> PathBuf {
        names::share_mount(Path::new(names::SHARES_ROOT), pool, share)
    }

    /// Whether `path` is a mount point right now.
    pub(crate) fn is_mounted(&self, path: &Path) -> bool {
        self.runner()
            .run(&Invocation::new(
                "mountpoint",
                ["-q".to_string(), path.display().to_string()],
            ))
            .map(|o| o.success())
            .unwrap_or(false)
    }

    /// Usage of a mounted share.
    pub(crate) fn fs_usage(&self, mountpoint: &Path) -> Result<FsUsage, DataError> {
        let out = run_ok(self.runner(), &btrfs::usage(mountpoint)).map_err(|e| {
            DataError::command(format!("read the usage of {}", mountpoint.display()), e)
        })?;
        btrfs::parse_usage(&out.stdout_text()).map_err(|r| DataError::Parse {
            tool: "btrfs filesystem usage".into(),
            reason: r.to_string(),
        })
    }

    /// Usage of a mounted share after committing its running transaction, so that every
    /// write that returned is counted ([`btrfs::sync`]). For capacity alerts, which must not
    /// lag (decision 0014); listings use [`Self::fresh_statuses`].
    pub(crate) fn fs_usage_committed(&self, mountpoint: &Path) -> Result<FsUsage, DataError> {
        let started = self.commits().now();
        run_ok(self.runner(), &btrfs::sync(mountpoint)).map_err(|e| {
            DataError::command(format!("commit the writes to {}", mountpoint.display()), e)
        })?;
        self.commits().committed(mountpoint, started);
        self.fs_usage(mountpoint)
    }

    fn share_status(&self, record: ShareRecord) -> ShareStatus {
        let mnt = self.share_mountpoint(&record.pool, &record.name);
        let mounted = self.is_mounted(&mnt);
        self.status_of(record, mnt, mounted)
    }

    fn status_of(&self, record: ShareRecord, mnt: PathBuf, mounted: bool) -> ShareStatus {
        let usage = if mounted {
            self.fs_usage(&mnt).ok()
        } else {
            None
        };
        ShareStatus {
            used_percent: usage.map(|u| u.percent()).unwrap_or(0.0),
            mountpoint: mnt.display().to_string(),
            mounted,
            usage,
            record,
        }
    }

    /// The status of `records` for a listing, with usage that counts every write that
    /// returned more than a few seconds ago: the mounted shares whose last commit is older
    /// than [`crate::commit_throttle::MAX_AGE`] are committed first, all at once, waiting
    /// at most [`crate::commit_throttle::TIMEOUT`] (decision 0016). A commit that fails or
    /// is late leaves that share's usage as btrfs reports it without one.
    fn fresh_statuses(&self, records: Vec<ShareRecord>) -> Vec<ShareStatus> {
        let rows: Vec<(ShareRecord, PathBuf, bool)> = records
            .into_iter()
            .map(|r| {
                let mnt = self.share_mountpoint(&r.pool, &r.name);
                let mounted = self.is_mounted(&mnt);
                (r, mnt, mounted)
            })
            .collect();
        let mounted: Vec<PathBuf> = rows
            .iter()
            .filter(|(_, _, m)| *m)
            .map(|(_, mnt, _)| mnt.clone())
            .collect();
        let outcomes = self
            .commits()
            .commit_stale(self.runner_shared(), &mounted, btrfs::sync);
        for (mnt, c) in mounted.iter().zip(&outcomes) {
            if *c == Commit::TimedOut {
                tracing::info!(
                    "the commit of {} takes longer than {:?}: its usage may lag",
                    mnt.display(),
                    crate::commit_throttle::TIMEOUT
                );
            }
        }
        rows.into_iter()
            .map(|(r, mnt, mounted)| self.status_of(r, mnt, mounted))
            .collect()
    }

    /// The shares of `pool` with their usage (fresh to a few seconds, [`Self::fresh_statuses`]).
    pub fn shares(&self, pool: &str) -> Result<Vec<ShareStatus>, DataError> {
        self.pool_usable(pool)?;
        let records = self
            .share_records()?
            .shares
            .into_iter()
            .filter(|s| s.pool == pool)
            .collect();
        Ok(self.fresh_statuses(records))
    }

    /// One share of `pool` with its usage (fresh to a few seconds, [`Self::fresh_statuses`]).
    pub fn share(&self, pool: &str, share: &str) -> Result<ShareStatus, DataError> {
        self.pool_usable(pool)?;
        let record = self.share_record(pool, share)?;
        Ok(self.fresh_statuses(vec![record]).remove(0))
    }

    /// Ok when `pool` is recorded and its array runs (so shares and volumes can be used).
    pub fn pool_usable(&self, pool: &str) -> Result<(), DataError> {
        self.pool(pool)
            .map(|_| ())
            .map_err(|source| DataError::Pool {
                pool: pool.to_string(),
                source,
            })
    }

    /// Create share `name` of `size_bytes`: a thin LV, btrfs on it, mounted at the contract
    /// path with a `.snapshots` subvolume. A failure part-way removes what was made.
    pub fn create_share(
        &self,
        pool: &str,
        name: &str,
        size_bytes: u64,
    ) -> Result<ShareStatus, DataError> {
        self.create_share_from(pool, name, size_bytes, None)
    }

    /// [`Storage::create_share`], noting the snapshot a restored share came from.
    pub(crate) fn create_share_from(
        &self,
        pool: &str,
        name: &str,
        size_bytes: u64,
        restored_from: Option<String>,
    ) -> Result<ShareStatus, DataError> {
        validate_name("name", name)?;
        if size_bytes < MIN_SHARE_BYTES {
            return Err(DataError::invalid("size_bytes", "must be at least 256 MiB"));
        }
        self.pool_usable(pool)?;
        let _guard = records_lock();
        let mut records = self.share_records()?;
        let lv = names::share_lv(name);
        if records
            .shares
            .iter()
            .any(|s| s.pool == pool && s.name == name)
            || lvm::list_lvs(self.runner(), pool)?
                .iter()
                .any(|r| r.name == lv)
        {
            return Err(DataError::Exists {
                what: "share",
                name: name.to_string(),
            });
        }
        run_ok(self.runner(), &lvm::create_thin(pool, &lv, size_bytes)).map_err(|e| {
            DataError::command(format!("create the thin volume of share {name}"), e)
        })?;
        let mnt = self.share_mountpoint(pool, name);
        if let Err(e) = self.format_and_mount(pool, name, &mnt) {
            self.undo_share(pool, name, &mnt);
            return Err(e);
        }
        let size = lvm::list_lvs(self.runner(), pool)
            .ok()
            .and_then(|rows| rows.into_iter().find(|r| r.name == lv))
            .map(|r| r.size_bytes)
            .unwrap_or(size_bytes);
        let record = ShareRecord {
            pool: pool.to_string(),
            name: name.to_string(),
            size_bytes: size,
            created: now_s(),
            schedule: SnapshotSchedule::default(),
            restored_from,
        };
        records.shares.push(record.clone());
        if let Err(e) = self.save_share_records(&records) {
            self.undo_share(pool, name, &mnt);
            return Err(e);
        }
        tracing::info!(pool, share = name, size_bytes = size, "share created");
        Ok(self.share_status(record))
    }

    fn format_and_mount(&self, pool: &str, name: &str, mnt: &Path) -> Result<(), DataError> {
        let dev = names::lv_path(pool, &names::share_lv(name));
        run_ok(self.runner(), &btrfs::mkfs(&dev, name))
            .map_err(|e| DataError::command(format!("make the filesystem of share {name}"), e))?;
        run_ok(self.runner(), &mkdir(mnt))
            .map_err(|e| DataError::command(format!("create mount point {}", mnt.display()), e))?;
        run_ok(self.runner(), &btrfs::mount(&dev, mnt))
            .map_err(|e| DataError::command(format!("mount share {name}"), e))?;
        run_ok(
            self.runner(),
            &btrfs::subvolume_create(&mnt.join(SNAPSHOT_DIR)),
        )
        .map_err(|e| {
            DataError::command(format!("create the snapshot directory of share {name}"), e)
        })?;
        Ok(())
    }

    /// Remove a share made by this process that must not stay (a failed restore): undo it
    /// on the system and drop its record.
    pub(crate) fn discard_share(&self, pool: &str, name: &str) -> Result<(), DataError> {
        let _guard = records_lock();
        self.undo_share(pool, name, &self.share_mountpoint(pool, name));
        let mut records = self.share_records()?;
        records
            .shares
            .retain(|s| !(s.pool == pool && s.name == name));
        self.save_share_records(&records)
    }

    /// Best-effort removal of a half-made share (unmount, remove LV and mount point).
    fn undo_share(&self, pool: &str, name: &str, mnt: &Path) {
        if self.is_mounted(mnt) {
            let _ = self.runner().run(&umount(mnt));
        }
        let _ = self
            .runner()
            .run(&lvm::remove(pool, &names::share_lv(name)));
        let _ = self
            .runner()
            .run(&Invocation::new("rmdir", [mnt.display().to_string()]));
    }

    /// Grow share `name` to `size_bytes` (LV, then filesystem). Shrinking is refused.
    pub fn resize_share(
        &self,
        pool: &str,
        name: &str,
        size_bytes: u64,
    ) -> Result<ShareStatus, DataError> {
        validate_name("name", name)?;
        self.pool_usable(pool)?;
        let _guard = records_lock();
        let mut records = self.share_records()?;
        let Some(idx) = records
            .shares
            .iter()
            .position(|s| s.pool == pool && s.name == name)
        else {
            return Err(DataError::NoSuchShare {
                pool: pool.to_string(),
                share: name.to_string(),
            });
        };
        let current = records.shares[idx].size_bytes;
        if size_bytes < current {
            return Err(DataError::invalid(
                "size_bytes",
                format!("shrinking is not supported (the share has {current} bytes)"),
            ));
        }
        if size_bytes == current {
            return Ok(self.share_status(records.shares[idx].clone()));
        }
        let lv = names::share_lv(name);
        let mnt = self.share_mountpoint(pool, name);
        if !self.is_mounted(&mnt) {
            return Err(DataError::invalid("name", "the share is not mounted"));
        }
        run_ok(self.runner(), &lvm::extend(pool, &lv, size_bytes)).map_err(|e| {
            DataError::command(format!("extend the thin volume of share {name}"), e)
        })?;
        run_ok(self.runner(), &btrfs::resize_max(&mnt))
            .map_err(|e| DataError::command(format!("grow the filesystem of share {name}"), e))?;
        let size = lvm::list_lvs(self.runner(), pool)
            .ok()
            .and_then(|rows| rows.into_iter().find(|r| r.name == lv))
            .map(|r| r.size_bytes)
            .unwrap_or(size_bytes);
        records.shares[idx].size_bytes = size;
        self.save_share_records(&records)?;
        Ok(self.share_status(records.shares[idx].clone()))
    }

    /// Delete share `name` and everything in it (snapshots included): unmount, remove the LV.
    /// `confirm` must repeat the share's name.
    pub fn delete_share(&self, pool: &str, name: &str, confirm: &str) -> Result<(), DataError> {
        validate_name("name", name)?;
        if confirm != name {
            return Err(DataError::invalid(
                "confirm",
                "type the share's name to confirm deleting it and all its snapshots",
            ));
        }
        self.pool_usable(pool)?;
        let _guard = records_lock();
        let mut records = self.share_records()?;
        let before = records.shares.len();
        records
            .shares
            .retain(|s| !(s.pool == pool && s.name == name));
        if records.shares.len() == before {
            return Err(DataError::NoSuchShare {
                pool: pool.to_string(),
                share: name.to_string(),
            });
        }
        let mnt = self.share_mountpoint(pool, name);
        if self.is_mounted(&mnt) {
            run_ok(self.runner(), &umount(&mnt)).map_err(|e| {
                DataError::command(format!("unmount share {name} (is it in use?)"), e)
            })?;
        }
        let lv = names::share_lv(name);
        if lvm::list_lvs(self.runner(), pool)?
            .iter()
            .any(|r| r.name == lv)
        {
            run_ok(self.runner(), &lvm::remove(pool, &lv)).map_err(|e| {
                DataError::command(format!("remove the thin volume of share {name}"), e)
            })?;
        }
        let _ = self
            .runner()
            .run(&Invocation::new("rmdir", [mnt.display().to_string()]));
        self.save_share_records(&records)?;
        self.alerts().clear(
            &crate::capacity::share_key(pool, name),
            &format!("share {name} was deleted"),
        );
        tracing::info!(pool, share = name, "share deleted");
        Ok(())
    }

    /// Mount the shares of every pool whose array runs (call after boot assembly); returns
    /// `pool/share` for each share mounted now.
    pub fn mount_all_shares(&self) -> Vec<String> {
        let mut out = Vec::new();
        for pool in self.records().pools {
            if self.pool_usable(&pool.name).is_err() {
                continue;
            }
            match self.mount_shares(&pool.name) {
                Ok(v) => out.extend(v.into_iter().map(|s| format!("{}/{s}", pool.name))),
                Err(e) => tracing::error!(pool = %pool.name, error = %e, "cannot mount the shares"),
            }
        }
        out
    }

    /// Mount every recorded share of `pool` that is not mounted (called at boot after the
    /// pool is assembled). A share that cannot be mounted raises a critical alert and the
    /// others still mount; returns the shares mounted now.
    pub fn mount_shares(&self, pool: &str) -> Result<Vec<String>, DataError> {
        let mut mounted = Vec::new();
        for rec in self
            .share_records()?
            .shares
            .iter()
            .filter(|s| s.pool == pool)
        {
            let mnt = self.share_mountpoint(pool, &rec.name);
            if self.is_mounted(&mnt) {
                continue;
            }
            let key = format!("pool/{pool}/share/{}/mount", rec.name);
            let lv = names::share_lv(&rec.name);
            let dev = names::lv_path(pool, &lv);
            let result = run_ok(self.runner(), &lvm::activate(pool, &lv))
                .and_then(|_| run_ok(self.runner(), &mkdir(&mnt)))
                .and_then(|_| run_ok(self.runner(), &btrfs::mount(&dev, &mnt)));
            match result {
                Ok(_) => {
                    self.alerts()
                        .clear(&key, &format!("share {} is mounted", rec.name));
                    mounted.push(rec.name.clone());
                }
                Err(e) => {
                    tracing::error!(pool, share = %rec.name, error = %e, "cannot mount share");
                    self.alerts().raise(
                        &key,
                        AlertLevel::Critical,
                        &format!("share {} of pool {pool} cannot be mounted: {e}", rec.name),
                    );
                }
            }
        }
        Ok(mounted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{storage_with, LVS_EMPTY, LVS_WITH_SHARE, USAGE};
    use cairn_core::command::{CommandOutput, RecordingRunner};

    #[test]
    fn create_share_runs_lvcreate_mkfs_mount_and_records_it() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE))
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE));
        let (st, dir, _alerts) = storage_with(r);
        let s = st.create_share("tank", "docs", 1 << 30).unwrap();
        assert_eq!(s.record.size_bytes, 1 << 30);
        assert_eq!(s.mountpoint, "/var/lib/cairn/shares/tank/docs");
        let lines = st.runner_lines();
        let want = [
            "lvcreate -y -V 1073741824b -T cairn-tank/thin -n share-docs",
            "mkfs.btrfs -q -f --nodiscard --csum xxhash -L docs /dev/cairn-tank/share-docs",
            "mkdir -p /var/lib/cairn/shares/tank/docs",
            "mount -t btrfs -o noatime,discard=async /dev/cairn-tank/share-docs /var/lib/cairn/shares/tank/docs",
            "btrfs subvolume create /var/lib/cairn/shares/tank/docs/.snapshots",
        ];
        let mut at = 0;
        for w in want {
            at = lines[at..]
                .iter()
                .position(|l| l == w)
                .map(|p| p + at)
                .unwrap_or_else(|| panic!("missing {w} in {lines:#?}"));
        }
        let saved = std::fs::read_to_string(dir.path().join("storage/shares.json")).unwrap();
        assert!(saved.contains("\"docs\""));
        assert_eq!(st.share_record("tank", "docs").unwrap().pool, "tank");
    }

    #[test]
    fn a_listing_commits_a_share_first_at_most_every_few_seconds() {
        use crate::commit_throttle::CommitThrottle;
        use crate::testing::TestStorage;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};

        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE))
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE));
        let (st, _dir, _alerts) = storage_with(r);
        let base = Instant::now();
        let ms = Arc::new(AtomicU64::new(0));
        let m = ms.clone();
        let clock = Arc::new(move || base + Duration::from_millis(m.load(Ordering::SeqCst)));
        let st = TestStorage {
            storage: st.storage.with_commits(CommitThrottle::new(
                Duration::from_secs(5),
                Duration::from_secs(10),
                clock,
            )),
            runner: st.runner,
        };
        st.create_share("tank", "docs", 1 << 30).unwrap();
        let mnt = "/var/lib/cairn/shares/tank/docs";
        let sync = format!("btrfs filesystem sync {mnt}");
        let usage = format!("btrfs filesystem usage -b {mnt}");
        // Each listing reads the usage; which of them committed first?
        let list = |f: &dyn Fn() -> Vec<ShareStatus>| {
            let before = st.runner_lines().len();
            st.runner
                .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE));
            let got = f();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].usage.as_ref().unwrap().used_bytes, 1572864000);
            let lines = st.runner_lines()[before..].to_vec();
            let u = lines.iter().position(|l| *l == usage).expect("usage read");
            match lines.iter().position(|l| *l == sync) {
                Some(s) => {
                    assert!(s < u, "committed after reading: {lines:?}");
                    true
                }
                None => false,
            }
        };
        let shares = || st.shares("tank").unwrap();
        let one = || vec![st.share("tank", "docs").unwrap()];
        assert!(list(&shares), "the first listing commits");
        ms.fetch_add(4_000, Ordering::SeqCst);
        assert!(!list(&shares), "4 s later: no commit");
        assert!(!list(&one), "nor for one share");
        ms.fetch_add(1_500, Ordering::SeqCst);
        assert!(list(&one), "5.5 s after the last commit: commit again");
        // The capacity check commits on its own; a listing right after needs none.
        ms.fetch_add(60_000, Ordering::SeqCst);
        st.script("lvs", CommandOutput::ok(LVS_WITH_SHARE));
        st.runner
            .expect("btrfs", &["filesystem", "usage"], CommandOutput::ok(USAGE));
        st.capacity("tank").unwrap();
        ms.fetch_add(1_000, Ordering::SeqCst);
        assert!(!list(&shares), "committed by the capacity check 1 s ago");
        // An unmounted share is neither committed nor measured.
        ms.fetch_add(60_000, Ordering::SeqCst);
        st.runner
            .expect("mountpoint", &["-q", mnt], CommandOutput::failed(32, ""));
        let before = st.runner_lines().len();
        let got = st.shares("tank").unwrap();
        assert!(!got[0].mounted && got[0].usage.is_none());
        assert!(
            !st.runner_lines()[before..]
                .iter()
                .any(|l| l.starts_with("btrfs")),
            "{:?}",
            st.runner_lines()
        );
    }

    #[test]
    fn bad_input_names_the_field_and_runs_nothing() {
        let (st, _dir, _a) = storage_with(RecordingRunner::new());
        let e = st.create_share("tank", "Docs!", 1 << 30).unwrap_err();
        assert_eq!(e.field(), Some("name"));
        let e = st.create_share("tank", "docs", 1 << 20).unwrap_err();
        assert_eq!(e.field(), Some("size_bytes"));
        assert!(!st.runner_lines().iter().any(|l| l.starts_with("lvcreate")));
    }

    #[test]
    fn failed_mkfs_removes_the_new_volume_and_records_nothing() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY)).expect(
            "mkfs.btrfs",
            &[],
            CommandOutput::failed(1, "no space"),
        );
        let (st, _dir, _a) = storage_with(r);
        let e = st.create_share("tank", "docs", 1 << 30).unwrap_err();
        assert!(e.to_string().contains("make the filesystem"));
        assert!(st
            .runner_lines()
            .contains(&"lvremove -y cairn-tank/share-docs".to_string()));
        assert!(st.share_records().unwrap().shares.is_empty());
    }

    #[test]
    fn existing_share_is_refused() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE));
        let (st, _dir, _a) = storage_with(r);
        let e = st.create_share("tank", "docs", 1 << 30).unwrap_err();
        assert!(matches!(e, DataError::Exists { .. }), "{e}");
    }

    #[test]
    fn resize_grows_and_refuses_shrinking() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY)).expect(
            "lvs",
            &[],
            CommandOutput::ok(LVS_WITH_SHARE),
        );
        let (st, _dir, _a) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        let e = st.resize_share("tank", "docs", 1 << 29).unwrap_err();
        assert_eq!(e.field(), Some("size_bytes"));
        st.resize_share("tank", "docs", 2 << 30).unwrap();
        let lines = st.runner_lines();
        assert!(lines.contains(&"lvextend -L 2147483648b cairn-tank/share-docs".to_string()));
        assert!(lines
            .contains(&"btrfs filesystem resize max /var/lib/cairn/shares/tank/docs".to_string()));
    }

    #[test]
    fn delete_needs_the_typed_name_then_unmounts_and_removes() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE))
            .expect("lvs", &[], CommandOutput::ok(LVS_WITH_SHARE));
        let (st, _dir, _a) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        let e = st.delete_share("tank", "docs", "doc").unwrap_err();
        assert_eq!(e.field(), Some("confirm"));
        assert_eq!(st.share_records().unwrap().shares.len(), 1);
        st.delete_share("tank", "docs", "docs").unwrap();
        let lines = st.runner_lines();
        assert!(lines.contains(&"umount /var/lib/cairn/shares/tank/docs".to_string()));
        assert!(lines.contains(&"lvremove -y cairn-tank/share-docs".to_string()));
        assert!(st.share_records().unwrap().shares.is_empty());
    }

    #[test]
    fn boot_mounts_unmounted_shares_and_alerts_on_failure() {
        let r = RecordingRunner::new();
        r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY)).expect(
            "lvs",
            &[],
            CommandOutput::ok(LVS_WITH_SHARE),
        );
        let (st, _dir, alerts) = storage_with(r);
        st.create_share("tank", "docs", 1 << 30).unwrap();
        // After a reboot nothing is mounted: `mountpoint -q` fails, the mount fails too.
        st.script("mountpoint", CommandOutput::failed(32, ""));
        st.script("mount", CommandOutput::failed(32, "wrong fs type"));
        assert!(st.mount_shares("tank").unwrap().is_empty());
        assert_eq!(
            alerts.level("pool/tank/share/docs/mount"),
            Some(AlertLevel::Critical)
        );
        st.script("mountpoint", CommandOutput::failed(32, ""));
        assert_eq!(st.mount_shares("tank").unwrap(), vec!["docs".to_string()]);
        assert_eq!(alerts.level("pool/tank/share/docs/mount"), None);
    }
}
