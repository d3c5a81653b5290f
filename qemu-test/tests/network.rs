//! Network scenarios on a node with the management NIC (user-net, DHCP) and four NICs on
//! two lab networks: an active-backup bond survives a pulled cable (packet loss measured,
//! alerts fire and clear), a wrong gateway in try mode comes back by itself, a spec applied
//! twice changes nothing, a ten-link config is timed, and a reboot keeps the confirmed config.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::labnet::{ping_counts, LabNet, LabNetError, Peer};
use cairn_lab::{ApiSession, BootMode, Deadline, Lab, NicSpec, Node, NodeConfig};
use serde_json::{json, Value};

/// The node's bond address on lab network 0 and the lab host's.
const NODE_IP: &str = "10.10.0.2";
const PEER_IP: &str = "10.10.0.1";
/// An address only the lab host has; the node reaches it through a route via PEER_IP.
const FAR_IP: &str = "10.60.0.1";

fn links_by_mac(api: &ApiSession) -> Result<Vec<Value>> {
    let st = api.get("/api/v1/network/status")?;
    ensure!(
        st.status == 200,
        "GET /network/status: {} {}",
        st.status,
        st.body
    );
    Ok(st.json()["links"].as_array().cloned().unwrap_or_default())
}

fn name_of(links: &[Value], mac: &str) -> Result<String> {
    links
        .iter()
        .find(|l| {
            l["mac"]
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
        .and_then(|l| l["name"].as_str().map(String::from))
        .with_context(|| format!("no link with MAC {mac} in {links:?}"))
}

/// PUT a spec (try mode) and confirm it; returns the PUT answer.
fn apply_confirmed(api: &ApiSession, spec: &Value) -> Result<Value> {
    let r = api.put("/api/v1/network", &json!({ "spec": spec }))?;
    ensure!(r.status == 200, "PUT /network: {} {}", r.status, r.body);
    let c = api.post("/api/v1/network/confirm", &json!({}))?;
    ensure!(
        c.status == 200,
        "POST /network/confirm: {} {}",
        c.status,
        c.body
    );
    Ok(r.json())
}

fn pings(peer: &Peer, args: &[&str]) -> Result<(u64, u64)> {
    let out = peer
        .command("ping")
        .args(args)
        .output()
        .context("run ping in the peer")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ping_counts(&text).with_context(|| format!("no ping summary in {text:?}"))
}

/// Wait until `peer` gets an answer from `ip` (one ping per try).
fn wait_reachable(
    peer: &Peer,
    ip: &str,
    src: Option<&str>,
    deadline: Deadline,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let mut args = vec!["-c", "1", "-W", "1"];
        if let Some(s) = src {
            args.extend(["-I", s]);
        }
        args.push(ip);
        if pings(peer, &args)?.1 == 1 {
            return Ok(start.elapsed());
        }
        ensure!(
            !deadline.expired(),
            "{ip} did not answer the lab host within {:?}",
            deadline.total()
        );
    }
}

fn active_alerts(api: &ApiSession) -> Result<Vec<String>> {
    let r = api.get("/api/v1/alerts")?;
    ensure!(r.status == 200, "GET /alerts: {} {}", r.status, r.body);
    Ok(r.json()["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["key"].as_str().map(String::from))
        .collect())
}

fn bond_active(api: &ApiSession) -> Result<Option<String>> {
    let links = links_by_mac(api)?;
    let bond = links
        .iter()
        .find(|l| l["name"] == "bond0")
        .context("no bond0 in status")?;
    Ok(bond["bond"]["active"].as_str().map(String::from))
}

/// Launch (again) and attach the lab NICs; wait for the API.
fn boot(node: &mut Node, net: &mut LabNet, first: bool) -> Result<()> {
    if !first {
        node.launch()?;
    }
    net.attach(Deadline::secs(60))?;
    common::check_node_up(node, Deadline::secs(400))?;
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn network() -> Result<()> {
    let Some(lab) = Lab::for_test("network") else {
        return Ok(());
    };
    let mut net = match LabNet::new(2) {
        Ok(n) => n,
        Err(LabNetError::NotRoot) => {
            eprintln!("SKIP lab scenario network: lab networks need root");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let peer = net.peer(0, &format!("{PEER_IP}/24"))?;
    peer.exec("ip", &["addr", "add", &format!("{FAR_IP}/32"), "dev", "lo"])?;
    let mut cfg = NodeConfig::new("node1", BootMode::DirectKernel);
    for network in [0, 0, 1, 1] {
        cfg = cfg.nic(NicSpec::Tap(net.tap(network)));
    }
    let mut node = lab.start(cfg)?;
    boot(&mut node, &mut net, true)?;
    let api = node.claim(Deadline::secs(300))?;

    let links = links_by_mac(&api)?;
    let mgmt = name_of(&links, &node.mac(0))?;
    let lan: Vec<String> = (1..=4)
        .map(|i| name_of(&links, &node.mac(i)))
        .collect::<Result<_>>()?;
    println!("links: management {mgmt}, lab {lan:?}");

    // (a) Active-backup bond of the two NICs on lab network 0, static address, a route to
    // the lab host's far address. The management NIC keeps DHCP (the test's API access).
    let bond_spec = json!({
        "links": [
            {"name": mgmt, "dhcp": true, "management": true},
            {"name": "lan-a", "mac": node.mac(1)},
            {"name": "lan-b", "mac": node.mac(2)}
        ],
        "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["lan-a", "lan-b"],
                   "miimon": 100, "primary": "lan-a", "addresses": [format!("{NODE_IP}/24")]}],
        "routes": [{"destination": "10.60.0.0/24", "gateway": PEER_IP}]
    });
    let first = apply_confirmed(&api, &bond_spec)?;
    println!("bond apply: {}", first["apply"]);
    wait_reachable(&peer, NODE_IP, None, Deadline::secs(60))?;
    wait_reachable(&peer, NODE_IP, Some(FAR_IP), Deadline::secs(30))
        .context("the node answers the far address through its route")?;
    let active = bond_active(&api)?.context("bond0 has no active member")?;
    ensure!(
        active == lan[0],
        "the primary {} should be active, not {active}",
        lan[0]
    );

    // Continuous ping at 10 ms from the lab host while the active member's cable is pulled.
    let ping = peer
        .command("ping")
        .args(["-i", "0.01", "-c", "1500", "-W", "1", NODE_IP])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("start the continuous ping")?;
    // Let the ping run a little before the fault (a measurement interval, not readiness).
    std::thread::sleep(Duration::from_secs(2));
    node.qmp()?.set_link("nic1", false, Deadline::secs(10))?;
    let pulled = Instant::now();
    let d = Deadline::secs(60);
    let key = format!("net/bond0/member/{}", lan[0]);
    loop {
        let moved = bond_active(&api)?.as_deref() == Some(lan[1].as_str());
        if moved && active_alerts(&api)?.contains(&key) {
            break;
        }
        ensure!(
            !d.expired(),
            "within 60 s: bond0 active is {:?}, alerts {:?}",
            bond_active(&api)?,
            active_alerts(&api)?
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "failover seen in the API after {:?}; alert {key} raised",
        pulled.elapsed()
    );
    // Keep the cable out for a while so a bond that did not fail over would lose many.
    std::thread::sleep(Duration::from_secs(5).saturating_sub(pulled.elapsed()));
    node.qmp()?.set_link("nic1", true, Deadline::secs(10))?;
    let d = Deadline::secs(60);
    while active_alerts(&api)?.contains(&key) {
        ensure!(
            !d.expired(),
            "alert {key} did not clear within 60 s of the cable coming back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("alert {key} cleared after the cable came back");
    let out = ping
        .wait_with_output()
        .context("wait for the continuous ping")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (tx, rx) = ping_counts(&text).with_context(|| format!("ping output: {text}"))?;
    let lost = tx - rx;
    println!(
        "BENCH bond failover: {tx} pings at 10 ms, {lost} lost = {} ms of traffic (miimon 100)",
        lost * 10
    );
    ensure!(rx > 0, "no ping answered at all: {text}");
    ensure!(
        lost * 10 < 2500,
        "{lost} pings lost ({} ms): traffic did not move to the other member (the cable was out ≥5 s)",
        lost * 10
    );

    // (d, part 1) The same spec again: no netlink operation.
    let before = api.get("/api/v1/network/status")?.json()["applied_ops_total"].as_u64();
    let again = apply_confirmed(&api, &bond_spec)?;
    ensure!(
        again["apply"]["ops"] == json!([]),
        "second apply made changes: {}",
        again["apply"]
    );
    let after = api.get("/api/v1/network/status")?.json()["applied_ops_total"].as_u64();
    ensure!(
        before == after,
        "applied_ops_total moved from {before:?} to {after:?}"
    );

    // (c) A wrong gateway in try mode, not confirmed: the far address stops answering, then
    // comes back by itself when the default 60 s try runs out.
    let mut wrong = bond_spec.clone();
    wrong["routes"][0]["gateway"] = json!("10.10.0.99");
    let r = api.put("/api/v1/network", &json!({ "spec": wrong }))?;
    ensure!(
        r.status == 200,
        "PUT wrong gateway: {} {}",
        r.status,
        r.body
    );
    let put_at = Instant::now();
    let pending = r.json();
    ensure!(
        pending["timeout_s"] == 60,
        "default try timeout is not 60 s: {pending}"
    );
    let (_, rx) = pings(&peer, &["-c", "3", "-W", "1", "-I", FAR_IP, NODE_IP])?;
    ensure!(
        rx == 0,
        "the far address still answers with the wrong gateway"
    );
    let view = api.get("/api/v1/network")?.json();
    ensure!(
        view["pending"]["remaining_s"]
            .as_u64()
            .is_some_and(|s| s <= 60),
        "no countdown: {view}"
    );
    wait_reachable(&peer, NODE_IP, Some(FAR_IP), Deadline::secs(70))
        .context("connectivity did not return by itself within 70 s")?;
    println!(
        "wrong gateway rolled back by itself: connectivity back {:?} after the PUT",
        put_at.elapsed()
    );
    let view = api.get("/api/v1/network")?.json();
    ensure!(
        view["pending"].is_null(),
        "still pending after the rollback: {view}"
    );
    ensure!(
        view["last_rollback"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not confirmed")),
        "{view}"
    );

    // Benchmark: a ten-link config (bond of two + four VLANs + three bridges).
    let mut ten = bond_spec.clone();
    ten["vlans"] = json!([
        {"name": "bond0.10", "parent": "bond0", "id": 10},
        {"name": "bond0.11", "parent": "bond0", "id": 11},
        {"name": "bond0.12", "parent": "bond0", "id": 12},
        {"name": "bond0.13", "parent": "bond0", "id": 13}
    ]);
    ten["bridges"] = json!([
        {"name": "br10", "ports": ["bond0.10"], "addresses": ["10.110.0.2/24"]},
        {"name": "br11", "ports": ["bond0.11"], "addresses": ["10.111.0.2/24"]},
        {"name": "br12", "ports": ["bond0.12"], "stp": true}
    ]);
    // Start from the links alone so every one of the ten is created.
    // The first round also loads the 8021q module; the second shows the steady cost.
    let plain = json!({"links": [{"name": mgmt, "dhcp": true, "management": true}]});
    for round in ["first (loads 8021q)", "second"] {
        apply_confirmed(&api, &plain)?;
        let t = apply_confirmed(&api, &ten)?;
        println!(
            "BENCH ten-link apply, {round}: {} operations, netlink {} ms, total {} ms",
            t["apply"]["ops"].as_array().map_or(0, Vec::len),
            t["apply"]["netlink_ms"],
            t["apply"]["total_ms"]
        );
    }
    wait_reachable(&peer, NODE_IP, None, Deadline::secs(60))?;

    // (d, part 2) Reboot: the confirmed config comes back, and applying it again is a no-op.
    node.powerdown(Deadline::secs(120))?;
    boot(&mut node, &mut net, false)?;
    wait_reachable(&peer, NODE_IP, None, Deadline::secs(120)).context("after the reboot")?;
    let view = api.get("/api/v1/network")?.json();
    ensure!(
        view["configured"] == true && view["spec"]["bridges"].as_array().map_or(0, Vec::len) == 3,
        "{view}"
    );
    let links = links_by_mac(&api)?;
    for want in ["bond0", "bond0.10", "bond0.13", "br10", "br12"] {
        if !links.iter().any(|l| l["name"] == want) {
            bail!("{want} missing after the reboot: {links:?}");
        }
    }
    let again = apply_confirmed(&api, &ten)?;
    ensure!(
        again["apply"]["ops"] == json!([]),
        "apply after reboot made changes: {}",
        again["apply"]
    );

    // Reset from the boot command line: DHCP on the management link, Cairn's links gone.
    node.powerdown(Deadline::secs(120))?;
    node.add_cmdline("cairn.net=reset");
    boot(&mut node, &mut net, false)?;
    let d = Deadline::secs(120);
    let view = loop {
        let v = api.get("/api/v1/network")?.json();
        if v["spec"]["bonds"].as_array().is_some_and(Vec::is_empty) {
            break v;
        }
        ensure!(!d.expired(), "no reset to DHCP within 120 s: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let want = json!([{"name": mgmt, "dhcp": true, "addresses": [], "management": true}]);
    ensure!(view["spec"]["links"] == want, "reset spec: {view}");
    let d = Deadline::secs(60);
    while links_by_mac(&api)?.iter().any(|l| l["name"] == "bond0") {
        ensure!(!d.expired(), "bond0 still there 60 s after the reset");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, rx) = pings(&peer, &["-c", "2", "-W", "1", NODE_IP])?;
    ensure!(rx == 0, "{NODE_IP} still answers after the reset");
    println!("cairn.net=reset: DHCP on {mgmt}; bonds, VLANs and bridges removed");
    node.finish();
    Ok(())
}
