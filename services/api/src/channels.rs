//! `GET`/`PUT /api/v1/alerts/channels[/email|/webhook]` and the test sends: parse and check
//! the request, then call the node's alert channels (cairn-alert-delivery).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::validate;
use cairn_alert_delivery::smtp::Security;
pub use cairn_alert_delivery::Kind;
use cairn_alert_delivery::MAX_RECIPIENTS;
use cairn_alert_delivery::{webhook, ChannelsError, EmailChannel, WebhookChannel};
use cairn_core::alert::AlertLevel;
use hyper::{Response, StatusCode};

/// The API error for a failed change of the channels.
fn channels_error(e: ChannelsError) -> ApiError {
    match e {
        ChannelsError::PasswordNeeded => ApiError::invalid("password", e.to_string()),
        ChannelsError::Save(e) | ChannelsError::Load(e) => ApiError::internal(e.to_string()),
        ChannelsError::Tls(e) => ApiError::internal(e.to_string()),
    }
}

/// `GET /api/v1/alerts/channels` (the SMTP password is never shown).
pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    Ok(json(StatusCode::OK, &ctx.state.channels.view()))
}

fn yes() -> bool {
    true
}

fn warning() -> AlertLevel {
    AlertLevel::Warning
}

fn starttls() -> Security {
    Security::Starttls
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailRequest {
    #[serde(default = "yes")]
    enabled: bool,
    host: String,
    port: Option<u16>,
    #[serde(default = "starttls")]
    security: Security,
    username: Option<String>,
    /// Absent: keep the stored password (for the same user name).
    password: Option<String>,
    from: String,
    to: Vec<String>,
    #[serde(default = "warning")]
    min_level: AlertLevel,
}

/// `PUT /api/v1/alerts/channels/email`.
pub fn put_email(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let req: EmailRequest = ctx.json()?;
    let host = validate::host("host", &req.host)?;
    let port = match req.port {
        Some(0) => return Err(ApiError::invalid("port", "the port must be 1 to 65535")),
        Some(p) => p,
        None => match req.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        },
    };
    let from = validate::email("from", &req.from)?;
    if req.to.is_empty() || req.to.len() > MAX_RECIPIENTS {
        return Err(ApiError::invalid(
            "to",
            format!("give 1 to {MAX_RECIPIENTS} recipients"),
        ));
    }
    let to = req
        .to
        .iter()
        .enumerate()
        .map(|(i, t)| validate::email(&format!("to[{i}]"), t))
        .collect::<Result<Vec<_>, _>>()?;
    let username = req
        .username
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    if let Some(u) = &username {
        if u.len() > 256 || u.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "username",
                "the user name must have at most 256 printable characters",
            ));
        }
        if req.security == Security::None {
            return Err(ApiError::invalid(
                "security",
                "a password is never sent without TLS; use starttls or tls with a user name",
            ));
        }
    }
    if req
        .password
        .as_ref()
        .is_some_and(|p| p.len() > 1024 || p.contains(['\r', '\n', '\0']))
    {
        return Err(ApiError::invalid(
            "password",
            "the password must be at most 1024 characters, without line breaks",
        ));
    }
    ctx.state
        .channels
        .set_email(EmailChannel {
            enabled: req.enabled,
            host,
            port,
            security: req.security,
            username,
            password: req.password,
            from,
            to,
            min_level: req.min_level,
        })
        .map_err(channels_error)?;
    tracing::info!("email alert channel changed");
    get(ctx)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookRequest {
    #[serde(default = "yes")]
    enabled: bool,
    url: String,
    #[serde(default = "warning")]
    min_level: AlertLevel,
}

/// `PUT /api/v1/alerts/channels/webhook`.
pub fn put_webhook(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let req: WebhookRequest = ctx.json()?;
    let url = req.url.trim().to_string();
    webhook::parse_url(&url).map_err(|why| ApiError::invalid("url", why))?;
    ctx.state
        .channels
        .set_webhook(WebhookChannel {
            enabled: req.enabled,
            url,
            min_level: req.min_level,
        })
        .map_err(channels_error)?;
    tracing::info!("webhook alert channel changed");
    get(ctx)
}

/// `POST /api/v1/alerts/channels/{email|webhook}/test`: send a test alert as a task.
pub fn test(ctx: &Ctx<'_>, kind: Kind) -> Result<Response<Body>, ApiError> {
    let id = cairn_alert_delivery::send_test(&ctx.state.channels, &ctx.state.tasks, kind)
        .map_err(|e| ApiError::conflict("not_configured", e.to_string()))?;
    Ok(json(StatusCode::ACCEPTED, &ctx.state.tasks.get(id)))
}
