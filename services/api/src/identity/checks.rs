//! Who a request is from and what it may do: the principal, how it proved itself, and the
//! CSRF and read-only rules.

use super::error::IdentityError;
use super::sessions::Session;
use super::tokens::{Scope, TokenInfo};
use crate::secret::ct_eq;

/// What a request carries to prove who it is from (as the edge read it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The session cookie's value.
    pub session: Option<&'a str>,
    /// The CSRF header.
    pub csrf: Option<&'a str>,
}

/// How the request proved who it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session (cookie).
    Session(Session),
    /// An API token (bearer).
    Token(TokenInfo),
}

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's name.
    pub user: String,
    /// The session or token it came with.
    pub via: Via,
}

/// Whether a method changes state (and so needs the CSRF token with a session).
pub fn is_state_changing(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS")
}

/// Whether a read-only token may make a request with this method (GET and HEAD only).
pub fn read_only_allows(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// May `p` make a request with `method`: a session needs its CSRF token (`csrf`) to change
/// anything, a read-only token may only read.
pub fn allow(p: &Principal, method: &str, csrf: Option<&str>) -> Result<(), IdentityError> {
    match &p.via {
        Via::Session(s) => {
            if is_state_changing(method) && !ct_eq(csrf.unwrap_or_default(), &s.csrf) {
                return Err(IdentityError::Csrf);
            }
        }
        Via::Token(t) => {
            if t.scope == Scope::ReadOnly && !read_only_allows(method) {
                return Err(IdentityError::ReadOnly(method.to_string()));
            }
        }
    }
    Ok(())
}
