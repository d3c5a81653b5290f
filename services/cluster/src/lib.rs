//! cairn-cluster: the cluster CA, join tokens, the etcd member and client, membership and the
//! create / join / leave / remove orchestration (DESIGN.md §2 "Cluster and HA", issue 16).

pub mod accept;
pub mod action;
pub mod ca;
pub mod create;
pub mod crl;
pub mod ctx;
pub mod drbd;
pub mod error;
pub mod etcd;
pub mod etcd_conf;
pub mod etcd_wait;
pub mod join;
pub mod lease;
pub mod local;
pub mod membership;
pub mod monitor;
pub mod networks;
pub mod peer;
pub mod placement;
pub mod pool;
pub mod probe;
pub mod process;
pub mod quorum;
pub mod records;
pub mod recover;
pub mod renewal;
pub mod replicate;
pub mod service;
pub mod snapshot;
pub mod status;
pub mod token;
pub mod types;
pub mod upkeep;
pub mod validate;

pub use error::ClusterError;
pub use service::ClusterService;
