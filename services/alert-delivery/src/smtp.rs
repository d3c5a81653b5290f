//! Mail delivery through the `lettre` SMTP client: implicit TLS, STARTTLS or plain (local
//! relay only), certificate verification against Mozilla's roots plus any site roots, AUTH.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use std::time::Duration;

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (usually port 587); refused if not offered.
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
    /// No TLS: only for a relay on a trusted network, and never with a password.
    None,
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub struct Server<'a> {
    /// The mail server's name (also the name its certificate must carry).
    pub host: &'a str,
    /// Its port.
    pub port: u16,
    /// STARTTLS, implicit TLS or none.
    pub security: Security,
    /// User name and password (AUTH PLAIN or LOGIN, whichever the server offers).
    pub login: Option<(&'a str, &'a str)>,
    /// The name this node gives in EHLO.
    pub helo: &'a str,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    /// The sender address.
    pub from: &'a str,
    /// The recipient addresses.
    pub to: &'a [String],
    /// The subject (control characters are dropped).
    pub subject: &'a str,
    /// The plain-text body.
    pub body: &'a str,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// An address lettre refuses; which one and why.
    #[error("{field} is not a usable mail address: {reason}")]
    Address {
        /// `from` or `to[i]`.
        field: String,
        /// lettre's reason.
        reason: String,
    },
    /// The message could not be built (or no random bytes for its id).
    #[error("cannot build the message: {0}")]
    Message(String),
    /// lettre's TLS parameters could not be built.
    #[error("cannot set up TLS for {host}: {reason}")]
    TlsSetup {
        /// The mail server.
        host: String,
        /// lettre's reason.
        reason: String,
    },
    /// No connection to the mail server.
    #[error("cannot connect to {host}:{port}: {reason}")]
    Connect {
        /// The mail server.
        host: String,
        /// Its port.
        port: u16,
        /// Why, as lettre says.
        reason: String,
    },
    /// The TLS handshake or certificate check failed.
    #[error("TLS with {host} failed (is its certificate valid for that name and signed by a trusted authority?): {reason}")]
    Tls {
        /// The mail server.
        host: String,
        /// Why, as lettre says.
        reason: String,
    },
    /// STARTTLS was asked for but not offered.
    #[error("the mail server does not offer STARTTLS; use security \"tls\" or another server")]
    NoStarttls,
    /// The server refused with an SMTP reply.
    #[error("the mail server answered {code}: {text}")]
    Reply {
        /// The reply code, e.g. `535`.
        code: String,
        /// The reply text.
        text: String,
    },
    /// The exchange broke off otherwise.
    #[error("the mail exchange failed: {0}")]
    Protocol(String),
    /// The whole exchange took longer than allowed.
    #[error("no answer from the mail server within {0:?}")]
    Timeout(Duration),
}

/// Send `mail` through `server` within `timeout`. TLS trusts Mozilla's roots and `roots`.
pub async fn send(
    server: &Server<'_>,
    mail: &Mail<'_>,
    roots: &[CertificateDer<'static>],
    timeout: Duration,
) -> Result<(), SmtpError> {
    let message = build_message(mail, server.helo)?;
    let transport = transport(server, roots, timeout)?;
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Err(_) => Err(SmtpError::Timeout(timeout)),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(classify(server, &e, timeout)),
    }
}

