//! The cluster as this node sees it: records, liveness and quorum put together.

use crate::local::LocalState;
use crate::membership;
use crate::records::NodeRecord;
use crate::types::{ClusterMode, ClusterStatus, EtcdMemberView, NodeView, QuorumView, Role};
use std::time::Duration;

/// What this node could read from etcd (absent when it reached no quorum).
pub struct Observed {
    pub nodes: Vec<NodeRecord>,
    /// Nodes whose liveness key exists, with the time since their last keepalive.
    pub alive: Vec<(String, Option<Duration>)>,
    /// etcd members: name, hex id, learner.
    pub members: Vec<(String, String, bool)>,
}

/// Put the status together; `observed` is `None` when etcd could not be read, and
/// `reachable` lists the voters whose etcd answered.
pub fn assemble(
    state: &LocalState,
    observed: Option<&Observed>,
    reachable: &[String],
    lease_ttl_s: u64,
) -> ClusterStatus {
    let nodes: Vec<NodeView> = match observed {
        Some(o) => o
            .nodes
            .iter()
            .map(|n| {
                let alive = o.alive.iter().find(|(name, _)| *name == n.name);
                let view = membership::liveness(
                    alive.is_some(),
                    alive.and_then(|a| a.1),
                    Duration::from_secs(lease_ttl_s),
                );
                let (liveness, ago) = (view.liveness, view.since_seen.map(|d| d.as_secs()));
                NodeView {
                    name: n.name.clone(),
                    address: n.address,
                    role: n.role,
                    liveness,
                    last_seen_s_ago: ago,
                    etcd_member: o.members.iter().find(|(name, _, _)| *name == n.name).map(
                        |(_, id, learner)| EtcdMemberView {
                            id: id.clone(),
                            learner: *learner,
                        },
                    ),
                    bridges: n.networks.bridges.clone(),
                    replication_address: n.networks.replication_address,
                    pools: n.pools.clone(),
                }
            })
            .collect(),
        None => Vec::new(),
    };
    let voters: Vec<String> = match observed {
        Some(o) => o
            .nodes
            .iter()
            .filter(|n| n.role != Role::Client)
            .map(|n| n.name.clone())
            .collect(),
        None => state
            .etcd_endpoints
            .iter()
            .map(|e| e.trim_start_matches("https://").to_string())
            .collect(),
    };
    let has_quorum = observed.is_some();
    let roles: Vec<Role> = nodes.iter().map(|n| n.role).collect();
    let failover = membership::failover(&roles);
    ClusterStatus {
        mode: ClusterMode::Member,
        this_node: state.node_name.clone(),
        cluster: Some(state.cluster.clone()),
        quorum: Some(QuorumView {
            has_quorum,
            reachable: reachable.to_vec(),
            voters,
        }),
        nodes,
        failover: Some(failover),
        snapshots: Vec::new(),
        bridges: Vec::new(),
    }
}
