//! Calls from a joining node to a member's cluster port (cairn-client): the CA, then the join.

use crate::error::ClusterError;
use crate::types::{JoinGrant, JoinRequest};
use cairn_client::ErrorBody;
use std::net::SocketAddr;
use std::time::Duration;

/// Each call's deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Ask the token's endpoints, in turn, for the cluster CA (trusting nothing, sending nothing
/// secret) until one shows the CA whose fingerprint the token carries.
pub async fn fetch_matching_ca(
    endpoints: &[SocketAddr],
    fingerprint: &str,
) -> Result<(SocketAddr, String), ClusterError> {
    let mut seen = Vec::new();
    for &addr in endpoints {
        match cairn_client::cluster::fetch_ca(addr, CALL_TIMEOUT).await {
            Ok(pem) => match crate::ca::fingerprint(&pem) {
                Ok(fp) if fp == fingerprint => return Ok((addr, pem)),
                Ok(fp) => seen.push(format!("{addr} shows CA {fp}")),
                Err(e) => seen.push(format!(
                    "{addr}: {}",
                    cairn_base::error_chain::error_chain(&e)
                )),
            },
            Err(e) => seen.push(format!(
                "{addr}: {}",
                cairn_base::error_chain::error_chain(&e)
            )),
        }
    }
    Err(ClusterError::CaMismatch {
        expected: fingerprint.to_string(),
        seen: seen.join("; "),
    })
}

/// Post the join request to `member`, trusting exactly `ca_pem`; the member's refusals come
/// back as the same errors it raised (409 conflict, 403 token, 422 field).
pub async fn post_join(
    member: SocketAddr,
    ca_pem: &str,
    req: &JoinRequest,
) -> Result<JoinGrant, ClusterError> {
    let body = serde_json::to_value(req).map_err(|source| ClusterError::Record {
        key: "join request".into(),
        source,
    })?;
    let resp = cairn_client::cluster::post_join(member, ca_pem, &body, CALL_TIMEOUT)
        .await
        .map_err(|source| ClusterError::Peer {
            addr: member,
            source: Box::new(source),
        })?;
    let json = resp.json();
    if resp.status.as_u16() == 200 {
        return serde_json::from_value(json).map_err(|source| ClusterError::Record {
            key: format!("join grant from {member}"),
            source,
        });
    }
    let message = ErrorBody::from_json(&json)
        .map(|b| b.message)
        .unwrap_or_else(|| format!("HTTP {}", resp.status));
    Err(match resp.status.as_u16() {
        409 => ClusterError::Conflict(message),
        403 => ClusterError::TokenRefused(
            message
                .strip_prefix("join token refused: ")
                .unwrap_or(&message)
                .to_string(),
        ),
        422 => ClusterError::Invalid {
            field: "join request",
            reason: message,
        },
        _ => ClusterError::Conflict(format!("{member} refused the join: {message}")),
    })
}
