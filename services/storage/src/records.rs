//! Our records of the pools we built (`<state>/storage/pools.json`): the only source boot assembly trusts.

use crate::error::StorageError;
use crate::level::Level;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One pool as we created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub name: String,
    pub level: Level,
    /// The md array's UUID as mdadm prints it (`xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx`).
    pub md_uuid: String,
    /// Member disks by stable id (by-id name), in the order they were added.
    pub members: Vec<String>,
    /// Seconds since the Unix epoch when the pool was created.
    pub created: u64,
}

/// Every pool record, stored as one JSON document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    pub pools: Vec<PoolRecord>,
}

impl Records {
    /// The file under the storage state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("pools.json")
    }

    /// Load the records (none yet: empty).
    pub fn load(state_dir: &Path) -> Result<Records, StorageError> {
        let path = Records::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::Records(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Records::default()),
            Err(e) => Err(StorageError::Read(path, e)),
        }
    }

    /// Replace the records on disk atomically.
    pub fn save(&self, state_dir: &Path) -> Result<(), StorageError> {
        let mut data = serde_json::to_vec_pretty(self).unwrap_or_default();
        data.push(b'\n');
        cairn_core::write_atomic(&Records::path(state_dir), &data, 0o600)
            .map_err(StorageError::Save)
    }

    /// The record of pool `name`.
    pub fn get(&self, name: &str) -> Option<&PoolRecord> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The record of pool `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut PoolRecord> {
        self.pools.iter_mut().find(|p| p.name == name)
    }

    /// The pool that has disk `id` as a member.
    pub fn pool_of(&self, id: &str) -> Option<&PoolRecord> {
        self.pools
            .iter()
            .find(|p| p.members.iter().any(|m| m == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> PoolRecord {
        PoolRecord {
            name: "tank".into(),
            level: Level::Raid5,
            md_uuid: "a:b:c:d".into(),
            members: vec!["virtio-d1".into(), "ata-QEMU_d2".into()],
            created: 1,
        }
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Records::load(dir.path()).unwrap(), Records::default());
        let r = Records { pools: vec![rec()] };
        r.save(dir.path()).unwrap();
        let back = Records::load(dir.path()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.pool_of("ata-QEMU_d2").unwrap().name, "tank");
        assert!(back.pool_of("nvme-x").is_none());
    }

    #[test]
    fn corrupt_records_are_an_error_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Records::path(dir.path()), b"{nope").unwrap();
        assert!(matches!(
            Records::load(dir.path()),
            Err(StorageError::Records(..))
        ));
    }
}
