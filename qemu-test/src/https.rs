//! HTTPS to a node's API with the certificate pinned to the fingerprint from its `CAIRN SETUP` block.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::deadline::Deadline;
use crate::error::LabError;
use crate::fingerprint::Fingerprint;

/// How the server certificate is trusted.
#[derive(Debug, Clone, Copy)]
pub enum Trust {
    /// Only a certificate with this SHA-256 fingerprint.
    Pinned(Fingerprint),
    /// Any certificate; its fingerprint is returned so the caller can check it afterwards
    /// (the benchmark polls the API before it has parsed the setup block).
    Record,
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
    /// Response headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// Fingerprint of the certificate the server presented.
    pub peer: Fingerprint,
}

#[derive(Debug)]
struct PinVerifier {
    expected: Option<Fingerprint>,
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
        let fp = Fingerprint::of_der(end_entity.as_ref());
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(fp);
        match self.expected {
            Some(want) if want != fp => Err(rustls::Error::General(format!(
                "certificate fingerprint {fp} is not the pinned {want}"
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

/// One request: method, path, extra headers and an optional JSON body.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl HttpResponse {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// `GET path` over HTTPS from `addr`, once, within `deadline`.
pub fn get(
    addr: SocketAddr,
    path: &str,
    trust: Trust,
    deadline: Deadline,
) -> Result<HttpResponse, LabError> {
    let req = HttpRequest {
        method: "GET",
        path,
        headers: Vec::new(),
        body: None,
    };
    request(addr, &req, trust, deadline)
}

/// Send `req` over HTTPS to `addr`, once, within `deadline`.
pub fn request(
    addr: SocketAddr,
    req: &HttpRequest<'_>,
    trust: Trust,
    deadline: Deadline,
) -> Result<HttpResponse, LabError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        expected: match trust {
            Trust::Pinned(fp) => Some(fp),
            Trust::Record => None,
        },
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| LabError::Tls { addr, source })?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|source| LabError::Tls { addr, source })?;
    let tcp = TcpStream::connect_timeout(
        &addr,
        deadline.remaining_at_least(Duration::from_millis(10)),
    )
    .map_err(|source| LabError::Http { addr, source })?;
    let timeout = Some(deadline.remaining_at_least(Duration::from_millis(10)));
    tcp.set_read_timeout(timeout)
        .and_then(|()| tcp.set_write_timeout(timeout))
        .map_err(|source| LabError::Http { addr, source })?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut request = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n",
        req.method, req.path
    );
    for (k, v) in &req.headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    match &req.body {
        Some(b) => request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => request.push_str("\r\n"),
    }
    tls.write_all(request.as_bytes())
        .map_err(|source| LabError::Http { addr, source })?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // a server that closes without close_notify after a complete response
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(source) => return Err(LabError::Http { addr, source }),
    }
    let peer = verifier
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .ok_or(LabError::HttpResponse {
            addr,
            detail: "no certificate was presented".into(),
        })?;
    let (status, body) =
        parse_response(&raw).map_err(|detail| LabError::HttpResponse { addr, detail })?;
    Ok(HttpResponse {
        status,
        body,
        headers: parse_headers(&raw),
        peer,
    })
}

/// The header lines of a raw HTTP/1.1 response, names lowercased.
pub fn parse_headers(raw: &[u8]) -> Vec<(String, String)> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end])
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// Status and body of a raw HTTP/1.1 response (Content-Length, chunked, or read to close).
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                let n: usize = v.parse().map_err(|_| format!("bad content-length {v:?}"))?;
                body = body.get(..n).ok_or("body shorter than content-length")?;
            }
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4\r\n\r\n{}xxEXTRA";
        assert_eq!(parse_response(raw).unwrap(), (200, "{}xx".into()));
        assert_eq!(
            parse_headers(raw),
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("content-length".to_string(), "4".to_string())
            ]
        );
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (503, "abcde".into()));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    /// A real TLS server on loopback with a fresh self-signed certificate: the pinned
    /// fingerprint is accepted, any other is refused.
    #[test]
    fn pins_the_certificate() {
        let cert = rcgen::generate_simple_self_signed(vec!["cairn".into()]).unwrap();
        let der = cert.cert.der().to_vec();
        let key = cert.key_pair.serialize_der();
        let fp = Fingerprint::of_der(&der);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from(der)],
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
                let mut tls = StreamOwned::new(sc, tcp);
                let mut buf = [0u8; 1024];
                if tls.read(&mut buf).is_err() {
                    continue;
                }
                let body = r#"{"status":"ok"}"#;
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        let r = get(
            addr,
            "/api/v1/health",
            Trust::Pinned(fp),
            Deadline::secs(10),
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, r#"{"status":"ok"}"#);
        assert_eq!(r.peer, fp);
        let r = get(addr, "/", Trust::Record, Deadline::secs(10)).unwrap();
        assert_eq!(r.peer, fp);
        let wrong = Fingerprint([7u8; 32]);
        let err = get(addr, "/", Trust::Pinned(wrong), Deadline::secs(10)).unwrap_err();
        assert!(
            err.to_string().contains("fingerprint") || format!("{err:?}").contains("fingerprint"),
            "{err:?}"
        );
    }
}
