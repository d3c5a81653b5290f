//! `/api/v1/setup` and its steps (code, password, hostname, time zone, NTP, complete): parse
//! and check each request, then call the setup state of
//! [`Identity`](crate::identity::Identity).

use crate::auth::session_response;
use crate::error::ApiError;
use crate::identity::setup::SetupStatus;
pub use crate::identity::setup::{
    NodeConfig, CODE_FILE, DONE_MARKER, HOSTNAME_FILE, NODE_FILE, PROGRESS_FILE,
};
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::validate;
use hyper::{Response, StatusCode};

/// Header carrying the token that verifying the code returns.
pub const TOKEN_HEADER: &str = "x-setup-token";

/// The setup token the request carries (empty when absent).
fn token<'c>(ctx: &'c Ctx<'_>) -> &'c str {
    ctx.header(TOKEN_HEADER).unwrap_or_default()
}

/// `GET /api/v1/setup`: whether the node is set up, and (with a setup token) the progress.
pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let status = ctx.state.identity.setup().status_for(token(ctx));
    Ok(json(StatusCode::OK, &status))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
}

#[derive(serde::Serialize)]
struct CodeResponse {
    /// Send as `X-Setup-Token` on the following setup steps.
    setup_token: String,
    #[serde(flatten)]
    status: SetupStatus,
}

/// `POST /api/v1/setup/code`: check the console's code (rate-limited per address, limits
/// kept across restarts; the code is replaced after
/// [`CODE_ROTATE_AFTER`](crate::identity::setup::CODE_ROTATE_AFTER) wrong ones from all
/// addresses) and hand out a setup token; any earlier token stops working.
pub fn code(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    ctx.state.identity.setup().unclaimed()?;
    let req: CodeRequest = ctx.json()?;
    let (setup_token, status) = ctx.state.identity.enter_setup_code(ctx.peer, &req.code)?;
    Ok(json(
        StatusCode::OK,
        &CodeResponse {
            setup_token,
            status,
        },
    ))
}

/// Apply one checked change to the progress under the token, persist, answer the status.
fn step(
    ctx: &Ctx<'_>,
    change: impl FnOnce(&mut crate::identity::setup::Progress),
) -> Result<Response<Body>, ApiError> {
    let status = ctx.state.identity.setup().step(token(ctx), change)?;
    Ok(json(StatusCode::OK, &status))
}

/// The setup token check, for setup steps that live in a domain's module (network).
pub(crate) fn check_setup_token(ctx: &Ctx<'_>) -> Result<(), ApiError> {
    Ok(ctx.state.identity.setup().require_token(token(ctx))?)
}

/// Record the management network step (validated by the network module).
pub(crate) fn set_network(
    ctx: &Ctx<'_>,
    spec: cairn_net::spec::NetworkSpec,
) -> Result<Response<Body>, ApiError> {
    step(ctx, |p| p.network = Some(spec))
}

/// The network spec chosen so far, if any.
pub(crate) fn network_choice(
    ctx: &Ctx<'_>,
) -> Result<Option<cairn_net::spec::NetworkSpec>, ApiError> {
    Ok(ctx.state.identity.setup().network_choice(token(ctx))?)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordRequest {
    password: String,
}

/// `PUT /api/v1/setup/password`: the admin password (policy-checked, stored as argon2id).
pub async fn password(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    check_setup_token(ctx)?;
    let req: PasswordRequest = ctx.json()?;
    let hash = ctx
        .state
        .identity
        .hash_new_password("password", &req.password)
        .await?;
    step(ctx, |p| p.password_hash = Some(hash))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct HostnameRequest {
    hostname: String,
}

/// `PUT /api/v1/setup/hostname`.
pub fn hostname(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    check_setup_token(ctx)?;
    let req: HostnameRequest = ctx.json()?;
    let name = validate::hostname("hostname", &req.hostname)?;
    step(ctx, |p| p.hostname = Some(name))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TimezoneRequest {
    timezone: String,
}

/// `PUT /api/v1/setup/timezone`.
pub fn timezone(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    check_setup_token(ctx)?;
    let req: TimezoneRequest = ctx.json()?;
    let zoneinfo = ctx.state.system.zoneinfo_dir();
    let tz = validate::timezone("timezone", &req.timezone, zoneinfo.as_deref())?;
    step(ctx, |p| p.timezone = Some(tz))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NtpRequest {
    servers: Vec<String>,
}

/// `PUT /api/v1/setup/ntp`.
pub fn ntp(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    check_setup_token(ctx)?;
    let req: NtpRequest = ctx.json()?;
    let servers = validate::ntp_servers("servers", &req.servers)?;
    step(ctx, |p| p.ntp_servers = Some(servers))
}

/// `POST /api/v1/setup/complete`: apply and commit. Every file is written before the
/// `setup-done` marker, the commit point, so a crash before it leaves setup resumable and
/// retrying redoes the same writes. Then the code is removed and the admin is signed in.
pub fn complete(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let state = ctx.state;
    let new = state.identity.complete_setup(
        token(ctx),
        state.system.as_ref(),
        |spec| -> Result<(), ApiError> {
            // Applied and confirmed at once: the admin reaches the node at the address they
            // chose (the console's `cairn.net=reset` brings DHCP back if that was wrong).
            let net = state.domains.network.service("network")?;
            net.apply_confirmed(spec)
                .map(|_| ())
                .map_err(crate::network_error::api_error)
        },
    )?;
    session_response(state, &new)
}
