//! Atomic file writes: temp file, fsync, rename, fsync of the directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A failed atomic write.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    #[error("{}: has no parent directory", path.display())]
    NoParent { path: PathBuf },
    #[error("{}: cannot write temporary file", path.display())]
    WriteTemp {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot rename into place", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: cannot sync directory", path.display())]
    SyncDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Replaces `path` with `data` so that a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), AtomicError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().ok_or_else(|| AtomicError::NoParent {
        path: path.to_path_buf(),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()
    };
    if let Err(source) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(AtomicError::WriteTemp { path: tmp, source });
    }
    if let Err(source) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(AtomicError::Rename {
            path: path.to_path_buf(),
            source,
        });
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| AtomicError::SyncDir {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("machine-id");
        write_atomic(&p, b"one\n", 0o444).unwrap();
        write_atomic(&p, b"two\n", 0o444).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn missing_dir_is_an_error() {
        let e = write_atomic(Path::new("/nonexistent-dir/x"), b"", 0o644).unwrap_err();
        assert!(matches!(e, AtomicError::WriteTemp { .. }), "{e}");
    }
}
