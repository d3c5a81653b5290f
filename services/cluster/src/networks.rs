//! Networks across the cluster: the bridges and network roles each node publishes in its node
//! record, whether a node can host a VM (it has every bridge the VM uses), and which nodes have
//! each bridge (the Cluster page).

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
    /// That interface's address (DRBD's peers connect to it; without one, the cluster
    /// address carries replication too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_address: Option<std::net::IpAddr>,
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
