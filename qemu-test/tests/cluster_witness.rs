//! Scenario cluster_witness (issue 16): two full nodes and a witness (1 vCPU, 512 MiB). With
//! the two full nodes only, the status (API and cairnctl) says there is no automatic failover
//! and why; node3 joins as a witness with `cairnctl cluster join --witness`, after which
//! failover is automatic. The witness, rebooted, runs etcd and a minimal cairnd: storage,
//! SMART and VMs "not on a witness" in health, libvirtd and virtlogd not started by
//! cairn-init; cairnd's and etcd's memory (RSS) are printed. Then one full node is powered
//! off (QMP `quit`): from then to the end, checked every second, the survivor keeps quorum
//! and a cluster write (a join token, kept in etcd) succeeds. Targets: node1 has a VM bridge
//! node2 lacks; `GET /api/v1/vms/{vm}/targets` refuses node2 for a VM on it (naming the
//! bridge), accepts it for a VM without NICs until it is powered off, and always refuses the
//! witness; the cluster status's bridge table says node2 lacks the bridge.

mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::{ClusterOptions, Deadline, Lab, LabCluster, LabNic};
use common::cairnctl::Cairnctl;
use common::cluster_status::{node_named, status, wait_members};
use serde_json::json;
use std::time::{Duration, Instant};

/// The witness: node3, sized as the issue says.
const WITNESS: usize = 3;
const WITNESS_CPUS: u8 = 1;
const WITNESS_MIB: u32 = 512;
/// The VM bridge only node1 has.
const VM_BRIDGE: &str = "br-vm";
/// How long the survivor is watched after the power-off: more than the lease TTL (10 s)
/// plus 5 s, so the dead node is shown offline meanwhile.
const WATCH: Duration = Duration::from_secs(25);

