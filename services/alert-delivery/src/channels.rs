//! The alert channels of this node (email over SMTP, webhook): their settings on STATE, the
//! outcome of the last delivery on each, and what outbound TLS trusts.

use crate::smtp::Security;
use cairn_core::alert::AlertLevel;
use cairn_core::store::{self, StoreError};
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// File name under the state directory (0600: it holds the SMTP password).
pub const FILE_NAME: &str = "alert-channels.json";

/// Which channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Mail through an SMTP server.
    Email,
    /// A JSON POST to a URL.
    Webhook,
}

impl Kind {
    /// The channel's name in URLs, task kinds and logs.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Webhook => "webhook",
        }
    }
}

/// Mail delivery settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmailChannel {
    /// Off: kept but nothing is sent (test sends still work).
    pub enabled: bool,
    /// The mail server's name or address.
    pub host: String,
    /// Its port (587, 465 or 25 by default for the security).
    pub port: u16,
    /// STARTTLS, implicit TLS or none.
    pub security: Security,
    /// For AUTH; absent: no login.
    pub username: Option<String>,
    /// For AUTH, present exactly when `username` is.
    pub password: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipients (1 to [`crate::MAX_RECIPIENTS`]).
    pub to: Vec<String>,
    /// Changes below this level are not sent.
    pub min_level: AlertLevel,
}

/// Webhook settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WebhookChannel {
    /// Off: kept but nothing is sent (test sends still work).
    pub enabled: bool,
    /// `http(s)://HOST[:PORT][/PATH]`, checked by [`crate::webhook::parse_url`].
    pub url: String,
    /// Changes below this level are not sent.
    pub min_level: AlertLevel,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Doc {
    pub(crate) email: Option<EmailChannel>,
    pub(crate) webhook: Option<WebhookChannel>,
}

/// The outcome of the last delivery on a channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// Unix seconds of the attempt.
    pub time: u64,
    /// Whether the message was accepted.
    pub ok: bool,
    /// `delivered`, or why not.
    pub message: String,
}

/// What outbound TLS trusts: a rustls configuration (webhooks) and the extra roots on top
/// of Mozilla's that mail delivery adds (lettre builds its own TLS configuration).
#[derive(Clone)]
pub struct Trust {
    /// For webhooks over HTTPS.
    pub client: Arc<ClientConfig>,
    /// Roots mail delivery trusts besides Mozilla's.
    pub roots: Vec<CertificateDer<'static>>,
}

