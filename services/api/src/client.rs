//! A minimal HTTPS client that trusts exactly one certificate, by SHA-256 fingerprint
//! (for the CLI, the lab and tests).

use crate::fingerprint::Fingerprint;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("TLS protocol versions are not supported by the ring provider")]
    Versions(#[source] rustls::Error),
    #[error("cannot connect to {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    #[error("TLS handshake with {0} failed (certificate seen: {1})")]
    Handshake(SocketAddr, String, #[source] std::io::Error),
    #[error("HTTP handshake with {0} failed")]
    Http(SocketAddr, #[source] hyper::Error),
    #[error("cannot build request for {0}")]
    Request(String, #[source] hyper::http::Error),
    #[error("request to {0} failed")]
    Send(SocketAddr, #[source] hyper::Error),
    #[error("reading the response body from {0} failed")]
    Body(SocketAddr, #[source] hyper::Error),
    #[error("no answer from {0} within {1:?}")]
    Timeout(SocketAddr, Duration),
}

/// A response from the pinned server.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ClientResponse {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// All values of a header, as text.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }
}

/// A request to send: method, path, extra headers and an optional body.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl ClientRequest {
    pub fn new(method: Method, path: &str) -> Self {
        ClientRequest {
            method,
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Send a JSON body.
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some(value.to_string().into_bytes());
        self.header("content-type", "application/json")
    }
}

/// Whether the verifier trusts a pin or only learns what the server presents.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Pinned(Fingerprint),
    Learn,
}

/// Accepts exactly the certificate whose fingerprint is pinned; records what it saw.
#[derive(Debug)]
struct PinVerifier {
    mode: Mode,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of_der(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp);
        }
        if matches!(self.mode, Mode::Pinned(pin) if pin == fp) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `GET path` on `addr` over HTTPS/1.1, trusting only the certificate with fingerprint
/// `pin`, all within `timeout`.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    pin: Fingerprint,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    request(addr, Method::GET, path, pin, timeout).await
}

/// Any bodiless request; see [`get`].
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    pin: Fingerprint,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    send(addr, ClientRequest::new(method, path), pin, timeout).await
}

/// Send `req` to `addr` over HTTPS/1.1, trusting only the certificate with fingerprint
/// `pin`, all within `timeout`.
pub async fn send(
    addr: SocketAddr,
    req: ClientRequest,
    pin: Fingerprint,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    tokio::time::timeout(timeout, send_inner(addr, req, pin, None))
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))?
}

/// [`send`] from the local address `source` (tests: many client addresses on loopback).
pub async fn send_from(
    source: IpAddr,
    addr: SocketAddr,
    req: ClientRequest,
    pin: Fingerprint,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    tokio::time::timeout(timeout, send_inner(addr, req, pin, Some(source)))
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))?
}

/// A TCP connection to `addr`, from `source` when given.
async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<tokio::net::TcpStream, ClientError> {
    let Some(ip) = source else {
        return tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(addr, e));
    };
    let socket = if ip.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .and_then(|s| s.bind(SocketAddr::new(ip, 0)).map(|()| s))
    .map_err(|e| ClientError::Connect(addr, e))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| ClientError::Connect(addr, e))
}

/// The fingerprint of the certificate `addr` presents, without completing a handshake
/// (for pinning on first use: show it, and compare it with the console).
pub async fn fetch_fingerprint(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Fingerprint, ClientError> {
    let fut = async {
        let (connector, verifier) = connector(Mode::Learn)?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect(addr, e))?;
        let result = connector
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await;
        let seen = verifier.seen.lock().ok().and_then(|s| *s);
        match (seen, result) {
            (Some(fp), _) => Ok(fp),
            (None, Err(e)) => Err(ClientError::Handshake(addr, "none".into(), e)),
            (None, Ok(_)) => Err(ClientError::Handshake(
                addr,
                "none".into(),
                std::io::Error::other("server presented no certificate"),
            )),
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))?
}

