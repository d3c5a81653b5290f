//! Blessing the booted entry: rename `cairn-b+2-1.conf` to `cairn-b.conf` on the ESP.

use crate::entry::{EntryName, EntryNameError};
use std::io;
use std::path::{Component, Path, PathBuf};

/// The few filesystem operations blessing and entry listing need, so they can be tested
/// against a recording double.
pub trait EspFs {
    /// Whether a file exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// rename(2).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync a directory so a rename in it is durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The file names in a directory.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealEspFs;

impl EspFs for RealEspFs {
    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        cairn_base::atomic::sync_dir(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
}

/// What blessing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlessOutcome {
    /// The entry was renamed to drop its counter.
    Blessed { from: PathBuf, to: PathBuf },
    /// The counted name is gone and the blessed name exists: an earlier run (cairnd restarted
    /// during this boot) already blessed it.
    AlreadyBlessed { path: PathBuf },
    /// The booted entry had no counter in its name: nothing to do.
    NotCounted { path: PathBuf },
}

/// Why the booted entry could not be blessed.
#[derive(Debug, thiserror::Error)]
pub enum BlessError {
    #[error("LoaderBootCountPath {0:?} is not a relative path of loader/entries/NAME.conf")]
    BadCountPath(String),
    #[error("LoaderBootCountPath names a file that is not a loader entry")]
    BadEntryName(#[source] EntryNameError),
    #[error("cannot check for {0}")]
    Stat(PathBuf, #[source] io::Error),
    #[error("neither the booted entry {0} nor its blessed name {1} exists on the ESP")]
    Missing(PathBuf, PathBuf),
    #[error("blessed entry {1} already exists beside the counted {0}; refusing to overwrite")]
    BothExist(PathBuf, PathBuf),
    #[error("cannot rename {0} to {1}")]
    Rename(PathBuf, PathBuf, #[source] io::Error),
    #[error("cannot fsync ESP directory {0} after the rename")]
    SyncDir(PathBuf, #[source] io::Error),
}

/// Turn systemd-boot's `\loader\entries\cairn-b+2-1.conf` into a path relative to the ESP
/// root, refusing anything that could leave the ESP.
pub fn count_path_to_relative(value: &str) -> Result<PathBuf, BlessError> {
    let bad = || BlessError::BadCountPath(value.to_string());
    let rel: PathBuf = value
        .trim_start_matches(['\\', '/'])
        .split(['\\', '/'])
        .collect();
    let normal = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !normal || rel.components().count() != 3 || !rel.starts_with("loader/entries") {
        return Err(bad());
    }
    Ok(rel)
}

/// Bless the entry named by `count_path` (the value of LoaderBootCountPath) under the ESP
/// mounted at `esp`.
pub fn bless(esp: &Path, count_path: &str, fs: &dyn EspFs) -> Result<BlessOutcome, BlessError> {
    let rel = count_path_to_relative(count_path)?;
    let file_name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BlessError::BadCountPath(count_path.to_string()))?;
    let entry = EntryName::parse(&file_name).map_err(BlessError::BadEntryName)?;
    let from = esp.join(&rel);
    if entry.counter.is_none() {
        return Ok(BlessOutcome::NotCounted { path: from });
    }
    let dir = from
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| esp.to_path_buf());
    let to = dir.join(entry.blessed_file_name());
    let stat = |p: &Path| {
        fs.exists(p)
            .map_err(|e| BlessError::Stat(p.to_path_buf(), e))
    };
    match (stat(&from)?, stat(&to)?) {
        (false, true) => Ok(BlessOutcome::AlreadyBlessed { path: to }),
        (false, false) => Err(BlessError::Missing(from, to)),
        (true, true) => Err(BlessError::BothExist(from, to)),
        (true, false) => {
            fs.rename(&from, &to)
                .map_err(|e| BlessError::Rename(from.clone(), to.clone(), e))?;
            fs.sync_dir(&dir)
                .map_err(|e| BlessError::SyncDir(dir.clone(), e))?;
            Ok(BlessOutcome::Blessed { from, to })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// In-memory ESP that records every mutating call.
    #[derive(Default)]
    pub(crate) struct RecordingFs {
        pub files: RefCell<BTreeSet<PathBuf>>,
        pub log: RefCell<Vec<String>>,
        pub fail_rename: bool,
    }

    impl RecordingFs {
        pub fn with(files: &[&str]) -> Self {
            let fs = RecordingFs::default();
            for f in files {
                fs.files.borrow_mut().insert(PathBuf::from(f));
            }
            fs
        }
    }

    impl EspFs for RecordingFs {
        fn exists(&self, path: &Path) -> io::Result<bool> {
            Ok(self.files.borrow().contains(path))
        }
        fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("rename {} {}", from.display(), to.display()));
            if self.fail_rename {
                return Err(io::Error::from_raw_os_error(libc::EROFS));
            }
            let mut files = self.files.borrow_mut();
            if !files.remove(from) {
                return Err(io::ErrorKind::NotFound.into());
            }
            files.insert(to.to_path_buf());
            Ok(())
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("sync {}", dir.display()));
            Ok(())
        }
        fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
            let files = self.files.borrow();
            let names: Vec<String> = files
                .iter()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            if names.is_empty() && !files.iter().any(|p| p.starts_with(dir)) {
                return Err(io::ErrorKind::NotFound.into());
            }
            Ok(names)
        }
    }

