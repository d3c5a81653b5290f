//! A minimal HTTPS client that trusts exactly one certificate, by SHA-256 fingerprint
//! (for the CLI, the lab and tests).

use crate::fingerprint::Fingerprint;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
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
    pub body: Bytes,
}

/// Accepts exactly the certificate whose fingerprint is pinned; records what it saw.
#[derive(Debug)]
struct PinVerifier {
    pin: Fingerprint,
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
        if fp == self.pin {
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
    tokio::time::timeout(timeout, request_inner(addr, method, path, pin))
        .await
        .map_err(|_| ClientError::Timeout(addr, timeout))?
}

async fn request_inner(
    addr: SocketAddr,
    method: Method,
    path: &str,
    pin: Fingerprint,
) -> Result<ClientResponse, ClientError> {
    let provider = crate::tls::provider();
    let verifier = Arc::new(PinVerifier {
        pin,
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| ClientError::Connect(addr, e))?;
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
    let driver = tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| ClientError::Request(path.to_string(), e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ClientError::Send(addr, e))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Body(addr, e))?
        .to_bytes();
    drop(sender);
    driver.abort();
    Ok(ClientResponse { status, body })
}
