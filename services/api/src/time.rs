//! `GET/PUT /api/v1/time`: the node's time zone and NTP servers (as chosen in setup, and
//! later changes) and chrony's view of the clock.

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::setup::NodeConfig;
use crate::system::ClockStatus;
use crate::validate;
use hyper::{Response, StatusCode};

/// What `GET /api/v1/time` answers.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TimeView {
    /// Unix seconds on the node's clock.
    pub now: u64,
    pub timezone: String,
    pub ntp_servers: Vec<String>,
    pub clock: ClockStatus,
}

async fn view(ctx: &Ctx<'_>, cfg: &NodeConfig) -> Result<Response<Body>, ApiError> {
    let system = ctx.state.system.clone();
    let clock = tokio::task::spawn_blocking(move || system.clock_status())
        .await
        .map_err(|e| ApiError::internal(format!("reading the clock status failed: {e}")))?;
    Ok(json(
        StatusCode::OK,
        &TimeView {
            now: crate::events::now_s(),
            timezone: cfg.timezone.clone(),
            ntp_servers: cfg.ntp_servers.clone(),
            clock,
        },
    ))
}

fn config(ctx: &Ctx<'_>) -> Result<NodeConfig, ApiError> {
    ctx.state
        .identity
        .setup()
        .node_config()?
        .ok_or_else(|| ApiError::internal("the node is set up but its node.json is missing"))
}

/// `GET /api/v1/time`.
pub async fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let cfg = config(ctx)?;
    view(ctx, &cfg).await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeRequest {
    timezone: Option<String>,
    ntp_servers: Option<Vec<String>>,
}

/// `PUT /api/v1/time`: change the time zone and/or the NTP servers. Both are validated
/// before anything is applied; if applying fails the previous settings are put back.
pub async fn put(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    // serde reads a struct of optional fields from an array too (`[null, null]`).
    if !ctx.json::<serde_json::Value>()?.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a JSON object like {\"timezone\": \"UTC\"}",
        ));
    }
    let req: TimeRequest = ctx.json()?;
    let old = config(ctx)?;
    let mut next = old.clone();
    if let Some(tz) = &req.timezone {
        let zoneinfo = ctx.state.system.zoneinfo_dir();
        next.timezone = validate::timezone("timezone", tz, zoneinfo.as_deref())?;
    }
    if let Some(servers) = &req.ntp_servers {
        next.ntp_servers = validate::ntp_servers("ntp_servers", servers)?;
    }
    if next != old {
        let system = ctx.state.system.clone();
        let (n, o) = (next.clone(), old.clone());
        tokio::task::spawn_blocking(move || {
            system.apply_time(&n.timezone, &n.ntp_servers).map_err(|e| {
                if let Err(back) = system.apply_time(&o.timezone, &o.ntp_servers) {
                    tracing::warn!("cannot put the previous time settings back: {back}");
                }
                ApiError::internal(format!("cannot apply the time settings: {e}"))
            })
        })
        .await
        .map_err(|e| ApiError::internal(format!("applying the time settings failed: {e}")))??;
        ctx.state.identity.setup().save_node_config(&next)?;
        tracing::info!(timezone = %next.timezone, servers = ?next.ntp_servers, "time settings changed");
    }
    view(ctx, &next).await
}
