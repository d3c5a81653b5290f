//! Small JSON documents on STATE (users, tokens, alert channels), written atomically with
//! mode 0600; a damaged one is moved aside at start-up.

use std::path::{Path, PathBuf};

/// Why a stored document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// The file is not the JSON document expected.
    #[error("{0} is not valid: {1}")]
    Parse(PathBuf, #[source] serde_json::Error),
    /// The value could not be encoded as JSON.
    #[error("cannot encode {0}")]
    Encode(PathBuf, #[source] serde_json::Error),
    /// The atomic replace failed.
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] crate::AtomicWriteError),
    /// The file could not be removed or moved aside.
    #[error("cannot remove {0}")]
    Remove(PathBuf, #[source] std::io::Error),
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

/// Read a document at start-up. One that does not parse is moved aside to
/// `NAME.corrupt.UNIXTIME` and treated as absent, so a damaged file degrades one feature
/// instead of keeping cairnd (and with it the boot blessing) down.
pub fn load_or_quarantine<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, StoreError> {
    match load(path) {
        Err(StoreError::Parse(_, e)) => {
            let mut aside = path.as_os_str().to_owned();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            aside.push(format!(".corrupt.{now}"));
            let aside = PathBuf::from(aside);
            std::fs::rename(path, &aside).map_err(|e| StoreError::Remove(path.to_path_buf(), e))?;
            tracing::error!(
                "{} is damaged ({e}); moved it to {} and started without it",
                path.display(),
                aside.display()
            );
            Ok(None)
        }
        other => other,
    }
}

/// Replace a document atomically (readable by root only).
pub fn save<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|e| StoreError::Encode(path.to_path_buf(), e))?;
    bytes.push(b'\n');
    crate::write_atomic(path, &bytes, 0o600).map_err(|e| StoreError::Write(path.to_path_buf(), e))
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
        assert_eq!(load_or_quarantine::<Vec<u32>>(&p).unwrap(), None);
        assert!(!p.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(aside.len(), 1);
        assert!(aside[0].starts_with("doc.json.corrupt."), "{aside:?}");
        save(&p, &vec![3u32]).unwrap();
        assert_eq!(load_or_quarantine::<Vec<u32>>(&p).unwrap(), Some(vec![3]));
        remove(&p).unwrap();
        remove(&p).unwrap();
    }
}
