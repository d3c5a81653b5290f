//! Pinned HTTPS calls to a node, with clear messages for a changed certificate and API errors.

use crate::target::Target;
use cairn_client::{
    self as client, ClientError, ClientRequest, ClientResponse, ErrorBody, Fingerprint,
};
use std::net::SocketAddr;
use std::time::Duration;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A node reached through its pinned certificate.
pub struct Conn {
    pub target: Target,
    addrs: Vec<SocketAddr>,
    pub pin: Fingerprint,
}

impl Conn {
    /// Resolve the node; every request trusts only `pin`.
    pub async fn new(target: Target, pin: Fingerprint) -> anyhow::Result<Self> {
        let addrs = target.resolve().await?;
        Ok(Conn { target, addrs, pin })
    }

    /// Send a request to the first address that accepts a connection.
    pub async fn send(&self, req: ClientRequest) -> anyhow::Result<ClientResponse> {
        let mut last = None;
        for addr in &self.addrs {
            match client::send(*addr, req.clone(), self.pin, TIMEOUT).await {
                Ok(r) => return Ok(r),
                Err(e @ ClientError::Connect(..)) => last = Some(e),
                Err(ClientError::Handshake(_, seen, _))
                    if seen != "none" && seen != self.pin.to_string() =>
                {
                    anyhow::bail!(changed_certificate(&self.target, &self.pin, &seen));
                }
                Err(e) => return Err(e.into()),
            }
        }
        match last {
            Some(e) => Err(e.into()),
            None => anyhow::bail!("{} has no address", self.target.host),
        }
    }
}

/// The message for a certificate that is not the pinned one.
pub fn changed_certificate(target: &Target, pinned: &Fingerprint, seen: &str) -> String {
    let node = target.key();
    format!(
        "the certificate of {node} has CHANGED since it was pinned\n  pinned:   {pinned}\n  now seen: {seen}\n\
         Someone may be intercepting the connection; nothing was sent. If the node was reinstalled \
         or its certificate replaced, compare the fingerprint with the one on its console, then run \
         `cairnctl --node {node} forget` and log in again."
    )
}

/// Turn an API error answer into a message: `what failed: message (code)`.
pub fn api_error(doing: &str, r: &ClientResponse) -> anyhow::Error {
    message(doing, r.status.as_u16(), &r.json())
}

/// The text of an API error body: the field it names (when it names one) comes first, so
/// `--confirm` mistakes read `confirm: type the share's name …`.
fn message(doing: &str, status: u16, v: &serde_json::Value) -> anyhow::Error {
    match ErrorBody::from_json(v) {
        Some(ErrorBody {
            code,
            message,
            field: Some(f),
        }) => anyhow::anyhow!("{doing}: {f}: {message} ({code})"),
        Some(ErrorBody { code, message, .. }) => anyhow::anyhow!("{doing}: {message} ({code})"),
        None => anyhow::anyhow!("{doing}: the node answered HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_name_the_field() {
        let v = serde_json::json!({"code": "invalid", "message": "type the share's name", "field": "confirm"});
        assert_eq!(
            message("cannot delete share docs", 422, &v).to_string(),
            "cannot delete share docs: confirm: type the share's name (invalid)"
        );
        let v = serde_json::json!({"code": "not_found", "message": "no disk nvme-X"});
        assert_eq!(
            message("cannot get", 404, &v).to_string(),
            "cannot get: no disk nvme-X (not_found)"
        );
        assert_eq!(
            message("cannot get", 502, &serde_json::Value::Null).to_string(),
            "cannot get: the node answered HTTP 502"
        );
    }

    #[test]
    fn changed_message_names_both_and_the_way_out() {
        let t = Target::parse("nas:8443").unwrap();
        let pin = Fingerprint::of_der(b"a");
        let m = changed_certificate(&t, &pin, "SHA256:00");
        assert!(m.contains("CHANGED"));
        assert!(m.contains(&pin.to_string()) && m.contains("SHA256:00"));
        assert!(m.contains("cairnctl --node nas:8443 forget"));
    }
}
