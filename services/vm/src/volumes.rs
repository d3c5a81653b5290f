//! The narrow interface to the storage layer's thin volumes (implemented by cairnd over
//! `cairn_storage::Storage`; a recording double in tests).

use std::path::PathBuf;

/// A storage failure, as the storage layer described it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VolumeError(pub String);

/// A thin volume's use of its pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeUse {
    pub name: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
}

/// What VMs need from storage. Every call blocks.
pub trait Volumes: Send + Sync {
    /// Names of the pools that exist.
    fn pools(&self) -> Result<Vec<String>, VolumeError>;
    /// Create an empty thin volume; returns its block device.
    fn create(&self, pool: &str, name: &str, size_bytes: u64) -> Result<PathBuf, VolumeError>;
    /// A copy-on-write clone of volume (or snapshot) `source`; returns its block device.
    fn clone_volume(&self, pool: &str, source: &str, name: &str) -> Result<PathBuf, VolumeError>;
    /// Many copy-on-write clones at once, `(source, name)` each; all or nothing (on a
    /// failure the clones made are removed and the error names the one that failed). The
    /// clones' block devices appear once activated ([`Volumes::activate`]); returns their
    /// device paths in order.
    fn clone_many(
        &self,
        pool: &str,
        clones: &[(String, String)],
    ) -> Result<Vec<PathBuf>, VolumeError>;
    /// The block device volume `name` of `pool` has (once made and active), known before it
    /// is made.
    fn path(&self, pool: &str, name: &str) -> PathBuf;
    /// A read-only point-in-time snapshot `snap` of `source`.
    fn snapshot(&self, pool: &str, source: &str, snap: &str) -> Result<(), VolumeError>;
    /// Make an existing volume's block device appear (thin snapshots and clones carry LVM's
    /// activation-skip flag, so the pool's activation at boot leaves them inactive).
    fn activate(&self, pool: &str, name: &str) -> Result<(), VolumeError>;
    /// Delete a volume or snapshot.
    fn delete(&self, pool: &str, name: &str) -> Result<(), VolumeError>;
    /// The volumes of a pool with their use.
    fn usage(&self, pool: &str) -> Result<Vec<VolumeUse>, VolumeError>;
    /// Where a pool's share `share` is mounted (for ISO images).
    fn share_path(&self, pool: &str, share: &str) -> PathBuf;
}

/// The volume name of disk `index` of VM `vm`.
pub fn disk_volume(vm: &str, index: usize) -> String {
    format!("{vm}-disk{index}")
}

/// The volume name of snapshot `snap` of disk `index` of VM `vm`.
pub fn snapshot_volume(vm: &str, index: usize, snap: &str) -> String {
    format!("{vm}-disk{index}-snap-{snap}")
}

#[cfg(test)]
pub mod double {
    //! A recording in-memory [`Volumes`] for the service's unit tests.
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// (pool, name) → (size, origin).
    type VolumeMap = BTreeMap<(String, String), (u64, Option<String>)>;

    /// Volumes kept in a map; every call is recorded.
    #[derive(Default)]
    pub struct RecordingVolumes {
        pub pools: Mutex<Vec<String>>,
        /// (pool, name) → (size, origin)
        pub volumes: Mutex<VolumeMap>,
        pub calls: Mutex<Vec<String>>,
        /// Fail calls whose line starts with this.
        pub fail: Mutex<Option<String>>,
    }

    impl RecordingVolumes {
        pub fn with_pool(pool: &str) -> RecordingVolumes {
            RecordingVolumes {
                pools: Mutex::new(vec![pool.to_string()]),
                ..Default::default()
            }
        }

        fn record(&self, line: String) -> Result<(), VolumeError> {
            self.calls.lock().unwrap().push(line.clone());
            match self.fail.lock().unwrap().as_deref() {
                Some(f) if line.starts_with(f) => Err(VolumeError(format!("injected: {line}"))),
                _ => Ok(()),
            }
        }

