//! Scenario cluster_lab: the cluster lab itself (no cluster is formed). Two nodes on the
//! lab's cluster bridge get their known addresses from the lab's DHCP server with the
//! factory network config, node1 pings node2's cluster address over the bridge, still does
//! with the cluster link its route used pulled, not with node2 cut off (its bridge ports
//! down) or powered off, again once it is healed or relaunched; each node shows its three
//! data disks in the API and its watchdog device.

mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::{ClusterOptions, Deadline, Lab, LabCluster, LabNic};

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn cluster_lab() -> Result<()> {
    let Some(lab) = Lab::for_test("cluster_lab") else {
        return Ok(());
    };
    if let Some(why) = LabCluster::unavailable() {
        eprintln!("SKIP lab scenario cluster_lab: {why}");
        return Ok(());
    }
    let mut cluster = LabCluster::start(&lab, 2, &ClusterOptions::default())?;
    for node in cluster.nodes() {
        common::check_node_up(node, Deadline::secs(400))
            .with_context(|| format!("{} coming up", node.name()))?;
    }
    cluster.claim_all(Deadline::secs(300))?;

    // Every lab-bridge NIC with a planned address has it (DHCP on every interface is the
    // factory default).
    for node in cluster.nodes() {
        for nic in [LabNic::ClusterA, LabNic::ClusterB, LabNic::Replication] {
            let ifname = node.wait_address(nic, Deadline::secs(120))?;
            println!(
                "{} {} ({ifname}): {}",
                node.name(),
                nic.label(),
                nic.address(node.index()).context("planned address")?
            );
        }
    }
    println!("leases: {:?}", cluster.leases());

    let target = cluster.node(2)?.cluster_address();
    let node1 = cluster.node(1)?;
    let took = node1.wait_ping(target, Deadline::secs(60))?;
    println!("node1 reaches node2's {target} over the cluster bridge ({took:?})");
    let route = node1.shell_check(&format!("ip -o route get {target}"), Deadline::secs(30))?;
    let dev = route
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .with_context(|| format!("no dev in `ip route get {target}`: {route}"))?
        .to_string();
    let a = node1.nic_name(LabNic::ClusterA, Deadline::secs(30))?;
    let b = node1.nic_name(LabNic::ClusterB, Deadline::secs(30))?;
    let (pulled, other) = if dev == a {
        (LabNic::ClusterA, &b)
    } else {
        ensure!(
            dev == b,
            "node1 reaches {target} through {dev}, not a cluster NIC ({a}, {b})"
        );
        (LabNic::ClusterB, &a)
    };
    node1.set_link(pulled, false, Deadline::secs(10))?;
    let took = node1.wait_ping(target, Deadline::secs(60))?;
    let route = node1.shell_check(&format!("ip -o route get {target}"), Deadline::secs(30))?;
    cairn_lab::bench_println!(
        "cluster_lab: {} ({dev}) pulled: node1 reaches {target} again after {:.1} s, now {}",
        pulled.label(),
        took.as_secs_f64(),
        route.trim()
    );
    ensure!(
        route.contains(&format!(" dev {other} ")),
        "with {dev} pulled the route should use {other}: {route}"
    );
    node1.set_link(pulled, true, Deadline::secs(10))?;

    // node2 cut off (its bridge ports down in the lab namespace): unreachable on both
    // networks; healed: reachable again.
    let replication = cluster.node(2)?.replication_address();
    cluster.cut_off(2)?;
    for ip in [target, replication] {
        ensure!(
            !cluster.node(1)?.ping_once(ip, Deadline::secs(30))?,
            "node1 still reaches node2's {ip} with node2 cut off"
        );
    }
    cluster.heal(2)?;
    let took = cluster
        .node(1)?
        .wait_ping(replication, Deadline::secs(60))?;
    println!("node2 healed: node1 reaches its {replication} again after {took:?}");

    // node2 powered off (QMP quit) and relaunched on the same disks: it gets its addresses
    // again and node1 reaches it.
    cluster.power_off(2, Deadline::secs(30))?;
    ensure!(
        !cluster.node(1)?.ping_once(target, Deadline::secs(30))?,
        "node1 still reaches {target} with node2 off"
    );
    cluster.relaunch(2, Deadline::secs(60))?;
    common::check_node_up(cluster.node(2)?, Deadline::secs(400))?;
    let took = cluster.node(1)?.wait_ping(target, Deadline::secs(120))?;
    println!("node2 relaunched: node1 reaches {target} again ({took:?} after node2 was up)");

    for node in cluster.nodes() {
        let disks = node.api()?.expect("GET", "/api/v1/disks", None)?;
        let serials: Vec<String> = disks["disks"]
            .as_array()
            .context("disks array")?
            .iter()
            .filter_map(|d| d["serial"].as_str().map(String::from))
            .collect();
        for want in node.disk_serials() {
            ensure!(
                serials.contains(&want),
                "{}: no data disk {want} in GET /api/v1/disks: {serials:?}",
                node.name()
            );
        }
        let wd = node.shell_run("test -c /dev/watchdog", Deadline::secs(30))?;
        ensure!(wd.code == 0, "{}: no /dev/watchdog", node.name());
        println!(
            "{}: data disks {serials:?}, /dev/watchdog present",
            node.name()
        );
    }
    cluster.finish();
    Ok(())
}
