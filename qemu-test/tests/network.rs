//! Network scenarios on a node with the management NIC (user-net, DHCP) and four NICs on
//! two lab networks: an active-backup bond survives a pulled cable (packet loss measured,
//! alerts fire and clear), a wrong gateway in try mode comes back by itself, a spec applied
//! twice changes nothing, a ten-link config is timed, and a reboot keeps the confirmed config;
//! and a VLAN on a bond, bridged, reachable from a second node on the same VLAN only.

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
/// The try timeout of the unconfirmed wrong-gateway change (the default is 60 s).
const TRY_S: u64 = 20;

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
    cairn_lab::bench_println!(
        "bond failover: {tx} pings at 10 ms, {lost} lost = {} ms of traffic (miimon 100)",
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
    // comes back by itself when the try runs out. The default try is 60 s (checked in the
    // view); this one asks for 20 s so the scenario does not idle a minute.
    let view = api.get("/api/v1/network")?.json();
    ensure!(
        view["try_timeout_s"] == 60,
        "default try timeout is not 60 s: {view}"
    );
    let mut wrong = bond_spec.clone();
    wrong["routes"][0]["gateway"] = json!("10.10.0.99");
    let r = api.put(
        "/api/v1/network",
        &json!({ "spec": wrong, "timeout_s": TRY_S }),
    )?;
    ensure!(
        r.status == 200,
        "PUT wrong gateway: {} {}",
        r.status,
        r.body
    );
    let put_at = Instant::now();
    let pending = r.json();
    ensure!(
        pending["timeout_s"] == TRY_S,
        "the try timeout asked for ({TRY_S} s) is not the pending one: {pending}"
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
            .is_some_and(|s| s <= TRY_S),
        "no countdown: {view}"
    );
    wait_reachable(&peer, NODE_IP, Some(FAR_IP), Deadline::secs(TRY_S + 10)).with_context(
        || {
            format!(
                "connectivity did not return by itself within {} s",
                TRY_S + 10
            )
        },
    )?;
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
    // Start from the links alone so every one of the ten is created. cairnd loaded the
    // VLAN, bridge and bonding modules at boot, so no round waits for a module; the first
    // round is still the first time each kind of link is made since boot (cold caches).
    let modules = node.shell_check(
        "for m in 8021q bridge bonding; do test -d /sys/module/$m && echo $m; done",
        Deadline::secs(30),
    )?;
    ensure!(
        modules.split_whitespace().count() == 3,
        "cairnd did not preload 8021q, bridge and bonding at boot: {modules:?}"
    );
    let plain = json!({"links": [{"name": mgmt, "dhcp": true, "management": true}]});
    for round in ["first since boot", "second"] {
        apply_confirmed(&api, &plain)?;
        let t = apply_confirmed(&api, &ten)?;
        cairn_lab::bench_println!(
            "ten-link apply, {round}: {} operations, netlink {} ms, total {} ms",
            t["apply"]["ops"].as_array().map_or(0, Vec::len),
            t["apply"]["netlink_ms"],
            t["apply"]["total_ms"]
        );
        // cairnd logs each operation with its time: where the apply spends it.
        let log = node.shell_check(
            "journalctl -b --no-pager -o cat -t cairnd | grep 'network: applied' | tail -n 1",
            Deadline::secs(30),
        )?;
        println!("per-operation times, {round}: {}", log.trim());
    }
    wait_reachable(&peer, NODE_IP, None, Deadline::secs(60))?;

    // (d, part 2) Reboot: the confirmed config comes back, and applying it again is a no-op.
    node.powerdown(Deadline::secs(120))?;
    boot(&mut node, &mut net, false)?;
    wait_reachable(&peer, NODE_IP, None, Deadline::secs(120)).context("after the reboot")?;
    // The boot apply waited for udev to name the NICs (an apply racing udev's renames failed
    // with "link eth2 does not exist"), and not for its whole 60 s limit.
    let log = node.shell_check(
        "journalctl -b --no-pager -o cat -t cairnd | grep -E 'network: (boot config|still waiting|applying the boot)'",
        Deadline::secs(30),
    )?;
    println!("boot apply after the reboot: {}", log.trim());
    ensure!(
        log.contains("boot config applied") && !log.contains("still waiting"),
        "the boot apply did not go through at once: {log}"
    );
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

/// node1's bridge address on VLAN 20, node2's address (same subnet, whatever VLAN it is
/// on) and the untagged lab host's.
const BR_IP: &str = "10.20.0.2";
const NODE2_IP: &str = "10.20.0.3";
const HOST_IP: &str = "10.20.0.1";

/// `ping -c 3 -W 1 ip` in a node's lab shell: (transmitted, received).
fn node_pings(node: &mut Node, ip: &str) -> Result<(u64, u64)> {
    let out = node.shell_run(&format!("ping -c 3 -W 1 {ip}"), Deadline::secs(30))?;
    ping_counts(&out.output).with_context(|| format!("no ping summary in {:?}", out.output))
}

/// Wait until `node` gets an answer from `ip` (three pings per try).
fn node_reaches(node: &mut Node, ip: &str, deadline: Deadline) -> Result<(u64, u64)> {
    loop {
        let counts = node_pings(node, ip)?;
        if counts.1 > 0 {
            return Ok(counts);
        }
        ensure!(
            !deadline.expired(),
            "{} got no answer from {ip} within {:?}",
            node.name(),
            deadline.total()
        );
    }
}

/// node2's spec: its lab NIC `lan` (by MAC) untagged (`vlan` None) or with a VLAN on it,
/// carrying NODE2_IP.
fn node2_spec(mgmt: &str, mac: &str, vlan: Option<u16>) -> Value {
    let addr = format!("{NODE2_IP}/24");
    match vlan {
        Some(id) => json!({
            "links": [
                {"name": mgmt, "dhcp": true, "management": true},
                {"name": "lan", "mac": mac}
            ],
            "vlans": [{"name": format!("lan.{id}"), "parent": "lan", "id": id,
                       "addresses": [addr]}]
        }),
        None => json!({
            "links": [
                {"name": mgmt, "dhcp": true, "management": true},
                {"name": "lan", "mac": mac, "addresses": [addr]}
            ]
        }),
    }
}

/// The VLAN test with a real peer: node1 has a bond of two NICs on lab network 0,
/// VLAN 20 on the bond, a bridge on the VLAN and the address on the bridge; node2 (a second
/// Cairn node, one NIC on the same network) reaches that address when it is on VLAN 20, not
/// from VLAN 30 nor untagged, and neither does the untagged lab host. The host kernel has
/// no 8021q, so the tagged peer has to be a booted node.
#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn network_vlan_peer() -> Result<()> {
    let Some(lab) = Lab::for_test("network_vlan_peer") else {
        return Ok(());
    };
    let mut net = match LabNet::new(1) {
        Ok(n) => n,
        Err(LabNetError::NotRoot) => {
            eprintln!("SKIP lab scenario network_vlan_peer: lab networks need root");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let host = net.peer(0, &format!("{HOST_IP}/24"))?;
    let cfg1 = NodeConfig::new("node1", BootMode::DirectKernel)
        .nic(NicSpec::Tap(net.tap(0)))
        .nic(NicSpec::Tap(net.tap(0)));
    let cfg2 = NodeConfig::new("node2", BootMode::DirectKernel).nic(NicSpec::Tap(net.tap(0)));
    // Both boot at once; the taps of both are attached when QEMU has made them.
    let mut node1 = lab.start(cfg1)?;
    let mut node2 = lab.start(cfg2)?;
    net.attach(Deadline::secs(60))?;
    common::check_node_up(&mut node1, Deadline::secs(400))?;
    common::check_node_up(&mut node2, Deadline::secs(400))?;
    let api1 = node1.claim(Deadline::secs(300))?;
    let api2 = node2.claim(Deadline::secs(300))?;
    let mgmt1 = name_of(&links_by_mac(&api1)?, &node1.mac(0))?;
    let mgmt2 = name_of(&links_by_mac(&api2)?, &node2.mac(0))?;

    let spec1 = json!({
        "links": [
            {"name": mgmt1, "dhcp": true, "management": true},
            {"name": "lan-a", "mac": node1.mac(1)},
            {"name": "lan-b", "mac": node1.mac(2)}
        ],
        "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["lan-a", "lan-b"],
                   "miimon": 100, "primary": "lan-a"}],
        "vlans": [{"name": "bond0.20", "parent": "bond0", "id": 20}],
        "bridges": [{"name": "br20", "ports": ["bond0.20"],
                     "addresses": [format!("{BR_IP}/24")]}]
    });
    let r = apply_confirmed(&api1, &spec1)?;
    println!("node1 apply: {}", r["apply"]);
    let links = links_by_mac(&api1)?;
    let br = links
        .iter()
        .find(|l| l["name"] == "br20")
        .with_context(|| format!("no br20 on node1: {links:?}"))?;
    ensure!(
        br.to_string().contains(BR_IP),
        "br20 does not carry {BR_IP}: {br}"
    );
    let mac2 = node2.mac(1);

    // Same VLAN: node2 on VLAN 20 reaches node1's bridge address.
    apply_confirmed(&api2, &node2_spec(&mgmt2, &mac2, Some(20)))?;
    let (tx, rx) = node_reaches(&mut node2, BR_IP, Deadline::secs(60))
        .context("node2 on VLAN 20 → node1's bridge on VLAN 20")?;
    println!("PROVEN node2 on VLAN 20 reaches node1's br20 {BR_IP} (bond0 → bond0.20 → br20): {rx}/{tx} replies");

    // Another VLAN, same subnet: nothing.
    apply_confirmed(&api2, &node2_spec(&mgmt2, &mac2, Some(30)))?;
    let (tx, rx) = node_pings(&mut node2, BR_IP)?;
    ensure!(
        rx == 0,
        "node2 on VLAN 30 got {rx}/{tx} replies from {BR_IP}"
    );
    println!("PROVEN node2 on VLAN 30 (same subnet): {rx}/{tx} replies from {BR_IP}");

    // Untagged, same subnet: nothing, although the untagged wire works (the lab host
    // reaches node2).
    apply_confirmed(&api2, &node2_spec(&mgmt2, &mac2, None))?;
    wait_reachable(&host, NODE2_IP, None, Deadline::secs(30))
        .context("the untagged lab host reaches node2 untagged (control)")?;
    let (tx, rx) = node_pings(&mut node2, BR_IP)?;
    ensure!(rx == 0, "node2 untagged got {rx}/{tx} replies from {BR_IP}");
    let (tx_h, rx_h) = pings(&host, &["-c", "3", "-W", "1", BR_IP])?;
    ensure!(
        rx_h == 0,
        "the untagged lab host got {rx_h}/{tx_h} replies from {BR_IP}"
    );
    println!(
        "PROVEN untagged: node2 {rx}/{tx} and the lab host {rx_h}/{tx_h} replies from {BR_IP}, \
         while the lab host reaches node2 {NODE2_IP} untagged"
    );

    // Back on VLAN 20: reachable again (the misses above were the VLANs, not node2).
    apply_confirmed(&api2, &node2_spec(&mgmt2, &mac2, Some(20)))?;
    let (tx, rx) = node_reaches(&mut node2, BR_IP, Deadline::secs(60))
        .context("node2 back on VLAN 20 → node1's bridge")?;
    println!("PROVEN node2 back on VLAN 20 reaches {BR_IP} again: {rx}/{tx} replies");
    node2.finish();
    node1.finish();
    Ok(())
}

