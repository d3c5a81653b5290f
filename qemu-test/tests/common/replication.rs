//! The replication scenarios' shared setup: a formed cluster whose nodes each have a pool and
//! their replication network named, published in their node records.

use anyhow::{ensure, Result};
use cairn_lab::{ClusterOptions, Deadline, Lab, LabCluster, LabNic};
use serde_json::json;
use std::time::Duration;

/// Name the replication NIC as the replication role in node `i`'s network spec (try, then
/// confirm).
pub fn name_replication_network(cluster: &mut LabCluster, i: usize) -> Result<()> {
    let node = cluster.node(i)?;
    let ifname = node.wait_address(LabNic::Replication, Deadline::secs(120))?;
    let api = node.api()?.clone();
    let mut spec = api.expect("GET", "/api/v1/network", None)?["spec"].clone();
    spec["roles"] = json!({"replication": ifname});
    let r = api.put("/api/v1/network", &json!({ "spec": spec }))?;
    ensure!(
        r.status == 200,
        "node{i} PUT /network with roles.replication={ifname}: {} {}",
        r.status,
        r.body
    );
    let c = api.post("/api/v1/network/confirm", &json!({}))?;
    ensure!(c.status == 200, "node{i} confirm: {} {}", c.status, c.body);
    Ok(())
}

/// `n` nodes formed into a cluster (`opts`), each with pool `pool` on its first data disk and
/// its replication network named; returns once node1's cluster status shows every node's
/// replication address and pools (node records republish every 10 s).
pub fn start(lab: &Lab, n: usize, opts: &ClusterOptions, pool: &str) -> Result<LabCluster> {
    let (mut cluster, _) = super::cluster_status::start_formed_with(lab, n, opts)?;
    for i in 1..=n {
        let serial = cluster.node(i)?.disk_serials()[0].clone();
        let api = cluster.node(i)?.api()?.clone();
        super::pool::create_single_pool(&api, pool, &serial, Deadline::secs(300))?;
        name_replication_network(&mut cluster, i)?;
    }
    let api1 = cluster.node(1)?.api()?.clone();
    let d = Deadline::secs(120);
    loop {
        let st = api1.expect("GET", "/api/v1/cluster", None)?;
        let ready = st["nodes"].as_array().is_some_and(|nodes| {
            nodes.len() == n
                && nodes.iter().all(|node| {
                    node["replication_address"].is_string()
                        && node["pools"].as_array().is_some_and(|p| !p.is_empty())
                })
        });
        if ready {
            return Ok(cluster);
        }
        ensure!(
            !d.expired(),
            "the node records never showed replication addresses and pools: {st}"
        );
        // poll interval for the next record publication; the deadline bounds the wait
        std::thread::sleep(Duration::from_millis(1000).min(d.remaining()));
    }
}