        pub fn names(&self) -> Vec<String> {
            self.volumes
                .lock()
                .unwrap()
                .keys()
                .map(|(_, n)| n.clone())
                .collect()
        }
    }

    fn path(pool: &str, name: &str) -> PathBuf {
        PathBuf::from(format!("/dev/cairn-{pool}/vol-{name}"))
    }

    impl Volumes for RecordingVolumes {
        fn pools(&self) -> Result<Vec<String>, VolumeError> {
            Ok(self.pools.lock().unwrap().clone())
        }
        fn create(&self, pool: &str, name: &str, size: u64) -> Result<PathBuf, VolumeError> {
            self.record(format!("create {pool} {name} {size}"))?;
            let mut v = self.volumes.lock().unwrap();
            if v.contains_key(&(pool.into(), name.into())) {
                return Err(VolumeError(format!("{name} exists")));
            }
            v.insert((pool.into(), name.into()), (size, None));
            Ok(path(pool, name))
        }
        fn clone_volume(
            &self,
            pool: &str,
            source: &str,
            name: &str,
        ) -> Result<PathBuf, VolumeError> {
            self.record(format!("clone {pool} {source} {name}"))?;
            let mut v = self.volumes.lock().unwrap();
            let Some((size, _)) = v.get(&(pool.into(), source.into())).cloned() else {
                return Err(VolumeError(format!("no volume {source}")));
            };
            v.insert((pool.into(), name.into()), (size, Some(source.into())));
            Ok(path(pool, name))
        }
        fn path(&self, pool: &str, name: &str) -> PathBuf {
            path(pool, name)
        }
        fn clone_many(
            &self,
            pool: &str,
            clones: &[(String, String)],
        ) -> Result<Vec<PathBuf>, VolumeError> {
            let list: Vec<String> = clones.iter().map(|(s, n)| format!("{s}>{n}")).collect();
            self.record(format!("clone_many {pool} {}", list.join(" ")))?;
            let mut v = self.volumes.lock().unwrap();
            for (source, name) in clones {
                if !v.contains_key(&(pool.into(), source.into())) {
                    return Err(VolumeError(format!("no volume {source}")));
                }
                if v.contains_key(&(pool.into(), name.into())) {
                    return Err(VolumeError(format!("{name} exists")));
                }
            }
            let mut paths = Vec::new();
            for (source, name) in clones {
                let size = v[&(pool.to_string(), source.to_string())].0;
                v.insert((pool.into(), name.into()), (size, Some(source.into())));
                paths.push(path(pool, name));
            }
            Ok(paths)
        }
        fn snapshot(&self, pool: &str, source: &str, snap: &str) -> Result<(), VolumeError> {
            self.record(format!("snapshot {pool} {source} {snap}"))?;
            let mut v = self.volumes.lock().unwrap();
            let Some((size, _)) = v.get(&(pool.into(), source.into())).cloned() else {
                return Err(VolumeError(format!("no volume {source}")));
            };
            v.insert((pool.into(), snap.into()), (size, Some(source.into())));
            Ok(())
        }
        fn activate(&self, pool: &str, name: &str) -> Result<(), VolumeError> {
            self.record(format!("activate {pool} {name}"))
        }
        fn delete(&self, pool: &str, name: &str) -> Result<(), VolumeError> {
            self.record(format!("delete {pool} {name}"))?;
            self.volumes
                .lock()
                .unwrap()
                .remove(&(pool.into(), name.into()));
            Ok(())
        }
        fn usage(&self, pool: &str) -> Result<Vec<VolumeUse>, VolumeError> {
            Ok(self
                .volumes
                .lock()
                .unwrap()
                .iter()
                .filter(|((p, _), _)| p == pool)
                .map(|((_, n), (s, _))| VolumeUse {
                    name: n.clone(),
                    size_bytes: *s,
                    used_bytes: 0,
                })
                .collect())
        }
        fn share_path(&self, pool: &str, share: &str) -> PathBuf {
            PathBuf::from(format!("/var/lib/cairn/shares/{pool}/{share}"))
        }
    }
}
