//! Sign-in: login with backoff, session cookies with CSRF tokens, logout, password change,
//! API tokens, and who a request is from.

use crate::error::ApiError;
use crate::password::{self, Ticket};
use crate::ratelimit::{Backoff, BackoffPolicy};
use crate::request::{cookie, header, Ctx};
use crate::response::{json, no_content, Body};
use crate::secret::ct_eq;
use crate::sessions::Session;
use crate::state::ApiState;
use crate::tokens::{self, Lookup, Scope, TokenError, TokenInfo};
use crate::users::ADMIN;
use hyper::{header as h, HeaderMap, Method, Response, StatusCode};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// The session cookie.
pub const COOKIE: &str = "cairn_session";
/// The header carrying the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Login attempts per address: five free, then 1 s doubling up to 30 s. While an address is
/// held back its next attempt (right password or not) is checked when the wait is over, so
/// an office behind one NAT address with a guesser in it waits at most 30 s per try
/// (decision 0019).
pub const LOGIN_BACKOFF: BackoffPolicy = BackoffPolicy {
    free: 5,
    base: Duration::from_secs(1),
    max: Duration::from_secs(30),
    forget_after: Duration::from_secs(3600),
};
/// Where the login limits are kept on STATE.
pub const LOGIN_LIMITS_FILE: &str = "login-limits.json";
/// Password checks from all addresses together: a burst of 20, then one per 500 ms.
pub const CHECK_BURST: u32 = 20;
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// How the request proved who it is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Session(Session),
    Token(TokenInfo),
}

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub via: Via,
}

