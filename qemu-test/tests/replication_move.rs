//! Scenario replication_move (issue 18): three nodes form a cluster, each with a pool and its
//! replication network named. A VM on node1 (the lab's test guest on a 128 MiB disk) is
//! replicated to node2, then its replica is moved to node3 through the API: refused for a
//! node that holds a copy already or is not in the cluster (naming `to`); the task syncs the
//! whole disk to node3 and says that meanwhile only node1's copy is current; node2 takes its
//! side down and removes its copy; node3's copy holds the same bytes as node1's; the guest
//! then boots from the replicated disk.

mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::{Accel, ClusterOptions, Deadline, Lab, LabCluster};
use common::guest::{base64, build_images, wait_beats};
use serde_json::json;
use std::time::{Duration, Instant};

const POOL: &str = "tank";
const VM: &str = "web";
const DISK_BYTES: u64 = 128 << 20;

/// The MD5 of the first `bytes` (a whole number of MiB) of `dev` on node `i`, read with
/// O_DIRECT: DRBD writes a backing device under its page cache, and udev's probe of a new LV
/// leaves the cache holding what was there before.
fn md5(cluster: &mut LabCluster, i: usize, dev: &str, bytes: u64) -> Result<String> {
    let out = cluster.node(i)?.node().shell_check(
        &format!(
            "dd if={dev} bs=1M count={} iflag=direct 2>/dev/null | md5sum",
            bytes >> 20
        ),
        Deadline::secs(120),
    )?;
    out.split_whitespace()
        .next()
        .map(str::to_string)
        .with_context(|| format!("md5sum of {dev} on node{i}: {out:?}"))
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn replication_move() -> Result<()> {
    let Some(lab) = Lab::for_test("replication_move") else {
        return Ok(());
    };
    if let Some(why) = LabCluster::unavailable() {
        eprintln!("SKIP lab scenario replication_move: {why}");
        return Ok(());
    }
    let started = Instant::now();
    let guest = build_images(&common::guest::default_dir())?;
    let mut opts = ClusterOptions::default();
    if lab.accel()?.accel == Accel::Tcg {
        opts.cmdline.push("cairn.vm.accel=tcg".into());
    }
    let mut cluster = common::replication::start(&lab, 3, &opts, POOL)?;
    let api1 = cluster.node(1)?.api()?.clone();
    println!(
        "three nodes formed: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    api1.run_task(
        "POST",
        "/api/v1/vms",
        &json!({"name": VM, "vcpus": 1, "memory_mib": 32, "machine": "pc",
                "disks": [{"source": "new", "pool": POOL, "size_bytes": DISK_BYTES, "bus": "ide"}]}),
        Deadline::secs(120),
    )?;
    api1.expect(
        "PUT",
        &format!("/api/v1/vms/{VM}/disks/0/image"),
        Some(&json!({"data_base64": base64(&guest.base)})),
    )?;
    let path = format!("/api/v1/vms/{VM}/replication");
    api1.run_task(
        "POST",
        &path,
        &json!({"replica": "node2"}),
        Deadline::secs(300),
    )?;
    let vm = api1.expect("GET", &format!("/api/v1/vms/{VM}"), None)?;
    ensure!(
        vm["disks"][0]["replication"]["replica"] == "node2",
        "{}",
        vm["disks"][0]
    );
    let resource = vm["disks"][0]["replication"]["resource"]
        .as_str()
        .context("no resource")?
        .to_string();
    let minor: u32 = resource.trim_start_matches("cairn").parse()?;

    // Refusals name `to` and change nothing.
    let mv = format!("{path}/move");
    for (to, why) in [("node2", "holds a copy"), ("node9", "not another node")] {
        let r = api1.post(&mv, &json!({ "to": to }))?;
        ensure!(
            r.status == 422 && r.json()["field"] == "to" && r.body.contains(why),
            "move to {to}: {} {}",
            r.status,
            r.body
        );
    }

    // The move: node3 gets a fresh copy by a full sync; node2 removes its own.
    let t = Instant::now();
    let task = api1.run_task("POST", &mv, &json!({"to": "node3"}), Deadline::secs(300))?;
    println!(
        "replica moved in {:.1} s: {} (progress {})",
        t.elapsed().as_secs_f64(),
        task["message"],
        task["progress_seen"]
    );
    let vm = api1.expect("GET", &format!("/api/v1/vms/{VM}"), None)?;
    ensure!(
        vm["disks"][0]["replication"]["replica"] == "node3",
        "{}",
        vm["disks"][0]
    );
    let s = api1.expect("GET", &path, None)?;
    ensure!(
        s["disks"][0]["healthy"] == true && s["disks"][0]["replica"] == "node3",
        "after the move: {s}"
    );
    let d = Deadline::secs(90);
    loop {
        let out = cluster.node(2)?.node().shell_check(
            "lvs --noheadings -o lv_name 2>/dev/null; cat /proc/drbd; ls /var/lib/cairn/drbd",
            Deadline::secs(30),
        )?;
        if !out.contains(&format!("drbd-{resource}")) && !out.contains(&format!(" {minor}: cs:")) {
            break;
        }
        ensure!(
            !d.expired(),
            "node2 kept its old copy after the move:\n{out}"
        );
        // poll interval for node2's controller (3 s tick); the deadline bounds the wait
        std::thread::sleep(Duration::from_millis(1000).min(d.remaining()));
    }
    let proc3 = cluster
        .node(3)?
        .node()
        .shell_check("cat /proc/drbd", Deadline::secs(30))?;
    ensure!(
        proc3.contains("ro:Secondary/Secondary ds:UpToDate/UpToDate"),
        "node3 after the move:\n{proc3}"
    );
    let a = md5(
        &mut cluster,
        1,
        &format!("/dev/cairn-{POOL}/vol-{VM}-disk0"),
        DISK_BYTES,
    )?;
    let b = md5(
        &mut cluster,
        3,
        &format!("/dev/cairn-{POOL}/drbd-{resource}"),
        DISK_BYTES,
    )?;
    ensure!(a == b, "node3's copy differs from node1's: {a} vs {b}");
    println!("node3's copy is node1's: md5 {a}");

    // The guest boots from the replicated disk.
    api1.run_task(
        "POST",
        &format!("/api/v1/vms/{VM}/start"),
        &json!({}),
        Deadline::secs(120),
    )?;
    wait_beats(&api1, VM, 1, 2, Deadline::secs(180))?;
    api1.expect("POST", &format!("/api/v1/vms/{VM}/off"), Some(&json!({})))?;
    println!("scenario {:.0} s", started.elapsed().as_secs_f64());
    cluster.finish();
    Ok(())
}
