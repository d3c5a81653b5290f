//! Calls from a joining node to a member's cluster port (cairn-client): the CA, then the join.

use crate::error::ClusterError;
use crate::types::{JoinGrant, JoinRequest};
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

/// Post the join request to `member`, trusting exactly `ca_pem`.
pub async fn post_join(
    member: SocketAddr,
    ca_pem: &str,
    req: &JoinRequest,
) -> Result<JoinGrant, ClusterError> {
    let resp = cairn_client::cluster::post_join(member, ca_pem, req, CALL_TIMEOUT)
        .await
        .map_err(|source| ClusterError::Peer {
            addr: member,
            source: Box::new(source),
        })?;
    Ok(resp)
}