/// Who sent the request: an API token (`Authorization: Bearer`) or a session cookie.
/// A bearer token that is not valid is an error, not a fallback to the cookie.
pub fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Option<Principal>, ApiError> {
    if let Some(auth) = header(headers, h::AUTHORIZATION.as_str()) {
        let secret = auth
            .strip_prefix("Bearer ")
            .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer TOKEN`"))?;
        let t = match state.tokens.find(secret.trim()) {
            Lookup::Valid(t) => t,
            Lookup::Expired(t) => {
                return Err(ApiError::unauthorized(format!(
                    "the API token {:?} expired on {}; run `cairnctl login` again",
                    t.name,
                    cairn_core::civil::format_utc(t.expires)
                )))
            }
            Lookup::Unknown => {
                return Err(ApiError::unauthorized(
                    "the API token is not valid (revoked?); run `cairnctl login` again",
                ))
            }
        };
        return Ok(Some(Principal {
            user: t.user.clone(),
            via: Via::Token(t),
        }));
    }
    Ok(cookie(headers, COOKIE)
        .and_then(|id| state.sessions.get(id))
        .map(|s| Principal {
            user: s.user.clone(),
            via: Via::Session(s),
        }))
}

/// A check that the principal's session or token is still valid (for long streams).
pub fn still_valid(state: &ApiState, p: &Principal) -> impl Fn() -> bool + Send + 'static {
    let sessions = state.sessions.clone();
    let tokens = state.tokens.clone();
    let via = p.via.clone();
    move || match &via {
        Via::Session(s) => sessions.is_live(&s.key),
        Via::Token(t) => tokens.is_live(&t.id),
    }
}

/// Whether a method changes state (and so needs the CSRF token with a session).
pub fn is_state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a read-only token may make a request with this method (GET and HEAD only).
pub fn read_only_allows(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD)
}

/// 403 `read_only_token`.
pub fn read_only_refused(method: &Method) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "read_only_token",
        format!(
            "this API token is read-only: it may only read (GET, HEAD), not {method}; use an admin token (`cairnctl login` without --read-only) or sign in"
        ),
    )
}

/// The signed-in user, or 401; 403 `csrf` for a state-changing request with a session
/// cookie but without the session's CSRF token; 403 `read_only_token` for anything but a
/// GET or HEAD with a read-only token.
pub fn require(
    state: &ApiState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let p = authenticate(state, headers)?.ok_or_else(|| {
        ApiError::unauthorized("sign in first (session cookie or Authorization: Bearer TOKEN)")
    })?;
    match &p.via {
        Via::Session(s) => {
            if is_state_changing(method) {
                let sent = header(headers, CSRF_HEADER).unwrap_or_default();
                if !ct_eq(sent, &s.csrf) {
                    return Err(ApiError::csrf());
                }
            }
        }
        Via::Token(t) => {
            if t.scope == Scope::ReadOnly && !read_only_allows(method) {
                return Err(read_only_refused(method));
            }
        }
    }
    Ok(p)
}

/// What login (and finishing setup) answers.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LoginResponse {
    pub user: String,
    /// Send this as `X-CSRF-Token` on every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// Unix seconds when the session ends.
    pub expires: u64,
}

/// Start a new session for `user`: the cookie is set and the CSRF token returned.
pub fn start_session(state: &ApiState, user: &str) -> Result<Response<Body>, ApiError> {
    let new = state
        .sessions
        .create(user)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = json(
        StatusCode::OK,
        &LoginResponse {
            user: user.to_string(),
            csrf_token: new.session.csrf.clone(),
            expires: new.session.expires,
        },
    );
    let cookie = format!(
        "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Strict",
        new.id,
        state.sessions_ttl().as_secs()
    );
    let v = h::HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(e.to_string()))?;
    resp.headers_mut().insert(h::SET_COOKIE, v);
    Ok(resp)
}

/// Admit one password check from `peer`: 429 while the address is held back, 503 `busy`
/// when the node's overall pace or its queue of checks is full. Only then is the attempt
/// counted for the address (a refused one is not), and the ticket holds the place in the
/// queue.
pub fn admit_check(state: &ApiState, peer: IpAddr) -> Result<Ticket, ApiError> {
    state
        .login_limiter
        .check(peer)
        .map_err(ApiError::rate_limited)?;
    state.check_pace.take().map_err(password::busy)?;
    let ticket = state.passwords.enter()?;
    state
        .login_limiter
        .begin(peer)
        .map_err(ApiError::rate_limited)?;
    Ok(ticket)
}

/// Verify a password in turn, off the async threads (argon2 is deliberately slow). An
/// unknown user is checked against a throwaway hash so timing does not tell which users
/// exist.
pub async fn check_password(
    state: &ApiState,
    ticket: Ticket,
    user: &str,
    password: &str,
) -> Result<bool, ApiError> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let stored = state.users.password_hash(user);
    let pw = password.to_string();
    ticket
        .run(move |mem| match stored {
            Some(hash) => Ok(password::verify_with(&pw, &hash, mem)),
            None => {
                let dummy = DUMMY
                    .get_or_init(|| password::hash_with("no such user, no such password", mem).ok())
                    .as_deref()
                    .ok_or_else(|| ApiError::internal("cannot prepare the password check"))?;
                let _ = password::verify_with(&pw, dummy, mem);
                Ok(false)
            }
        })
        .await?
}

/// Run an attempt under a limiter: 429 while held back.
pub fn begin_attempt(limiter: &Backoff, ctx: &Ctx<'_>) -> Result<(), ApiError> {
    limiter.begin(ctx.peer).map_err(ApiError::rate_limited)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    #[serde(default = "admin")]
    username: String,
    password: String,
}

fn admin() -> String {
    ADMIN.to_string()
}

/// `POST /api/v1/auth/login`: a new session (any session the client had is ended first,
/// so the cookie is rotated).
pub async fn login(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let req: LoginRequest = ctx.json()?;
    let ticket = admit_check(ctx.state, ctx.peer)?;
    if !check_password(ctx.state, ticket, &req.username, &req.password).await? {
        // Not the user name: people type passwords into it.
        tracing::warn!(peer = %ctx.peer, "failed login");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "wrong user name or password",
        ));
    }
    ctx.state.login_limiter.success(ctx.peer);
    if let Some(old) = cookie(&ctx.headers, COOKIE).and_then(|id| ctx.state.sessions.get(id)) {
        ctx.state.sessions.revoke_key(&old.key);
    }
    tracing::info!(peer = %ctx.peer, user = %req.username, "signed in");
    start_session(ctx.state, &req.username)
}

/// `POST /api/v1/auth/logout`: end the session and clear the cookie.
pub fn logout(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?;
    if let Via::Session(s) = &p.via {
        ctx.state.sessions.revoke_key(&s.key);
    }
    let mut resp = no_content();
    resp.headers_mut().insert(
        h::SET_COOKIE,
        h::HeaderValue::from_static(
            "cairn_session=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict",
        ),
    );
    Ok(resp)
}

#[derive(serde::Serialize)]
struct Me<'a> {
    user: &'a str,
    /// `session` or `token`.
    auth: &'static str,
    token_id: Option<&'a str>,
    expires: Option<u64>,
    /// The session's CSRF token, so a reloaded page can keep making changes (readable only
    /// by this origin; absent for API tokens, which need none).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<&'a str>,
    /// The token's scope (`admin` or `read_only`; absent for sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
}

/// `GET /api/v1/auth/me`: who the request is from.
pub fn me(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?;
    let me = match &p.via {
        Via::Session(s) => Me {
            user: &p.user,
            auth: "session",
            token_id: None,
            expires: Some(s.expires),
            csrf_token: Some(&s.csrf),
            scope: None,
        },
        Via::Token(t) => Me {
            user: &p.user,
            auth: "token",
            token_id: Some(&t.id),
            expires: Some(t.expires),
            csrf_token: None,
            scope: Some(t.scope.as_str()),
        },
    };
    Ok(json(StatusCode::OK, &me))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `PUT /api/v1/auth/password`: change one's password. Every API token of the user is
/// revoked and every other session ended (all of them when a token made the change).
pub async fn change_password(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?.clone();
    let req: PasswordChange = ctx.json()?;
    password::check_policy("new_password", &req.new_password)?;
    let ticket = admit_check(ctx.state, ctx.peer)?;
    if !check_password(ctx.state, ticket, &p.user, &req.current_password).await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_password",
            "the current password is wrong",
        )
        .with_field("current_password"));
    }
    ctx.state.login_limiter.success(ctx.peer);
    let hash = ctx.state.passwords.hash(&req.new_password).await?;
    ctx.state
        .users
        .set_password_hash(&p.user, &hash)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let keep = match &p.via {
        Via::Session(s) => Some(s.key.as_str()),
        Via::Token(_) => None,
    };
    ctx.state.sessions.revoke_user(&p.user, keep);
    let revoked = ctx.state.tokens.revoke_user(&p.user).map_err(|e| {
        ApiError::internal(format!(
            "the password was changed but its API tokens could not be revoked: {e}"
        ))
    })?;
    tracing::info!(user = %p.user, revoked, "password changed; other sessions ended, API tokens revoked");
    Ok(no_content())
}

#[derive(serde::Serialize)]
struct TokenList {
    tokens: Vec<TokenInfo>,
}

/// `GET /api/v1/auth/tokens`.
pub fn list_tokens(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?;
    Ok(json(
        StatusCode::OK,
        &TokenList {
            tokens: ctx.state.tokens.list(&p.user),
        },
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    /// `admin` (default) or `read_only` (not null: the spec has no null here).
    #[serde(default)]
    scope: Scope,
    /// Days until the token expires (default 90).
    #[serde(default = "default_days")]
    expires_days: u32,
}

fn default_days() -> u32 {
    tokens::DEFAULT_DAYS
}

#[derive(serde::Serialize)]
struct CreatedToken {
    #[serde(flatten)]
    info: TokenInfo,
    /// The secret: shown once, never again.
    token: String,
}

/// `POST /api/v1/auth/tokens`: a new API token, whose secret is in this answer only. From
/// a session, or from an admin token: then the new one is its child (scope and expiry at
/// most the parent's, revoked with it).
pub fn create_token(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?;
    let parent = match &p.via {
        Via::Session(_) => None,
        Via::Token(t) if t.scope == Scope::ReadOnly => return Err(read_only_refused(&ctx.method)),
        Via::Token(t) => Some(t),
    };
    let req: NewToken = ctx.json()?;
    let days = req.expires_days;
    if !(tokens::MIN_DAYS..=tokens::MAX_DAYS).contains(&days) {
        return Err(ApiError::invalid(
            "expires_days",
            format!(
                "a token lasts {} to {} days (this asks for {days})",
                tokens::MIN_DAYS,
                tokens::MAX_DAYS
            ),
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || req.name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "the token name must have 1 to 64 printable characters (e.g. the machine it is for)",
        ));
    }
    let (info, token) = ctx
        .state
        .tokens
        .create(tokens::NewToken {
            user: &p.user,
            name,
            scope: req.scope,
            days,
            parent,
        })
        .map_err(|e| match e {
            TokenError::TooMany(_) => ApiError::conflict("too_many_tokens", e.to_string()),
            TokenError::ParentGone => ApiError::unauthorized(e.to_string()),
            TokenError::Store(s) => ApiError::internal(s.to_string()),
        })?;
    tracing::info!(
        user = %p.user,
        id = %info.id,
        name = %info.name,
        scope = info.scope.as_str(),
        parent = info.parent.as_deref().unwrap_or("-"),
        "API token created"
    );
    Ok(json(StatusCode::CREATED, &CreatedToken { info, token }))
}

/// `DELETE /api/v1/auth/tokens/{id}`: the token and every token made from it.
pub fn revoke_token(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?;
    let id = ctx.param();
    let found = ctx
        .state
        .tokens
        .revoke(&p.user, id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !found {
        return Err(ApiError::not_found(&format!("/api/v1/auth/tokens/{id}")));
    }
    tracing::info!(user = %p.user, %id, "API token revoked");
    Ok(no_content())
}