/// Why the channels could not be opened or changed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelsError {
    /// The stored settings could not be read.
    #[error("cannot load the alert channels")]
    Load(#[source] StoreError),
    /// The public web PKI configuration could not be built.
    #[error("cannot set up outbound TLS")]
    Tls(#[source] rustls::Error),
    /// The new settings could not be stored (nothing changed).
    #[error("cannot save the alert channels")]
    Save(#[source] StoreError),
    /// A user name was given without a password, and none is stored for it.
    #[error("give the password for this user name")]
    PasswordNeeded,
}

/// The channels of this node.
pub struct Channels {
    path: PathBuf,
    doc: Mutex<Doc>,
    last: Mutex<BTreeMap<Kind, Delivery>>,
    tls: Mutex<Trust>,
    hostname: Box<dyn Fn() -> String + Send + Sync>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The channels as the API shows them (the SMTP password is never shown).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelsView {
    email: Option<EmailView>,
    webhook: Option<WebhookView>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct EmailView {
    enabled: bool,
    host: String,
    port: u16,
    security: Security,
    username: Option<String>,
    password_set: bool,
    from: String,
    to: Vec<String>,
    min_level: AlertLevel,
    last: Option<Delivery>,
}

#[derive(Debug, Clone, serde::Serialize)]
struct WebhookView {
    enabled: bool,
    url: String,
    min_level: AlertLevel,
    last: Option<Delivery>,
}

impl Channels {
    /// Load from `state_dir`; outbound TLS trusts the public web PKI. Messages name the node
    /// by what `hostname` says at the time of sending.
    pub fn open(
        state_dir: &Path,
        hostname: impl Fn() -> String + Send + Sync + 'static,
    ) -> Result<Self, ChannelsError> {
        let path = state_dir.join(FILE_NAME);
        let doc = store::load_or_quarantine(&path)
            .map_err(ChannelsError::Load)?
            .unwrap_or_default();
        let client = crate::outbound::public_client_config().map_err(ChannelsError::Tls)?;
        Ok(Channels {
            path,
            doc: Mutex::new(doc),
            last: Mutex::new(BTreeMap::new()),
            tls: Mutex::new(Trust {
                client,
                roots: Vec::new(),
            }),
            hostname: Box::new(hostname),
        })
    }

    /// Trust other roots for outbound TLS (a site CA; tests).
    pub fn trust(&self, tls: Trust) {
        *lock(&self.tls) = tls;
    }

    pub(crate) fn doc(&self) -> Doc {
        lock(&self.doc).clone()
    }

    pub(crate) fn tls(&self) -> Trust {
        lock(&self.tls).clone()
    }

    pub(crate) fn hostname(&self) -> String {
        (self.hostname)()
    }

    /// Whether channel `kind` has settings (enabled or not).
    pub fn is_configured(&self, kind: Kind) -> bool {
        let doc = lock(&self.doc);
        match kind {
            Kind::Email => doc.email.is_some(),
            Kind::Webhook => doc.webhook.is_some(),
        }
    }

    fn save(&self, doc: &mut MutexGuard<'_, Doc>, next: Doc) -> Result<(), ChannelsError> {
        store::save(&self.path, &next).map_err(ChannelsError::Save)?;
        **doc = next;
        Ok(())
    }

    /// Replace the mail settings. A password absent from `channel` is kept from the stored
    /// settings when the user name is the same.
    pub fn set_email(&self, mut channel: EmailChannel) -> Result<(), ChannelsError> {
        let mut doc = lock(&self.doc);
        let kept = doc
            .email
            .as_ref()
            .filter(|e| e.username == channel.username)
            .and_then(|e| e.password.clone());
        channel.password = match &channel.username {
            None => None,
            Some(_) => Some(
                channel
                    .password
                    .or(kept)
                    .ok_or(ChannelsError::PasswordNeeded)?,
            ),
        };
        let mut next = doc.clone();
        next.email = Some(channel);
        self.save(&mut doc, next)
    }

    /// Replace the webhook settings.
    pub fn set_webhook(&self, channel: WebhookChannel) -> Result<(), ChannelsError> {
        let mut doc = lock(&self.doc);
        let mut next = doc.clone();
        next.webhook = Some(channel);
        self.save(&mut doc, next)
    }

    pub(crate) fn record(&self, kind: Kind, result: &Result<(), String>) {
        let d = Delivery {
            time: cairn_tasks::now_s(),
            ok: result.is_ok(),
            message: match result {
                Ok(()) => "delivered".to_string(),
                Err(e) => e.clone(),
            },
        };
        lock(&self.last).insert(kind, d);
    }

    /// The settings as shown, with the last delivery of each channel.
    pub fn view(&self) -> ChannelsView {
        let doc = lock(&self.doc).clone();
        let last = lock(&self.last).clone();
        ChannelsView {
            email: doc.email.map(|e| EmailView {
                enabled: e.enabled,
                password_set: e.password.is_some(),
                host: e.host,
                port: e.port,
                security: e.security,
                username: e.username,
                from: e.from,
                to: e.to,
                min_level: e.min_level,
                last: last.get(&Kind::Email).cloned(),
            }),
            webhook: doc.webhook.map(|w| WebhookView {
                enabled: w.enabled,
                url: w.url,
                min_level: w.min_level,
                last: last.get(&Kind::Webhook).cloned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ch = Channels::open(dir.path(), String::new).unwrap();
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
        let again = Channels::open(dir.path(), String::new).unwrap();
        assert_eq!(
            lock(&again.doc).webhook.as_ref().unwrap().url,
            "https://x.org/"
        );
    }
}