/// A TLS connector that trusts only the certificate with fingerprint `pin` and offers the
/// ALPN protocols `alpn` (e.g. `h2`): for callers that speak HTTP themselves (tests, probes).
pub fn pinned_connector(pin: Fingerprint, alpn: &[&[u8]]) -> Result<TlsConnector, ClientError> {
    let provider = crate::tls::provider();
    let verifier = Arc::new(PinVerifier {
        mode: Mode::Pinned(pin),
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsConnector::from(Arc::new(cfg)))
}

fn connector(mode: Mode) -> Result<(TlsConnector, Arc<PinVerifier>), ClientError> {
    let provider = crate::tls::provider();
    let verifier = Arc::new(PinVerifier {
        mode,
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((TlsConnector::from(Arc::new(cfg)), verifier))
}

/// Connect, handshake with the pin, and send; the caller reads the body.
async fn open(
    addr: SocketAddr,
    req: ClientRequest,
    pin: Fingerprint,
    source: Option<IpAddr>,
) -> Result<
    (
        hyper::Response<hyper::body::Incoming>,
        tokio::task::JoinHandle<()>,
    ),
    ClientError,
> {
    let (connector, verifier) = connector(Mode::Pinned(pin))?;
    let tcp = connect(addr, source).await?;
    let seen = || {
        verifier
            .seen
            .lock()
            .ok()
            .and_then(|s| *s)
            .map(|f| f.to_string())
            .unwrap_or_else(|| "none".to_string())
    };
    let tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| ClientError::Handshake(addr, seen(), e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| ClientError::Http(addr, e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut builder = Request::builder()
        .method(req.method)
        .uri(&req.path)
        .header(hyper::header::HOST, addr.to_string());
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let request = builder
        .body(Full::new(Bytes::from(req.body.unwrap_or_default())))
        .map_err(|e| ClientError::Request(req.path.clone(), e))?;
    let resp = sender.send_request(request).await.map_err(|e| {
        driver.abort();
        ClientError::Send(addr, e)
    })?;
    Ok((resp, driver))
}

async fn send_inner(
    addr: SocketAddr,
    req: ClientRequest,
    pin: Fingerprint,
    source: Option<IpAddr>,
) -> Result<ClientResponse, ClientError> {
    let (resp, driver) = open(addr, req, pin, source).await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map_err(|e| {
        driver.abort();
        ClientError::Body(addr, e)
    })?;
    driver.abort();
    Ok(ClientResponse {
        status,
        headers,
        body: body.to_bytes(),
    })
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    /// The `event:` name (`message` when none was given).
    pub event: String,
    pub data: String,
}

/// A server-sent event stream being read.
pub struct EventStream {
    pub status: StatusCode,
    addr: SocketAddr,
    body: hyper::body::Incoming,
    buf: String,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Open a server-sent event stream (e.g. `/api/v1/events`) within `timeout`.
pub async fn stream(
    addr: SocketAddr,
    req: ClientRequest,
    pin: Fingerprint,
    timeout: Duration,
) -> Result<EventStream, ClientError> {
    let (resp, driver) = tokio::time::timeout(timeout, open(addr, req, pin, None))
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))??;
    Ok(EventStream {
        status: resp.status(),
        addr,
        body: resp.into_body(),
        buf: String::new(),
        driver,
    })
}

impl EventStream {
    /// The next event; `None` when the server ended the stream. Comments are skipped.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(ev) = parse_sse_block(&block) {
                    return Ok(Some(ev));
                }
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Body(self.addr, e)),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }
}

/// Parse one event block; `None` for comment-only or data-less blocks.
pub fn parse_sse_block(block: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut event = "message".to_string();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = value.to_string(),
            "data" => data.push(value),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| SseEvent {
        id,
        event,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks() {
        assert_eq!(
            parse_sse_block("id: 3\nevent: task\ndata: {\"a\":1}\n\n"),
            Some(SseEvent {
                id: Some("3".into()),
                event: "task".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(parse_sse_block(": keepalive\n\n"), None);
        assert_eq!(parse_sse_block("retry: 3000\n: connected\n\n"), None);
        assert_eq!(
            parse_sse_block("data: a\ndata: b\n\n").unwrap().data,
            "a\nb"
        );
    }
}
