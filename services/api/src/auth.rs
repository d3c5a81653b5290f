//! The edge of identity: read a request's credentials, ask [`Identity`](crate::identity::Identity)
//! who it is from, set the session cookie, and answer identity's refusals with their HTTP
//! status and code.

use crate::error::ApiError;
use crate::identity::sessions::NewSession;
use crate::identity::{Credentials, IdentityError, Principal};
use crate::request::{cookie, header};
use crate::response::{json, Body};
use crate::state::ApiState;
use hyper::{header as h, HeaderMap, Method, Response, StatusCode};
use std::time::Duration;

/// The session cookie.
pub const COOKIE: &str = "cairn_session";
/// The header carrying the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The credentials a request carries.
pub fn credentials(headers: &HeaderMap) -> Credentials<'_> {
    Credentials {
        authorization: header(headers, h::AUTHORIZATION.as_str()),
        session: cookie(headers, COOKIE),
        csrf: header(headers, CSRF_HEADER),
    }
}

/// Who sent the request: an API token (`Authorization: Bearer`) or a session cookie.
/// A bearer token that is not valid is an error, not a fallback to the cookie.
pub fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    Ok(state.identity.authenticate(&credentials(headers))?)
}

/// A check that the principal's session or token is still valid (for long streams).
pub fn still_valid(state: &ApiState, p: &Principal) -> impl Fn() -> bool + Send + 'static {
    state.identity.still_valid(p)
}

/// The signed-in user, or 401; 403 `csrf` for a state-changing request with a session
/// cookie but without the session's CSRF token; 403 `read_only_token` for anything but a
/// GET or HEAD with a read-only token.
pub fn require(
    state: &ApiState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    Ok(state
        .identity
        .require(method.as_str(), &credentials(headers))?)
}

/// What login (and finishing setup) answers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LoginResponse {
    /// The signed-in user.
    pub user: String,
    /// Send this as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// Unix seconds when the session ends.
    pub expires: u64,
}

/// The answer to a new session: the cookie is set and the CSRF token returned.
pub fn session_response(state: &ApiState, new: &NewSession) -> Result<Response<Body>, ApiError> {
    let mut resp = json(
        StatusCode::OK,
        &LoginResponse {
            user: new.session.user.clone(),
            csrf_token: new.session.csrf.clone(),
            expires: new.session.expires,
        },
    );
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        new.id,
        state.identity.sessions_ttl().as_secs()
    );
    let v = h::HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(e.to_string()))?;
    resp.headers_mut().insert(h::SET_COOKIE, v);
    Ok(resp)
}

/// `Retry-After` and the message's seconds: the wait rounded up, at least one second.
fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_nanos().div_ceil(1_000_000_000).max(1);
    u64::try_from(secs).unwrap_or(u64::MAX)
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        use IdentityError as E;
        let message = e.to_string();
        match e {
            E::NotBearer
            | E::TokenExpired { .. }
            | E::TokenUnknown
            | E::SignInFirst
            | E::SetupTokenMissing(_)
            | E::SetupTokenWrong => ApiError::unauthorized(message),
            E::Csrf => ApiError::csrf(),
            E::ReadOnly(_) => ApiError::new(StatusCode::FORBIDDEN, "read_only_token", message),
            E::HeldBack(wait) => ApiError::rate_limited(wait),
            E::Busy(wait) => {
                let secs = whole_seconds(wait);
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "the node is checking too many passwords right now; try again in {secs} s"
                    ),
                );
                e.retry_after = Some(Duration::from_secs(secs));
                e
            }
            E::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", message)
            }
            E::WrongPassword => ApiError::new(StatusCode::FORBIDDEN, "wrong_password", message)
                .with_field("current_password"),
            E::Invalid { field, message } => ApiError::invalid(&field, message),
            E::Token(t) => match t {
                crate::identity::tokens::TokenError::TooMany(_) => {
                    ApiError::conflict("too_many_tokens", message)
                }
                crate::identity::tokens::TokenError::ParentGone => ApiError::unauthorized(message),
                crate::identity::tokens::TokenError::Store(s) => ApiError::internal(s.to_string()),
                crate::identity::tokens::TokenError::Random(r) => ApiError::internal(r.to_string()),
            },
            E::Revoke(s) | E::SavePassword(s) => ApiError::internal(s.to_string()),
            E::Random(r) => ApiError::internal(r.to_string()),
            E::RevokeAfterChange(s) => ApiError::internal(format!("{message}: {s}")),
            E::AlreadySetUp => ApiError::conflict("already_set_up", message),
            E::WrongCode => {
                ApiError::new(StatusCode::UNAUTHORIZED, "wrong_code", message).with_field("code")
            }
            E::SetupIncomplete { field, .. } => {
                ApiError::conflict("setup_incomplete", message).with_field(field)
            }
            E::Check(_)
            | E::ReadCode { .. }
            | E::SetupStore(_)
            | E::SetHostname { .. }
            | E::ApplyTime(_)
            | E::SetupWrite { .. } => ApiError::internal(message),
        }
    }
}