/// The lettre transport for one delivery (no pooling: alerts are rare).
fn transport(
    server: &Server<'_>,
    roots: &[CertificateDer<'static>],
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpError> {
    let tls_setup = |reason: String| SmtpError::TlsSetup {
        host: server.host.to_string(),
        reason,
    };
    let params = || -> Result<TlsParameters, SmtpError> {
        let mut b = TlsParameters::builder(server.host.to_string())
            .certificate_store(CertificateStore::WebpkiRoots);
        for r in roots {
            let cert = Certificate::from_der(r.to_vec()).map_err(|e| tls_setup(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| tls_setup(e.to_string()))
    };
    let tls = match server.security {
        Security::Starttls => Tls::Required(params()?),
        Security::Tls => Tls::Wrapper(params()?),
        Security::None => Tls::None,
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host)
        .port(server.port)
        .tls(tls)
        .hello_name(ClientId::Domain(server.helo.to_string()))
        .timeout(Some(timeout));
    if let Some((user, password)) = server.login {
        b = b
            .credentials(Credentials::new(user.to_string(), password.to_string()))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(b.build())
}

/// Explain a lettre error in the terms of this channel's settings.
fn classify(server: &Server<'_>, e: &lettre::transport::smtp::Error, t: Duration) -> SmtpError {
    let reason = innermost(e);
    if let Some(code) = e.status() {
        return SmtpError::Reply {
            code: code.to_string(),
            text: reason,
        };
    }
    if e.is_timeout() {
        return SmtpError::Timeout(t);
    }
    if e.is_tls() || rustls_cause(e).is_some() {
        return SmtpError::Tls {
            host: server.host.to_string(),
            reason: rustls_cause(e).unwrap_or(reason),
        };
    }
    if e.is_client() && reason.contains("STARTTLS") {
        return SmtpError::NoStarttls;
    }
    // lettre has no accessor for "could not connect"; its Display names that kind.
    if e.to_string().starts_with("Connection error") {
        return SmtpError::Connect {
            host: server.host.to_string(),
            port: server.port,
            reason,
        };
    }
    SmtpError::Protocol(e.to_string())
}

/// The rustls error somewhere in the chain (lettre reports a failed implicit-TLS handshake
/// as a connection error, with rustls's error inside an I/O error).
fn rustls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(inner.to_string());
        }
        cur = err.source();
    }
    None
}

/// The deepest cause's text (the server's reply text, the I/O or certificate error).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn mailbox(field: &str, addr: &str) -> Result<Mailbox, SmtpError> {
    addr.parse::<Mailbox>().map_err(|e| SmtpError::Address {
        field: field.to_string(),
        reason: e.to_string(),
    })
}

/// The message: a text/plain body with From, To, Subject, Date and a Message-ID at `host`.
pub fn build_message(mail: &Mail<'_>, host: &str) -> Result<Message, SmtpError> {
    let mut b = Message::builder().from(mailbox("from", mail.from)?);
    for (i, to) in mail.to.iter().enumerate() {
        b = b.to(mailbox(&format!("to[{i}]"), to)?);
    }
    // 96 random bits, shown as 24 hex digits.
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id[4..]).map_err(|e| SmtpError::Message(e.to_string()))?;
    let subject: String = mail.subject.chars().filter(|c| !c.is_control()).collect();
    b.subject(subject)
        .message_id(Some(format!(
            "<{}@{host}>",
            format_args!("{:024x}", u128::from_be_bytes(id))
        )))
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.to_string())
        .map_err(|e| SmtpError::Message(e.to_string()))
}

