//! Mail delivery: a small SMTP client (implicit TLS, STARTTLS, or plain for a local relay;
//! AUTH PLAIN only over TLS) and the text/plain message it sends.

use crate::outbound::{self, ConnectError};
use base64::Engine;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

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
    pub host: &'a str,
    pub port: u16,
    pub security: Security,
    /// User name and password for AUTH PLAIN.
    pub login: Option<(&'a str, &'a str)>,
    /// The name this node gives in EHLO.
    pub helo: &'a str,
}

/// One message.
#[derive(Debug, Clone)]
pub struct Mail<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: &'a str,
    pub body: &'a str,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("connection to the mail server failed")]
    Io(#[from] std::io::Error),
    #[error("the mail server closed the connection")]
    Closed,
    #[error("the mail server answered {code} to {step}: {text}")]
    Reply {
        step: &'static str,
        code: u16,
        text: String,
    },
    #[error("the mail server does not offer STARTTLS; use security \"tls\" or another server")]
    NoStarttls,
    #[error("no answer from the mail server within {0:?}")]
    Timeout(Duration),
}

/// Send `mail` through `server` within `timeout`.
pub async fn send(
    server: &Server<'_>,
    mail: &Mail<'_>,
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<(), SmtpError> {
    tokio::time::timeout(timeout, send_inner(server, mail, tls))
        .await
        .map_err(|_| SmtpError::Timeout(timeout))?
}

async fn send_inner(
    server: &Server<'_>,
    mail: &Mail<'_>,
    tls: Arc<ClientConfig>,
) -> Result<(), SmtpError> {
    let tcp = outbound::tcp(server.host, server.port).await?;
    match server.security {
        Security::Tls => {
            let s = outbound::tls(tcp, server.host, tls).await?;
            let mut c = Conn::new(s);
            c.expect("greeting", &[220]).await?;
            c.ehlo(server.helo).await?;
            c.deliver(server, mail).await
        }
        Security::Starttls => {
            let mut c = Conn::new(tcp);
            c.expect("greeting", &[220]).await?;
            let caps = c.ehlo(server.helo).await?;
            if !caps.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS")) {
                return Err(SmtpError::NoStarttls);
            }
            c.command("STARTTLS", "STARTTLS", &[220]).await?;
            let s = outbound::tls(c.into_inner(), server.host, tls).await?;
            let mut c = Conn::new(s);
            c.ehlo(server.helo).await?;
            c.deliver(server, mail).await
        }
        Security::None => {
            let mut c = Conn::new(tcp);
            c.expect("greeting", &[220]).await?;
            c.ehlo(server.helo).await?;
            c.deliver(server, mail).await
        }
    }
}

struct Conn<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(s: S) -> Self {
        Conn {
            io: BufReader::new(s),
        }
    }

    fn into_inner(self) -> S {
        self.io.into_inner()
    }

    /// Read one (possibly multi-line) reply: its code and the text of each line.
    async fn reply(&mut self) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.io.read_line(&mut line).await? == 0 {
                return Err(SmtpError::Closed);
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or(SmtpError::Closed)?;
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if line.as_bytes().get(3) != Some(&b'-') || lines.len() > 100 {
                return Ok((code, lines));
            }
        }
    }

    async fn expect(&mut self, step: &'static str, ok: &[u16]) -> Result<Vec<String>, SmtpError> {
        let (code, lines) = self.reply().await?;
        if ok.contains(&code) {
            Ok(lines)
        } else {
            Err(SmtpError::Reply {
                step,
                code,
                text: lines.join(" "),
            })
        }
    }

    async fn command(
        &mut self,
        step: &'static str,
        line: &str,
        ok: &[u16],
    ) -> Result<Vec<String>, SmtpError> {
        let w = self.io.get_mut();
        w.write_all(line.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
        w.flush().await?;
        self.expect(step, ok).await
    }

    /// EHLO; returns the extension lines (after the greeting line).
    async fn ehlo(&mut self, helo: &str) -> Result<Vec<String>, SmtpError> {
        let lines = self
            .command("EHLO", &format!("EHLO {helo}"), &[250])
            .await?;
        Ok(lines.into_iter().skip(1).collect())
    }

    /// Authenticate (if configured), send the envelope and the message, quit.
    async fn deliver(&mut self, server: &Server<'_>, mail: &Mail<'_>) -> Result<(), SmtpError> {
        if let Some((user, password)) = server.login {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            self.command("AUTH", &format!("AUTH PLAIN {token}"), &[235])
                .await?;
        }
        self.command("MAIL FROM", &format!("MAIL FROM:<{}>", mail.from), &[250])
            .await?;
        for to in mail.to {
            self.command("RCPT TO", &format!("RCPT TO:<{to}>"), &[250, 251])
                .await?;
        }
        self.command("DATA", "DATA", &[354]).await?;
        let msg = message(mail, server.helo, crate::events::now_s());
        let w = self.io.get_mut();
        w.write_all(dot_stuff(&msg).as_bytes()).await?;
        self.command("message", ".", &[250]).await?;
        // The message is accepted; a failed QUIT changes nothing.
        let _ = self.command("QUIT", "QUIT", &[221]).await;
        Ok(())
    }
}

