//! The cluster's views and requests as the API, cairnctl and other nodes exchange them (JSON).

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The cluster API port every member serves on its cluster address (node certificate from
/// the cluster CA; join requests and, later, node-to-node calls with mutual TLS).
pub const CLUSTER_PORT: u16 = 9443;
/// etcd's client port (TLS, client certificates required).
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port (TLS, peer certificates from the cluster CA).
pub const ETCD_PEER_PORT: u16 = 2380;
/// A join token's lifetime when the admin does not choose one.
pub const DEFAULT_TOKEN_TTL_S: u64 = 3600;
/// Shortest and longest join token lifetime.
pub const TOKEN_TTL_RANGE_S: std::ops::RangeInclusive<u64> = 60..=86_400;

/// What part a node plays in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs an etcd voting member (the first 3, or 5 from 5 nodes on) and workloads.
    Voter,
    /// Runs workloads and uses the voters' etcd endpoints as a client.
    Client,
    /// Runs an etcd voting member and a minimal cairnd only: the third vote of two nodes.
    Witness,
}

/// Whether this node is in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// No cluster: the node's settings are its own; "create" turns it into a cluster of one
    /// in place (pools, VMs, users kept).
    Standalone,
    /// A join is in progress (the task reports its steps).
    Joining,
    /// A member of the cluster in `cluster`.
    Member,
}

/// A node's liveness as the cluster sees it (its etcd lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Liveness {
    /// Its lease is alive.
    Online,
    /// Its lease is alive but its last keepalive is late (within the TTL).
    Unreachable,
    /// Its lease expired.
    Offline,
}

/// The cluster record (etcd `/cairn/cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The name the admin gave.
    pub name: String,
    /// A random id, fixed at creation (a restored cluster gets a new one).
    pub id: String,
    /// `sha256:` + hex of the CA certificate's DER.
    pub ca_fingerprint: String,
    /// Creation time, seconds since the epoch.
    pub created_at: u64,
}

/// One node as the Cluster page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    /// Its cluster address.
    pub address: IpAddr,
    pub role: Role,
    pub liveness: Liveness,
    /// Seconds since its last keepalive was seen (absent: never, or this node cannot tell).
    pub last_seen_s_ago: Option<u64>,
    /// Its etcd member, if it runs one: hex id and whether it is still a learner.
    pub etcd_member: Option<EtcdMemberView>,
    /// The bridges it has (VMs may only run where their bridges are).
    pub bridges: Vec<String>,
    /// Its address on the replication network (absent: replication uses its cluster
    /// address), and its pools with their free space (where replicas can go).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_address: Option<IpAddr>,
    #[serde(default)]
    pub pools: Vec<PoolSpace>,
}

/// An etcd member as listed by the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMemberView {
    pub id: String,
    pub learner: bool,
}

/// Quorum as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    pub has_quorum: bool,
    /// Voters this node reaches (itself included).
    pub reachable: Vec<String>,
    /// Every voter.
    pub voters: Vec<String>,
}

/// Whether failover can happen automatically, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverView {
    pub automatic: bool,
    pub reason: Option<String>,
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub mode: ClusterMode,
    /// This node's name.
    pub this_node: String,
    pub cluster: Option<ClusterInfo>,
    pub quorum: Option<QuorumView>,
    pub nodes: Vec<NodeView>,
    pub failover: Option<FailoverView>,
    /// This node's etcd snapshots on STATE, newest first (voters and witnesses).
    #[serde(default)]
    pub snapshots: Vec<SnapshotInfo>,
    /// Per VM bridge, which nodes have it.
    #[serde(default)]
    pub bridges: Vec<crate::networks::BridgeView>,
}

/// One snapshot file as the cluster status lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The file name inside the snapshot directory (`etcd-<time>-r<revision>.db`).
    pub file: String,
    /// When it was taken, seconds since the epoch.
    pub taken_at: u64,
    pub size: u64,
    /// etcd's revision just before the snapshot (it holds at least this one).
    pub revision: i64,
}

/// `POST /api/v1/cluster/recover`: quorum is lost for good; make this node a new cluster of
/// one from a snapshot (refused while it has quorum).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverCluster {
    /// A snapshot file name from the status' `snapshots`; absent: the newest (or, with none,
    /// etcd's live data).
    #[serde(default)]
    pub snapshot: Option<String>,
}

/// `POST /api/v1/cluster`: make this node the first member of a new cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    /// 1–63 of `a-z 0-9 -`, starting with a letter.
    pub name: String,
    /// This node's address on the cluster network (one of its own addresses).
    pub address: IpAddr,
}

/// `POST /api/v1/cluster/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Lifetime in seconds, [`TOKEN_TTL_RANGE_S`]; default [`DEFAULT_TOKEN_TTL_S`].
    pub ttl_s: Option<u64>,
}

/// A join token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub token: String,
    /// Seconds since the epoch.
    pub expires_at: u64,
}

/// `POST /api/v1/cluster/join`: join the cluster a token names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinCluster {
    pub token: String,
    /// This node's address on the cluster network (one of its own addresses).
    pub address: IpAddr,
    /// `witness` for a witness node; otherwise the cluster decides voter or client.
    #[serde(default)]
    pub witness: bool,
}

/// The names a joining node already uses: a clash with the cluster's is refused before
/// anything changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameInventory {
    pub pools: Vec<String>,
    pub vms: Vec<String>,
    pub users: Vec<String>,
}

/// `POST /cluster/v1/join` on a member's cluster port, sent by a joining node only after it
/// checked the member's CA against the token's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The token's one-time secret.
    pub secret: String,
    pub node_name: String,
    pub address: IpAddr,
    pub witness: bool,
    /// PKCS#10 CSR (PEM) for the node certificate.
    pub csr_pem: String,
    pub names: NameInventory,
}

/// What a member answers an accepted join with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGrant {
    pub cluster: ClusterInfo,
    /// The node certificate signed by the cluster CA (PEM).
    pub node_cert_pem: String,
    /// The CA certificate and key (PEM): every member can sign joins and renewals
    /// (decision 0026).
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    /// The role the cluster gave the node.
    pub role: Role,
    /// etcd's members as `name=https://ip:2380` (for `initial-cluster`), the new one included
    /// when it runs a member.
    pub etcd_initial_cluster: Vec<String>,
    /// etcd client endpoints of the voters (`https://ip:2379`).
    pub etcd_endpoints: Vec<String>,
    /// The heartbeat and election timeouts every member runs with, ms.
    pub etcd_heartbeat_ms: u64,
    pub etcd_election_ms: u64,
}

/// One pool of a node as its record publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpace {
    pub name: String,
    /// Its LVM volume group (`/dev/<vg>/…`).
    pub volume_group: String,
    /// The thin pool LV in that group (`lvcreate -T <vg>/<thin_pool>`).
    pub thin_pool: String,
    /// Free space of its thin pool, rounded down to [`POOL_SPACE_STEP`] (so the record changes
    /// only when the free space moves by a step).
    pub free_bytes: u64,
}

/// The rounding of [`PoolSpace::free_bytes`].
pub const POOL_SPACE_STEP: u64 = 64 << 20;
