//! Scenario cluster_form (issue 16): three lab nodes form a cluster on the lab's cluster
//! bridge. node1 and node2 are claimed through the API and put their two cluster NICs in an
//! active-backup bond (network API); node3 is left unclaimed. node1 creates the cluster
//! through the API; node3 joins **through the setup wizard in Chromium** (Playwright: the
//! wizard's Cluster step, "Join a cluster", a token made on node1; screenshots kept in the
//! scenario's results dir, `node3/ui`); node2 first has that spent token refused, then joins
//! with `cairnctl cluster join`. All three end up etcd voters (checked with `etcdctl member
//! list` on a node, with its client certificate), every node shows the same three online
//! nodes with quorum, a pulled cluster-bond link changes no membership (checked every second
//! for longer than the lease TTL), and etcd's own histograms (WAL fsync on STATE, peer round
//! trip) are printed for the timing decision (0026).

mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::{ClusterOptions, Deadline, Lab, LabCluster, LabNic, LAB_PASSWORD};
use common::browser::{run_browser, screenshots};
use common::cairnctl::Cairnctl;
use common::cluster_status::{status, wait_members};
use serde_json::{json, Value};

/// etcdctl on a node, as the node (its certificate from the cluster CA).
const ETCDCTL: &str = "ETCDCTL_API=3 etcdctl --endpoints https://127.0.0.1:2379 \
    --cacert /var/lib/cairn/cluster/ca.pem --cert /var/lib/cairn/cluster/node.pem \
    --key /var/lib/cairn/cluster/node.key";