    const COUNT: &str = r"\loader\entries\cairn-b+2-1.conf";

    #[test]
    fn renames_and_syncs() {
        let fs = RecordingFs::with(&["/esp/loader/entries/cairn-b+2-1.conf"]);
        let out = bless(Path::new("/esp"), COUNT, &fs).unwrap();
        assert_eq!(
            out,
            BlessOutcome::Blessed {
                from: "/esp/loader/entries/cairn-b+2-1.conf".into(),
                to: "/esp/loader/entries/cairn-b.conf".into()
            }
        );
        assert_eq!(
            *fs.log.borrow(),
            vec![
                "rename /esp/loader/entries/cairn-b+2-1.conf /esp/loader/entries/cairn-b.conf",
                "sync /esp/loader/entries"
            ]
        );
        assert!(fs
            .files
            .borrow()
            .contains(Path::new("/esp/loader/entries/cairn-b.conf")));
    }

    #[test]
    fn second_run_in_same_boot_is_already_blessed() {
        let fs = RecordingFs::with(&["/esp/loader/entries/cairn-b.conf"]);
        let out = bless(Path::new("/esp"), COUNT, &fs).unwrap();
        assert!(matches!(out, BlessOutcome::AlreadyBlessed { .. }));
        assert!(fs.log.borrow().is_empty());
    }

    #[test]
    fn uncounted_entry_needs_nothing() {
        let fs = RecordingFs::with(&[]);
        let out = bless(Path::new("/esp"), r"\loader\entries\cairn-a.conf", &fs).unwrap();
        assert!(matches!(out, BlessOutcome::NotCounted { .. }));
        assert!(fs.log.borrow().is_empty());
    }

    #[test]
    fn missing_or_conflicting_files_are_errors() {
        let fs = RecordingFs::with(&[]);
        let err = bless(Path::new("/esp"), COUNT, &fs).unwrap_err();
        assert!(matches!(err, BlessError::Missing(..)), "{err}");
        let fs = RecordingFs::with(&[
            "/esp/loader/entries/cairn-b+2-1.conf",
            "/esp/loader/entries/cairn-b.conf",
        ]);
        let err = bless(Path::new("/esp"), COUNT, &fs).unwrap_err();
        assert!(matches!(err, BlessError::BothExist(..)), "{err}");
        assert!(fs.log.borrow().is_empty());
    }

    #[test]
    fn rename_failure_is_reported() {
        let mut fs = RecordingFs::with(&["/esp/loader/entries/cairn-b+2-1.conf"]);
        fs.fail_rename = true;
        let err = bless(Path::new("/esp"), COUNT, &fs).unwrap_err();
        assert!(matches!(err, BlessError::Rename(..)), "{err}");
    }

    #[test]
    fn count_path_must_stay_in_loader_entries() {
        assert_eq!(
            count_path_to_relative(COUNT).unwrap(),
            PathBuf::from("loader/entries/cairn-b+2-1.conf")
        );
        for bad in [
            r"\loader\entries\..\..\x.conf",
            r"\EFI\x+1.conf",
            "",
            r"\loader\entries",
        ] {
            assert!(count_path_to_relative(bad).is_err(), "{bad}");
        }
        let fs = RecordingFs::with(&[]);
        let err = bless(Path::new("/esp"), r"\loader\entries\x", &fs).unwrap_err();
        assert!(matches!(err, BlessError::BadEntryName(_)));
    }

    #[test]
    fn real_fs_blesses_in_tempdir() {
        let dir = tempfile::tempdir().unwrap();
        let entries = dir.path().join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(entries.join("cairn-b+2-1.conf"), "title x\n").unwrap();
        let out = bless(dir.path(), COUNT, &RealEspFs).unwrap();
        assert!(matches!(out, BlessOutcome::Blessed { .. }));
        assert_eq!(RealEspFs.list_dir(&entries).unwrap(), vec!["cairn-b.conf"]);
    }
}
