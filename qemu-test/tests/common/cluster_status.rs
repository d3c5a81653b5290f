//! The cluster status of a lab node (`GET /api/v1/cluster`) and waiting for a membership.

use anyhow::{ensure, Result};
use cairn_lab::{Deadline, LabCluster};
use serde_json::Value;

/// `GET /api/v1/cluster` on node `i`.
pub fn status(cluster: &mut LabCluster, i: usize) -> Result<Value> {
    let node = cluster.node(i)?;
    let r = node.api()?.get("/api/v1/cluster")?;
    ensure!(
        r.status == 200,
        "GET /api/v1/cluster on node{i}: {} {}",
        r.status,
        r.body
    );
    Ok(r.json())
}

/// Wait until node `i` shows `want` nodes, all online, with quorum.
pub fn wait_members(
    cluster: &mut LabCluster,
    i: usize,
    want: usize,
    deadline: Deadline,
) -> Result<Value> {
    loop {
        let st = status(cluster, i)?;
        let nodes = st["nodes"].as_array().cloned().unwrap_or_default();
        let online = nodes.iter().filter(|n| n["liveness"] == "online").count();
        if st["quorum"]["has_quorum"] == true && nodes.len() == want && online == want {
            return Ok(st);
        }
        ensure!(
            !deadline.expired(),
            "node{i} does not show {want} online nodes with quorum after {:?}: {st}",
            deadline.total()
        );
        // poll interval of the status; the deadline bounds the wait
        std::thread::sleep(std::time::Duration::from_millis(1000).min(deadline.remaining()));
    }
}

/// The node called `name` in a status, if listed.
pub fn node_named<'a>(st: &'a Value, name: &str) -> Option<&'a Value> {
    st["nodes"].as_array()?.iter().find(|n| n["name"] == name)
}

/// etcdctl on a node, as the node (its certificate from the cluster CA).
pub const ETCDCTL: &str = "ETCDCTL_API=3 etcdctl --endpoints https://127.0.0.1:2379 \
    --cacert /var/lib/cairn/cluster/ca.pem --cert /var/lib/cairn/cluster/node.pem \
    --key /var/lib/cairn/cluster/node.key";

/// The names of the nodes a status lists.
pub fn names(st: &Value) -> Vec<String> {
    st["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Start `n` lab nodes, wait until each is up with its cluster address, claim them, and form
/// a cluster through the API: node1 creates it, every other node joins with a token made on
/// node1. Returns the cluster and each node's cluster address (index 0 is node1's).
pub fn start_formed(lab: &cairn_lab::Lab, n: usize) -> Result<(LabCluster, Vec<String>)> {
    start_formed_with(lab, n, &cairn_lab::ClusterOptions::default())
}

/// [`start_formed`] with the nodes made as `opts` says.
pub fn start_formed_with(
    lab: &cairn_lab::Lab,
    n: usize,
    opts: &cairn_lab::ClusterOptions,
) -> Result<(LabCluster, Vec<String>)> {
    use anyhow::Context;
    use serde_json::json;
    let mut cluster = LabCluster::start(lab, n, opts)?;
    for node in cluster.nodes() {
        super::check_node_up(node, Deadline::secs(500))
            .with_context(|| format!("{} coming up", node.name()))?;
    }
    cluster.claim_all(Deadline::secs(300))?;
    let addr: Vec<String> = (1..=n)
        .map(|i| cluster.node(i).map(|c| c.cluster_address().to_string()))
        .collect::<Result<_, _>>()?;
    for (i, want) in (1..=n).zip(&addr) {
        let node = cluster.node(i)?;
        let d = Deadline::secs(120);
        loop {
            let a = node.shell_check("ip -4 -o addr", Deadline::secs(30))?;
            if a.contains(&format!(" {want}/")) {
                break;
            }
            ensure!(!d.expired(), "node{i} has no cluster address {want}: {a}");
            // poll interval for the DHCP lease; the deadline bounds the wait
            std::thread::sleep(std::time::Duration::from_millis(500).min(d.remaining()));
        }
    }
    let api1 = cluster.node(1)?.api()?.clone();
    api1.run_task(
        "POST",
        "/api/v1/cluster",
        &json!({"name": "lab", "address": addr[0]}),
        Deadline::secs(240),
    )?;
    for i in 2..=n {
        let token = api1.expect(
            "POST",
            "/api/v1/cluster/tokens",
            Some(&json!({"ttl_s": 600})),
        )?["token"]
            .as_str()
            .context("POST /api/v1/cluster/tokens answered no token")?
            .to_string();
        let api = cluster.node(i)?.api()?.clone();
        api.run_task(
            "POST",
            "/api/v1/cluster/join",
            &json!({"token": token, "address": addr[i - 1]}),
            Deadline::secs(400),
        )?;
    }
    Ok((cluster, addr))
}
