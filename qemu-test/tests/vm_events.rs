//! Scenario vm_events: VM state follows libvirt's domain events. A running VM is powered off
//! and started again out-of-band with `virsh` on the node; the API must report each change
//! within seconds (well under the 30 s safety-net poll), also after libvirtd crashed and was
//! restarted by cairn-init (cairnd subscribes again). Prints the measured latencies.

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::api_session::ApiSession;
use cairn_lab::{Deadline, Lab, Node};
use serde_json::{json, Value};

const POOL: &str = "tank";
const VM: &str = "ev";
/// How soon after an out-of-band change the API must show it: far below cairnd's safety-net
/// poll (30 s) and its poll without events (2 s) plus slack for the lab's TCG.
const EVENT_DEADLINE: Duration = Duration::from_secs(3);

/// The node is up for this scenario: the API answers and libvirtd is ready under cairn-init.
fn node_up(node: &mut Node, d: Deadline) -> Result<()> {
    common::check_node_up(node, d).context("waiting for the node")?;
    wait_libvirtd(node, None, d)?;
    Ok(())
}

/// Wait until libvirtd is ready under cairn-init (with a pid other than `not_pid`); returns
/// its pid.
fn wait_libvirtd(node: &mut Node, not_pid: Option<i64>, d: Deadline) -> Result<i64> {
    let mut last = Vec::new();
    while !d.expired() {
        let services = node.services(d)?;
        let found = services
            .iter()
            .find(|s| s.name == "libvirtd" && s.state == "ready")
            .and_then(|s| s.pid)
            .filter(|p| Some(*p) != not_pid);
        if let Some(pid) = found {
            return Ok(pid);
        }
        last = services;
        std::thread::sleep(Duration::from_millis(300).min(d.remaining()));
    }
    bail!(
        "libvirtd not ready (pid other than {not_pid:?}) within {:?}: {last:?}",
        d.total()
    )
}

/// Poll `GET /api/v1/vms/VM` (every 50 ms) until its state is `want`; returns when it was
/// first seen.
fn wait_state(api: &ApiSession, want: &str, d: Deadline) -> Result<Instant> {
    let mut last = Value::Null;
    while !d.expired() {
        let vm = api.expect("GET", &format!("/api/v1/vms/{VM}"), None)?;
        if vm["state"] == want {
            return Ok(Instant::now());
        }
        last = vm["state"].clone();
        std::thread::sleep(Duration::from_millis(50).min(d.remaining()));
    }
    bail!(
        "the API did not report VM {VM} {want} within {:?} (last state {last})",
        d.total()
    )
}

/// How many libvirt `event`s (`Stopped`, `Started`) of VM `VM` cairnd's journal shows. Each
/// event is logged once, as a state change (`VM ev: running -> shut_off (libvirt event
/// Stopped)`) or, when a poll saw the change first, as `VM ev: libvirt event Stopped (state
/// already shut_off)`.
///
/// The node counts them itself: the whole journal over the lab's serial shell took longer
/// than the shell's deadline on a busy CI host; only the number crosses it.
fn events_logged(node: &mut Node, event: &str) -> Result<usize> {
    let cmd = format!(
        "journalctl --no-pager -o cat -t cairnd | grep -F 'VM {VM}: ' \
         | grep -cF 'libvirt event {event}' || true"
    );
    let out = node.shell_run(&cmd, Deadline::secs(60))?;
    let count = out.output.trim();
    count
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .parse()
        .with_context(|| format!("counting libvirt events {event} in cairnd's journal: {count:?}"))
}

/// Wait until cairnd's journal shows at least `times` libvirt `event`s of VM `VM`: the event
/// reached cairnd (whether or not the safety-net poll saw the change first).
fn wait_event_logged(node: &mut Node, event: &str, times: usize) -> Result<()> {
    let d = Deadline::secs(20);
    let mut seen = 0;
    while !d.expired() {
        seen = events_logged(node, event)?;
        if seen >= times {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300).min(d.remaining()));
    }
    bail!(
        "cairnd logged {seen} (want {times}) libvirt events {event} of VM {VM} within {:?}",
        d.total()
    )
}