/// systemd-boot's vendor GUID for its EFI variables.
const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// A shell command that sets systemd-boot's `LoaderEntryOneShot` to `entry` through
/// efivarfs: attributes NV|BS|RT, then the UTF-16LE, NUL-terminated id, written in one
/// `write(2)` (efivarfs needs that; dash's printf knows octal escapes only).
fn set_oneshot_cmd(entry: &str) -> String {
    let mut bytes = vec![7u8, 0, 0, 0];
    for u in entry.encode_utf16().chain([0]) {
        bytes.extend(u.to_le_bytes());
    }
    let esc: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    format!(
        "printf '{esc}' > /tmp/oneshot && dd if=/tmp/oneshot bs=4096 \
         of=/sys/firmware/efi/efivars/LoaderEntryOneShot-{LOADER_GUID} 2>&1"
    )
}

/// The console's way back: the image's ESP carries an uncounted "reset network to DHCP"
/// entry per slot, sorted after the slot entries (a normal boot does not pick it); choosing
/// it (here through `LoaderEntryOneShot`, as the boot menu would) boots the slot with
/// `cairn.net=reset`, which replaces the confirmed config by DHCP on the management link,
/// without touching the slots' boot counters; the next boot is a normal one again.
#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn network_boot_menu_reset() -> Result<()> {
    let Some(lab) = Lab::for_test("network_boot_menu_reset") else {
        return Ok(());
    };
    let mut node = lab.prepare(NodeConfig::new("node1", BootMode::Uefi))?;
    let esp = node.esp()?;
    let entries = esp.entries()?;
    for slot in ['a', 'b'] {
        let name = format!("cairn-{slot}-net-reset.conf");
        ensure!(entries.contains(&name), "no {name} on the ESP: {entries:?}");
        let text = esp.read(&format!("{}/{name}", cairn_lab::esp::ENTRIES_DIR))?;
        let options = cairn_lab::esp::field(&text, "options").unwrap_or_default();
        ensure!(
            options.contains(&format!("cairn.slot={slot}"))
                && options.split_whitespace().any(|w| w == "cairn.net=reset")
                && cairn_lab::esp::field(&text, "sort-key") == Some("cairn-reset")
                && text.contains("reset network to DHCP"),
            "{name}: {text}"
        );
    }
    println!("PROVEN the built ESP holds {entries:?}");
    node.launch()?;
    let health = common::check_node_up(&mut node, Deadline::secs(400))?;
    ensure!(
        health["boot"]["entry"]
            .as_str()
            .is_some_and(|e| e.starts_with("cairn-a") && !e.contains("reset")),
        "a normal boot did not pick slot A's own entry: {}",
        health["boot"]
    );
    let api = node.claim(Deadline::secs(300))?;
    let mgmt = name_of(&links_by_mac(&api)?, &node.mac(0))?;
    let spec = json!({
        "links": [{"name": mgmt, "dhcp": true, "management": true}],
        "bridges": [{"name": "brx", "addresses": ["10.99.0.2/24"]}]
    });
    apply_confirmed(&api, &spec)?;
    ensure!(
        links_by_mac(&api)?.iter().any(|l| l["name"] == "brx"),
        "brx not created"
    );
    // Wait for the blessing, so the ESP's slot entries are in their steady state.
    let d = Deadline::secs(60);
    while node.wait_health(Deadline::secs(30))?["boot"]["blessed"] != true {
        ensure!(!d.expired(), "boot not blessed within 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = node.shell_check(
        &set_oneshot_cmd("cairn-a-net-reset.conf"),
        Deadline::secs(30),
    )?;
    println!("LoaderEntryOneShot set: {}", out.trim());
    node.powerdown(Deadline::secs(120))?;
    let before = node.esp()?.entries()?;

    // The reset boot.
    node.launch()?;
    let health = common::check_node_up(&mut node, Deadline::secs(400))?;
    ensure!(
        health["boot"]["entry"] == "cairn-a-net-reset.conf",
        "the one-shot did not boot the reset entry: {}",
        health["boot"]
    );
    let cmdline = node.shell_check("cat /proc/cmdline", Deadline::secs(30))?;
    ensure!(
        cmdline.split_whitespace().any(|w| w == "cairn.net=reset"),
        "{cmdline}"
    );
    let d = Deadline::secs(120);
    let view = loop {
        let v = api.get("/api/v1/network")?.json();
        if v["spec"]["bridges"].as_array().is_some_and(Vec::is_empty) {
            break v;
        }
        ensure!(!d.expired(), "no reset to DHCP within 120 s: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let want = json!([{"name": mgmt, "dhcp": true, "addresses": [], "management": true}]);
    ensure!(view["spec"]["links"] == want, "reset spec: {view}");
    let d = Deadline::secs(60);
    while links_by_mac(&api)?.iter().any(|l| l["name"] == "brx") {
        ensure!(!d.expired(), "brx still there 60 s after the reset");
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "PROVEN boot entry cairn-a-net-reset.conf: cmdline has cairn.net=reset, spec reset to \
         DHCP on {mgmt}, brx removed"
    );
    node.powerdown(Deadline::secs(120))?;
    let after = node.esp()?.entries()?;
    ensure!(
        before == after,
        "the reset boot changed the loader entries: {before:?} → {after:?}"
    );
    println!("PROVEN loader entries untouched by the reset boot: {after:?}");

    // The next boot is a normal one: the one-shot is gone and the reset entry is no default.
    node.launch()?;
    let health = common::check_node_up(&mut node, Deadline::secs(400))?;
    let cmdline = node.shell_check("cat /proc/cmdline", Deadline::secs(30))?;
    ensure!(
        health["boot"]["entry"]
            .as_str()
            .is_some_and(|e| e.starts_with("cairn-a") && !e.contains("reset"))
            && !cmdline.contains("cairn.net=reset"),
        "the boot after the reset was not slot A's own entry: {} {cmdline}",
        health["boot"]
    );
    let view = api.get("/api/v1/network")?.json();
    ensure!(view["spec"]["links"] == want, "after the next boot: {view}");
    println!(
        "PROVEN the next boot is slot A's own entry {} again, the DHCP config kept",
        health["boot"]["entry"]
    );
    node.finish();
    Ok(())
}