/// The message: headers and a text body, lines ending in CRLF.
pub fn message(mail: &Mail<'_>, host: &str, now: u64) -> String {
    let mut id = [0u8; 12];
    let _ = getrandom::getrandom(&mut id);
    let mut m = String::new();
    m.push_str(&format!("From: <{}>\r\n", mail.from));
    let to: Vec<String> = mail.to.iter().map(|t| format!("<{t}>")).collect();
    m.push_str(&format!("To: {}\r\n", to.join(", ")));
    m.push_str(&format!("Subject: {}\r\n", encode_header(mail.subject)));
    m.push_str(&format!("Date: {}\r\n", rfc2822(now)));
    m.push_str(&format!(
        "Message-ID: <{}@{host}>\r\n",
        crate::secret::hex(&id)
    ));
    m.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    for line in mail.body.lines() {
        m.push_str(line);
        m.push_str("\r\n");
    }
    m
}

/// A header value: as is if plain ASCII, else RFC 2047 base64 encoded-word.
pub fn encode_header(v: &str) -> String {
    let v: String = v.chars().filter(|c| !c.is_control()).collect();
    if v.is_ascii() {
        v
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v)
        )
    }
}

/// Double a leading dot on every line (RFC 5321 §4.5.2).
pub fn dot_stuff(msg: &str) -> String {
    msg.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// `Mon, 23 Nov 2026 01:02:03 +0000` for Unix seconds.
pub fn rfc2822(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let (y, m, d) = civil_from_days(days);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        WD[(days % 7) as usize],
        MON[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn dates() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_795_395_762), "Mon, 23 Nov 2026 01:02:42 +0000");
        assert_eq!(rfc2822(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn headers_and_dots() {
        assert_eq!(encode_header("disk ok"), "disk ok");
        assert_eq!(
            encode_header("a\r\nBcc: x"),
            "aBcc: x",
            "no header injection"
        );
        assert_eq!(
            encode_header("Pool “tank”"),
            "=?UTF-8?B?UG9vbCDigJx0YW5r4oCd?="
        );
        assert_eq!(dot_stuff("a\r\n.b\r\n..c\r\n"), "a\r\n..b\r\n...c\r\n");
        let to = vec!["ops@example.com".to_string(), "b@example.com".to_string()];
        let m = message(
            &Mail {
                from: "nas@example.com",
                to: &to,
                subject: "s",
                body: "one\n.two",
            },
            "vault",
            0,
        );
        assert!(m.contains("To: <ops@example.com>, <b@example.com>\r\n"));
        assert!(m.contains("@vault>\r\n"));
        assert!(m.ends_with("\r\n\r\none\r\n.two\r\n"));
    }

    /// What a scripted test server saw.
    pub(crate) struct Seen {
        pub commands: Vec<String>,
        pub data: String,
    }

    /// A scripted SMTP server on loopback: offers STARTTLS when `tls` is given, accepts
    /// AUTH PLAIN for user `u` password `p`.
    pub(crate) async fn server(
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> (u16, tokio::task::JoinHandle<Seen>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut seen = Seen {
                commands: Vec::new(),
                data: String::new(),
            };
            let mut io: Box<dyn Stream> = Box::new(BufReader::new(s));
            io.write_all(b"220 test ESMTP\r\n").await.unwrap();
            loop {
                let mut line = String::new();
                if io.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                let cmd = line.trim_end().to_string();
                seen.commands.push(cmd.clone());
                let upper = cmd.to_ascii_uppercase();
                let answer: &[u8] = if upper.starts_with("EHLO") {
                    if tls.is_some() {
                        b"250-test\r\n250-8BITMIME\r\n250 STARTTLS\r\n"
                    } else {
                        b"250-test\r\n250 8BITMIME\r\n"
                    }
                } else if upper == "STARTTLS" {
                    io.write_all(b"220 go ahead\r\n").await.unwrap();
                    let acceptor = tls.clone().unwrap();
                    let plain = io.into_tcp();
                    let s = acceptor.accept(plain).await.unwrap();
                    io = Box::new(BufReader::new(s));
                    continue;
                } else if upper.starts_with("AUTH PLAIN") {
                    let ok = base64::engine::general_purpose::STANDARD.encode("\0u\0p");
                    if cmd.ends_with(&ok) {
                        b"235 ok\r\n"
                    } else {
                        b"535 bad credentials\r\n"
                    }
                } else if upper == "DATA" {
                    io.write_all(b"354 go\r\n").await.unwrap();
                    loop {
                        let mut l = String::new();
                        io.read_line(&mut l).await.unwrap();
                        if l == ".\r\n" {
                            break;
                        }
                        seen.data.push_str(&l);
                    }
                    b"250 queued\r\n"
                } else if upper == "QUIT" {
                    io.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                } else {
                    b"250 ok\r\n"
                };
                io.write_all(answer).await.unwrap();
            }
            seen
        });
        (port, h)
    }

    /// Lets the scripted server swap a plain stream for a TLS one.
    pub(crate) trait Stream: tokio::io::AsyncBufRead + AsyncWrite + Unpin + Send {
        fn into_tcp(self: Box<Self>) -> tokio::net::TcpStream;
    }

    impl Stream for BufReader<tokio::net::TcpStream> {
        fn into_tcp(self: Box<Self>) -> tokio::net::TcpStream {
            self.into_inner()
        }
    }

    impl Stream for BufReader<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        fn into_tcp(self: Box<Self>) -> tokio::net::TcpStream {
            unreachable!("TLS is started once")
        }
    }

    /// A CA and a `localhost` certificate it signed: (server acceptor, client config).
    pub(crate) fn test_pki() -> (tokio_rustls::TlsAcceptor, Arc<ClientConfig>) {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let server =
            crate::tls::server_config(leaf.pem().as_bytes(), key.serialize_pem().as_bytes())
                .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        (
            tokio_rustls::TlsAcceptor::from(server),
            crate::tls::client_config(roots).unwrap(),
        )
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

    #[tokio::test]
    async fn starttls_auth_and_delivery() {
        let (acceptor, client) = test_pki();
        let (port, h) = server(Some(acceptor)).await;
        let to = vec!["ops@example.com".to_string()];
        let srv = Server {
            host: "localhost",
            port,
            security: Security::Starttls,
            login: Some(("u", "p")),
            helo: "vault",
        };
        send(&srv, &mail(&to), client, T).await.unwrap();
        let seen = h.await.unwrap();
        let c: Vec<&str> = seen
            .commands
            .iter()
            .map(|c| c.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            c,
            vec!["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
        );
        assert_eq!(seen.commands[5], "RCPT TO:<ops@example.com>");
        assert!(seen
            .data
            .contains("Subject: [vault] CRITICAL: pool degraded\r\n"));
        assert!(seen.data.contains("\r\n..hidden line\r\n"), "dot-stuffed");
    }

    #[tokio::test]
    async fn errors_are_explained() {
        let (acceptor, client) = test_pki();
        let to = vec!["ops@example.com".to_string()];
        let (port, _h) = server(Some(acceptor)).await;
        let srv = Server {
            host: "localhost",
            port,
            security: Security::Starttls,
            login: Some(("u", "wrong")),
            helo: "vault",
        };
        let e = send(&srv, &mail(&to), client.clone(), T).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "the mail server answered 535 to AUTH: bad credentials"
        );

        let (port, _h) = server(None).await;
        let srv = Server {
            port,
            security: Security::Starttls,
            ..srv
        };
        let e = send(&srv, &mail(&to), client.clone(), T).await.unwrap_err();
        assert!(matches!(e, SmtpError::NoStarttls), "{e}");

        // An untrusted certificate stops the exchange before any credential is sent.
        let (other, _) = test_pki();
        let (port, _h) = server(Some(other)).await;
        let srv = Server { port, ..srv };
        let e = send(&srv, &mail(&to), client, T).await.unwrap_err();
        assert!(
            matches!(e, SmtpError::Connect(ConnectError::Tls(..))),
            "{e}"
        );
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
        let client = crate::tls::public_client_config().unwrap();
        send(&srv, &mail(&to), client, T).await.unwrap();
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
