//! Scenario ui: Debian's Chromium (Playwright) drives the whole setup wizard of a booted
//! node; then the node runs chronyd with the NTP servers chosen there and shows the zone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{BootMode, Deadline, Lab, Node, NodeConfig};

/// The NTP server the wizard enters: QEMU's user-network host address (it maps to the
/// host's loopback, so nothing leaves this machine).
const NTP: &str = "10.0.2.2";
const ZONE: &str = "Europe/Berlin";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qemu-test lives in the repository")
        .to_path_buf()
}

/// Run the Playwright lab test against the node; screenshots go to `results`.
fn run_browser(url: &str, code: &str, results: &Path, deadline: Deadline) -> Result<()> {
    let script = repo_root().join("services/api/ui-tests/run.sh");
    let log_path = results.join("playwright.log");
    std::fs::create_dir_all(results)?;
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(&script)
        .env("CAIRN_URL", url)
        .env("CAIRN_SETUP_CODE", code)
        .env("CAIRN_TIMEZONE", ZONE)
        .env("CAIRN_NTP", NTP)
        .env("UI_RESULTS", results)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = std::fs::read_to_string(&log_path).unwrap_or_default();
            ensure!(
                status.success(),
                "the browser test failed ({status}); log {}:\n{out}",
                log_path.display()
            );
            println!("{out}");
            return Ok(());
        }
        if deadline.expired() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the browser test did not finish within {:?} (log {})",
                deadline.total(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

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
    run_browser(&url, &setup.code, &results, Deadline::secs(600))
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