/// The resident memory of service `name` on node `i` (`VmRSS` and its peak `VmHWM`, KiB).
fn rss_kib(cluster: &mut LabCluster, i: usize, name: &str) -> Result<(u64, u64)> {
    let node = cluster.node(i)?;
    let services = node.services(Deadline::secs(30))?;
    let pid = common::service(&services, name)?
        .pid
        .with_context(|| format!("node{i}: {name} has no pid"))?;
    let out = node.shell_check(
        &format!("grep -E '^(VmRSS|VmHWM):' /proc/{pid}/status"),
        Deadline::secs(30),
    )?;
    let field = |key: &str| -> Result<u64> {
        out.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("node{i}: no {key} for {name} (pid {pid}): {out}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn cluster_witness() -> Result<()> {
    let Some(lab) = Lab::for_test("cluster_witness") else {
        return Ok(());
    };
    if let Some(why) = LabCluster::unavailable() {
        eprintln!("SKIP lab scenario cluster_witness: {why}");
        return Ok(());
    }
    let started = Instant::now();
    let opts = ClusterOptions::default().node_size(WITNESS, WITNESS_CPUS, WITNESS_MIB);
    let mut cluster = LabCluster::start(&lab, 3, &opts)?;
    for node in cluster.nodes() {
        common::check_node_up(node, Deadline::secs(500))
            .with_context(|| format!("{} coming up", node.name()))?;
    }
    cluster.claim_all(Deadline::secs(300))?;
    let mut addr = Vec::new();
    for i in 1..=3 {
        let node = cluster.node(i)?;
        node.wait_address(LabNic::ClusterA, Deadline::secs(120))?;
        addr.push(node.cluster_address().to_string());
    }
    println!(
        "nodes up and claimed: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    // node1 gets a VM bridge (`br-vm`, no port) that node2 lacks: a VM on it may not be
    // moved or restarted on node2 (issue 16, "Networks").
    let api1 = cluster.node(1)?.api()?.clone();
    let mut spec = api1.expect("GET", "/api/v1/network", None)?["spec"].clone();
    match spec["bridges"].as_array_mut() {
        Some(b) => b.push(json!({"name": VM_BRIDGE})),
        None => spec["bridges"] = json!([{"name": VM_BRIDGE}]),
    }
    let r = api1.put("/api/v1/network", &json!({ "spec": spec }))?;
    ensure!(
        r.status == 200,
        "node1 PUT /network: {} {}",
        r.status,
        r.body
    );
    let c = api1.post("/api/v1/network/confirm", &json!({}))?;
    ensure!(c.status == 200, "node1 confirm: {} {}", c.status, c.body);

    // Two full nodes: node1 creates, node2 joins (API).
    api1.run_task(
        "POST",
        "/api/v1/cluster",
        &json!({"name": "lab", "address": addr[0]}),
        Deadline::secs(240),
    )?;
    let token = api1.expect("POST", "/api/v1/cluster/tokens", Some(&json!({})))?["token"]
        .as_str()
        .context("token")?
        .to_string();
    let api2 = cluster.node(2)?.api()?.clone();
    api2.run_task(
        "POST",
        "/api/v1/cluster/join",
        &json!({"token": token, "address": addr[1]}),
        Deadline::secs(400),
    )?;
    let st = wait_members(&mut cluster, 1, 2, Deadline::secs(120))?;
    let reason = st["failover"]["reason"].as_str().unwrap_or_default();
    ensure!(
        st["failover"]["automatic"] == false && reason.contains("witness"),
        "two nodes without a witness: the status must say no automatic failover and why: {st}"
    );
    println!("two nodes, no witness: no automatic failover: {reason}");
    let ctl1 = {
        let node1 = cluster.node(1)?;
        let api = node1.api()?.clone();
        Cairnctl::logged_in(node1, &api, "node1")?
    };
    let text = ctl1.ok(&["cluster", "status"])?;
    ensure!(
        text.contains("No automatic failover") && text.contains("witness"),
        "cairnctl cluster status on two nodes: {text}"
    );

    // node3 joins as a witness with cairnctl.
    let token = api1.expect("POST", "/api/v1/cluster/tokens", Some(&json!({})))?["token"]
        .as_str()
        .context("token")?
        .to_string();
    let ctl3 = {
        let node3 = cluster.node(WITNESS)?;
        let api = node3.api()?.clone();
        Cairnctl::logged_in(node3, &api, "node3")?
    };
    let joining = Instant::now();
    ctl3.ok(&[
        "cluster",
        "join",
        &token,
        "--address",
        &addr[WITNESS - 1],
        "--witness",
    ])?;
    println!(
        "node3 joined as a witness (cairnctl) in {:.1} s",
        joining.elapsed().as_secs_f64()
    );
    let st = wait_members(&mut cluster, 1, 3, Deadline::secs(120))?;
    ensure!(
        st["failover"]["automatic"] == true,
        "with a witness, failover must be automatic: {st}"
    );
    // The cluster knows a node by the name cairnd started with (its own status says it).
    let name_of = |cluster: &mut LabCluster, i: usize| -> Result<String> {
        Ok(status(cluster, i)?["this_node"]
            .as_str()
            .with_context(|| format!("node{i}'s status has no this_node"))?
            .to_string())
    };
    let witness_name = name_of(&mut cluster, WITNESS)?;
    let node2_name = name_of(&mut cluster, 2)?;
    let w = node_named(&st, &witness_name).context("the witness in the status")?;
    ensure!(
        w["role"] == "witness" && w["etcd_member"]["learner"] == false,
        "node3 is not a voting witness: {st}"
    );
    ensure!(
        st["quorum"]["voters"].as_array().map(Vec::len) == Some(3),
        "three voters with the witness: {st}"
    );
    let text = ctl1.ok(&["cluster", "status"])?;
    ensure!(
        text.contains("failover: automatic"),
        "cairnctl cluster status with a witness: {text}"
    );
    println!("with the witness: failover automatic");

    // The witness, rebooted (power cycle): cairn-init starts neither libvirtd nor virtlogd,
    // cairnd neither storage, SMART nor VMs.
    let api3 = cluster.node(WITNESS)?.api()?.clone();
    let h = api3.expect("GET", "/api/v1/health", None)?;
    ensure!(
        h["witness"] == true && h["domains"]["vms"]["reason"] == "not on a witness",
        "node3's health right after its witness join: {h}"
    );
    cluster.power_off(WITNESS, Deadline::secs(60))?;
    cluster.relaunch(WITNESS, Deadline::secs(60))?;
    let h = common::check_node_up(cluster.node(WITNESS)?, Deadline::secs(400))
        .context("the witness coming back up")?;
    ensure!(h["witness"] == true, "node3's health after its reboot: {h}");
    for d in ["storage", "smart", "vms"] {
        ensure!(
            h["domains"][d]["state"] == "absent" && h["domains"][d]["reason"] == "not on a witness",
            "the {d} domain on the witness: {h}"
        );
    }
    for d in ["network", "cluster"] {
        ensure!(
            h["domains"][d]["state"] == "ready",
            "the {d} domain on the witness: {h}"
        );
    }
    let services = cluster.node(WITNESS)?.services(Deadline::secs(30))?;
    for name in ["libvirtd", "virtlogd"] {
        let s = common::service(&services, name)?;
        ensure!(
            s.state != "ready" && s.pid.is_none(),
            "{name} runs on the witness: {s:?}"
        );
    }
    ensure!(
        common::service(&services, "etcd")?.state == "ready",
        "etcd is not ready on the witness: {services:?}"
    );
    wait_members(&mut cluster, 1, 3, Deadline::secs(120))?;
    let (cairnd, cairnd_peak) = rss_kib(&mut cluster, WITNESS, "cairnd")?;
    let (etcd, etcd_peak) = rss_kib(&mut cluster, WITNESS, "etcd")?;
    let mem = cluster.node(WITNESS)?.shell_check(
        "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo | tr -s ' ' | tr '\\n' ' '",
        Deadline::secs(30),
    )?;
    println!(
        "witness ({WITNESS_CPUS} vCPU, {WITNESS_MIB} MiB): cairnd RSS {} MiB (peak {} MiB), \
         etcd RSS {} MiB (peak {} MiB); {}",
        cairnd / 1024,
        cairnd_peak / 1024,
        etcd / 1024,
        etcd_peak / 1024,
        mem.trim()
    );
    ensure!(
        cairnd + etcd < u64::from(WITNESS_MIB) * 1024 / 2,
        "cairnd and etcd take more than half of the witness's {WITNESS_MIB} MiB"
    );

    // Targets: which other node could take a VM of node1. `web` uses br-vm, which node2
    // lacks; `plain` has no NIC. The witness takes no VM. The Cluster page's bridge table
    // says the same (node records republish networks every NETWORKS_TICK).
    for (vm, nics) in [
        ("web", json!([{"bridge": VM_BRIDGE}])),
        ("plain", json!([])),
    ] {
        api1.run_task(
            "POST",
            "/api/v1/vms",
            &json!({"name": vm, "vcpus": 1, "memory_mib": 64, "nics": nics}),
            Deadline::secs(120),
        )
        .with_context(|| format!("creating VM {vm} on node1"))?;
    }
    let st = api1.wait_for(
        "/api/v1/cluster",
        &format!("node1's {VM_BRIDGE} in the cluster's bridge table"),
        Deadline::secs(90),
        |v| {
            v["bridges"]
                .as_array()
                .is_some_and(|a| a.iter().any(|b| b["bridge"] == VM_BRIDGE))
        },
    )?;
    let row = st["bridges"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["bridge"] == VM_BRIDGE))
        .cloned()
        .unwrap_or_default();
    ensure!(
        row["missing_on"]
            .as_array()
            .is_some_and(|m| m.iter().any(|n| n == node2_name.as_str())),
        "the bridge table must say node2 lacks {VM_BRIDGE}: {row}"
    );
    let target = |vm: &str, node: &str| -> Result<serde_json::Value> {
        let t = api1.expect("GET", &format!("/api/v1/vms/{vm}/targets"), None)?;
        t["targets"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["node"] == node).cloned())
            .with_context(|| format!("no target {node} for {vm}: {t}"))
    };
    let web2 = target("web", &node2_name)?;
    ensure!(
        web2["eligible"] == false
            && web2["reason"]
                .as_str()
                .is_some_and(|r| r.contains(&format!("has no bridge {VM_BRIDGE}"))),
        "node2 must be refused for web, naming {VM_BRIDGE}: {web2}"
    );
    let plain2 = target("plain", &node2_name)?;
    ensure!(plain2["eligible"] == true, "node2 can take plain: {plain2}");
    let web3 = target("web", &witness_name)?;
    ensure!(
        web3["eligible"] == false
            && web3["reason"]
                .as_str()
                .is_some_and(|r| r.contains("witness")),
        "the witness must be refused: {web3}"
    );
    println!(
        "targets of web: node2 refused ({}), witness refused",
        web2["reason"]
    );

    // Power off a full node: node1 and the witness keep the quorum. Checked every second
    // from the power-off to the end: quorum, and a cluster write (a join token in etcd).
    cluster.power_off(2, Deadline::secs(60))?;
    let off = Instant::now();
    let mut offline_after = None;
    let mut writes = 0;
    while off.elapsed() < WATCH {
        let round = Instant::now();
        let st = status(&mut cluster, 1)?;
        ensure!(
            st["quorum"]["has_quorum"] == true,
            "{:.1} s after node2's power-off node1 has no quorum: {st}",
            off.elapsed().as_secs_f64()
        );
        let r = api1.post("/api/v1/cluster/tokens", &json!({"ttl_s": 60}))?;
        ensure!(
            r.status == 201,
            "{:.1} s after node2's power-off a cluster write failed: {} {}",
            off.elapsed().as_secs_f64(),
            r.status,
            r.body
        );
        writes += 1;
        if offline_after.is_none()
            && node_named(&st, &node2_name).is_some_and(|n| n["liveness"] == "offline")
        {
            offline_after = Some(off.elapsed());
        }
        // one round of checks per second
        std::thread::sleep(Duration::from_secs(1).saturating_sub(round.elapsed()));
    }
    let offline_after =
        offline_after.context("node2 was not shown offline within 25 s of its power-off")?;
    let plain2 = target("plain", &node2_name)?;
    ensure!(
        plain2["eligible"] == false
            && plain2["reason"]
                .as_str()
                .is_some_and(|r| r.contains("offline")),
        "node2, powered off, must be refused as a target: {plain2}"
    );
    println!(
        "node2 powered off: node1 kept quorum and wrote {writes} times in {} s; node2 shown \
         offline after {:.1} s",
        WATCH.as_secs(),
        offline_after.as_secs_f64()
    );
    println!(
        "cluster_witness took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    cluster.finish();
    Ok(())
}
