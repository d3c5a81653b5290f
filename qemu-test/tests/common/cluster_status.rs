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
