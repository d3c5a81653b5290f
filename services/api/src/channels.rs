//! Alert delivery channels (email over SMTP, webhook): configuration on STATE, the API to
//! view and change it, a "send test" action run as a task, and the delivery loop.

use crate::alerts::severity;
use crate::error::ApiError;
use crate::events::{now_s, Alert, AlertLevel, AlertState, EventKind};
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::smtp::{self, Security};
use crate::state::ApiState;
use crate::store::{self, StoreError};
use crate::tasks::Task;
use crate::{validate, webhook};
use cairn_core::boot::error_chain;
use hyper::{Response, StatusCode};
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// File name under the state directory (0600: it holds the SMTP password).
pub const FILE_NAME: &str = "alert-channels.json";
/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Most mail recipients.
pub const MAX_RECIPIENTS: usize = 10;

/// Which channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Email,
    Webhook,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Webhook => "webhook",
        }
    }
}

/// Mail delivery settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmailChannel {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub min_level: AlertLevel,
}

/// Webhook settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookChannel {
    pub enabled: bool,
    pub url: String,
    pub min_level: AlertLevel,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Doc {
    email: Option<EmailChannel>,
    webhook: Option<WebhookChannel>,
}

/// The outcome of the last delivery on a channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub time: u64,
    pub ok: bool,
    pub message: String,
}

/// What outbound TLS trusts: a rustls configuration (webhooks) and the extra roots on top
/// of Mozilla's that mail delivery adds (lettre builds its own TLS configuration).
#[derive(Clone)]
pub struct Trust {
    pub client: Arc<ClientConfig>,
    pub roots: Vec<CertificateDer<'static>>,
}

