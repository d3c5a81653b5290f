//! API tokens for the CLI: 256-bit random, stored as SHA-256 (`tokens.json` on STATE), each
//! with a scope, an expiry and (when a token made it) the parent it dies with.

use crate::clock::Clock;
use crate::secret::{ct_eq, digest, random_hex};
use cairn_core::store::{self, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// File name under the state directory.
pub const FILE_NAME: &str = "tokens.json";
/// Prefix of every token, so a leaked one is recognisable.
pub const PREFIX: &str = "cairn_";
/// Most tokens per user.
pub const MAX_PER_USER: usize = 64;
/// How long a token lasts unless its creator says otherwise, in days.
pub const DEFAULT_DAYS: u32 = 90;
/// The longest and shortest lifetimes one may ask for, in days.
pub const MIN_DAYS: u32 = 1;
pub const MAX_DAYS: u32 = 3650;
const DAY_S: u64 = 86_400;

/// What a token may do.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Only GET and HEAD.
    ReadOnly,
    /// Everything its user may do.
    #[default]
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReadOnly => "read_only",
            Scope::Admin => "admin",
        }
    }
}

/// A token as listed (never with the secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub user: String,
    /// Unix seconds.
    pub created: u64,
    /// Entries written before scopes existed are admin tokens.
    #[serde(default)]
    pub scope: Scope,
    /// Unix seconds after which the token is refused (0 in entries written before tokens
    /// expired: read as `created` + [`DEFAULT_DAYS`]).
    #[serde(default)]
    pub expires: u64,
    /// The id of the token that made this one (revoking it revokes this one too).
    #[serde(default)]
    pub parent: Option<String>,
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
    #[error("the token making this one was revoked or has expired")]
    ParentGone,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] crate::secret::RandomError),
}

/// What a secret turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Valid(TokenInfo),
    /// It was a token, but it has expired (and is now dropped from the store).
    Expired(TokenInfo),
    Unknown,
}

/// What a new token is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewToken<'a> {
    pub user: &'a str,
    pub name: &'a str,
    pub scope: Scope,
    pub days: u32,
    /// The token making this one: the new one's scope and expiry are at most its own.
    pub parent: Option<&'a TokenInfo>,
}

/// The token database.
pub struct Tokens {
    path: PathBuf,
    clock: Clock,
    doc: Mutex<Doc>,
}

