//! Checks shared by the lab scenarios.

// Each scenario binary uses a part of these helpers.
#[allow(dead_code)]
pub mod browser;
#[allow(dead_code)]
pub mod cairnctl;
#[allow(dead_code)]
pub mod cluster_status;
#[allow(dead_code)]
pub mod guest;
#[allow(dead_code)]
pub mod pool;
#[allow(dead_code)]
pub mod replication;
#[allow(dead_code)]
pub mod shares;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::status::{self, ServiceState};
use cairn_lab::{Deadline, Node};
use serde_json::Value;

/// Services a fresh node must have running and ready (decision 0001, issue 2).
pub const CORE_SERVICES: [&str; 3] = ["journald", "udevd", "cairnd"];

/// Waits until the node is fully up and checks what every booted node must show: the API
/// answers with the pinned certificate and its domains have started (`node.wait_ready`), PID 1 is cairn-init, journald, udevd and cairnd are
/// ready under it, and cairnd's log lines are in the journal. Returns the health JSON.
pub fn check_node_up(node: &mut Node, deadline: Deadline) -> Result<Value> {
    node.wait_serial("cairn-init: all services ready", deadline)
        .context("waiting for cairn-init to report every service ready")?;
    let health = node
        .wait_ready(deadline)
        .context("waiting for GET /api/v1/health over the lab network (pinned certificate) to say the domains are ready")?;
    ensure!(
        health["status"] == "ok",
        "health status is not ok: {health}"
    );
    ensure!(
        health["hostname"].is_string(),
        "health has no hostname: {health}"
    );
    // PID 1 is cairn-init: by its comm, or by its executable when stage 1 exec'd it under
    // the name /sbin/init (the comm is then "init").
    let comm = node.shell_check("cat /proc/1/comm", deadline)?;
    let exe = node.shell_check("readlink /proc/1/exe", deadline)?;
    ensure!(
        comm.trim() == "cairn-init" || exe.trim().ends_with("/cairn-init"),
        "PID 1 is not cairn-init: comm {comm:?}, exe {exe:?}"
    );
    let services = node.services(deadline)?;
    for name in CORE_SERVICES {
        let s = service(&services, name)?;
        ensure!(
            s.state == "ready",
            "{name} is {} (want ready): {services:?}",
            s.state
        );
        ensure!(s.pid.is_some(), "{name} has no pid: {s:?}");
    }
    let journal = node.shell_check("journalctl -b --no-pager -o cat -t cairnd", deadline)?;
    let lines: Vec<&str> = journal.lines().filter(|l| !l.starts_with("-- ")).collect();
    ensure!(
        !lines.is_empty(),
        "journalctl -t cairnd shows no cairnd log lines: {journal:?}"
    );
    Ok(health)
}

/// The service `name` from a status list.
pub fn service<'a>(services: &'a [ServiceState], name: &str) -> Result<&'a ServiceState> {
    match status::find(services, name) {
        Some(s) => Ok(s),
        None => bail!("no service {name} in cairn-init svc status: {services:?}"),
    }
}