/// The channels of this node.
pub struct Channels {
    path: PathBuf,
    doc: Mutex<Doc>,
    last: Mutex<BTreeMap<Kind, Delivery>>,
    tls: Mutex<Trust>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Channels {
    /// Load from `state_dir`; outbound TLS trusts `tls` (normally the public web PKI).
    pub fn open(state_dir: &Path, tls: Arc<ClientConfig>) -> Result<Self, StoreError> {
        let path = state_dir.join(FILE_NAME);
        let doc = store::load_or_quarantine(&path)?.unwrap_or_default();
        Ok(Channels {
            path,
            doc: Mutex::new(doc),
            last: Mutex::new(BTreeMap::new()),
            tls: Mutex::new(Trust {
                client: tls,
                roots: Vec::new(),
            }),
        })
    }

    /// Trust other roots for outbound TLS (a site CA; tests).
    pub fn trust(&self, tls: Trust) {
        *lock(&self.tls) = tls;
    }

    fn save(&self, doc: &mut MutexGuard<'_, Doc>, next: Doc) -> Result<(), ApiError> {
        store::save(&self.path, &next).map_err(|e| ApiError::internal(e.to_string()))?;
        **doc = next;
        Ok(())
    }

    fn record(&self, kind: Kind, result: &Result<(), String>) {
        let d = Delivery {
            time: now_s(),
            ok: result.is_ok(),
            message: match result {
                Ok(()) => "delivered".to_string(),
                Err(e) => e.clone(),
            },
        };
        lock(&self.last).insert(kind, d);
    }
}

/// Format the subject and body of an alert mail.
pub fn mail_text(host: &str, a: &Alert, test: bool) -> (String, String) {
    let level = format!("{:?}", a.level).to_uppercase();
    let subject = match (test, a.state) {
        (true, _) => format!("[{host}] TEST: {}", a.message),
        (false, AlertState::Raised) => format!("[{host}] {level}: {}", a.message),
        (false, AlertState::Cleared) => format!("[{host}] RESOLVED: {}", a.message),
    };
    let state = match a.state {
        AlertState::Raised => "raised",
        AlertState::Cleared => "cleared",
    };
    let body = format!(
        "Node:  {host}\nAlert: {}\nLevel: {level}\nState: {state}\nTime:  {}\n\n{}\n",
        a.key,
        smtp::rfc2822(a.time),
        a.message
    );
    (subject, body)
}

/// Send one alert on one channel.
async fn send(state: &ApiState, kind: Kind, a: &Alert, test: bool) -> Result<(), String> {
    let ch = &state.channels;
    let doc = lock(&ch.doc).clone();
    let tls = lock(&ch.tls).clone();
    let host = state.node.hostname();
    match kind {
        Kind::Email => {
            let e = doc.email.ok_or("email is not configured")?;
            let (subject, body) = mail_text(&host, a, test);
            let login = match (&e.username, &e.password) {
                (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
                _ => None,
            };
            let server = smtp::Server {
                host: &e.host,
                port: e.port,
                security: e.security,
                login,
                helo: if host.is_empty() { "cairn" } else { &host },
            };
            let mail = smtp::Mail {
                from: &e.from,
                to: &e.to,
                subject: &subject,
                body: &body,
            };
            smtp::send(&server, &mail, &tls.roots, SEND_TIMEOUT)
                .await
                .map_err(|e| error_chain(&e))
        }
        Kind::Webhook => {
            let w = doc.webhook.ok_or("the webhook is not configured")?;
            let url = webhook::parse_url(&w.url)?;
            let body = serde_json::json!({
                "node": host, "key": a.key, "level": a.level, "state": a.state,
                "message": a.message, "time": a.time, "test": test,
            });
            webhook::post_json(
                &url,
                body.to_string().into_bytes(),
                tls.client,
                SEND_TIMEOUT,
            )
            .await
            .map(|_| ())
            .map_err(|e| error_chain(&e))
        }
    }
}

/// Deliver every alert change to the enabled channels whose level it reaches, until the
/// event bus closes.
pub fn spawn_delivery(state: ApiState) -> tokio::task::JoinHandle<()> {
    let mut sub = state.events.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                r = sub.events.recv() => r,
                _ = sub.closed.wait_for(|c| *c) => break,
            };
            let alert = match ev {
                Ok(e) => match e.kind {
                    EventKind::Alert(a) => a,
                    EventKind::Task(_) => continue,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("alert delivery fell behind; {n} events skipped");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let doc = lock(&state.channels.doc).clone();
            let wanted = [
                (
                    Kind::Email,
                    doc.email.as_ref().map(|e| (e.enabled, e.min_level)),
                ),
                (
                    Kind::Webhook,
                    doc.webhook.as_ref().map(|w| (w.enabled, w.min_level)),
                ),
            ];
            for (kind, cfg) in wanted {
                let Some((true, min)) = cfg else { continue };
                if severity(alert.level) < severity(min) {
                    continue;
                }
                let result = send(&state, kind, &alert, false).await;
                if let Err(e) = &result {
                    tracing::warn!(channel = kind.name(), key = %alert.key, "alert not delivered: {e}");
                }
                state.channels.record(kind, &result);
            }
        }
    })
}

#[derive(serde::Serialize)]
struct EmailView<'a> {
    enabled: bool,
    host: &'a str,
    port: u16,
    security: Security,
    username: Option<&'a str>,
    password_set: bool,
    from: &'a str,
    to: &'a [String],
    min_level: AlertLevel,
    last: Option<Delivery>,
}

#[derive(serde::Serialize)]
struct WebhookView<'a> {
    enabled: bool,
    url: &'a str,
    min_level: AlertLevel,
    last: Option<Delivery>,
}

#[derive(serde::Serialize)]
struct ChannelsView<'a> {
    email: Option<EmailView<'a>>,
    webhook: Option<WebhookView<'a>>,
}

