//! HTTPS to a node's API with the certificate pinned to the fingerprint from its `CAIRN SETUP`
//! block: the lab's sync request and response shapes over cairn-client's blocking client.

use std::net::SocketAddr;
use std::time::Duration;

use cairn_client::{blocking, ClientRequest, Fingerprint};
use hyper::Method;

use crate::deadline::Deadline;
use crate::error::LabError;

pub use cairn_client::Trust;

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
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|_| LabError::HttpMethod {
        method: req.method.to_string(),
    })?;
    let mut sent = ClientRequest::new(method, req.path).header("accept", "application/json");
    for (k, v) in &req.headers {
        sent = sent.header(k, v);
    }
    if let Some(body) = &req.body {
        sent.body = Some(body.clone().into_bytes());
        sent = sent.header("content-type", "application/json");
    }
    send(addr, sent, trust, deadline)
}

/// Send `req` with a raw body of `content_type` (an upload's bytes) instead of JSON.
pub fn request_bytes(
    addr: SocketAddr,
    req: &HttpRequest<'_>,
    body: Vec<u8>,
    content_type: &str,
    trust: Trust,
    deadline: Deadline,
) -> Result<HttpResponse, LabError> {
    let method = Method::from_bytes(req.method.as_bytes()).map_err(|_| LabError::HttpMethod {
        method: req.method.to_string(),
    })?;
    let mut sent = ClientRequest::new(method, req.path)
        .header("accept", "application/json")
        .header("content-type", content_type);
    for (k, v) in &req.headers {
        sent = sent.header(k, v);
    }
    sent.body = Some(body);
    send(addr, sent, trust, deadline)
}

/// Send one built request within `deadline` and read its answer.
fn send(
    addr: SocketAddr,
    sent: ClientRequest,
    trust: Trust,
    deadline: Deadline,
) -> Result<HttpResponse, LabError> {
    let timeout = deadline.remaining_at_least(Duration::from_millis(10));
    let r = blocking::send(addr, sent, trust, timeout)
        .map_err(|source| LabError::Https { addr, source })?;
    Ok(HttpResponse {
        status: r.status.as_u16(),
        body: String::from_utf8_lossy(&r.body).into_owned(),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_string(), value)
            })
            .collect(),
        peer: r.peer,
    })
}
