//! Scenarios ui: Debian's Chromium (Playwright) drives the whole setup wizard of a booted
//! node, after which the node runs chronyd with the NTP servers chosen there and shows the
//! zone (ui_setup_wizard); and the Disks & pools page of a node with data disks: disks with
//! serial and SMART verdict, a pool created through the form with its capacity shown first
//! and its task followed to the end, a share created (ui_storage); and the Network page of a
//! node with four NICs (ui_network): bond → VLAN → bridge built through the forms, applied in
//! try mode and confirmed, the node's links checked against a spec written here; a change
//! left unconfirmed rolls back by itself; the management address moved through the page and
//! confirmed from the new address.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::labnet::{LabNet, LabNetError};
use cairn_lab::{
    ApiSession, BootMode, Bus, Deadline, Lab, NicSpec, Node, NodeConfig, LAB_PASSWORD,
};
use common::browser::{run_browser, run_browser_in};
use serde_json::{json, Value};

/// The NTP server the wizard enters: QEMU's user-network host address (it maps to the
/// host's loopback, so nothing leaves this machine).
const NTP: &str = "10.0.2.2";
const ZONE: &str = "Europe/Berlin";

/// Poll `cmd` in the lab shell until its output satisfies `ok` (chronyd restarts and
/// resolves asynchronously after setup).
fn wait_shell(
    node: &mut Node,
    cmd: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
    deadline: Deadline,
) -> Result<String> {
    let mut last = String::new();
    while !deadline.expired() {
        let out = node.shell_run(cmd, deadline.capped(Duration::from_secs(30)))?;
        last = format!("exit {}: {}", out.code, out.output);
        if out.code == 0 && ok(&out.output) {
            return Ok(out.output);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!(
        "waited {:?} for {what}; `{cmd}` last gave {last}",
        deadline.total()
    )
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn ui_setup_wizard() -> Result<()> {
    let Some(lab) = Lab::for_test("ui") else {
        return Ok(());
    };
    if !Path::new("/usr/bin/chromium").exists() {
        println!(
            "SKIP lab scenario ui: no /usr/bin/chromium (services/api/ui-tests/run.sh installs it)"
        );
        return Ok(());
    }
    let mut node = lab.start(NodeConfig::new("node1", BootMode::DirectKernel))?;
    common::check_node_up(&mut node, Deadline::secs(300))?;
    let setup = node.wait_setup(Deadline::secs(60))?;
    let url = format!("https://{}", node.api_addr());
    let results = node.dir().join("ui");
    run_browser(
        "lab.test.mjs",
        &url,
        &[
            ("CAIRN_SETUP_CODE", setup.code.as_str()),
            ("CAIRN_TIMEZONE", ZONE),
            ("CAIRN_NTP", NTP),
        ],
        &results,
        Deadline::secs(600),
    )
    .context("driving the setup wizard in Chromium")?;
    let shots = std::fs::read_dir(&results)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    ensure!(
        shots >= 6,
        "expected a screenshot per wizard step in {}, found {shots}",
        results.display()
    );

    // chronyd runs under cairn-init with the server chosen in the wizard.
    let services = node.services(Deadline::secs(30))?;
    let chronyd = common::service(&services, "chronyd")?;
    ensure!(
        chronyd.state == "ready",
        "chronyd is not ready: {chronyd:?}"
    );
    let sources = wait_shell(
        &mut node,
        "chronyc -n -c sources",
        &format!("chronyc to list {NTP}"),
        |out| out.lines().any(|l| l.split(',').nth(2) == Some(NTP)),
        Deadline::secs(60),
    )?;
    ensure!(
        !sources.contains("pool.ntp.org"),
        "chronyd still has other sources: {sources}"
    );
    let conf = node.shell_check(
        "cat /var/lib/cairn/chrony/cairn.sources",
        Deadline::secs(30),
    )?;
    ensure!(
        conf.contains(&format!("server {NTP} iburst")),
        "sources file: {conf}"
    );

    // The zone: /etc/localtime → /var/lib/cairn/localtime → the zone; `date` shows it.
    let link = node.shell_check("readlink -f /etc/localtime", Deadline::secs(30))?;
    ensure!(
        link.trim() == format!("/usr/share/zoneinfo/{ZONE}"),
        "/etc/localtime resolves to {link:?}"
    );
    let zone = node.shell_check("date +%Z", Deadline::secs(30))?;
    ensure!(
        matches!(zone.trim(), "CET" | "CEST"),
        "date shows the zone {zone:?}, not Berlin's"
    );
    let offset = node.shell_check("date +%z", Deadline::secs(30))?;
    ensure!(
        matches!(offset.trim(), "+0100" | "+0200"),
        "date shows the offset {offset:?}"
    );
    node.finish();
    Ok(())
}

/// ui_storage's data disks: the harness numbers data disks' serials from `CAIRNLAB0001`
/// (NodeConfig::disk). The AHCI and NVMe disks have SMART (emulated); the virtio disk has none.
const STORAGE_DISKS: [(Bus, &str); 3] = [
    (Bus::Virtio, "CAIRNLAB0001"),
    (Bus::Ahci, "CAIRNLAB0002"),
    (Bus::Nvme, "CAIRNLAB0003"),
];

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn ui_storage() -> Result<()> {
    let Some(lab) = Lab::for_test("ui_storage") else {
        return Ok(());
    };
    if !Path::new("/usr/bin/chromium").exists() {
        println!(
            "SKIP lab scenario ui_storage: no /usr/bin/chromium (services/api/ui-tests/run.sh installs it)"
        );
        return Ok(());
    }
    let mut cfg = NodeConfig::new("uistor1", BootMode::DirectKernel).size(1, 1536);
    for (bus, _) in STORAGE_DISKS {
        // Small, so that the raid1 resync takes seconds under TCG.
        cfg = cfg.disk(bus, 192);
    }
    let mut node = lab.start(cfg)?;
    // Set up through the API (the wizard has its own scenario); the browser signs in.
    let api = node.claim(Deadline::secs(300))?;
    let smart: Vec<&str> = STORAGE_DISKS
        .iter()
        .filter(|(b, _)| !matches!(b, Bus::Virtio))
        .map(|(_, s)| *s)
        .collect();
    // The page shows the SMART verdict the service has; wait for its first poll of both.
    api.wait_for(
        "/api/v1/disks",
        "every data disk listed, the AHCI and NVMe disks with a SMART verdict",
        Deadline::secs(180),
        |v| {
            let disks = v["disks"].as_array().cloned().unwrap_or_default();
            let by = |s: &str| disks.iter().find(|d| d["serial"] == s).cloned();
            STORAGE_DISKS.iter().all(|(_, s)| by(s).is_some())
                && smart
                    .iter()
                    .all(|s| by(s).is_some_and(|d| d["smart"]["verdict"].is_string()))
        },
    )?;
    let serials: Vec<&str> = STORAGE_DISKS.iter().map(|(_, s)| *s).collect();
    let url = format!("https://{}", node.api_addr());
    let results = node.dir().join("ui");
    let started = std::time::Instant::now();
    run_browser(
        "lab-storage.test.mjs",
        &url,
        &[
            ("CAIRN_PASSWORD", LAB_PASSWORD),
            ("CAIRN_SERIALS", &serials.join(",")),
            ("CAIRN_SMART_SERIALS", &smart.join(",")),
            // The mirror: the virtio and the AHCI disk.
            ("CAIRN_POOL_SERIALS", &serials[..2].join(",")),
        ],
        &results,
        Deadline::secs(600),
    )
    .context("driving the Disks & pools page in Chromium")?;
    println!("ui_storage: browser test took {:?}", started.elapsed());
    let shots = std::fs::read_dir(&results)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    ensure!(
        shots >= 8,
        "expected desktop and phone screenshots of four steps in {}, found {shots}",
        results.display()
    );
    // What the page did is what the node has.
    let pool = api.expect("GET", "/api/v1/pools/tank", None)?;
    ensure!(
        pool["level"] == "raid1"
            && pool["state"] == "healthy"
            && pool["members"].as_array().map(Vec::len) == Some(2),
        "pool tank after the browser test: {pool}"
    );
    let shares = api.expect("GET", "/api/v1/pools/tank/shares", None)?;
    ensure!(
        shares.as_array().is_some_and(|a| a.len() == 1
            && a[0]["name"] == "docs"
            && a[0]["size_bytes"] == 256u64 << 20
            && a[0]["mounted"] == true),
        "shares of tank after the browser test: {shares}"
    );
    node.finish();
    Ok(())
}

/// ui_network's lab network: the lab host and the node's static management addresses (the
/// first set through the page, the second the one it moves to).
const NET_PEER: &str = "10.30.0.1/24";
const NET_MGMT: &str = "10.30.0.2";
const NET_MOVED: &str = "10.30.0.3";

/// `ip -j` on the node, parsed.
fn ip_json(node: &mut Node, args: &str) -> Result<Vec<Value>> {
    let out = node.shell_check(&format!("ip -j {args}"), Deadline::secs(30))?;
    serde_json::from_str(out.trim()).with_context(|| format!("ip -j {args}: {out}"))
}

/// The link named `name` in `ip -j -d link` output.
fn ip_link<'a>(links: &'a [Value], name: &str) -> Result<&'a Value> {
    links
        .iter()
        .find(|l| l["ifname"] == name)
        .with_context(|| format!("no link {name} on the node"))
}

/// The IPv4 addresses (CIDR) of `name` in `ip -j addr` output.
fn ip_addrs(addrs: &[Value], name: &str) -> Vec<String> {
    addrs
        .iter()
        .filter(|a| a["ifname"] == name)
        .flat_map(|a| a["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|i| i["family"] == "inet")
        .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
        .collect()
}

/// The confirmed spec, the pending change and the last rollback.
fn network_view(api: &ApiSession) -> Result<Value> {
    Ok(api.expect("GET", "/api/v1/network", None)?)
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn ui_network() -> Result<()> {
    let Some(lab) = Lab::for_test("ui_network") else {
        return Ok(());
    };
    if !Path::new("/usr/bin/chromium").exists() {
        println!(
            "SKIP lab scenario ui_network: no /usr/bin/chromium (services/api/ui-tests/run.sh installs it)"
        );
        return Ok(());
    }
    let mut net = match LabNet::new(1) {
        Ok(n) => n,
        Err(LabNetError::NotRoot) => {
            println!("SKIP lab scenario ui_network: lab networks need root");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let peer = net.peer(0, NET_PEER)?;
    // Four NICs: the management NIC (user network, DHCP, the API forward) and three on the
    // lab network.
    let mut cfg = NodeConfig::new("uinet1", BootMode::DirectKernel);
    for _ in 0..3 {
        cfg = cfg.nic(NicSpec::Tap(net.tap(0)));
    }
    let mut node = lab.start(cfg)?;
    net.attach(Deadline::secs(60))?;
    let api = node.claim(Deadline::secs(300))?;
    let status = api.expect("GET", "/api/v1/network/status", None)?;
    let links = status["links"].as_array().cloned().unwrap_or_default();
    let by_mac = |mac: &str| -> Result<String> {
        links
            .iter()
            .find(|l| {
                l["mac"]
                    .as_str()
                    .is_some_and(|m| m.eq_ignore_ascii_case(mac))
            })
            .and_then(|l| l["name"].as_str().map(String::from))
            .with_context(|| format!("no link with MAC {mac} in {links:?}"))
    };
    let mgmt = by_mac(&node.mac(0))?;
    let lan: Vec<String> = (1..=3)
        .map(|i| by_mac(&node.mac(i)))
        .collect::<Result<_>>()?;
    println!("ui_network: management {mgmt}, lab NICs {lan:?}");
    let url = format!("https://{}", node.api_addr());
    let results = node.dir().join("ui");
    let nics = lan.join(",");
    let env = |phase: &'static str| {
        vec![
            ("CAIRN_PASSWORD", LAB_PASSWORD.to_string()),
            ("CAIRN_NET_PHASE", phase.to_string()),
            ("CAIRN_NICS", nics.clone()),
            ("CAIRN_NEW_ADDR", NET_MOVED.to_string()),
        ]
    };
    let browse = |netns: Option<&str>, url: &str, phase: &'static str| -> Result<()> {
        let e = env(phase);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = std::time::Instant::now();
        run_browser_in(
            netns,
            "lab-network.test.mjs",
            url,
            &e,
            &results,
            Deadline::secs(420),
        )
        .with_context(|| format!("the Network page in Chromium, phase {phase}"))?;
        println!("ui_network: phase {phase} took {:?}", started.elapsed());
        Ok(())
    };

    // (1) Bond → VLAN → bridge with an address, and a static management address on the third
    // lab NIC, through the forms only; applied in try mode and confirmed.
    browse(None, &url, "build")?;
    let ip = |a: &str| json!([a]);
    let expected = json!({
        "links": [
            {"name": mgmt, "dhcp": true, "addresses": [], "management": true},
            {"name": lan[0], "dhcp": false, "addresses": [], "management": false},
            {"name": lan[1], "dhcp": false, "addresses": [], "management": false},
            {"name": lan[2], "dhcp": false, "addresses": ip(&format!("{NET_MGMT}/24")), "management": true}
        ],
        "bonds": [{"name": "bond0", "mode": "active-backup", "members": [lan[0], lan[1]],
                   "miimon": 100, "primary": lan[0], "dhcp": false, "addresses": [], "management": false}],
        "bridges": [{"name": "br20", "ports": ["bond0.20"], "stp": false,
                     "dhcp": false, "addresses": ["10.20.0.2/24"], "management": false}],
        "vlans": [{"name": "bond0.20", "parent": "bond0", "id": 20,
                   "dhcp": false, "addresses": [], "management": false}],
        "routes": [],
        "dns": {"servers": [], "search": []}
    });
    let view = network_view(&api)?;
    ensure!(
        view["pending"].is_null() && view["configured"] == true,
        "after the page confirmed: {view}"
    );
    ensure!(
        view["spec"] == expected,
        "the confirmed spec differs from the one the page was to build:\n  got      {}\n  expected {expected}",
        view["spec"]
    );
    let links = ip_json(&mut node, "-d link")?;
    let kind = |l: &Value| {
        l["linkinfo"]["info_kind"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let bond = ip_link(&links, "bond0")?;
    ensure!(kind(bond) == "bond", "bond0: {bond}");
    ensure!(
        bond["linkinfo"]["info_data"]["mode"] == "active-backup",
        "bond0 mode: {bond}"
    );
    for m in &lan[..2] {
        let l = ip_link(&links, m)?;
        ensure!(l["master"] == "bond0", "{m} is not in bond0: {l}");
    }
    let vlan = ip_link(&links, "bond0.20")?;
    ensure!(
        kind(vlan) == "vlan"
            && vlan["linkinfo"]["info_data"]["id"] == 20
            && vlan["link"] == "bond0",
        "bond0.20: {vlan}"
    );
    ensure!(
        vlan["master"] == "br20",
        "bond0.20 is not a port of br20: {vlan}"
    );
    let br = ip_link(&links, "br20")?;
    ensure!(kind(br) == "bridge", "br20: {br}");
    for name in ["bond0", "bond0.20", "br20"] {
        let l = ip_link(&links, name)?;
        let up = l["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP"));
        ensure!(up, "{name} is not up: {l}");
    }
    let addrs = ip_json(&mut node, "addr")?;
    ensure!(
        ip_addrs(&addrs, "br20") == ["10.20.0.2/24"],
        "br20 addresses: {:?}",
        ip_addrs(&addrs, "br20")
    );
    ensure!(
        ip_addrs(&addrs, &lan[2]) == [format!("{NET_MGMT}/24")],
        "{} addresses: {:?}",
        lan[2],
        ip_addrs(&addrs, &lan[2])
    );
    for m in &lan[..2] {
        ensure!(
            ip_addrs(&addrs, m).is_empty(),
            "bond member {m} keeps addresses {:?}",
            ip_addrs(&addrs, m)
        );
    }

    // (2) A change left unconfirmed: rolled back by itself, and the page says so.
    browse(None, &url, "rollback")?;
    let view = network_view(&api)?;
    ensure!(
        view["pending"].is_null() && view["last_rollback"].is_object(),
        "after the unconfirmed change: {view}"
    );
    ensure!(
        view["spec"] == expected,
        "the rollback changed the confirmed spec: {view}"
    );
    let addrs = ip_json(&mut node, "addr")?;
    ensure!(
        ip_addrs(&addrs, "br20") == ["10.20.0.2/24"],
        "br20 after the rollback: {:?}",
        ip_addrs(&addrs, "br20")
    );

    // (3) The management address moved through the page, from a browser on the lab network
    // (the address it uses is the one that moves), confirmed from the new address.
    browse(
        Some(peer.netns.as_str()),
        &format!("https://{NET_MGMT}"),
        "move",
    )?;
    let view = network_view(&api)?;
    ensure!(
        view["pending"].is_null(),
        "the move is still pending: {view}"
    );
    let moved = view["spec"]["links"]
        .as_array()
        .and_then(|ls| ls.iter().find(|l| l["name"] == lan[2].as_str()))
        .cloned()
        .unwrap_or_default();
    ensure!(
        moved["addresses"] == json!([format!("{NET_MOVED}/24")]) && moved["management"] == true,
        "{} in the confirmed spec after the move: {moved}",
        lan[2]
    );
    let addrs = ip_json(&mut node, "addr")?;
    ensure!(
        ip_addrs(&addrs, &lan[2]) == [format!("{NET_MOVED}/24")],
        "{} after the move: {:?}",
        lan[2],
        ip_addrs(&addrs, &lan[2])
    );

    let shots = std::fs::read_dir(&results)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    ensure!(
        shots >= 18,
        "expected desktop and phone screenshots of every step in {}, found {shots}",
        results.display()
    );
    node.finish();
    Ok(())
}
