//! One alert on one channel: the mail text or webhook document, sent with the channel's
//! settings and trust.

use crate::channels::{Channels, Kind};
use crate::{smtp, webhook};
use cairn_core::boot::error_chain;
use cairn_tasks::{Alert, AlertState};
use std::time::Duration;

/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Send one alert on one channel; the error is one line saying why it was not delivered.
pub async fn send(ch: &Channels, kind: Kind, a: &Alert, test: bool) -> Result<(), String> {
    let doc = ch.doc();
    let tls = ch.tls();
    let host = ch.hostname();
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

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::alert::AlertLevel;

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
    fn error_chains_read_as_one_line() {
        let e = crate::smtp::SmtpError::Connect {
            host: "mx".into(),
            port: 25,
            reason: "refused".into(),
        };
        assert_eq!(error_chain(&e), "cannot connect to mx:25: refused");
    }
}
