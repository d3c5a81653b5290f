//! Scenario cluster_replace (issue 16): a dead node is removed and replaced, and the whole
//! cluster is cold-started with one node missing. node3 of a three-node cluster is powered
//! off for good (its certificate copied off first) and removed from node1 through the API:
//! its etcd member is gone and its serial is under `/cairn/revoked/`. Its old certificate is
//! then refused by node1's cluster port (403 `revoked`) and by etcd's client port (the CRL),
//! from a lab host on the cluster bridge, while node2's certificate is accepted by both.
//! node3 comes back as a fresh node (its cluster state wiped) and joins again: three voters.
//! Then every node is powered off and only node1 and node2 relaunched: the cluster comes
//! back with quorum and shows node3 offline.

mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::cluster_lab::{lab_address, CLUSTER_NET, CLUSTER_SUBNET};
use cairn_lab::{Deadline, Lab, LabCluster};
use common::cluster_status::{names, start_formed, status, ETCDCTL};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const CLUSTER_DIR: &str = "/var/lib/cairn/cluster";

/// Wait until every node of `nodes` shows exactly `want` (name → liveness) with quorum; no
/// node may ever list a node outside `joined`.
fn wait_view(
    cluster: &mut LabCluster,
    nodes: &[usize],
    want: &[(&str, &str)],
    joined: &BTreeSet<String>,
    deadline: Deadline,
) -> Result<()> {
    loop {
        let mut done = true;
        for &i in nodes {
            let st = status(cluster, i)?;
            for n in names(&st) {
                ensure!(
                    joined.contains(&n),
                    "node{i} lists {n}, which never joined: {st}"
                );
            }
            let list = st["nodes"].as_array().cloned().unwrap_or_default();
            let matches = list.len() == want.len()
                && want.iter().all(|(name, live)| {
                    list.iter()
                        .any(|n| n["name"] == *name && n["liveness"] == *live)
                });
            if !(st["quorum"]["has_quorum"] == true && matches) {
                done = false;
                ensure!(
                    !deadline.expired(),
                    "node{i} does not show {want:?} with quorum after {:?}: {st}",
                    deadline.total()
                );
            }
        }
        if done {
            return Ok(());
        }
        // one round of checks per second; the deadline bounds the wait
        std::thread::sleep(Duration::from_millis(1000).min(deadline.remaining()));
    }
}

fn token(cluster: &mut LabCluster, i: usize) -> Result<String> {
    let api = cluster.node(i)?.api()?.clone();
    Ok(api.expect(
        "POST",
        "/api/v1/cluster/tokens",
        Some(&json!({"ttl_s": 600})),
    )?["token"]
        .as_str()
        .context("token")?
        .to_string())
}

