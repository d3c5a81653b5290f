//! What every cluster operation works with: the node, its files, its tools and etcd's timing.

use crate::local::LocalFiles;
use crate::types::NameInventory;
use cairn_core::command::CommandRunner;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Names and addresses this node already has, asked at create and join time.
pub trait LocalNames: Send + Sync {
    /// Its pools, VMs and users (a clash with the cluster's is refused at join).
    fn names(&self) -> NameInventory;
    /// Its own IP addresses (the cluster address must be one of them).
    fn addresses(&self) -> Vec<IpAddr>;
    /// Its bridges and network roles, published in its node record (none by default).
    fn networks(&self) -> crate::networks::NodeNetworks {
        crate::networks::NodeNetworks::default()
    }
    /// Its pools and their free space, published in its node record (none by default).
    fn pools(&self) -> Vec<crate::records::PoolSpace> {
        Vec::new()
    }
    /// Its name now: the hostname, which the setup wizard may have set after cairnd started
    /// (None: the name given when the cluster state was opened). A create or join takes it.
    fn node_name(&self) -> Option<String> {
        None
    }
}

/// etcd's timing for every member of the cluster (decision 0026).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdTiming {
    pub heartbeat_ms: u64,
    pub election_ms: u64,
    /// The node leases' TTL (≥ 1.5 × the election timeout, which etcd would raise it to).
    pub lease_ttl_s: u64,
}

/// The timing new clusters get (measured in the lab under TCG, decision 0026).
pub const ETCD_TIMING: EtcdTiming = EtcdTiming {
    heartbeat_ms: 200,
    election_ms: 1000,
    lease_ttl_s: 10,
};

/// How long etcd may take to serve after `cairn-init svc start etcd`.
pub const ETCD_START_WAIT: Duration = Duration::from_secs(120);

/// The node and its means.
#[derive(Clone)]
pub struct Ctx {
    pub files: LocalFiles,
    /// etcd's data directory.
    pub etcd_data: PathBuf,
    pub node_name: String,
    pub names: Arc<dyn LocalNames>,
    pub runner: Arc<dyn CommandRunner>,
    pub timing: EtcdTiming,
    /// Where this node's etcd answers clients (tests: a loopback port of their own).
    pub local_etcd: String,
    /// etcd listens on the wildcard address (the appliance) rather than the cluster address.
    pub listen_any: bool,
}
