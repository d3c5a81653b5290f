//! `/api/v1/auth/login`, `logout`, `me` and `password`: the signed-in user's own session and
//! password, over [`Identity`](crate::identity::Identity).

use crate::auth::{session_response, COOKIE};
use crate::error::ApiError;
use crate::identity::users::ADMIN;
use crate::identity::Via;
use crate::request::{cookie, Ctx};
use crate::response::{json, no_content, Body};
use hyper::{header as h, Response, StatusCode};

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
    let new = ctx
        .state
        .identity
        .login(
            ctx.peer,
            &req.username,
            &req.password,
            cookie(&ctx.headers, COOKIE),
        )
        .await?;
    session_response(ctx.state, &new)
}

/// `POST /api/v1/auth/logout`: end the session and clear the cookie.
pub fn logout(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    ctx.state.identity.logout(ctx.principal()?);
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
    ctx.state
        .identity
        .change_password(ctx.peer, &p, &req.current_password, &req.new_password)
        .await?;
    Ok(no_content())
}
