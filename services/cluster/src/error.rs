//! What can go wrong in the cluster domain, one variant per failure site.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A cluster operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A request field is invalid (the API answers 422 naming it).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The request does not fit the node's current cluster state (409).
    #[error("{0}")]
    Conflict(String),
    /// The cluster has no quorum reachable from this node (503, names the reachable members).
    #[error("no quorum: this node reaches {reachable:?} of the voters {voters:?}")]
    NoQuorum {
        reachable: Vec<String>,
        voters: Vec<String>,
    },
    /// A join token was refused (spent, expired, tampered or unknown) (403).
    #[error("join token refused: {0}")]
    TokenRefused(String),
    /// No endpoint of the token showed the CA it names: nothing secret was sent.
    #[error(
        "no member showed the CA {expected} the token names, so nothing secret was sent ({seen})"
    )]
    CaMismatch { expected: String, seen: String },
    /// Certificates or keys could not be made, read or checked.
    #[error("cluster certificates")]
    Certificates(#[source] crate::ca::CaError),
    /// The cluster's files on STATE.
    #[error("cluster files")]
    Files(#[source] crate::local::LocalError),
    /// etcd's configuration could not be built.
    #[error("etcd configuration")]
    EtcdConf(#[source] crate::etcd_conf::ConfError),
    /// etcd's data directory could not be emptied.
    #[error("cannot empty etcd's data directory {}", path.display())]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// cairn-init could not start or stop etcd.
    #[error("cannot {what} the etcd service")]
    Service {
        what: &'static str,
        #[source]
        source: cairn_core::command::CommandError,
    },
    /// A wait ran out.
    #[error("waited {waited:?} for {what}")]
    Timeout { what: String, waited: Duration },
    /// An etcd request (records) failed.
    #[error("etcd: cannot {what}")]
    Etcd {
        what: String,
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// An etcd operation of the client wrapper failed.
    #[error("etcd")]
    EtcdOp(#[source] crate::etcd::EtcdError),
    /// A record in etcd is not what this version reads.
    #[error("etcd record {key} is unreadable")]
    Record {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A member's cluster port did not answer as expected.
    #[error("cluster member {addr}")]
    Peer {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This node's side of a replicated disk could not be brought up.
    #[error("replicated disk {resource}")]
    DrbdSide {
        resource: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A DRBD command on this node failed.
    #[error("replicated disk {resource}")]
    Drbd {
        resource: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The cluster client's runtime could not be started.
    #[error("cannot start the cluster client's runtime")]
    Runtime(#[source] std::io::Error),
}