/// `Mon, 23 Nov 2026 01:02:03 +0000` for Unix seconds (alert texts).
pub fn rfc2822(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    // u64 seconds / 86400 is below 2^47 days: always an i64.
    let (y, m, d) = cairn_core::civil::date_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        WD.get(usize::try_from(days % 7).unwrap_or_default())
            .copied()
            .unwrap_or_default(),
        MON.get(usize::try_from(m.saturating_sub(1)).unwrap_or_default())
            .copied()
            .unwrap_or_default(),
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
pub(crate) mod tests {
    //! The peer for these tests is a small scripted SMTP responder (plain, STARTTLS or
    //! implicit TLS); lettre is the client under test.
    use super::*;
    use crate::testing::{serve, server, test_pki, Mode, Seen};

    #[test]
    fn dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_795_395_762), "Mon, 23 Nov 2026 01:02:42 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn messages_are_built_safely() {
        let to = vec!["ops@example.com".to_string(), "b@example.com".to_string()];
        let m = build_message(
            &Mail {
                from: "nas@example.com",
                to: &to,
                subject: "a\r\nBcc: x",
                body: "one\n.two",
            },
            "vault",
        )
        .unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(
            text.contains("To: ops@example.com, b@example.com\r\n"),
            "{text}"
        );
        assert!(
            text.contains("Subject: aBcc: x\r\n"),
            "no header injection: {text}"
        );
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(
            text.contains("@vault>\r\n") && text.contains("Date: "),
            "{text}"
        );
        let e = build_message(
            &Mail {
                from: "not an address",
                to: &to,
                subject: "s",
                body: "b",
            },
            "vault",
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("from is not a usable"), "{e}");
    }

    fn mail(to: &[String]) -> Mail<'_> {
        Mail {
            from: "nas@example.com",
            to,
            subject: "[vault] CRITICAL: pool degraded",
            body: "Pool tank is degraded.\n.hidden line",
        }
    }

    const T: Duration = Duration::from_secs(10);

    fn verbs(seen: &Seen) -> Vec<String> {
        seen.commands
            .iter()
            .map(|c| c.split([' ', ':']).next().unwrap().to_ascii_uppercase())
            .collect()
    }

    #[tokio::test]
    async fn starttls_auth_and_delivery() {
        let (acceptor, trust) = test_pki();
        let (port, h) = server(Some(acceptor)).await;
        let to = vec!["ops@example.com".to_string()];
        let srv = Server {
            host: "localhost",
            port,
            security: Security::Starttls,
            login: Some(("u", "p")),
            helo: "vault",
        };
        send(&srv, &mail(&to), &trust.roots, T).await.unwrap();
        let seen = h.await.unwrap();
        assert_eq!(
            verbs(&seen),
            vec!["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
        );
        assert_eq!(seen.commands[0], "EHLO vault");
        assert!(seen.commands[5].starts_with("RCPT TO:<ops@example.com>"));
        assert!(seen
            .data
            .contains("Subject: [vault] CRITICAL: pool degraded\r\n"));
        assert!(seen.data.contains("\r\n..hidden line\r\n"), "dot-stuffed");
    }

    #[tokio::test]
    async fn implicit_tls_delivery() {
        let (acceptor, trust) = test_pki();
        let (port, h) = serve(Mode::Implicit(acceptor)).await;
        let to = vec!["ops@example.com".to_string()];
        let srv = Server {
            host: "localhost",
            port,
            security: Security::Tls,
            login: Some(("u", "p")),
            helo: "vault",
        };
        send(&srv, &mail(&to), &trust.roots, T).await.unwrap();
        let seen = h.await.unwrap();
        assert_eq!(
            verbs(&seen),
            vec!["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
        );
    }

    #[tokio::test]
    async fn errors_are_explained() {
        let (acceptor, trust) = test_pki();
        let to = vec!["ops@example.com".to_string()];
        let (port, _h) = server(Some(acceptor.clone())).await;
        let srv = Server {
            host: "localhost",
            port,
            security: Security::Starttls,
            login: Some(("u", "wrong")),
            helo: "vault",
        };
        let e = send(&srv, &mail(&to), &trust.roots, T).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "the mail server answered 535: 5.7.8 bad credentials"
        );

        let (port, _h) = server(None).await;
        let srv = Server {
            port,
            security: Security::Starttls,
            ..srv
        };
        let e = send(&srv, &mail(&to), &trust.roots, T).await.unwrap_err();
        assert!(matches!(e, SmtpError::NoStarttls), "{e}");

        // An untrusted certificate stops the exchange before any credential is sent,
        // with STARTTLS and with implicit TLS.
        let (other, _) = test_pki();
        for mode in [Mode::Starttls(other.clone()), Mode::Implicit(other)] {
            let implicit = matches!(mode, Mode::Implicit(_));
            let (port, h) = serve(mode).await;
            let srv = Server {
                port,
                security: if implicit {
                    Security::Tls
                } else {
                    Security::Starttls
                },
                ..srv.clone()
            };
            let e = send(&srv, &mail(&to), &trust.roots, T).await.unwrap_err();
            assert!(matches!(e, SmtpError::Tls { .. }), "{e}");
            assert!(e.to_string().contains("localhost"), "{e}");
            let seen = h.await.unwrap();
            assert!(!seen.commands.iter().any(|c| c.starts_with("AUTH")));
        }

        // The right CA but the wrong name.
        let (port, _h) = serve(Mode::Implicit(acceptor)).await;
        let srv = Server {
            host: "127.0.0.1",
            port,
            security: Security::Tls,
            ..srv.clone()
        };
        let e = send(&srv, &mail(&to), &trust.roots, T).await.unwrap_err();
        assert!(matches!(e, SmtpError::Tls { .. }), "{e}");

        // Nobody listening.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let srv = Server {
            host: "localhost",
            port,
            ..srv
        };
        let e = send(&srv, &mail(&to), &trust.roots, T).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to localhost:{port}")),
            "{e}"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let to = vec!["ops@example.com".to_string()];
        let srv = Server {
            host: "127.0.0.1",
            port,
            security: Security::None,
            login: None,
            helo: "vault",
        };
        let t = Duration::from_millis(300);
        let e = send(&srv, &mail(&to), &[], t).await.unwrap_err();
        assert!(matches!(e, SmtpError::Timeout(_)), "{e}");
        hold.abort();
    }

    #[tokio::test]
    async fn plain_relay_without_login() {
        let (port, h) = server(None).await;
        let to = vec!["a@example.com".to_string(), "b@example.com".to_string()];
        let srv = Server {
            host: "127.0.0.1",
            port,
            security: Security::None,
            login: None,
            helo: "vault",
        };
        send(&srv, &mail(&to), &[], T).await.unwrap();
        let seen = h.await.unwrap();
        assert!(!seen.commands.iter().any(|c| c.starts_with("AUTH")));
        assert_eq!(
            seen.commands
                .iter()
                .filter(|c| c.starts_with("RCPT"))
                .count(),
            2
        );
    }
}
