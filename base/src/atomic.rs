//! Atomic file replacement: temp file, fsync, rename, fsync of the directory.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why an atomic write failed; each variant names the step and the path involved.
#[derive(Debug)]
pub enum AtomicWriteError {
    /// The target path has no parent directory or no file name (e.g. `/`).
    BadPath(PathBuf),
    /// The temporary file beside the target could not be created.
    CreateTemp(PathBuf, std::io::Error),
    /// Writing the temporary file, or setting its mode, failed.
    Write(PathBuf, std::io::Error),
    /// fsync of the temporary file failed: its content may not be on disk.
    SyncFile(PathBuf, std::io::Error),
    /// The temporary file (first path) could not replace the target (second path).
    Rename(PathBuf, PathBuf, std::io::Error),
    /// fsync of the directory failed: the rename may not survive a crash.
    SyncDir(PathBuf, std::io::Error),
}

impl fmt::Display for AtomicWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AtomicWriteError::BadPath(p) => {
                write!(f, "{} has no parent directory or file name", p.display())
            }
            AtomicWriteError::CreateTemp(p, _) => {
                write!(f, "cannot create temporary file {}", p.display())
            }
            AtomicWriteError::Write(p, _) => {
                write!(f, "cannot write temporary file {}", p.display())
            }
            AtomicWriteError::SyncFile(p, _) => {
                write!(f, "cannot fsync temporary file {}", p.display())
            }
            AtomicWriteError::Rename(from, to, _) => {
                write!(f, "cannot rename {} over {}", from.display(), to.display())
            }
            AtomicWriteError::SyncDir(p, _) => write!(f, "cannot fsync directory {}", p.display()),
        }
    }
}

impl std::error::Error for AtomicWriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AtomicWriteError::BadPath(_) => None,
            AtomicWriteError::CreateTemp(_, e)
            | AtomicWriteError::Write(_, e)
            | AtomicWriteError::SyncFile(_, e)
            | AtomicWriteError::Rename(_, _, e)
            | AtomicWriteError::SyncDir(_, e) => Some(e),
        }
    }
}

/// Replace `path` with `data` so that a crash at any point leaves either the old or the new
/// content. The new file gets permission bits `mode` (e.g. `0o600` for keys); the temporary
/// file is created with that mode, so the content is never readable more widely.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) => (d, n),
        _ => return Err(AtomicWriteError::BadPath(path.to_path_buf())),
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A stale temp file from a crashed earlier attempt with the same pid is simply replaced.
    let _ = fs::remove_file(&tmp);
    let result = write_temp(&tmp, data, mode).and_then(|()| {
        fs::rename(&tmp, path)
            .map_err(|e| AtomicWriteError::Rename(tmp.clone(), path.to_path_buf(), e))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir).map_err(|e| AtomicWriteError::SyncDir(dir.to_path_buf(), e))
}

fn write_temp(tmp: &Path, data: &[u8], mode: u32) -> Result<(), AtomicWriteError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(|e| AtomicWriteError::CreateTemp(tmp.to_path_buf(), e))?;
    // The umask may have removed bits from `mode`; set them exactly.
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| AtomicWriteError::Write(tmp.to_path_buf(), e))?;
    file.write_all(data)
        .map_err(|e| AtomicWriteError::Write(tmp.to_path_buf(), e))?;
    file.sync_all()
        .map_err(|e| AtomicWriteError::SyncFile(tmp.to_path_buf(), e))
}

/// fsync a directory so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_new_file_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        write_atomic(&p, b"secret", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"secret");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn replaces_existing_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new content", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn missing_directory_is_an_error_and_old_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope").join("f");
        let err = write_atomic(&p, b"x", 0o644).unwrap_err();
        assert!(matches!(err, AtomicWriteError::CreateTemp(..)), "{err}");
    }

    #[test]
    fn rename_over_directory_fails_and_cleans_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("inner"), b"x").unwrap();
        let err = write_atomic(&p, b"x", 0o644).unwrap_err();
        assert!(matches!(err, AtomicWriteError::Rename(..)), "{err}");
        let count = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 1, "temp file left behind");
    }

    #[test]
    fn path_without_file_name_is_rejected() {
        let err = write_atomic(Path::new("/"), b"x", 0o644).unwrap_err();
        assert!(matches!(err, AtomicWriteError::BadPath(_)));
    }

    #[test]
    fn replaces_a_read_only_file_and_leaves_no_temp() {
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
        assert!(matches!(e, AtomicWriteError::CreateTemp(..)), "{e}");
    }
}