/// Mean, count and the upper bound of the bucket holding the p99 of a Prometheus histogram
/// from etcd's /metrics text, summed over its series (one per peer for round trips).
fn histogram(metrics: &str, name: &str) -> Option<(f64, f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for line in metrics.lines().filter(|l| l.starts_with(name)) {
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        if line.starts_with(&format!("{name}_bucket")) {
            let le = line.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((le, value));
        } else if line.starts_with(&format!("{name}_sum")) {
            sum += value;
        } else if line.starts_with(&format!("{name}_count")) {
            count += value;
        }
    }
    if count == 0.0 {
        return None;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Cumulative counts per bound, summed over the series.
    let mut merged: Vec<(f64, f64)> = Vec::new();
    for (le, c) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    let buckets = merged;
    let p99 = buckets
        .iter()
        .find(|(_, c)| *c >= count * 0.99)
        .map(|b| b.0)
        .unwrap_or(f64::INFINITY);
    Some((sum / count, count, p99))
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn cluster_form() -> Result<()> {
    let Some(lab) = Lab::for_test("cluster_form") else {
        return Ok(());
    };
    if let Some(why) = LabCluster::unavailable() {
        eprintln!("SKIP lab scenario cluster_form: {why}");
        return Ok(());
    }
    let mut cluster = LabCluster::start(&lab, 3, &ClusterOptions::default())?;
    for node in cluster.nodes() {
        common::check_node_up(node, Deadline::secs(500))
            .with_context(|| format!("{} coming up", node.name()))?;
    }
    // node1 and node2 are claimed through the API; node3 stays unclaimed for the wizard.
    for i in 1..=2 {
        cluster.node(i)?.claim(Deadline::secs(300))?;
    }
    let addr: Vec<String> = (1..=3)
        .map(|i| cluster.node(i).map(|n| n.cluster_address().to_string()))
        .collect::<Result<_, _>>()?;
    for i in 1..=3 {
        let want = addr[i - 1].clone();
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

    // The two claimed nodes' cluster NICs become an active-backup bond holding the cluster
    // address (the management NIC keeps DHCP, the replication NIC too); node3, set up by the
    // wizard, keeps DHCP on every NIC (the factory default), its cluster address on NIC a.
    for i in 1..=2 {
        let node = cluster.node(i)?;
        let mgmt_mac = node.nic_mac(LabNic::Management);
        let api = node.api()?.clone();
        let links = api.get("/api/v1/network/status")?.json()["links"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mgmt = links
            .iter()
            .find(|l| {
                l["mac"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(&mgmt_mac))
            })
            .and_then(|l| l["name"].as_str())
            .with_context(|| format!("node{i}: no link with the management MAC {mgmt_mac}"))?
            .to_string();
        let spec = json!({
            "links": [
                {"name": mgmt, "dhcp": true, "management": true},
                {"name": "clu-a", "mac": node.nic_mac(LabNic::ClusterA)},
                {"name": "clu-b", "mac": node.nic_mac(LabNic::ClusterB)},
                {"name": "repl", "mac": node.nic_mac(LabNic::Replication), "dhcp": true}
            ],
            "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["clu-a", "clu-b"],
                       "miimon": 100, "primary": "clu-a",
                       "addresses": [format!("{}/24", addr[i - 1])]}]
        });
        let r = api.put("/api/v1/network", &json!({ "spec": spec }))?;
        ensure!(
            r.status == 200,
            "node{i} PUT /network: {} {}",
            r.status,
            r.body
        );
        let c = api.post("/api/v1/network/confirm", &json!({}))?;
        ensure!(c.status == 200, "node{i} confirm: {} {}", c.status, c.body);
    }
    for i in 1..=3 {
        let target = addr[i % 3].parse()?;
        let took = cluster.node(i)?.wait_ping(target, Deadline::secs(90))?;
        println!("node{i} reaches {target} over its bond ({took:?})");
    }

    // Standalone first.
    let st = status(&mut cluster, 1)?;
    ensure!(
        st["mode"] == "standalone",
        "node1 is not standalone before create: {st}"
    );
    // Bad input changes nothing and names the field.
    let api1 = cluster.node(1)?.api()?.clone();
    api1.expect_invalid(
        "POST",
        "/api/v1/cluster",
        &json!({"name": "Lab!", "address": addr[0]}),
        "name",
    )?;
    api1.expect_invalid(
        "POST",
        "/api/v1/cluster",
        &json!({"name": "lab", "address": "10.77.0.99"}),
        "address",
    )?;

    // node1 creates the cluster through the API.
    let created = api1.run_task(
        "POST",
        "/api/v1/cluster",
        &json!({"name": "lab", "address": addr[0]}),
        Deadline::secs(240),
    )?;
    println!("create: {}", created["message"]);
    let st = wait_members(&mut cluster, 1, 1, Deadline::secs(60))?;
    ensure!(st["cluster"]["name"] == "lab", "cluster name: {st}");
    println!("node1 status after create: {st}");

    // node3 joins through the setup wizard in Chromium, with a token made on node1.
    let t = api1.expect(
        "POST",
        "/api/v1/cluster/tokens",
        Some(&json!({"ttl_s": 600})),
    )?;
    let token3 = t["token"].as_str().context("token")?.to_string();
    let started = std::time::Instant::now();
    {
        let node3 = cluster.node(3)?;
        let setup = node3.wait_setup(Deadline::secs(60))?;
        let url = format!("https://{}", node3.api_addr());
        let mgmt_mac = node3.nic_mac(LabNic::Management);
        let results = node3.dir().join("ui");
        run_browser(
            "lab-cluster-join.test.mjs",
            &url,
            &[
                ("CAIRN_SETUP_CODE", setup.code.as_str()),
                ("CAIRN_PASSWORD", LAB_PASSWORD),
                ("CAIRN_HOSTNAME", "node3"),
                ("CAIRN_TOKEN", token3.as_str()),
                ("CAIRN_CLUSTER_ADDRESS", addr[2].as_str()),
                ("CAIRN_CLUSTER", "lab"),
                ("CAIRN_MGMT_MAC", mgmt_mac.as_str()),
            ],
            &results,
            Deadline::secs(600),
        )
        .context("node3: the setup wizard's Join a cluster in Chromium")?;
        let shots = screenshots(&results)?;
        ensure!(
            shots >= 8,
            "expected a screenshot per wizard step and of the join in {}, found {shots}",
            results.display()
        );
        println!("node3's wizard screenshots: {}", results.display());
        let api3 = node3.sign_in(LAB_PASSWORD, Deadline::secs(60))?;
        node3.set_api(api3);
    }
    println!(
        "node3 joined (setup wizard in Chromium) in {:.1} s, token → voter",
        started.elapsed().as_secs_f64()
    );
    wait_members(&mut cluster, 1, 2, Deadline::secs(120))?;

    // node2: the spent token is refused (nothing changes), then it joins with cairnctl.
    let api2 = cluster.node(2)?.api()?.clone();
    let r = api2.post(
        "/api/v1/cluster/join",
        &json!({"token": token3, "address": addr[1]}),
    )?;
    ensure!(
        r.status == 202,
        "join with the spent token did not start: {} {}",
        r.status,
        r.body
    );
    let id = r.json()["id"].as_u64().context("task id")?;
    let d = Deadline::secs(120);
    let failed = loop {
        let t = api2.expect("GET", &format!("/api/v1/tasks/{id}"), None)?;
        if t["state"] == "failed" {
            break t;
        }
        ensure!(t["state"] != "succeeded", "a spent token joined: {t}");
        ensure!(!d.expired(), "the join with a spent token did not end: {t}");
        // poll interval of the task; the deadline bounds the wait
        std::thread::sleep(std::time::Duration::from_millis(500).min(d.remaining()));
    };
    let msg = failed["message"].as_str().unwrap_or_default().to_string();
    ensure!(
        msg.contains("token refused"),
        "spent token: unexpected failure: {failed}"
    );
    println!("a spent token is refused: {msg}");
    ensure!(
        status(&mut cluster, 2)?["mode"] == "standalone",
        "node2 changed after a refused join"
    );

    let token2 = api1.expect("POST", "/api/v1/cluster/tokens", Some(&json!({})))?["token"]
        .as_str()
        .context("token")?
        .to_string();
    let started = std::time::Instant::now();
    let ctl = {
        let node2 = cluster.node(2)?;
        let api = node2.api()?.clone();
        Cairnctl::logged_in(node2, &api, "node2")?
    };
    ctl.ok(&["cluster", "join", &token2, "--address", &addr[1]])?;
    println!(
        "node2 joined (cairnctl) in {:.1} s, token → voter",
        started.elapsed().as_secs_f64()
    );

    // node2 joined through cairnctl; its status through cairnctl too.
    let shown = ctl.json(&["cluster", "status"])?;
    ensure!(
        shown["mode"] == "member",
        "cairnctl cluster status on node2: {shown}"
    );
    let st = wait_members(&mut cluster, 1, 3, Deadline::secs(120))?;
    println!("node1 status: {st}");
    for i in 2..=3 {
        wait_members(&mut cluster, i, 3, Deadline::secs(120))?;
    }
    // Three voters, none a learner, as etcd itself says.
    let node3 = cluster.node(3)?;
    let members = node3.shell_check(
        &format!("{ETCDCTL} member list -w json"),
        Deadline::secs(60),
    )?;
    let members: Value = serde_json::from_str(&members).context("etcdctl member list JSON")?;
    let list = members["members"].as_array().cloned().unwrap_or_default();
    ensure!(
        list.len() == 3,
        "etcd lists {} members: {members}",
        list.len()
    );
    ensure!(
        list.iter().all(|m| m["isLearner"] != true),
        "a learner is left: {members}"
    );
    println!(
        "etcd members: {}",
        list.iter()
            .map(|m| m["name"].to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // A pulled cluster-bond link changes no membership: every node keeps seeing three online
    // nodes, checked every second for longer than the lease TTL (10 s).
    cluster.pull_link(1, LabNic::ClusterA, Deadline::secs(30))?;
    let watch = std::time::Instant::now();
    while watch.elapsed() < std::time::Duration::from_secs(20) {
        for i in 1..=3 {
            let st = status(&mut cluster, i)?;
            let nodes = st["nodes"].as_array().cloned().unwrap_or_default();
            ensure!(
                st["quorum"]["has_quorum"] == true
                    && nodes.len() == 3
                    && nodes.iter().all(|n| n["liveness"] == "online"),
                "node{i}, {:.1} s after node1's cluster link was pulled: {st}",
                watch.elapsed().as_secs_f64()
            );
        }
        // one round of checks per second
        std::thread::sleep(std::time::Duration::from_millis(1000));
    }
    cluster.plug_link(1, LabNic::ClusterA, Deadline::secs(30))?;
    println!("node1's cluster link pulled for 20 s: membership unchanged on every node");

    // etcd's own measurements with the three nodes busy, for the timing decision (0026): a
    // CPU burner on every node while node1 writes 60 keys through etcdctl (one process per
    // write, as a busy admin's tools would), then etcd's histograms and how often a leader
    // was late with a heartbeat.
    for i in 1..=3 {
        cluster.node(i)?.shell_check(
            "(timeout 90 sh -c 'while :; do :; done' >/dev/null 2>&1 &) ; echo started",
            Deadline::secs(30),
        )?;
    }
    let writes = std::time::Instant::now();
    cluster.node(1)?.shell_check(
        &format!("i=0; while [ $i -lt 60 ]; do {ETCDCTL} put /lab/load/$i value-$i >/dev/null || exit 1; i=$((i+1)); done; echo done"),
        Deadline::secs(300),
    )?;
    println!(
        "60 etcdctl puts with three busy nodes: {:.1} s ({:.0} ms each, etcdctl's own start included)",
        writes.elapsed().as_secs_f64(),
        writes.elapsed().as_secs_f64() * 1000.0 / 60.0
    );
    for i in 1..=3 {
        let late = cluster.node(i)?.shell_check(
            "journalctl -b -t etcd --no-pager -o cat | grep -c 'failed to send out heartbeat on time' || true",
            Deadline::secs(60),
        )?;
        println!(
            "node{i}: etcd warnings of a heartbeat sent late: {}",
            late.trim()
        );
    }
    for i in 1..=3 {
        let node = cluster.node(i)?;
        let m = node.shell_check(
            // bash's /dev/tcp: the image has no HTTP client, and the lab shell is dash.
            "bash -c 'exec 3<>/dev/tcp/127.0.0.1/2381; printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'",
            Deadline::secs(60),
        )?;
        for name in [
            "etcd_disk_wal_fsync_duration_seconds",
            "etcd_disk_backend_commit_duration_seconds",
            "etcd_network_peer_round_trip_time_seconds",
        ] {
            match histogram(&m, name) {
                Some((mean, n, p99)) => println!(
                    "node{i} {name}: mean {:.1} ms, p99 ≤ {:.1} ms ({n} samples)",
                    mean * 1000.0,
                    p99 * 1000.0
                ),
                None => println!("node{i} {name}: no samples"),
            }
        }
    }
    cluster.finish();
    Ok(())
}
