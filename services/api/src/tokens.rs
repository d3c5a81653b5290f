//! `/api/v1/auth/tokens`: list, create and revoke the signed-in user's API tokens, over
//! [`Identity`](crate::identity::Identity).

use crate::error::ApiError;
use crate::identity::tokens::{Scope, TokenInfo, DEFAULT_DAYS};
use crate::request::Ctx;
use crate::response::{json, no_content, Body};
use hyper::{Response, StatusCode};

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
            tokens: ctx.state.identity.list_tokens(&p.user),
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
    DEFAULT_DAYS
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
    let req: NewToken = ctx.json()?;
    let (info, token) = ctx.state.identity.create_token(
        p,
        ctx.method.as_str(),
        &req.name,
        req.scope,
        req.expires_days,
    )?;
    Ok(json(StatusCode::CREATED, &CreatedToken { info, token }))
}

/// `DELETE /api/v1/auth/tokens/{id}`: the token and every token made from it.
pub fn revoke_token(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let p = ctx.principal()?;
    let id = ctx.param();
    if !ctx.state.identity.revoke_token(&p.user, id)? {
        return Err(ApiError::not_found(&format!("/api/v1/auth/tokens/{id}")));
    }
    Ok(no_content())
}
