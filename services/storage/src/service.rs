//! The storage service: owns the tools runner, the state directory, the pool records and the disk watch channel.

use crate::commit_throttle::CommitThrottle;
use crate::error::StorageError;
use crate::inventory::{self, Disk};
use crate::paths::SystemPaths;
use crate::records::{PoolRecord, Records};
use cairn_core::alert::AlertSink;
use cairn_core::command::CommandRunner;
use cairn_core::disk::DiskRef;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The storage domain's service; the API and cairnd hold it in an `Arc`.
pub struct Storage {
    runner: Arc<dyn CommandRunner>,
    /// `<daemon state>/storage`.
    state_dir: PathBuf,
    alerts: Arc<dyn AlertSink>,
    paths: SystemPaths,
    records: Mutex<Records>,
    disks_tx: watch::Sender<Vec<DiskRef>>,
    /// Pools and disks with an operation running (`pool:<name>`, `disk:<id>`).
    busy: Mutex<BTreeSet<String>>,
    /// Pools created by this process whose initial build (md's first resync or recovery)
    /// has not finished: that build is not a degradation and raises no alert.
    building: Mutex<BTreeSet<String>>,
    /// When each share's filesystem was last committed (fresh usage in listings).
    commits: CommitThrottle,
}

/// Marks a pool or disk busy until dropped.
pub struct BusyGuard<'a> {
    storage: &'a Storage,
    keys: Vec<String>,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut busy = lock(&self.storage.busy);
        for k in &self.keys {
            busy.remove(k);
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Storage {
    /// Open the service with its state under `<state_root>/storage` and the system read at
    /// `paths`. Loads our pool records and takes a first inventory.
    pub fn open(
        runner: Arc<dyn CommandRunner>,
        state_root: &Path,
        alerts: Arc<dyn AlertSink>,
        paths: SystemPaths,
    ) -> Result<Storage, StorageError> {
        let state_dir = state_root.join("storage");
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| StorageError::CreateDir(state_dir.clone(), e))?;
        let records = Records::load(&state_dir)?;
        let disks = inventory::scan(&paths)?;
        let (disks_tx, _) = watch::channel(disks.iter().map(Disk::to_ref).collect());
        Ok(Storage {
            runner,
            state_dir,
            alerts,
            paths,
            records: Mutex::new(records),
            disks_tx,
            busy: Mutex::new(BTreeSet::new()),
            building: Mutex::new(BTreeSet::new()),
            commits: CommitThrottle::default(),
        })
    }

    /// The same service with its share commits throttled by `commits` (tests inject time).
    #[cfg(test)]
    pub(crate) fn with_commits(mut self, commits: CommitThrottle) -> Storage {
        self.commits = commits;
        self
    }

    /// The runner every external tool goes through.
    pub(crate) fn runner(&self) -> &dyn CommandRunner {
        self.runner.as_ref()
    }

    /// The runner as a shared handle (for work that outlives the call, on its own thread).
    pub(crate) fn runner_shared(&self) -> &Arc<dyn CommandRunner> {
        &self.runner
    }

    /// When each share's filesystem was last committed.
    pub(crate) fn commits(&self) -> &CommitThrottle {
        &self.commits
    }

    /// `<daemon state>/storage`: where the domain keeps its records (atomic writes only).
    pub(crate) fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where alerts go.
    pub(crate) fn alerts(&self) -> &dyn AlertSink {
        self.alerts.as_ref()
    }

    /// The system trees the inventory reads.
    pub(crate) fn paths(&self) -> &SystemPaths {
        &self.paths
    }

    /// A copy of our pool records.
    pub fn records(&self) -> Records {
        lock(&self.records).clone()
    }

    /// Change the records and save them atomically; on a failed save the change is undone.
    pub(crate) fn update_records<T>(
        &self,
        f: impl FnOnce(&mut Records) -> T,
    ) -> Result<T, StorageError> {
        let mut guard = lock(&self.records);
        let mut next = guard.clone();
        let out = f(&mut next);
        next.save(self.state_dir())?;
        *guard = next;
        Ok(out)
    }

    /// The record of pool `name` if it exists and its array is running, so volumes can be
    /// made on it. `NoSuchPool` / `PoolUnusable` otherwise.
    pub fn pool(&self, name: &str) -> Result<PoolRecord, StorageError> {
        let rec = lock(&self.records)
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NoSuchPool(name.to_string()))?;
        let array = crate::md::read_array(&self.paths, name);
        match array {
            Some(a) if a.is_running() && !a.is_failed() => Ok(rec),
            Some(a) => Err(StorageError::PoolUnusable {
                name: name.to_string(),
                reason: format!("its array is {}", a.array_state),
            }),
            None => Err(StorageError::PoolUnusable {
                name: name.to_string(),
                reason: "its array is not assembled".into(),
            }),
        }
    }

    /// The current disks, updated on every udev block event (for the SMART service).
    pub fn subscribe_disks(&self) -> watch::Receiver<Vec<DiskRef>> {
        self.disks_tx.subscribe()
    }

    /// Take a fresh inventory and publish it to subscribers when the set of disks changed.
    pub fn refresh_disks(&self) -> Result<Vec<Disk>, StorageError> {
        let disks = inventory::scan(&self.paths)?;
        let refs: Vec<DiskRef> = disks.iter().map(Disk::to_ref).collect();
        self.disks_tx.send_if_modified(|cur| {
            if *cur == refs {
                false
            } else {
                *cur = refs;
                true
            }
        });
        Ok(disks)
    }

    /// Mark pool `name` as in its initial build (`true`) or done with it (`false`); returns
    /// whether it was marked before.
    pub(crate) fn set_building(&self, name: &str, building: bool) -> bool {
        let mut b = lock(&self.building);
        if building {
            !b.insert(name.to_string())
        } else {
            b.remove(name)
        }
    }

    /// Whether pool `name` is in its initial build.
    pub(crate) fn is_building(&self, name: &str) -> bool {
        lock(&self.building).contains(name)
    }

    /// Whether `key` is marked busy now.
    pub(crate) fn is_busy(&self, key: &str) -> bool {
        lock(&self.busy).contains(key)
    }

    /// Mark `keys` busy for the life of the guard, or fail with `Busy` naming the first taken.
    pub(crate) fn claim(&self, keys: &[String]) -> Result<BusyGuard<'_>, StorageError> {
        let mut busy = lock(&self.busy);
        if let Some(k) = keys.iter().find(|k| busy.contains(*k)) {
            return Err(StorageError::Busy(k.clone()));
        }
        busy.extend(keys.iter().cloned());
        Ok(BusyGuard {
            storage: self,
            keys: keys.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake::{add_disk, remove_disk, virtio};
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::RecordingRunner;

    pub(crate) fn storage(root: &Path) -> Storage {
        Storage::open(
            Arc::new(RecordingRunner::new()),
            &root.join("state"),
            Arc::new(RecordingAlerts::default()),
            SystemPaths::under(root),
        )
        .unwrap()
    }

    #[test]
    fn subscribers_see_disks_come_and_go() {
        let t = tempfile::tempdir().unwrap();
        add_disk(
            t.path(),
            &virtio("vdb", "254:16", "S:disk/by-id/virtio-A\n"),
        );
        let s = storage(t.path());
        let mut rx = s.subscribe_disks();
        assert_eq!(rx.borrow_and_update()[0].id, "virtio-A");
        add_disk(
            t.path(),
            &virtio("vdc", "254:32", "S:disk/by-id/virtio-B\n"),
        );
        s.refresh_disks().unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().len(), 2);
        s.refresh_disks().unwrap();
        assert!(!rx.has_changed().unwrap(), "no change, no wake-up");
        remove_disk(t.path(), "vdb");
        s.refresh_disks().unwrap();
        assert_eq!(rx.borrow_and_update()[0].id, "virtio-B");
    }

    #[test]
    fn unknown_pool_is_reported() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("sys/block")).unwrap();
        let s = storage(t.path());
        assert!(matches!(s.pool("tank"), Err(StorageError::NoSuchPool(_))));
    }

    #[test]
    fn busy_keys_are_exclusive_until_released() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("sys/block")).unwrap();
        let s = storage(t.path());
        let g = s.claim(&["pool:tank".into()]).unwrap();
        assert!(matches!(
            s.claim(&["disk:x".into(), "pool:tank".into()]),
            Err(StorageError::Busy(k)) if k == "pool:tank"
        ));
        drop(g);
        assert!(s.claim(&["pool:tank".into()]).is_ok());
    }
}
