//! Scenarios ui: Debian's Chromium (Playwright) drives the whole setup wizard of a booted
//! node, after which the node runs chronyd with the NTP servers chosen there and shows the
//! zone (ui_setup_wizard); and the Disks & pools page of a node with data disks: disks with
//! serial and SMART verdict, a pool created through the form with its capacity shown first
//! and its task followed to the end, a share created (ui_storage).

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{BootMode, Bus, Deadline, Lab, Node, NodeConfig, LAB_PASSWORD};
use common::browser::run_browser;

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
