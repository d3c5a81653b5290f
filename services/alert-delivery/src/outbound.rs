//! Outbound connections for alert delivery: resolve, connect (each address in turn), and
//! optionally start TLS with server-name verification.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Why an outbound connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The name did not resolve; the host.
    #[error("cannot resolve {0}")]
    Resolve(String, #[source] std::io::Error),
    /// The name resolved to nothing; the host.
    #[error("{0} has no address")]
    NoAddress(String),
    /// No address took the connection (the last error); host and port.
    #[error("cannot connect to {0}:{1}")]
    Connect(String, u16, #[source] std::io::Error),
    /// The host cannot be a TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    Name(String),
    /// The handshake or certificate check failed; the host.
    #[error("TLS with {0} failed")]
    Tls(String, #[source] std::io::Error),
}

/// A client configuration trusting `roots` (ring provider, HTTP/1.1 only).
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A client configuration trusting the public web PKI (Mozilla's roots, built in, so it
/// does not depend on the system's CA bundle): for mail servers and webhooks.
pub fn public_client_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    client_config(roots)
}

/// Connect to `host:port`, trying every address it resolves to.
pub async fn tcp(host: &str, port: u16) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| ConnectError::Resolve(host.to_string(), e))?
        .collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => ConnectError::Connect(host.to_string(), port, e),
        None => ConnectError::NoAddress(host.to_string()),
    })
}

/// Start TLS over `tcp`, verifying the certificate against `cfg`'s roots and `host`.
pub async fn tls(
    tcp: TcpStream,
    host: &str,
    cfg: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, ConnectError> {
    let name =
        ServerName::try_from(host.to_string()).map_err(|_| ConnectError::Name(host.to_string()))?;
    TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(host.to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_roots_are_loaded() {
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
        assert!(public_client_config().is_ok());
    }

    #[tokio::test]
    async fn tries_each_address_and_names_failures() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(tcp("127.0.0.1", port).await.is_ok());
        drop(l);
        let e = tcp("127.0.0.1", port).await.unwrap_err();
        assert!(matches!(e, ConnectError::Connect(..)), "{e}");
        let e = tcp("no-such-host.invalid", 25).await.unwrap_err();
        assert!(matches!(e, ConnectError::Resolve(..)), "{e}");
    }
}
