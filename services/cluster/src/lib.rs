//! cairn-cluster: the cluster CA, join tokens, the etcd member and client, membership and the
//! create / join / leave / remove orchestration (DESIGN.md §2 "Cluster and HA", issue 16).

pub mod action;
pub mod error;
pub mod service;
pub mod types;

pub use error::ClusterError;
pub use service::ClusterService;
