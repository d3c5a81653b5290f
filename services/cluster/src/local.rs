//! This node's cluster state on STATE: `state.json` and the PEM files beside it.

use crate::types::{ClusterInfo, Role};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The witness marker's file name in the cluster directory.
pub const WITNESS_MARKER: &str = "witness";

/// What this node remembers of its cluster (absent file: standalone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalState {
    pub cluster: ClusterInfo,
    /// This node's name in the cluster.
    pub node_name: String,
    /// This node's cluster address.
    pub address: IpAddr,
    pub role: Role,
    /// The voters' etcd client endpoints (`https://ip:2379`).
    pub etcd_endpoints: Vec<String>,
    pub etcd_heartbeat_ms: u64,
    pub etcd_election_ms: u64,
}

/// Why the local state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: cairn_base::atomic::AtomicWriteError,
    },
    #[error("cannot create {}", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a cluster state", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The files of the cluster directory (`/var/lib/cairn/cluster`).
#[derive(Debug, Clone)]
pub struct LocalFiles {
    pub dir: PathBuf,
}

impl LocalFiles {
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn node_cert(&self) -> PathBuf {
        self.dir.join("node.pem")
    }
    pub fn node_key(&self) -> PathBuf {
        self.dir.join("node.key")
    }
    /// etcd's config; its existence is cairn-init's condition for starting etcd at boot.
    pub fn etcd_conf(&self) -> PathBuf {
        self.dir.join("etcd.yaml")
    }
    /// The revocation list etcd checks client and peer certificates against (PEM).
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// The witness marker: present while this node is a witness. cairn-init starts neither
    /// libvirtd nor virtlogd at boot while it exists (`condition_path_absent`), and cairnd
    /// starts only its API and the cluster domain.
    pub fn witness(&self) -> PathBuf {
        self.dir.join(WITNESS_MARKER)
    }

    /// Whether this node is set up as a witness (the marker exists).
    pub fn is_witness(&self) -> bool {
        self.witness().exists()
    }

    /// The state, `None` when standalone.
    pub fn load(&self) -> Result<Option<LocalState>, LocalError> {
        let path = self.state();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| LocalError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LocalError::Read { path, source }),
        }
    }

    /// Write the state atomically (written last: a node is a member once it exists).
    pub fn save(&self, state: &LocalState) -> Result<(), LocalError> {
        let json = serde_json::to_vec_pretty(state).map_err(|source| LocalError::Parse {
            path: self.state(),
            source,
        })?;
        self.write(&self.state(), &json, 0o600)
    }

    /// Write one file of the directory atomically with `mode` (keys: 0600).
    pub fn write(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), LocalError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| LocalError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        cairn_base::atomic::write_atomic(path, data, mode).map_err(|source| LocalError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a PEM file of the directory.
    pub fn read(&self, path: &Path) -> Result<String, LocalError> {
        std::fs::read_to_string(path).map_err(|source| LocalError::Read {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Forget the cluster (after a leave or a removal): the state first, then the rest.
    pub fn clear(&self) -> Result<(), LocalError> {
        for path in [
            self.state(),
            self.witness(),
            self.etcd_conf(),
            self.crl(),
            self.node_cert(),
            self.node_key(),
            self.ca_cert(),
            self.ca_key(),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(LocalError::Read { path, source }),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LocalState {
        LocalState {
            cluster: ClusterInfo {
                name: "lab".into(),
                id: "abc".into(),
                ca_fingerprint: "sha256:00".into(),
                created_at: 1,
            },
            node_name: "node1".into(),
            address: "10.77.0.11".parse().unwrap(),
            role: Role::Voter,
            etcd_endpoints: vec!["https://10.77.0.11:2379".into()],
            etcd_heartbeat_ms: 200,
            etcd_election_ms: 2000,
        }
    }

    #[test]
    fn absent_state_is_standalone_and_a_saved_one_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles {
            dir: dir.path().join("cluster"),
        };
        assert_eq!(files.load().unwrap(), None);
        files.save(&sample()).unwrap();
        assert_eq!(files.load().unwrap(), Some(sample()));
        files.clear().unwrap();
        assert_eq!(files.load().unwrap(), None);
    }

    #[test]
    fn the_witness_marker_is_written_and_cleared_with_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles {
            dir: dir.path().join("cluster"),
        };
        assert!(!files.is_witness());
        files.write(&files.witness(), b"witness\n", 0o644).unwrap();
        files.save(&sample()).unwrap();
        assert!(files.is_witness());
        assert_eq!(files.witness(), dir.path().join("cluster/witness"));
        files.clear().unwrap();
        assert!(!files.is_witness());
    }

    #[test]
    fn a_garbled_state_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles {
            dir: dir.path().to_path_buf(),
        };
        std::fs::write(files.state(), "{").unwrap();
        let err = files.load().unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
