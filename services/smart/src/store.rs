//! Small JSON state files under `<state>/smart/`, read leniently and written atomically.

use crate::error::SmartError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Read `path` as JSON; a missing file is `None`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, SmartError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SmartError::Decode(path.to_path_buf(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SmartError::Read(path.to_path_buf(), e)),
    }
}

/// Replace `path` with `value` as JSON, atomically.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), SmartError> {
    let bytes =
        serde_json::to_vec_pretty(value).map_err(|e| SmartError::Encode(path.to_path_buf(), e))?;
    cairn_core::write_atomic(path, &bytes, 0o644)
        .map_err(|e| SmartError::Write(path.to_path_buf(), e))
}

/// Create `dir` (and parents).
pub fn ensure_dir(dir: &Path) -> Result<PathBuf, SmartError> {
    std::fs::create_dir_all(dir).map_err(|e| SmartError::StateDir(dir.to_path_buf(), e))?;
    Ok(dir.to_path_buf())
}

/// A disk id as a file name: anything but `[A-Za-z0-9._-]` becomes `%XX`, and a leading dot
/// is escaped, so every id maps to one plain file name and back.
pub fn file_name(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    for (i, b) in id.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_safe_file_names() {
        assert_eq!(
            file_name("ata-QEMU_HARDDISK_QM0001"),
            "ata-QEMU_HARDDISK_QM0001"
        );
        assert_eq!(file_name("../etc/x"), "%2E.%2Fetc%2Fx");
        assert_eq!(file_name("a b"), "a%20b");
    }

    #[test]
    fn save_then_load_round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        assert_eq!(load::<Vec<u32>>(&p).unwrap(), None);
        save(&p, &vec![1u32, 2]).unwrap();
        assert_eq!(load::<Vec<u32>>(&p).unwrap(), Some(vec![1, 2]));
        std::fs::write(&p, b"{").unwrap();
        assert!(matches!(load::<Vec<u32>>(&p), Err(SmartError::Decode(..))));
    }
}
