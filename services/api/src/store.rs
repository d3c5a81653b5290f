//! Small JSON documents on STATE, written atomically with mode 0600.

use std::path::{Path, PathBuf};

/// Why a stored document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0} is not valid: {1}")]
    Parse(PathBuf, #[source] serde_json::Error),
    #[error("cannot encode {0}")]
    Encode(PathBuf, #[source] serde_json::Error),
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] cairn_core::AtomicWriteError),
    #[error("cannot remove {0}")]
    Remove(PathBuf, #[source] std::io::Error),
    #[error(transparent)]
    Random(#[from] crate::secret::RandomError),
}

/// Read a document; `None` when the file does not exist.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Parse(path.to_path_buf(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Read(path.to_path_buf(), e)),
    }
}

/// Replace a document atomically (readable by root only).
pub fn save<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| StoreError::Encode(path.to_path_buf(), e))?;
    bytes.push(b'\n');
    cairn_core::write_atomic(path, &bytes, 0o600)
        .map_err(|e| StoreError::Write(path.to_path_buf(), e))
}

/// Remove a file; a missing file is fine.
pub fn remove(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Remove(path.to_path_buf(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doc.json");
        assert_eq!(load::<Vec<u32>>(&p).unwrap(), None);
        save(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(load::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(load::<Vec<u32>>(&p), Err(StoreError::Parse(..))));
        remove(&p).unwrap();
        remove(&p).unwrap();
    }
}
