//! API tokens for the CLI: 256-bit random, stored as SHA-256 (`tokens.json` on STATE).

use crate::events::now_s;
use crate::secret::{ct_eq, digest, random_hex};
use crate::store::{self, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name under the state directory.
pub const FILE_NAME: &str = "tokens.json";
/// Prefix of every token, so a leaked one is recognisable.
pub const PREFIX: &str = "cairn_";
/// Most tokens per user.
pub const MAX_PER_USER: usize = 64;

/// A token as listed (never with the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub user: String,
    /// Unix seconds.
    pub created: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Stored {
    #[serde(flatten)]
    info: TokenInfo,
    /// SHA-256 of the token, hex.
    hash: String,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Doc {
    tokens: Vec<Stored>,
}

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("user {0} already has {MAX_PER_USER} tokens; revoke some first")]
    TooMany(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The token database.
pub struct Tokens {
    path: PathBuf,
    doc: Mutex<Doc>,
}

impl Tokens {
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let doc = store::load_or_quarantine(&path)?.unwrap_or_default();
        Ok(Tokens {
            path,
            doc: Mutex::new(doc),
        })
    }

    /// Make a token; the secret is returned once and only its digest is kept.
    pub fn create(&self, user: &str, name: &str) -> Result<(TokenInfo, String), TokenError> {
        let secret = format!("{PREFIX}{}", random_hex().map_err(StoreError::from)?);
        let id = random_hex().map_err(StoreError::from)?[..16].to_string();
        let info = TokenInfo {
            id,
            name: name.to_string(),
            user: user.to_string(),
            created: now_s(),
        };
        let mut doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        if doc.tokens.iter().filter(|t| t.info.user == user).count() >= MAX_PER_USER {
            return Err(TokenError::TooMany(user.to_string()));
        }
        let mut tokens = doc.tokens.clone();
        tokens.push(Stored {
            info: info.clone(),
            hash: digest(&secret),
        });
        let next = Doc { tokens };
        store::save(&self.path, &next)?;
        *doc = next;
        Ok((info, secret))
    }

    /// The user's tokens, oldest first.
    pub fn list(&self, user: &str) -> Vec<TokenInfo> {
        let doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        doc.tokens
            .iter()
            .filter(|t| t.info.user == user)
            .map(|t| t.info.clone())
            .collect()
    }

    /// The token with this secret, if it exists.
    pub fn find(&self, secret: &str) -> Option<TokenInfo> {
        if !secret.starts_with(PREFIX) {
            return None;
        }
        let h = digest(secret);
        let doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        doc.tokens
            .iter()
            .find(|t| ct_eq(&t.hash, &h))
            .map(|t| t.info.clone())
    }

    /// Whether token `id` still exists.
    pub fn exists(&self, id: &str) -> bool {
        let doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        doc.tokens.iter().any(|t| t.info.id == id)
    }

    /// Revoke the user's token `id`; false when there is none.
    pub fn revoke(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let mut doc = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        let tokens: Vec<Stored> = doc
            .tokens
            .iter()
            .filter(|t| !(t.info.user == user && t.info.id == id))
            .cloned()
            .collect();
        if tokens.len() == doc.tokens.len() {
            return Ok(false);
        }
        let next = Doc { tokens };
        store::save(&self.path, &next)?;
        *doc = next;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_find_list_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokens::open(dir.path()).unwrap();
        let (info, secret) = t.create("admin", "laptop").unwrap();
        assert!(secret.starts_with(PREFIX) && secret.len() == PREFIX.len() + 64);
        assert_eq!(t.find(&secret), Some(info.clone()));
        assert_eq!(t.find("cairn_nope"), None);
        let stored = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!stored.contains(&secret), "only the digest is stored");
        assert!(stored.contains(&digest(&secret)));
        let again = Tokens::open(dir.path()).unwrap();
        assert_eq!(again.list("admin"), vec![info.clone()]);
        assert!(again.list("other").is_empty());
        assert!(!again.revoke("other", &info.id).unwrap(), "not theirs");
        assert!(again.exists(&info.id));
        assert!(again.revoke("admin", &info.id).unwrap());
        assert!(!again.exists(&info.id));
        assert!(again.find(&secret).is_none());
        assert!(!again.revoke("admin", &info.id).unwrap());
    }
}