/// A file of a node, read over the lab shell.
fn read_file(cluster: &mut LabCluster, i: usize, path: &str) -> Result<String> {
    let out = cluster
        .node(i)?
        .shell_check(&format!("cat {path}"), Deadline::secs(30))?;
    ensure!(
        out.contains("-----BEGIN"),
        "node{i}:{path} is not PEM: {out}"
    );
    Ok(out)
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn cluster_replace() -> Result<()> {
    let Some(lab) = Lab::for_test("cluster_replace") else {
        return Ok(());
    };
    if let Some(why) = LabCluster::unavailable() {
        eprintln!("SKIP lab scenario cluster_replace: {why}");
        return Ok(());
    }
    let (mut cluster, addr) = start_formed(&lab, 3)?;
    let api1 = cluster.node(1)?.api()?.clone();
    let joined: BTreeSet<String> = ["node1", "node2", "node3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let all_online = [
        ("node1", "online"),
        ("node2", "online"),
        ("node3", "online"),
    ];
    wait_view(
        &mut cluster,
        &[1, 2, 3],
        &all_online,
        &joined,
        Deadline::secs(180),
    )?;

    // node3's identity, copied off before it dies; node2's as the good control.
    let dir = lab.dir().join("certs");
    std::fs::create_dir_all(&dir)?;
    let ca = read_file(&mut cluster, 1, &format!("{CLUSTER_DIR}/ca.pem"))?;
    std::fs::write(dir.join("ca.pem"), &ca)?;
    for (i, who) in [(2, "good"), (3, "old")] {
        let cert = read_file(&mut cluster, i, &format!("{CLUSTER_DIR}/node.pem"))?;
        let key = read_file(&mut cluster, i, &format!("{CLUSTER_DIR}/node.key"))?;
        std::fs::write(dir.join(format!("{who}.pem")), cert)?;
        std::fs::write(dir.join(format!("{who}.key")), key)?;
    }

    // node3 dies for good; node1 removes it.
    cluster.power_off(3, Deadline::secs(60))?;
    wait_view(
        &mut cluster,
        &[1, 2],
        &[
            ("node1", "online"),
            ("node2", "online"),
            ("node3", "offline"),
        ],
        &joined,
        Deadline::secs(60),
    )?;
    let removed = api1.run_task(
        "DELETE",
        "/api/v1/cluster/nodes/node3",
        &json!({}),
        Deadline::secs(120),
    )?;
    println!("remove: {}", removed["message"]);
    wait_view(
        &mut cluster,
        &[1, 2],
        &[("node1", "online"), ("node2", "online")],
        &joined,
        Deadline::secs(60),
    )?;
    let members = cluster.node(1)?.shell_check(
        &format!("{ETCDCTL} member list -w json"),
        Deadline::secs(60),
    )?;
    let members: Value = serde_json::from_str(&members).context("member list JSON")?;
    let list = members["members"].as_array().cloned().unwrap_or_default();
    ensure!(
        list.len() == 2 && list.iter().all(|m| m["name"] != "node3"),
        "etcd members after the remove: {members}"
    );
    let revoked = cluster.node(1)?.shell_check(
        &format!("{ETCDCTL} get /cairn/revoked/ --prefix --keys-only"),
        Deadline::secs(60),
    )?;
    let serials: Vec<&str> = revoked
        .lines()
        .filter_map(|l| l.trim().strip_prefix("/cairn/revoked/"))
        .collect();
    ensure!(serials.len() == 1, "revoked serials: {revoked}");
    println!(
        "node3's etcd member is gone; its serial {} is revoked",
        serials[0]
    );

    // From a lab host on the cluster bridge: node3's old certificate refused by node1's
    // cluster port and etcd, node2's accepted.
    // A lab host beside the lab's own address (.254) on the cluster subnet.
    let o = lab_address(CLUSTER_SUBNET).octets();
    let host_ip = std::net::Ipv4Addr::new(o[0], o[1], o[2], 200);
    let peer = cluster.net().peer(CLUSTER_NET, &format!("{host_ip}/24"))?;
    let f = |name: &str| dir.join(name).display().to_string();
    let port_url = format!("https://{}:9443/cluster/v1/ca", addr[0]);
    let etcd_url = format!("https://{}:2379", addr[0]);
    let curl = |who: &str| -> Result<String> {
        let out = peer
            .command("/usr/bin/curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["--cacert", &f("ca.pem")])
            .args(["--cert", &f(&format!("{who}.pem"))])
            .args(["--key", &f(&format!("{who}.key"))])
            .arg(&port_url)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let etcdctl = |who: &str| -> Result<(bool, String)> {
        let out = peer
            .command("/usr/bin/etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &etcd_url,
                "--dial-timeout=5s",
                "--command-timeout=5s",
            ])
            .args(["--cacert", &f("ca.pem")])
            .args(["--cert", &f(&format!("{who}.pem"))])
            .args(["--key", &f(&format!("{who}.key"))])
            .args(["put", "/lab/replace", who])
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text.trim().to_string()))
    };
    // node1's watch loop writes the CRL within a few seconds of the remove.
    let d = Deadline::secs(60);
    loop {
        let port = curl("old")?;
        let (etcd_ok, etcd_text) = etcdctl("old")?;
        if port == "403" && !etcd_ok {
            println!("node3's old certificate: cluster port 403, etcd refuses: {etcd_text}");
            break;
        }
        ensure!(
            !d.expired(),
            "node3's old certificate still accepted after {:?}: cluster port {port}, etcd {etcd_ok} {etcd_text}",
            d.total()
        );
        // one attempt per second until node1 enforces the revocation
        std::thread::sleep(Duration::from_millis(1000).min(d.remaining()));
    }
    ensure!(
        curl("good")? == "200",
        "node2's certificate refused by the cluster port"
    );
    let (ok, text) = etcdctl("good")?;
    ensure!(ok, "node2's certificate refused by etcd: {text}");
    println!("node2's certificate is accepted by both");

    // node3 comes back as a fresh node: its cluster state wiped, it joins again.
    cluster.relaunch(3, Deadline::secs(60))?;
    // Its etcd, with the revoked certificate, never reaches its peers again: wait for the
    // API rather than for every service to be ready.
    cluster.node(3)?.wait_ready(Deadline::secs(500))?;
    // Booted with its old certificate, it does not come back: for longer than a lease TTL
    // the others list node1 and node2 only, with quorum.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(15) {
        for i in 1..=2 {
            let st = status(&mut cluster, i)?;
            let mut listed = names(&st);
            listed.sort();
            ensure!(
                listed == ["node1", "node2"] && st["quorum"]["has_quorum"] == true,
                "node{i}, {:.0} s after the removed node3 booted with its old certificate: {st}",
                watch.elapsed().as_secs_f64()
            );
        }
        // one round of checks per second
        std::thread::sleep(Duration::from_millis(1000));
    }
    println!("node3 booted with its revoked certificate: not let back in");
    cluster.node(3)?.shell_check(
        &format!(
            "cairn-init svc stop etcd; rm -rf {CLUSTER_DIR} /var/lib/cairn/etcd; \
             cairn-init svc restart cairnd; echo wiped"
        ),
        Deadline::secs(120),
    )?;
    cluster.node(3)?.wait_ready(Deadline::secs(300))?;
    let st = status(&mut cluster, 3)?;
    ensure!(st["mode"] == "standalone", "node3 after the wipe: {st}");
    let t = token(&mut cluster, 1)?;
    let started = Instant::now();
    let api3 = cluster.node(3)?.api()?.clone();
    api3.run_task(
        "POST",
        "/api/v1/cluster/join",
        &json!({"token": t, "address": addr[2]}),
        Deadline::secs(400),
    )?;
    wait_view(
        &mut cluster,
        &[1, 2, 3],
        &all_online,
        &joined,
        Deadline::secs(180),
    )?;
    let members = cluster.node(1)?.shell_check(
        &format!("{ETCDCTL} member list -w json"),
        Deadline::secs(60),
    )?;
    let members: Value = serde_json::from_str(&members).context("member list JSON")?;
    let list = members["members"].as_array().cloned().unwrap_or_default();
    ensure!(
        list.len() == 3 && list.iter().all(|m| m["isLearner"] != true),
        "etcd members after the replacement: {members}"
    );
    println!(
        "a fresh node3 joined in {:.1} s: three voters again",
        started.elapsed().as_secs_f64()
    );

    // Cold start with one node missing.
    for i in 1..=3 {
        cluster.power_off(i, Deadline::secs(60))?;
    }
    let cold = Instant::now();
    for i in 1..=2 {
        cluster.relaunch(i, Deadline::secs(60))?;
    }
    for i in 1..=2 {
        common::check_node_up(cluster.node(i)?, Deadline::secs(500))?;
    }
    wait_view(
        &mut cluster,
        &[1, 2],
        &[
            ("node1", "online"),
            ("node2", "online"),
            ("node3", "offline"),
        ],
        &joined,
        Deadline::secs(120),
    )?;
    let took = Instant::now();
    let t = token(&mut cluster, 2)?;
    ensure!(!t.is_empty(), "no token after the cold start");
    println!(
        "cold start without node3: quorum, node3 offline and writable {:.1} s after relaunch (token in {:?})",
        cold.elapsed().as_secs_f64(),
        took.elapsed()
    );
    cluster.finish();
    Ok(())
}
