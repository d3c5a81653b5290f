//! Networks across the cluster: the bridges and network roles each node publishes in its node
//! record, whether a node can host a VM (it has every bridge the VM uses), and which nodes have
//! each bridge (the Cluster page), and which nodes a VM may be moved or restarted on.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node publishes about its networks in its node record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeNetworks {
    /// Its bridges (VM networks), sorted.
    #[serde(default)]
    pub bridges: Vec<String>,
    /// The interface that carries the cluster network, if named in its network spec.
    #[serde(default)]
    pub cluster_interface: Option<String>,
    /// The interface that carries the replication network, if named.
    #[serde(default)]
    pub replication_interface: Option<String>,
}

/// One VM bridge and the nodes that have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeView {
    pub bridge: String,
    /// Nodes that have it, sorted.
    pub nodes: Vec<String>,
    /// Nodes that lack it (a VM on this bridge cannot run there), sorted.
    pub missing_on: Vec<String>,
}

/// Whether the node `node_name` with `networks` can be the target of a VM using `vm_bridges`:
/// every bridge the VM uses must exist there. The error is the reason, for the admin.
pub fn bridge_check(
    vm_bridges: &[String],
    node_name: &str,
    networks: &NodeNetworks,
) -> Result<(), String> {
    let mut missing: Vec<&str> = vm_bridges
        .iter()
        .filter(|b| !networks.bridges.contains(b))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(format!(
            "{node_name} has no bridge {one}, which the VM uses: add it to {node_name}'s network \
             or pick another node"
        )),
        many => Err(format!(
            "{node_name} lacks the bridges {}, which the VM uses: add them to {node_name}'s \
             network or pick another node",
            many.join(", ")
        )),
    }
}

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
/// node must have every bridge the VM uses ([`bridge_check`]).
pub fn targets(
    this_node: &str,
    nodes: &[crate::types::NodeView],
    vm_bridges: &[String],
) -> Vec<TargetView> {
    use crate::types::{Liveness, Role};
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
                bridge_check(vm_bridges, &n.name, &networks)
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

/// Per bridge, which nodes have it and which do not (every bridge any node has).
pub fn bridge_table<'a>(
    nodes: impl IntoIterator<Item = (&'a str, &'a NodeNetworks)>,
) -> Vec<BridgeView> {
    let nodes: Vec<(&str, &NodeNetworks)> = nodes.into_iter().collect();
    let mut by_bridge: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, n) in &nodes {
        for b in &n.bridges {
            by_bridge
                .entry(b.as_str())
                .or_default()
                .push(name.to_string());
        }
    }
    let mut all: Vec<String> = nodes.iter().map(|(n, _)| n.to_string()).collect();
    all.sort();
    all.dedup();
    by_bridge
        .into_iter()
        .map(|(bridge, mut have)| {
            have.sort();
            have.dedup();
            let missing_on = all.iter().filter(|n| !have.contains(n)).cloned().collect();
            BridgeView {
                bridge: bridge.to_string(),
                nodes: have,
                missing_on,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Liveness, NodeView, Role};

    fn nets(bridges: &[&str]) -> NodeNetworks {
        NodeNetworks {
            bridges: bridges.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_node_with_every_bridge_passes_and_a_missing_one_is_named() {
        let n = nets(&["br0", "br-dmz"]);
        assert_eq!(bridge_check(&v(&["br0"]), "node2", &n), Ok(()));
        assert_eq!(bridge_check(&[], "node2", &nets(&[])), Ok(()));
        let e = bridge_check(&v(&["br0", "br-san"]), "node2", &n).unwrap_err();
        assert!(e.starts_with("node2 has no bridge br-san"), "{e}");
        let e = bridge_check(&v(&["br9", "br-san", "br9"]), "node3", &nets(&[])).unwrap_err();
        assert!(e.contains("lacks the bridges br-san, br9"), "{e}");
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

    #[test]
    fn the_table_lists_per_bridge_who_has_it_and_who_lacks_it() {
        let a = nets(&["br0", "br-dmz"]);
        let b = nets(&["br0"]);
        let c = nets(&[]);
        let t = bridge_table([("node1", &a), ("node2", &b), ("node3", &c)]);
        assert_eq!(
            t,
            vec![
                BridgeView {
                    bridge: "br-dmz".into(),
                    nodes: v(&["node1"]),
                    missing_on: v(&["node2", "node3"]),
                },
                BridgeView {
                    bridge: "br0".into(),
                    nodes: v(&["node1", "node2"]),
                    missing_on: v(&["node3"]),
                },
            ]
        );
    }

    #[test]
    fn an_old_record_without_networks_reads_as_none() {
        let n: NodeNetworks = serde_json::from_str("{}").unwrap();
        assert_eq!(n, NodeNetworks::default());
    }
}
