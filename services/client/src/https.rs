//! Requests over HTTPS/1.1 to a server that is trusted by certificate fingerprint (for the
//! CLI, the lab, tests and, later, node-to-node calls).

use crate::error::ClientError;
use crate::fingerprint::Fingerprint;
use crate::sse::EventStream;
use crate::tls::{PinnedTls, Trust};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A response from the server, body read in full.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// Response headers (names are lowercase).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The fingerprint of the certificate the server presented (the pin, when pinned; what
    /// was seen, under [`Trust::Record`]).
    pub peer: Fingerprint,
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
    /// The HTTP method.
    pub method: Method,
    /// Path and query, e.g. `/api/v1/tasks?state=running`.
    pub path: String,
    /// Headers sent besides `Host` (and `content-type` for [`ClientRequest::json`]).
    pub headers: Vec<(String, String)>,
    /// The body; none sends an empty one.
    pub body: Option<Vec<u8>>,
}

impl ClientRequest {
    /// A request without headers or body.
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
    send_trusting(addr, req, Trust::Pinned(pin), timeout).await
}

/// [`send`] with any [`Trust`]; [`ClientResponse::peer`] tells which certificate answered.
pub async fn send_trusting(
    addr: SocketAddr,
    req: ClientRequest,
    trust: Trust,
    timeout: Duration,
) -> Result<ClientResponse, ClientError> {
    tokio::time::timeout(timeout, send_inner(addr, req, trust, None))
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
    tokio::time::timeout(
        timeout,
        send_inner(addr, req, Trust::Pinned(pin), Some(source)),
    )
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

/// The fingerprint of the certificate `addr` presents, trusting it for nothing (for
/// pinning on first use: show it, and compare it with the console).
pub async fn fetch_fingerprint(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Fingerprint, ClientError> {
    let fut = async {
        let tls = PinnedTls::new(Trust::Record, &[])?;
        let tcp = connect(addr, None).await?;
        let result = tls
            .connector()
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await;
        match (tls.seen(), result) {
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

/// An answer whose body is still to be read, with the task driving its connection.
pub(crate) struct Opened {
    pub(crate) response: hyper::Response<hyper::body::Incoming>,
    pub(crate) driver: tokio::task::JoinHandle<()>,
    pub(crate) peer: Fingerprint,
}

/// Connect, handshake per `trust`, and send; the caller reads the body.
pub(crate) async fn open(
    addr: SocketAddr,
    req: ClientRequest,
    trust: Trust,
    source: Option<IpAddr>,
) -> Result<Opened, ClientError> {
    let pinned = PinnedTls::new(trust, &[])?;
    let seen = || {
        pinned
            .seen()
            .map_or_else(|| "none".to_string(), |f| f.to_string())
    };
    open_with(addr, req, pinned.connector(), source, seen).await
}

/// Connect, handshake with `connector`, and send; the caller reads the body. `seen` says
/// which certificate the server showed when the handshake fails.
pub(crate) async fn open_with(
    addr: SocketAddr,
    req: ClientRequest,
    connector: tokio_rustls::TlsConnector,
    source: Option<IpAddr>,
    seen: impl Fn() -> String,
) -> Result<Opened, ClientError> {
    let tcp = connect(addr, source).await?;
    let tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| ClientError::Handshake(addr, seen(), e))?;
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|leaf| Fingerprint::of_der(leaf))
        .ok_or_else(|| {
            ClientError::Handshake(
                addr,
                "none".into(),
                std::io::Error::other("server presented no certificate"),
            )
        })?;
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
    let response = sender.send_request(request).await.map_err(|e| {
        driver.abort();
        ClientError::Send(addr, e)
    })?;
    Ok(Opened {
        response,
        driver,
        peer,
    })
}

/// Read an opened answer's body whole.
pub(crate) async fn read_whole(
    addr: SocketAddr,
    opened: Opened,
) -> Result<ClientResponse, ClientError> {
    let Opened {
        response,
        driver,
        peer,
    } = opened;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| {
        driver.abort();
        ClientError::Body(addr, e)
    })?;
    driver.abort();
    Ok(ClientResponse {
        status,
        headers,
        body: body.to_bytes(),
        peer,
    })
}

async fn send_inner(
    addr: SocketAddr,
    req: ClientRequest,
    trust: Trust,
    source: Option<IpAddr>,
) -> Result<ClientResponse, ClientError> {
    let opened = open(addr, req, trust, source).await?;
    read_whole(addr, opened).await
}

/// Open a server-sent event stream (e.g. `/api/v1/events`) within `timeout`, trusting only
/// the certificate with fingerprint `pin`.
pub async fn stream(
    addr: SocketAddr,
    req: ClientRequest,
    pin: Fingerprint,
    timeout: Duration,
) -> Result<EventStream, ClientError> {
    let opened = tokio::time::timeout(timeout, open(addr, req, Trust::Pinned(pin), None))
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))??;
    Ok(EventStream::new(addr, opened.response, opened.driver))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    /// A TLS server on loopback with a fresh self-signed certificate, answering every
    /// connection with `{"status":"ok"}`.
    pub(crate) struct TestServer {
        pub(crate) addr: SocketAddr,
        pub(crate) pin: Fingerprint,
    }

    impl TestServer {
        pub(crate) fn start() -> TestServer {
            let cert = rcgen::generate_simple_self_signed(vec!["cairn".into()]).unwrap();
            let der = cert.cert.der().to_vec();
            let key = cert.key_pair.serialize_der();
            let pin = Fingerprint::of_der(&der);
            let server_config = Arc::new(
                rustls::ServerConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(
                        vec![der.into()],
                        rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
                    )
                    .unwrap(),
            );
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(tcp) = conn else { break };
                    let sc = rustls::ServerConnection::new(server_config.clone()).unwrap();
                    let mut tls = rustls::StreamOwned::new(sc, tcp);
                    let mut buf = [0u8; 4096];
                    if tls.read(&mut buf).is_err() {
                        continue;
                    }
                    let body = r#"{"status":"ok"}"#;
                    let _ = write!(
                        tls,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            });
            TestServer { addr, pin }
        }
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn the_pinned_certificate_is_accepted() {
        let s = TestServer::start();
        let r = get(s.addr, "/api/v1/health", s.pin, T).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(r.header_all("content-type"), vec!["application/json"]);
        assert_eq!(r.peer, s.pin);
    }

    #[tokio::test]
    async fn another_certificate_is_refused_and_named() {
        let s = TestServer::start();
        let err = get(s.addr, "/", Fingerprint([7; 32]), T).await.unwrap_err();
        match err {
            ClientError::Handshake(_, seen, _) => assert_eq!(seen, s.pin.to_string()),
            other => panic!("{other:?}"),
        }
        assert_eq!(fetch_fingerprint(s.addr, T).await.unwrap(), s.pin);
    }

    #[tokio::test]
    async fn record_trusts_any_certificate_and_reports_it() {
        let s = TestServer::start();
        let req = ClientRequest::new(Method::GET, "/");
        let r = send_trusting(s.addr, req, Trust::Record, T).await.unwrap();
        assert_eq!(r.peer, s.pin);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = get(addr, "/", Fingerprint([7; 32]), T).await.unwrap_err();
        assert!(matches!(err, ClientError::Connect(..)), "{err}");
    }

    #[test]
    fn requests_carry_json_and_headers() {
        let r = ClientRequest::new(Method::POST, "/x")
            .header("x-a", "1")
            .json(&serde_json::json!({"k": 2}));
        assert_eq!(r.body.as_deref(), Some(&br#"{"k":2}"#[..]));
        assert_eq!(
            r.headers,
            vec![
                ("x-a".to_string(), "1".to_string()),
                ("content-type".to_string(), "application/json".to_string())
            ]
        );
    }
}
