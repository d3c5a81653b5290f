//! cairn-cluster: the cluster CA, join tokens, the etcd member and client, membership and the
//! create / join / leave / remove orchestration (DESIGN.md §2 "Cluster and HA", issue 16).

pub mod action;
pub mod ca;
pub mod error;
pub mod etcd;
pub mod etcd_conf;
pub mod lease;
pub mod membership;
pub mod service;
pub mod token;
pub mod types;

pub use error::ClusterError;
pub use service::ClusterService;