impl Tokens {
    pub fn open(state_dir: &Path, clock: Clock) -> Result<Self, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let mut doc: Doc = store::load_or_quarantine(&path)?.unwrap_or_default();
        for t in &mut doc.tokens {
            if t.info.expires == 0 {
                t.info.expires = t.info.created + u64::from(DEFAULT_DAYS) * DAY_S;
            }
        }
        Ok(Tokens {
            path,
            clock,
            doc: Mutex::new(doc),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Doc> {
        self.doc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replace the document with `tokens`, on disk first.
    fn commit(&self, doc: &mut Doc, tokens: Vec<Stored>) -> Result<(), StoreError> {
        let next = Doc { tokens };
        store::save(&self.path, &next)?;
        *doc = next;
        Ok(())
    }

    /// Make a token; the secret is returned once and only its digest is kept. Expired
    /// tokens are dropped on the way.
    pub fn create(&self, new: NewToken<'_>) -> Result<(TokenInfo, String), TokenError> {
        let secret = format!("{PREFIX}{}", random_hex()?);
        let id = random_hex()?[..16].to_string();
        let now = self.clock.now_s();
        let mut info = TokenInfo {
            id,
            name: new.name.to_string(),
            user: new.user.to_string(),
            created: now,
            scope: new.scope,
            expires: now + u64::from(new.days.clamp(MIN_DAYS, MAX_DAYS)) * DAY_S,
            parent: None,
        };
        let mut doc = self.lock();
        let mut tokens: Vec<Stored> = doc
            .tokens
            .iter()
            .filter(|t| t.info.expires > now)
            .cloned()
            .collect();
        if let Some(parent) = new.parent {
            let live = tokens
                .iter()
                .find(|t| t.info.id == parent.id)
                .ok_or(TokenError::ParentGone)?;
            info.scope = info.scope.min(live.info.scope);
            info.expires = info.expires.min(live.info.expires);
            info.parent = Some(parent.id.clone());
        }
        if tokens.iter().filter(|t| t.info.user == new.user).count() >= MAX_PER_USER {
            return Err(TokenError::TooMany(new.user.to_string()));
        }
        tokens.push(Stored {
            info: info.clone(),
            hash: digest(&secret),
        });
        self.commit(&mut doc, tokens)?;
        Ok((info, secret))
    }

    /// The user's tokens that have not expired, oldest first.
    pub fn list(&self, user: &str) -> Vec<TokenInfo> {
        let now = self.clock.now_s();
        let doc = self.lock();
        doc.tokens
            .iter()
            .filter(|t| t.info.user == user && t.info.expires > now)
            .map(|t| t.info.clone())
            .collect()
    }

    /// The token with this secret; an expired one is dropped from the store.
    pub fn find(&self, secret: &str) -> Lookup {
        if !secret.starts_with(PREFIX) {
            return Lookup::Unknown;
        }
        let h = digest(secret);
        let now = self.clock.now_s();
        let mut doc = self.lock();
        let Some(t) = doc.tokens.iter().find(|t| ct_eq(&t.hash, &h)) else {
            return Lookup::Unknown;
        };
        let info = t.info.clone();
        if info.expires > now {
            return Lookup::Valid(info);
        }
        let live: Vec<Stored> = doc
            .tokens
            .iter()
            .filter(|t| t.info.expires > now)
            .cloned()
            .collect();
        if let Err(e) = self.commit(&mut doc, live) {
            tracing::warn!("cannot drop expired API tokens: {e}");
        }
        Lookup::Expired(info)
    }

    /// Whether token `id` still exists and has not expired.
    pub fn is_live(&self, id: &str) -> bool {
        let now = self.clock.now_s();
        let doc = self.lock();
        doc.tokens
            .iter()
            .any(|t| t.info.id == id && t.info.expires > now)
    }

    /// Whether token `id` still exists (expired or not).
    pub fn exists(&self, id: &str) -> bool {
        self.lock().tokens.iter().any(|t| t.info.id == id)
    }

    /// Revoke the user's token `id` and every token made from it (and from those);
    /// false when there is none.
    pub fn revoke(&self, user: &str, id: &str) -> Result<bool, StoreError> {
        let mut doc = self.lock();
        if !doc
            .tokens
            .iter()
            .any(|t| t.info.user == user && t.info.id == id)
        {
            return Ok(false);
        }
        let mut gone = vec![id.to_string()];
        loop {
            let more: Vec<String> = doc
                .tokens
                .iter()
                .filter(|t| {
                    t.info.parent.as_ref().is_some_and(|p| gone.contains(p))
                        && !gone.contains(&t.info.id)
                })
                .map(|t| t.info.id.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            gone.extend(more);
        }
        let tokens = doc
            .tokens
            .iter()
            .filter(|t| !gone.contains(&t.info.id))
            .cloned()
            .collect();
        self.commit(&mut doc, tokens)?;
        Ok(true)
    }

    /// Revoke every token of `user` (their password changed); how many there were.
    pub fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        let mut doc = self.lock();
        let tokens: Vec<Stored> = doc
            .tokens
            .iter()
            .filter(|t| t.info.user != user)
            .cloned()
            .collect();
        let n = doc.tokens.len() - tokens.len();
        if n > 0 {
            self.commit(&mut doc, tokens)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn admin<'a>(name: &'a str, parent: Option<&'a TokenInfo>) -> NewToken<'a> {
        NewToken {
            user: "admin",
            name,
            scope: Scope::Admin,
            days: DEFAULT_DAYS,
            parent,
        }
    }

    fn valid(l: Lookup) -> TokenInfo {
        match l {
            Lookup::Valid(t) => t,
            other => panic!("not valid: {other:?}"),
        }
    }

    #[test]
    fn create_find_list_revoke_persist() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokens::open(dir.path(), Clock::system()).unwrap();
        let (info, secret) = t.create(admin("laptop", None)).unwrap();
        assert!(secret.starts_with(PREFIX) && secret.len() == PREFIX.len() + 64);
        assert_eq!(t.find(&secret), Lookup::Valid(info.clone()));
        assert_eq!(t.find("cairn_nope"), Lookup::Unknown);
        assert_eq!(info.scope, Scope::Admin);
        assert_eq!(info.expires, info.created + 90 * DAY_S);
        let stored = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!stored.contains(&secret), "only the digest is stored");
        assert!(stored.contains(&digest(&secret)));
        let again = Tokens::open(dir.path(), Clock::system()).unwrap();
        assert_eq!(again.list("admin"), vec![info.clone()]);
        assert!(again.list("other").is_empty());
        assert!(!again.revoke("other", &info.id).unwrap(), "not theirs");
        assert!(again.is_live(&info.id));
        assert!(again.revoke("admin", &info.id).unwrap());
        assert!(!again.is_live(&info.id));
        assert_eq!(again.find(&secret), Lookup::Unknown);
        assert!(!again.revoke("admin", &info.id).unwrap());
    }

    #[test]
    fn entries_without_scope_or_expiry_load_as_admin_for_90_days() {
        let dir = tempfile::tempdir().unwrap();
        let secret = format!("{PREFIX}{}", "ab".repeat(32));
        let old = serde_json::json!({"tokens": [{
            "id": "0123456789abcdef", "name": "old", "user": "admin",
            "created": 1_000_000, "hash": digest(&secret)
        }]});
        std::fs::write(dir.path().join(FILE_NAME), old.to_string()).unwrap();
        let clock = Clock::manual(1_000_000_000);
        let t = Tokens::open(dir.path(), clock.clone()).unwrap();
        let info = valid(t.find(&secret));
        assert_eq!(
            (info.scope, info.expires, info.parent),
            (Scope::Admin, 1_000_000 + 90 * DAY_S, None)
        );
        clock.advance(Duration::from_secs(90 * DAY_S));
        assert!(matches!(t.find(&secret), Lookup::Expired(_)));
        assert_eq!(
            t.find(&secret),
            Lookup::Unknown,
            "dropped when found expired"
        );
        let stored = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(!stored.contains("0123456789abcdef"), "{stored}");
    }

    #[test]
    fn children_are_bounded_by_and_die_with_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(1_000_000_000);
        let t = Tokens::open(dir.path(), clock.clone()).unwrap();
        let (parent, _) = t
            .create(NewToken {
                days: 10,
                ..admin("parent", None)
            })
            .unwrap();
        let (child, child_secret) = t
            .create(NewToken {
                days: 3650,
                ..admin("child", Some(&parent))
            })
            .unwrap();
        assert_eq!(child.expires, parent.expires, "not beyond the parent");
        assert_eq!(child.parent.as_deref(), Some(parent.id.as_str()));
        let (grandchild, _) = t
            .create(NewToken {
                scope: Scope::ReadOnly,
                ..admin("grandchild", Some(&child))
            })
            .unwrap();
        assert_eq!(grandchild.scope, Scope::ReadOnly);
        let (other, _) = t.create(admin("other", None)).unwrap();
        assert!(t.revoke("admin", &parent.id).unwrap());
        assert_eq!(t.find(&child_secret), Lookup::Unknown);
        assert!(!t.is_live(&grandchild.id), "all descendants go");
        assert!(t.is_live(&other.id));
        let e = t.create(admin("orphan", Some(&parent))).unwrap_err();
        assert!(matches!(e, TokenError::ParentGone), "{e}");
        assert_eq!(t.revoke_user("admin").unwrap(), 1);
        assert!(!t.is_live(&other.id));
    }
}
