//! Scenario restart: cairnd is killed on the node; the supervisor restarts it and the API answers again.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Result};
use cairn_lab::{BootMode, Deadline, Lab, NodeConfig};

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn restart() -> Result<()> {
    let Some(lab) = Lab::for_test("restart") else {
        return Ok(());
    };
    let mut node = lab.start(NodeConfig::new("node1", BootMode::DirectKernel))?;
    common::check_node_up(&mut node, Deadline::secs(300))?;
    let d = Deadline::secs(120);
    let before = common::service(&node.services(d)?, "cairnd")?.clone();
    let Some(pid) = before.pid else {
        bail!("cairnd has no pid: {before:?}")
    };
    node.shell_check(&format!("kill -9 {pid}"), d)?;
    // The supervisor notices, backs off, starts a new cairnd and sees it ready again.
    let after = loop {
        let services = node.services(d)?;
        let s = common::service(&services, "cairnd")?.clone();
        if s.state == "ready" && s.pid.is_some() && s.pid != Some(pid) {
            break s;
        }
        ensure!(
            !d.expired(),
            "cairnd was not restarted and ready within {:?}: {s:?}",
            d.total()
        );
        // poll interval while the supervisor's backoff runs
        std::thread::sleep(Duration::from_millis(300));
    };
    ensure!(
        after.restarts == before.restarts + 1,
        "restart count went from {} to {} (want +1)",
        before.restarts,
        after.restarts
    );
    ensure!(
        after.last_exit_signal == Some(9),
        "last exit should be SIGKILL: {after:?}"
    );
    // The new cairnd answers before its domains have started: wait for them too.
    let health = node.wait_ready(d)?;
    ensure!(health["status"] == "ok", "health after restart: {health}");
    node.finish();
    Ok(())
}
