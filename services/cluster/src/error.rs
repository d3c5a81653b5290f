//! What can go wrong in the cluster domain, one variant per failure site.

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
    /// Not implemented yet in this skeleton (replaced before landing).
    #[error("not implemented yet: {0}")]
    Unfinished(&'static str),
}