/// `GET /api/v1/alerts/channels` (the SMTP password is never shown).
pub fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let ch = &ctx.state.channels;
    let doc = lock(&ch.doc).clone();
    let last = lock(&ch.last).clone();
    let view = ChannelsView {
        email: doc.email.as_ref().map(|e| EmailView {
            enabled: e.enabled,
            host: &e.host,
            port: e.port,
            security: e.security,
            username: e.username.as_deref(),
            password_set: e.password.is_some(),
            from: &e.from,
            to: &e.to,
            min_level: e.min_level,
            last: last.get(&Kind::Email).cloned(),
        }),
        webhook: doc.webhook.as_ref().map(|w| WebhookView {
            enabled: w.enabled,
            url: &w.url,
            min_level: w.min_level,
            last: last.get(&Kind::Webhook).cloned(),
        }),
    };
    Ok(json(StatusCode::OK, &view))
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
    let ch = &ctx.state.channels;
    let mut doc = lock(&ch.doc);
    let kept = doc
        .email
        .as_ref()
        .filter(|e| e.username == username)
        .and_then(|e| e.password.clone());
    let password = match &username {
        None => None,
        Some(_) => Some(req.password.or(kept).ok_or_else(|| {
            ApiError::invalid("password", "give the password for this user name")
        })?),
    };
    let mut next = doc.clone();
    next.email = Some(EmailChannel {
        enabled: req.enabled,
        host,
        port,
        security: req.security,
        username,
        password,
        from,
        to,
        min_level: req.min_level,
    });
    ch.save(&mut doc, next)?;
    drop(doc);
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
    let ch = &ctx.state.channels;
    let mut doc = lock(&ch.doc);
    let mut next = doc.clone();
    next.webhook = Some(WebhookChannel {
        enabled: req.enabled,
        url,
        min_level: req.min_level,
    });
    ch.save(&mut doc, next)?;
    drop(doc);
    tracing::info!("webhook alert channel changed");
    get(ctx)
}

/// `POST /api/v1/alerts/channels/{email|webhook}/test`: send a test alert as a task.
pub fn test(ctx: &Ctx<'_>, kind: Kind) -> Result<Response<Body>, ApiError> {
    let configured = {
        let doc = lock(&ctx.state.channels.doc);
        match kind {
            Kind::Email => doc.email.is_some(),
            Kind::Webhook => doc.webhook.is_some(),
        }
    };
    if !configured {
        return Err(ApiError::conflict(
            "not_configured",
            format!("set up the {} channel first", kind.name()),
        ));
    }
    let task = ctx.state.tasks.start(
        &format!("alerts.test.{}", kind.name()),
        &format!("sending a test alert by {}", kind.name()),
    );
    let id = task.id();
    let state = ctx.state.clone();
    tokio::spawn(async move {
        let alert = Alert {
            key: "cairn/test".to_string(),
            level: AlertLevel::Info,
            state: AlertState::Raised,
            message: format!("Test alert from {}", state.node.hostname()),
            time: now_s(),
        };
        let result = send(&state, kind, &alert, true).await;
        state.channels.record(kind, &result);
        match result {
            Ok(()) => task.succeed("test alert delivered"),
            Err(e) => task.fail(&e),
        }
    });
    let snapshot: Option<Task> = ctx.state.tasks.get(id);
    Ok(json(StatusCode::ACCEPTED, &snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_texts() {
        let a = Alert {
            key: "pool/tank".into(),
            level: AlertLevel::Critical,
            state: AlertState::Raised,
            message: "pool tank is degraded".into(),
            time: 0,
        };
        let (s, b) = mail_text("vault", &a, false);
        assert_eq!(s, "[vault] CRITICAL: pool tank is degraded");
        assert!(b.contains("Alert: pool/tank\n") && b.contains("Thu, 01 Jan 1970"));
        let cleared = Alert {
            state: AlertState::Cleared,
            ..a.clone()
        };
        assert_eq!(
            mail_text("vault", &cleared, false).0,
            "[vault] RESOLVED: pool tank is degraded"
        );
        assert!(mail_text("vault", &a, true).0.starts_with("[vault] TEST: "));
    }

    #[test]
    fn store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ch = Channels::open(dir.path(), crate::tls::public_client_config().unwrap()).unwrap();
        let mut doc = lock(&ch.doc);
        let next = Doc {
            webhook: Some(WebhookChannel {
                enabled: true,
                url: "https://x.org/".into(),
                min_level: AlertLevel::Info,
            }),
            ..Doc::default()
        };
        ch.save(&mut doc, next).unwrap();
        drop(doc);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again =
            Channels::open(dir.path(), crate::tls::public_client_config().unwrap()).unwrap();
        assert_eq!(
            lock(&again.doc).webhook.as_ref().unwrap().url,
            "https://x.org/"
        );
    }

    #[test]
    fn error_chains_read_as_one_line() {
        let e = crate::smtp::SmtpError::Connect {
            host: "mx".into(),
            port: 25,
            reason: "refused".into(),
        };
        assert_eq!(error_chain(&e), "cannot connect to mx:25: refused");
    }
}