/// Run `virsh` on the node, then wait until the API reports `want`; returns the latency
/// from the command's return to the API showing the new state.
fn out_of_band(node: &mut Node, api: &ApiSession, virsh: &str, want: &str) -> Result<Duration> {
    let issued = Instant::now();
    node.shell_check(
        &format!("virsh -c qemu:///system {virsh} {VM}"),
        Deadline::secs(60),
    )
    .with_context(|| format!("virsh {virsh} {VM} on the node"))?;
    let returned = Instant::now();
    let seen = wait_state(api, want, Deadline::after(EVENT_DEADLINE))
        .with_context(|| format!("after an out-of-band virsh {virsh}"))?;
    let latency = seen - returned;
    cairn_lab::bench_eprintln!(
        "vm_events: virsh {virsh} -> API {want}: {:.2} s after virsh returned ({:.2} s after it was issued)",
        latency.as_secs_f64(),
        (seen - issued).as_secs_f64()
    );
    Ok(latency)
}

/// The running VM's live statistics, through the list and the VM's own endpoint: memory
/// above 0 and, from the second sample on (one every 2 s), a CPU use within 0..=100 × its
/// vCPUs; its disk's pool space (read every 10 s) a number. Prints them.
fn check_live_stats(api: &ApiSession) -> Result<()> {
    let d = Deadline::secs(30);
    let mut vm = Value::Null;
    while !d.expired() {
        let list = api.expect("GET", "/api/v1/vms", None)?;
        vm = list["vms"]
            .as_array()
            .and_then(|l| l.iter().find(|v| v["name"] == VM))
            .cloned()
            .with_context(|| format!("no VM {VM} in {list}"))?;
        if vm["stats"]["cpu_percent"].is_number() && vm["disk_allocated_bytes"].is_number() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500).min(d.remaining()));
    }
    let stats = &vm["stats"];
    let cpu = stats["cpu_percent"]
        .as_f64()
        .with_context(|| format!("no CPU % of running VM {VM} within {:?}: {vm}", d.total()))?;
    let vcpus = vm["vcpus"].as_f64().context("vcpus")?;
    ensure!(
        (0.0..=100.0 * vcpus).contains(&cpu),
        "CPU % of VM {VM} out of 0..={}: {stats}",
        100.0 * vcpus
    );
    let memory = stats["memory_bytes"].as_u64().unwrap_or(0);
    ensure!(memory > 0, "memory of running VM {VM} must be > 0: {stats}");
    let allocated = vm["disk_allocated_bytes"].as_u64().with_context(|| {
        format!(
            "no pool space of VM {VM}'s disk within {:?}: {vm}",
            d.total()
        )
    })?;
    let one = api.expect("GET", &format!("/api/v1/vms/{VM}"), None)?;
    ensure!(
        one["stats"]["memory_bytes"].as_u64().unwrap_or(0) > 0,
        "GET /api/v1/vms/{VM} without stats: {one}"
    );
    cairn_lab::bench_eprintln!(
        "vm_events: live stats of {VM} ({vcpus} vCPU, SeaBIOS waiting): CPU {cpu:.1} %, memory {} MiB, QEMU RSS {} MiB, disks {}, pool space {allocated} B",
        memory >> 20,
        stats["memory_rss_bytes"]
            .as_u64()
            .map(|b| (b >> 20).to_string())
            .unwrap_or_else(|| "n/a".into()),
        stats["disks"]
    );
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn vm_events() -> Result<()> {
    let Some(lab) = Lab::for_test("vm_events") else {
        return Ok(());
    };
    let cfg = common::guest::vm_host_config(&lab, "node1", &[])?;
    let serial = cfg.disks[0].serial.clone();
    let mut node = lab.start(cfg)?;
    node_up(&mut node, Deadline::secs(300))?;
    let api = node
        .claim(Deadline::secs(120))
        .context("claiming the node")?;
    api.wait_for(
        "/api/v1/vms",
        "libvirt connected",
        Deadline::secs(120),
        |v| v["resources"]["libvirt_connected"] == true,
    )?;
    common::pool::create_single_pool(&api, POOL, &serial, Deadline::secs(300))?;

    // A VM with an empty disk: SeaBIOS finds nothing to boot and waits, running.
    api.run_task(
        "POST",
        "/api/v1/vms",
        &json!({"name": VM, "vcpus": 1, "memory_mib": 32, "machine": "pc", "autostart": false,
                "disks": [{"source": "new", "pool": POOL, "size_bytes": 1u64 << 30, "bus": "ide"}]}),
        Deadline::secs(120),
    )?;
    // Shut off: no live statistics.
    let vm = api.expect("GET", &format!("/api/v1/vms/{VM}"), None)?;
    ensure!(
        vm["state"] == "shut_off" && vm["stats"].is_null(),
        "a shut-off VM must show null stats: {vm}"
    );
    api.run_task(
        "POST",
        &format!("/api/v1/vms/{VM}/start"),
        &json!({}),
        Deadline::secs(120),
    )?;
    wait_state(&api, "running", Deadline::secs(10))?;
    check_live_stats(&api)?;
    eprintln!("vm_events: VM {VM} running; changing it behind cairnd's back");

    let mut worst = Duration::ZERO;
    let stopped = events_logged(&mut node, "Stopped")?;
    worst = worst.max(out_of_band(&mut node, &api, "destroy", "shut_off")?);
    wait_event_logged(&mut node, "Stopped", stopped + 1)?;
    let started = events_logged(&mut node, "Started")?;
    worst = worst.max(out_of_band(&mut node, &api, "start", "running")?);
    wait_event_logged(&mut node, "Started", started + 1)?;

    // libvirtd crashes; cairn-init restarts it and cairnd subscribes to its events again.
    let pid = wait_libvirtd(&mut node, None, Deadline::secs(30))?;
    node.shell_check(&format!("kill -9 {pid}"), Deadline::secs(30))?;
    let t0 = Instant::now();
    let new_pid = wait_libvirtd(&mut node, Some(pid), Deadline::secs(120))
        .context("cairn-init restarting libvirtd after kill -9")?;
    eprintln!(
        "vm_events: libvirtd {pid} killed; {new_pid} ready after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let d = Deadline::secs(60);
    let mut journal = String::new();
    while !d.expired() {
        journal = node.shell_check(
            "journalctl --no-pager -o cat -t cairnd | grep 'libvirt domain events subscribed'",
            Deadline::secs(30),
        )?;
        if journal.lines().count() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500).min(d.remaining()));
    }
    ensure!(
        journal.lines().count() >= 2,
        "cairnd did not subscribe to libvirt's events again within {:?} of libvirtd's restart: {journal:?}",
        d.total()
    );
    eprintln!(
        "vm_events: cairnd subscribed again {:.1} s after the kill: {}",
        t0.elapsed().as_secs_f64(),
        journal.lines().last().unwrap_or_default()
    );
    // The VM kept running through libvirtd's restart; events flow on the new subscription.
    wait_state(&api, "running", Deadline::secs(10))?;
    let stopped = events_logged(&mut node, "Stopped")?;
    worst = worst.max(out_of_band(&mut node, &api, "destroy", "shut_off")?);
    wait_event_logged(&mut node, "Stopped", stopped + 1)?;
    cairn_lab::bench_eprintln!(
        "vm_events: worst out-of-band change -> API latency: {:.2} s (deadline {} s; safety-net poll 30 s)",
        worst.as_secs_f64(),
        EVENT_DEADLINE.as_secs()
    );
    node.finish();
    Ok(())
}
