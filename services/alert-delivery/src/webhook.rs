//! Webhook delivery: an HTTP(S) POST of a JSON document to a configured URL.

use crate::outbound::{self, ConnectError};
use cairn_core::shown::quoted;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// A parsed webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `https://` (else `http://`).
    pub https: bool,
    /// Name or address (an IPv6 address without brackets).
    pub host: String,
    /// Given or the scheme's default.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Why a webhook could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No connection (or no TLS) to the webhook's host.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The HTTP exchange broke off; the host.
    #[error("HTTP exchange with {0} failed")]
    Http(String, #[source] hyper::Error),
    /// The request could not be built from the URL.
    #[error("cannot build the request")]
    Request(#[source] hyper::http::Error),
    /// The host answered with a status other than 2xx.
    #[error("{0} answered HTTP {1}")]
    Status(String, StatusCode),
    /// The exchange took longer than allowed.
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
}

/// Parse `http(s)://HOST[:PORT][/PATH]`; the error says what is wrong.
pub fn parse_url(url: &str) -> Result<Url, String> {
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 characters".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL must not contain spaces or control characters".into());
    }
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("the URL must start with https:// or http://".into());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    if authority.contains('@') {
        return Err("credentials in the URL are not supported; put a secret in the path".into());
    }
    let default = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("missing ']' in the host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p
                .parse()
                .map_err(|_| format!("{} is not a port", quoted(p)))?,
            None if after.is_empty() => default,
            None => return Err(format!("unexpected {} after the host", quoted(after))),
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| format!("{} is not a port", quoted(p)))?,
            ),
            None => (authority.to_string(), default),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    check_host(&host, authority.starts_with('['))?;
    if port == 0 {
        return Err("port 0 is not valid".into());
    }
    Ok(Url {
        https,
        host,
        port,
        path,
    })
}

/// A URL's host: an IPv6 address in brackets, an IPv4 address, or a DNS name (labels of
/// letters, digits, `-` and `_`, at most 63 characters each, 253 in all).
fn check_host(host: &str, bracketed: bool) -> Result<(), String> {
    if bracketed {
        return host
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{} in brackets is not an IPv6 address", quoted(host)));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return Ok(());
    }
    Err(format!(
        "{} is not a host name or an IP address",
        quoted(host)
    ))
}

/// POST `body` as JSON to `url`; success is any 2xx answer.
pub async fn post_json(
    url: &Url,
    body: Vec<u8>,
    tls: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<StatusCode, WebhookError> {
    tokio::time::timeout(timeout, post_inner(url, body, tls))
        .await
        .map_err(|_| WebhookError::Timeout(url.host.clone(), timeout))?
}

async fn post_inner(
    url: &Url,
    body: Vec<u8>,
    tls: Arc<ClientConfig>,
) -> Result<StatusCode, WebhookError> {
    let tcp = outbound::tcp(&url.host, url.port).await?;
    if url.https {
        let s = outbound::tls(tcp, &url.host, tls).await?;
        exchange(s, url, body).await
    } else {
        exchange(tcp, url, body).await
    }
}

async fn exchange<S>(io: S, url: &Url, body: Vec<u8>) -> Result<StatusCode, WebhookError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = url.host.clone();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| WebhookError::Http(host.clone(), e))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let req = Request::post(&url.path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("cairn/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(WebhookError::Request)?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| WebhookError::Http(host.clone(), e))?;
        let status = resp.status();
        // Read (and drop) the answer so the exchange completes.
        let _ = resp.into_body().collect().await;
        if status.is_success() {
            Ok(status)
        } else {
            Err(WebhookError::Status(host.clone(), status))
        }
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::one_request;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("https://hooks.example.com/x/y?z=1").unwrap(),
            Url {
                https: true,
                host: "hooks.example.com".into(),
                port: 443,
                path: "/x/y?z=1".into()
            }
        );
        let u = parse_url("http://[fd00::1]:8080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("fd00::1", 8080, "/")
        );
        assert_eq!(parse_url("http://h?x").unwrap().path, "/?x");
        for bad in [
            "ftp://x",
            "https://",
            "https://a b",
            "https://u:p@h/",
            "http://h:0/",
            "http://h:x/",
            "https://h\r\n/",
            "http://0[:1/",
            "http://a]b/",
            "http://[zz]/",
            "http://-a.example/",
            "http://a..b/",
            "https://exa mple/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn posts_json_and_reports_status() {
        let tls = crate::outbound::public_client_config().unwrap();
        let (port, server) = one_request(204).await;
        let url = parse_url(&format!("http://127.0.0.1:{port}/hook?k=1")).unwrap();
        let s = post_json(
            &url,
            br#"{"a":1}"#.to_vec(),
            tls.clone(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(s, 204);
        let (head, body) = server.await.unwrap();
        assert!(head.starts_with("POST /hook?k=1 HTTP/1.1\r\n"), "{head}");
        assert!(head
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert_eq!(body, r#"{"a":1}"#);

        let (port, server) = one_request(500).await;
        let url = parse_url(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = post_json(&url, b"{}".to_vec(), tls, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("answered HTTP 500"), "{e}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn https_needs_a_trusted_certificate() {
        // The API's own self-signed server is not in the public roots.
        let (cert, key) = crate::testing::self_signed();
        let acceptor = tokio_rustls::TlsAcceptor::from(crate::testing::server_config(
            cert.as_bytes(),
            key.as_bytes(),
        ));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let _ = acceptor.accept(s).await;
        });
        let url = parse_url(&format!("https://localhost:{port}/")).unwrap();
        let tls = crate::outbound::public_client_config().unwrap();
        let e = post_json(&url, b"{}".to_vec(), tls, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(e, WebhookError::Connect(ConnectError::Tls(..))),
            "{e}"
        );
    }
}
