//! The VM records kept on STATE (`<state>/vms/vms.json`), written atomically.

use crate::spec::VmRecord;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A failure to read or write the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid VM store")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot create {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: cairn_core::AtomicWriteError,
    },
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct File {
    vms: BTreeMap<String, VmRecord>,
}

/// Where the records live.
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store under `state_dir` (the directory `vms/` is created if missing).
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let dir = state_dir.join("vms");
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::Dir {
            path: dir.clone(),
            source,
        })?;
        Ok(Store {
            path: dir.join("vms.json"),
        })
    }

    /// Every record (none when the file does not exist yet).
    pub fn load(&self) -> Result<BTreeMap<String, VmRecord>, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice::<File>(&bytes)
                .map(|f| f.vms)
                .map_err(|source| StoreError::Parse {
                    path: self.path.clone(),
                    source,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(StoreError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Replace the records (temp file, fsync, rename, fsync dir).
    pub fn save(&self, vms: &BTreeMap<String, VmRecord>) -> Result<(), StoreError> {
        let file = File { vms: vms.clone() };
        // Serializing plain data to JSON cannot fail.
        let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
        cairn_core::write_atomic(&self.path, &bytes, 0o600).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_empty() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert!(s.load().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(
            "a".to_string(),
            VmRecord {
                name: "a".into(),
                uuid: "u".into(),
                vcpus: 1,
                memory_mib: 32,
                disks: vec![],
                nics: vec![],
                boot: vec![],
                cpu_model: "qemu64".into(),
                machine: crate::spec::Machine::Pc,
                autostart: true,
                snapshots: Default::default(),
            },
        );
        s.save(&m).unwrap();
        assert_eq!(s.load().unwrap(), m);
        std::fs::write(dir.path().join("vms/vms.json"), b"{nope").unwrap();
        assert!(matches!(s.load(), Err(StoreError::Parse { .. })));
    }
}
