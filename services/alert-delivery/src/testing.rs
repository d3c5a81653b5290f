//! Scripted peers for tests of alert delivery here and in the API: an SMTP responder (plain,
//! STARTTLS or implicit TLS), a one-shot HTTP server, and a private CA.

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::{ClientConfig, ServerConfig};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// What a scripted test server saw.
pub struct Seen {
    /// Every command line, in order (AUTH lines with their credentials).
    pub commands: Vec<String>,
    /// The message as sent after DATA (dot lines included, the final dot not).
    pub data: String,
}

/// How the scripted server protects the session.
#[derive(Clone)]
pub enum Mode {
    /// No TLS offered.
    Plain,
    /// STARTTLS offered, then TLS with this acceptor.
    Starttls(tokio_rustls::TlsAcceptor),
    /// TLS with this acceptor from the first byte.
    Implicit(tokio_rustls::TlsAcceptor),
}

/// A scripted SMTP server on loopback for one session: offers STARTTLS when `tls` is
/// given, accepts AUTH PLAIN for user `u` password `p`.
pub async fn server(
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (u16, tokio::task::JoinHandle<Seen>) {
    serve(tls.map_or(Mode::Plain, Mode::Starttls)).await
}

/// A scripted SMTP server on loopback for one session in `mode`: its port, and what it
/// saw when the session ends.
pub async fn serve(mode: Mode) -> (u16, tokio::task::JoinHandle<Seen>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut seen = Seen {
            commands: Vec::new(),
            data: String::new(),
        };
        let (mut io, starttls): (Box<dyn Stream>, _) = match &mode {
            Mode::Plain => (Box::new(BufReader::new(s)), None),
            Mode::Starttls(a) => (Box::new(BufReader::new(s)), Some(a.clone())),
            Mode::Implicit(a) => match a.accept(s).await {
                Ok(t) => (Box::new(BufReader::new(t)), None),
                Err(_) => return seen,
            },
        };
        if io.write_all(b"220 test ESMTP\r\n").await.is_err() {
            return seen;
        }
        loop {
            let mut line = String::new();
            match io.read_line(&mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let cmd = line.trim_end().to_string();
            seen.commands.push(cmd.clone());
            let upper = cmd.to_ascii_uppercase();
            let answer: &[u8] = if upper.starts_with("EHLO") {
                if starttls.is_some() && io.is_plain() {
                    b"250-test\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n"
                } else {
                    b"250-test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n"
                }
            } else if upper == "STARTTLS" {
                io.write_all(b"220 go ahead\r\n").await.unwrap();
                let acceptor = starttls.clone().unwrap();
                match acceptor.accept(io.into_tcp()).await {
                    Ok(s) => io = Box::new(BufReader::new(s)),
                    Err(_) => break,
                }
                continue;
            } else if upper.starts_with("AUTH PLAIN") {
                let ok = base64::engine::general_purpose::STANDARD.encode("\0u\0p");
                if cmd.ends_with(&ok) {
                    b"235 ok\r\n"
                } else {
                    b"535 5.7.8 bad credentials\r\n"
                }
            } else if upper == "DATA" {
                io.write_all(b"354 go\r\n").await.unwrap();
                loop {
                    let mut l = String::new();
                    if io.read_line(&mut l).await.unwrap_or(0) == 0 || l == ".\r\n" {
                        break;
                    }
                    seen.data.push_str(&l);
                }
                b"250 queued\r\n"
            } else if upper == "QUIT" {
                let _ = io.write_all(b"221 bye\r\n").await;
                break;
            } else {
                b"250 ok\r\n"
            };
            if io.write_all(answer).await.is_err() {
                break;
            }
        }
        seen
    });
    (port, h)
}

/// Lets the scripted server swap a plain stream for a TLS one.
pub trait Stream: tokio::io::AsyncBufRead + AsyncWrite + Unpin + Send {
    /// The TCP stream under a plain session (for STARTTLS).
    fn into_tcp(self: Box<Self>) -> tokio::net::TcpStream;
    /// Whether TLS has not started yet.
    fn is_plain(&self) -> bool;
}

impl Stream for BufReader<tokio::net::TcpStream> {
    fn into_tcp(self: Box<Self>) -> tokio::net::TcpStream {
        self.into_inner()
    }
    fn is_plain(&self) -> bool {
        true
    }
}

impl Stream for BufReader<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    fn into_tcp(self: Box<Self>) -> tokio::net::TcpStream {
        unreachable!("TLS is started once")
    }
    fn is_plain(&self) -> bool {
        false
    }
}

/// A CA and a `localhost` certificate it signed: (server acceptor, what a client must
/// trust: a rustls config for webhooks and the CA for mail).
pub fn test_pki() -> (tokio_rustls::TlsAcceptor, crate::channels::Trust) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let server = server_config(leaf.pem().as_bytes(), key.serialize_pem().as_bytes());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client: Arc<ClientConfig> = crate::outbound::client_config(roots).unwrap();
    (
        tokio_rustls::TlsAcceptor::from(server),
        crate::channels::Trust {
            client,
            roots: vec![ca.der().clone()],
        },
    )
}

/// A one-shot HTTP server: answers `status` and returns the request it got.
pub async fn one_request(status: u16) -> (u16, tokio::task::JoinHandle<(String, String)>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).await.unwrap();
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        r.get_mut().write_all(answer.as_bytes()).await.unwrap();
        (head, String::from_utf8(body).unwrap())
    });
    (port, h)
}

/// A fresh self-signed `localhost` certificate and key as PEM (trusted by nobody).
pub fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A test server's TLS configuration from a PEM certificate and key.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Arc<ServerConfig> {
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem).unwrap();
    let cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    Arc::new(cfg)
}
