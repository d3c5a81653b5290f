//! VM placement: which other nodes of the cluster could take a VM (replica, failover,
//! migration target), and why the others could not.

use crate::networks::{self, NodeNetworks};
use crate::types::{Liveness, NodeView, Role};
use serde::{Deserialize, Serialize};

/// Whether one node can take a VM (`GET /api/v1/vms/{vm}/targets`): replication, failover
/// and migration pick their target node among the eligible ones only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    pub node: String,
    pub eligible: bool,
    /// Why not, for the admin (absent when eligible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Every other node of the cluster as a target for a VM on `this_node` using `vm_bridges`,
/// sorted by name: a witness runs no VMs, a node that is not online cannot start one, and a
/// node must have every bridge the VM uses ([`networks::bridge_check`]).
pub fn targets(this_node: &str, nodes: &[NodeView], vm_bridges: &[String]) -> Vec<TargetView> {
    let mut out: Vec<TargetView> = nodes
        .iter()
        .filter(|n| n.name != this_node)
        .map(|n| {
            let networks = NodeNetworks {
                bridges: n.bridges.clone(),
                ..Default::default()
            };
            let refused = if n.role == Role::Witness {
                Err(format!("{} is a witness: it runs no VMs", n.name))
            } else if n.liveness != Liveness::Online {
                Err(format!(
                    "{} is {}: it cannot take a VM now",
                    n.name,
                    match n.liveness {
                        Liveness::Unreachable => "unreachable",
                        _ => "offline",
                    }
                ))
            } else {
                networks::bridge_check(vm_bridges, &n.name, &networks)
            };
            TargetView {
                node: n.name.clone(),
                eligible: refused.is_ok(),
                reason: refused.err(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn node(name: &str, role: Role, liveness: Liveness, bridges: &[&str]) -> NodeView {
        NodeView {
            name: name.into(),
            address: "10.77.0.11".parse().unwrap(),
            role,
            liveness,
            last_seen_s_ago: Some(1),
            etcd_member: None,
            bridges: v(bridges),
            replication_address: None,
            pools: Vec::new(),
        }
    }

    #[test]
    fn targets_refuse_a_witness_a_node_not_online_and_a_node_without_the_bridges() {
        let nodes = [
            node("node4", Role::Client, Liveness::Online, &["br0"]),
            node("node1", Role::Voter, Liveness::Online, &["br0", "br20"]),
            node("node2", Role::Voter, Liveness::Online, &["br0", "br20"]),
            node("node3", Role::Voter, Liveness::Offline, &["br0", "br20"]),
            node("w", Role::Witness, Liveness::Online, &[]),
            node(
                "node5",
                Role::Client,
                Liveness::Unreachable,
                &["br0", "br20"],
            ),
        ];
        let t = targets("node1", &nodes, &v(&["br0", "br20"]));
        let names: Vec<&str> = t.iter().map(|t| t.node.as_str()).collect();
        assert_eq!(
            names,
            ["node2", "node3", "node4", "node5", "w"],
            "itself left out, sorted"
        );
        assert_eq!(
            t[0],
            TargetView {
                node: "node2".into(),
                eligible: true,
                reason: None
            }
        );
        let why = |i: usize| t[i].reason.clone().unwrap_or_default();
        assert!(!t[1].eligible && why(1) == "node3 is offline: it cannot take a VM now");
        assert!(
            !t[2].eligible && why(2).starts_with("node4 has no bridge br20, which the VM uses")
        );
        assert!(!t[3].eligible && why(3).contains("unreachable"));
        assert!(!t[4].eligible && why(4) == "w is a witness: it runs no VMs");
        // A VM with no NIC can go to any online full node.
        let t = targets("node1", &nodes, &[]);
        assert!(t
            .iter()
            .find(|t| t.node == "node4")
            .is_some_and(|t| t.eligible));
        assert!(targets("node1", &[], &v(&["br0"])).is_empty());
    }
}
