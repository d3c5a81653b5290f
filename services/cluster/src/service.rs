//! The cluster domain's service: status, create, tokens, join (both sides), leave, remove.

use crate::error::ClusterError;
use crate::types::{
    ClusterMode, ClusterStatus, CreateCluster, JoinCluster, JoinGrant, JoinRequest, NameInventory,
    TokenRequest, TokenView,
};
use cairn_core::alert::Progress;
use std::path::PathBuf;
use std::sync::Arc;

/// Where the cluster domain keeps its files on STATE.
#[derive(Debug, Clone)]
pub struct ClusterPaths {
    /// `/var/lib/cairn/cluster`: state.json, ca.pem, ca.key (0600), node.pem, node.key (0600),
    /// etcd.yaml.
    pub dir: PathBuf,
    /// `/var/lib/cairn/etcd`: etcd's data directory.
    pub etcd_data: PathBuf,
}

/// Names this node already uses (pools, VMs, users), asked at join time.
pub trait LocalNames: Send + Sync {
    fn names(&self) -> NameInventory;
}

/// The cluster domain.
pub struct ClusterService {
    paths: ClusterPaths,
    node_name: String,
    #[allow(dead_code)]
    names: Arc<dyn LocalNames>,
}

impl ClusterService {
    /// Open the cluster state kept under `paths` for the node called `node_name`.
    pub fn open(
        paths: ClusterPaths,
        node_name: &str,
        names: Arc<dyn LocalNames>,
    ) -> Result<Self, ClusterError> {
        Ok(ClusterService {
            paths,
            node_name: node_name.to_string(),
            names,
        })
    }

    /// The cluster as this node sees it (`GET /api/v1/cluster`).
    pub fn status(&self) -> ClusterStatus {
        let _ = &self.paths;
        ClusterStatus {
            mode: ClusterMode::Standalone,
            this_node: self.node_name.clone(),
            cluster: None,
            quorum: None,
            nodes: Vec::new(),
            failover: None,
        }
    }

    /// Check a create request (name, address is one of ours, not already a member).
    pub fn check_create(&self, _req: &CreateCluster) -> Result<(), ClusterError> {
        Err(ClusterError::Unfinished("create"))
    }

    /// Create the cluster: CA, node certificate, a one-member etcd, the cluster record.
    pub fn create(
        &self,
        _req: CreateCluster,
        _progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        Err(ClusterError::Unfinished("create"))
    }

    /// Make a join token (shown once).
    pub fn issue_token(&self, _req: TokenRequest) -> Result<TokenView, ClusterError> {
        Err(ClusterError::Unfinished("token"))
    }

    /// Check a join request of the admin (token format, address, not already a member).
    pub fn check_join(&self, _req: &JoinCluster) -> Result<(), ClusterError> {
        Err(ClusterError::Unfinished("join"))
    }

    /// Join the cluster the token names (the joining side; a task).
    pub fn join(
        &self,
        _req: JoinCluster,
        _progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        Err(ClusterError::Unfinished("join"))
    }

    /// The CA certificate (PEM) this member serves unauthenticated at `GET /cluster/v1/ca`.
    pub fn ca_pem(&self) -> Option<String> {
        None
    }

    /// The node certificate chain and key (PEM) the cluster port serves, once a member.
    pub fn node_tls(&self) -> Option<(String, String)> {
        None
    }

    /// Accept a join (the member side of `POST /cluster/v1/join`).
    pub fn accept_join(&self, _req: JoinRequest) -> Result<JoinGrant, ClusterError> {
        Err(ClusterError::Unfinished("accept join"))
    }

    /// Leave the cluster gracefully (refused while this node holds replicas of HA VMs).
    pub fn leave(&self, _progress: &dyn Progress) -> Result<String, ClusterError> {
        Err(ClusterError::Unfinished("leave"))
    }

    /// Remove a dead node: etcd member remove, its certificate revoked.
    pub fn remove(&self, _node: &str, _progress: &dyn Progress) -> Result<String, ClusterError> {
        Err(ClusterError::Unfinished("remove"))
    }
}
