//! The cluster's records in etcd: their keys, their JSON and the calls that read and write
//! them.

use crate::error::ClusterError;
use crate::types::{ClusterInfo, NameInventory, Role, ETCD_CLIENT_PORT, ETCD_PEER_PORT};
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// The cluster record.
pub const CLUSTER_KEY: &str = "/cairn/cluster";
/// Node records: `/cairn/nodes/<name>`.
pub const NODES_PREFIX: &str = "/cairn/nodes/";
/// Liveness keys on each node's lease: `/cairn/alive/<name>` = seconds since the epoch of the
/// node's last refresh.
pub const ALIVE_PREFIX: &str = "/cairn/alive/";
/// Join tokens: `/cairn/join-tokens/<sha256 of the secret>` on a lease of the token's TTL.
pub const TOKENS_PREFIX: &str = "/cairn/join-tokens/";
/// Revoked node certificates: `/cairn/revoked/<serial>`.
pub const REVOKED_PREFIX: &str = "/cairn/revoked/";

/// A node of the cluster as etcd records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub address: IpAddr,
    pub role: Role,
    /// Seconds since the epoch.
    pub joined_at: u64,
    /// The pools, VMs and users it had when it joined (clashes are refused at join).
    pub names: NameInventory,
    /// Its certificate's serial (hex), revoked when it is removed.
    pub cert_serial: String,
    /// Serials of its earlier certificates (renewed, still valid until they expire): revoked
    /// with the current one.
    #[serde(default)]
    pub previous_serials: Vec<String>,
    /// Its bridges and network roles (issue 16 item 8).
    #[serde(default)]
    pub networks: crate::networks::NodeNetworks,
    /// Its pools and their free space (where a replica of a VM disk can go, issue 18).
    #[serde(default)]
    pub pools: Vec<PoolSpace>,
}

pub use crate::types::{PoolSpace, POOL_SPACE_STEP};

/// A join token as the cluster keeps it (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub expires_at: u64,
    /// Who made it.
    pub issued_by: String,
}

/// A revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub node: String,
    pub at: u64,
}

