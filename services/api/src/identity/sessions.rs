//! Browser sessions: random ids (kept only as SHA-256) with a CSRF token and an expiry.

use crate::secret::{digest, random_hex, RandomError};
use cairn_tasks::now_s;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lasts from login.
pub const TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept per user; the oldest goes first.
pub const MAX_PER_USER: usize = 32;

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session id (the map key).
    pub key: String,
    pub user: String,
    pub csrf: String,
    /// Unix seconds.
    pub expires: u64,
    created: Instant,
    deadline: Instant,
}

/// What login hands to the client.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The cookie value (never stored).
    pub id: String,
    pub session: Session,
}

/// Sessions in memory: a cairnd restart signs everyone out.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(TTL)
    }
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Start a session for `user` with fresh id and CSRF token.
    pub fn create(&self, user: &str) -> Result<NewSession, RandomError> {
        let id = random_hex()?;
        let now = Instant::now();
        let session = Session {
            key: digest(&id),
            user: user.to_string(),
            csrf: random_hex()?,
            expires: now_s() + self.ttl.as_secs(),
            created: now,
            deadline: now + self.ttl,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.deadline > now);
        let mut mine: Vec<(Instant, String)> = map
            .values()
            .filter(|s| s.user == user)
            .map(|s| (s.created, s.key.clone()))
            .collect();
        if mine.len() >= MAX_PER_USER {
            mine.sort();
            for (_, k) in &mine[..=mine.len() - MAX_PER_USER] {
                map.remove(k);
            }
        }
        map.insert(session.key.clone(), session.clone());
        Ok(NewSession { id, session })
    }

    /// The live session with this cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        let key = digest(id);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&key) {
            Some(s) if s.deadline > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Whether the session with this key (SHA-256 of the id) is still live.
    pub fn is_live(&self, key: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).is_some_and(|s| s.deadline > Instant::now())
    }

    /// End the session with this key (SHA-256 of the id).
    pub fn revoke_key(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }

    /// End every session of `user` except the one with key `keep`.
    pub fn revoke_user(&self, user: &str, keep: Option<&str>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, s| s.user != user || Some(k.as_str()) == keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_get_revoke() {
        let s = Sessions::default();
        let a = s.create("admin").unwrap();
        assert_eq!(a.session.key, digest(&a.id));
        let got = s.get(&a.id).unwrap();
        assert_eq!(got.user, "admin");
        assert_eq!(got.csrf.len(), 64);
        assert_ne!(got.csrf, a.id);
        assert!(
            s.get(&a.session.key).is_none(),
            "the stored key is not a valid id"
        );
        assert!(s.is_live(&a.session.key));
        s.revoke_key(&a.session.key);
        assert!(s.get(&a.id).is_none());
        assert!(!s.is_live(&a.session.key));
    }

    #[test]
    fn expiry() {
        let s = Sessions::new(Duration::from_millis(30));
        let a = s.create("admin").unwrap();
        assert!(s.get(&a.id).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&a.id).is_none());
    }

    #[test]
    fn revoke_others_and_cap() {
        let s = Sessions::default();
        let a = s.create("admin").unwrap();
        let b = s.create("admin").unwrap();
        s.revoke_user("admin", Some(&b.session.key));
        assert!(s.get(&a.id).is_none());
        assert!(s.get(&b.id).is_some());
        let all: Vec<_> = (0..MAX_PER_USER + 3)
            .map(|_| s.create("admin").unwrap())
            .collect();
        assert!(s.get(&all[0].id).is_none(), "oldest dropped");
        assert!(s.get(&all[all.len() - 1].id).is_some());
        assert_eq!(s.map.lock().unwrap().len(), MAX_PER_USER);
    }
}
