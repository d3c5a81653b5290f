//! Where the accounts record lives, behind a narrow compare-and-swap trait: a local JSON
//! document on STATE today, a key in the cluster's settings store (etcd) with issue 17.

use crate::accounts::Accounts;
use crate::error::FilesError;
use std::path::PathBuf;
use std::sync::Mutex;

/// Keeps the one accounts record.
pub trait AccountStore: Send + Sync {
    /// The current record (the empty one when none was saved yet).
    fn load(&self) -> Result<Accounts, FilesError>;
    /// Replace the record if its revision is still `accounts.revision - 1`
    /// (an etcd transaction comparing the key's value does the same).
    fn replace(&self, accounts: &Accounts) -> Result<(), FilesError>;
}

/// The record as `<state>/files/accounts.json` (atomic writes, mode 0600).
pub struct LocalAccountStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl LocalAccountStore {
    /// A store keeping its record at `path`.
    pub fn new(path: impl Into<PathBuf>) -> LocalAccountStore {
        LocalAccountStore {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

impl AccountStore for LocalAccountStore {
    fn load(&self) -> Result<Accounts, FilesError> {
        Ok(cairn_core::store::load(&self.path)?.unwrap_or_default())
    }

    fn replace(&self, accounts: &Accounts) -> Result<(), FilesError> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.load()?;
        if current.revision + 1 != accounts.revision {
            return Err(FilesError::Stale {
                expected: accounts.revision.saturating_sub(1),
                found: current.revision,
            });
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FilesError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        cairn_core::store::save(&self.path, accounts)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_is_a_compare_and_swap_on_the_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAccountStore::new(dir.path().join("files/accounts.json"));
        let mut a = store.load().unwrap();
        assert_eq!(a, Accounts::default());
        a.create_group("team", &[]).unwrap();
        a.revision += 1;
        store.replace(&a).unwrap();
        assert_eq!(store.load().unwrap(), a);
        // A writer that read revision 0 loses.
        let mut late = Accounts::default();
        late.create_group("other", &[]).unwrap();
        late.revision = 1;
        assert!(matches!(
            store.replace(&late).unwrap_err(),
            FilesError::Stale {
                expected: 0,
                found: 1
            }
        ));
        assert_eq!(store.load().unwrap(), a);
    }
}