/// A new random cluster id (16 hex digits).
pub fn new_cluster_id() -> String {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        b = std::process::id()
            .to_le_bytes()
            .repeat(2)
            .try_into()
            .unwrap_or([0; 8]);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// etcd's client URL at `addr`.
pub fn client_url(addr: IpAddr) -> String {
    format!(
        "https://{}",
        std::net::SocketAddr::new(addr, ETCD_CLIENT_PORT)
    )
}

/// etcd's peer URL at `addr`.
pub fn peer_url(addr: IpAddr) -> String {
    format!(
        "https://{}",
        std::net::SocketAddr::new(addr, ETCD_PEER_PORT)
    )
}

fn etcd_err(what: &'static str) -> impl FnOnce(etcd_client::Error) -> ClusterError {
    move |source| ClusterError::Etcd {
        what: what.to_string(),
        source: Box::new(source),
    }
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn from_json<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, ClusterError> {
    serde_json::from_slice(value).map_err(|source| ClusterError::Record {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// Write the cluster record unless one exists (a second create is refused).
pub async fn put_cluster(client: &Client, cluster: &ClusterInfo) -> Result<(), ClusterError> {
    let txn = Txn::new()
        .when([Compare::version(CLUSTER_KEY, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(CLUSTER_KEY, to_json(cluster), None)]);
    let resp = client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd_err("write the cluster record"))?;
    if resp.succeeded() {
        Ok(())
    } else {
        Err(ClusterError::Conflict(
            "etcd already holds a cluster record".into(),
        ))
    }
}

/// The cluster record.
pub async fn get_cluster(client: &Client) -> Result<Option<ClusterInfo>, ClusterError> {
    let resp = client
        .kv_client()
        .get(CLUSTER_KEY, None)
        .await
        .map_err(etcd_err("read the cluster record"))?;
    resp.kvs()
        .first()
        .map(|kv| from_json(kv.key(), kv.value()))
        .transpose()
}

/// Write a node's record.
pub async fn put_node(client: &Client, node: &NodeRecord) -> Result<(), ClusterError> {
    client
        .kv_client()
        .put(format!("{NODES_PREFIX}{}", node.name), to_json(node), None)
        .await
        .map_err(etcd_err("write the node record"))?;
    Ok(())
}

/// Every node record, by name.
pub async fn nodes(client: &Client) -> Result<Vec<NodeRecord>, ClusterError> {
    let resp = client
        .kv_client()
        .get(NODES_PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(etcd_err("list the nodes"))?;
    resp.kvs()
        .iter()
        .map(|kv| from_json(kv.key(), kv.value()))
        .collect()
}

/// Delete a node's record and liveness key.
pub async fn delete_node(client: &Client, name: &str) -> Result<(), ClusterError> {
    let txn = Txn::new().and_then([
        TxnOp::delete(format!("{NODES_PREFIX}{name}"), None),
        TxnOp::delete(format!("{ALIVE_PREFIX}{name}"), None),
    ]);
    client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd_err("delete the node record"))?;
    Ok(())
}

/// Liveness keys present: node name and how long ago its lease was last kept alive (from
/// the lease's remaining TTL: granted − remaining; `None` if etcd could not tell).
pub async fn alive(client: &Client) -> Result<Vec<(String, Option<Duration>)>, ClusterError> {
    let resp = client
        .kv_client()
        .get(ALIVE_PREFIX, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(etcd_err("read the liveness keys"))?;
    let mut out = Vec::new();
    for kv in resp.kvs() {
        let Some(name) = kv
            .key_str()
            .ok()
            .and_then(|k| k.strip_prefix(ALIVE_PREFIX))
            .map(String::from)
        else {
            continue;
        };
        let since = match client.lease_client().time_to_live(kv.lease(), None).await {
            Ok(t) if t.ttl() >= 0 && t.granted_ttl() >= t.ttl() => Some(Duration::from_secs(
                u64::try_from(t.granted_ttl() - t.ttl()).unwrap_or(0),
            )),
            _ => None,
        };
        out.push((name, since));
    }
    Ok(out)
}

/// Store a token (by its secret's hash) on a lease of its TTL, so etcd drops it when it
/// expires.
pub async fn put_token(
    client: &Client,
    secret_hash: &str,
    record: &TokenRecord,
    ttl_s: u64,
) -> Result<(), ClusterError> {
    let ttl = i64::try_from(ttl_s).unwrap_or(i64::MAX);
    let lease = client
        .lease_client()
        .grant(ttl, None)
        .await
        .map_err(etcd_err("grant the token's lease"))?;
    client
        .kv_client()
        .put(
            format!("{TOKENS_PREFIX}{secret_hash}"),
            to_json(record),
            Some(PutOptions::new().with_lease(lease.id())),
        )
        .await
        .map_err(etcd_err("store the token"))?;
    Ok(())
}

/// Whether a token with this secret hash is stored (unspent, unexpired).
pub async fn token(
    client: &Client,
    secret_hash: &str,
) -> Result<Option<TokenRecord>, ClusterError> {
    let key = format!("{TOKENS_PREFIX}{secret_hash}");
    let resp = client
        .kv_client()
        .get(key.as_str(), None)
        .await
        .map_err(etcd_err("read the token"))?;
    resp.kvs()
        .first()
        .map(|kv| from_json(kv.key(), kv.value()))
        .transpose()
}

/// Spend a token: delete it if it is still there; `false` if it was spent or expired
/// meanwhile (exactly one join spends a token).
pub async fn spend_token(client: &Client, secret_hash: &str) -> Result<bool, ClusterError> {
    let key = format!("{TOKENS_PREFIX}{secret_hash}");
    let txn = Txn::new()
        .when([Compare::version(key.as_str(), CompareOp::Greater, 0)])
        .and_then([TxnOp::delete(key.as_str(), None)]);
    let resp = client
        .kv_client()
        .txn(txn)
        .await
        .map_err(etcd_err("spend the token"))?;
    Ok(resp.succeeded())
}

/// Record a revoked certificate.
pub async fn revoke(
    client: &Client,
    serial: &str,
    record: &RevokedRecord,
) -> Result<(), ClusterError> {
    client
        .kv_client()
        .put(format!("{REVOKED_PREFIX}{serial}"), to_json(record), None)
        .await
        .map_err(etcd_err("record the revoked certificate"))?;
    Ok(())
}

/// Whether the certificate with this serial was revoked.
pub async fn is_revoked(client: &Client, serial: &str) -> Result<bool, ClusterError> {
    let resp = client
        .kv_client()
        .get(format!("{REVOKED_PREFIX}{serial}"), None)
        .await
        .map_err(etcd_err("read the revocation list"))?;
    Ok(!resp.kvs().is_empty())
}

/// The serials of every revoked certificate (the keys under `/cairn/revoked/`), sorted.
pub async fn revoked_serials(client: &Client) -> Result<Vec<String>, ClusterError> {
    let resp = client
        .kv_client()
        .get(
            REVOKED_PREFIX,
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .map_err(etcd_err("read the revocation list"))?;
    let mut serials: Vec<String> = resp
        .kvs()
        .iter()
        .filter_map(|kv| {
            String::from_utf8_lossy(kv.key())
                .strip_prefix(REVOKED_PREFIX)
                .map(str::to_string)
        })
        .filter(|s| !s.is_empty())
        .collect();
    serials.sort();
    serials.dedup();
    Ok(serials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ids() {
        let a: IpAddr = "10.77.0.11".parse().unwrap();
        assert_eq!(client_url(a), "https://10.77.0.11:2379");
        assert_eq!(peer_url(a), "https://10.77.0.11:2380");
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(client_url(v6), "https://[fd00::1]:2379");
        let id = new_cluster_id();
        assert_eq!(id.len(), 16);
        assert_ne!(id, new_cluster_id());
    }
}
