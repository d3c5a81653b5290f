//! Local users and their argon2id password hashes (`users.json` on STATE).

use cairn_core::store::{self, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name under the state directory.
pub const FILE_NAME: &str = "users.json";
/// The administrator account made by setup.
pub const ADMIN: &str = "admin";

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Doc {
    users: Vec<User>,
}

/// The user database.
pub struct Users {
    path: PathBuf,
    doc: Mutex<Doc>,
}

impl Users {
    /// Load the users from `state_dir` (none yet before setup).
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let doc = store::load_or_quarantine(&path)?.unwrap_or_default();
        Ok(Users {
            path,
            doc: Mutex::new(doc),
        })
    }

    /// The stored hash of a user's password.
    pub fn password_hash(&self, name: &str) -> Option<String> {
        let doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        doc.users
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.password_hash.clone())
    }

    /// Create the user or replace its password hash, and persist.
    pub fn set_password_hash(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        let mut doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        let mut users = doc.users.clone();
        match users.iter_mut().find(|u| u.name == name) {
            Some(u) => u.password_hash = hash.to_string(),
            None => users.push(User {
                name: name.to_string(),
                password_hash: hash.to_string(),
            }),
        }
        let next = Doc { users };
        store::save(&self.path, &next)?;
        *doc = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_update_persist() {
        let dir = tempfile::tempdir().unwrap();
        let u = Users::open(dir.path()).unwrap();
        assert_eq!(u.password_hash(ADMIN), None);
        u.set_password_hash(ADMIN, "h1").unwrap();
        u.set_password_hash(ADMIN, "h2").unwrap();
        let again = Users::open(dir.path()).unwrap();
        assert_eq!(again.password_hash(ADMIN).as_deref(), Some("h2"));
        assert_eq!(again.doc.lock().unwrap().users.len(), 1);
    }
}
