//! Scenario shares: on a raid1 pool, a share's snapshot restored as a new share gives back the original checksums; scheduled snapshots; 10 CoW clones of a volume take seconds and ~0 pool data; a scrub reports progress; shares come back after a reboot and are deleted only with their typed name. The throughput benchmark is shares_bench.rs, the capacity alerts shares_capacity.rs (each boots its own node).

// Of the shared checks this scenario uses only `common::shares` (the node with pool tank).
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cairn_lab::api_session::progress_seen;
use cairn_lab::{ApiSession, Deadline, Node};
use common::shares::{node_config, node_with_pool, share_dir};
use serde_json::{json, Value};

fn sums(node: &mut Node, share: &str) -> Result<String> {
    Ok(node.shell_check(
        &format!("cd {} && sha256sum $(ls | sort)", share_dir(share)),
        Deadline::secs(120),
    )?)
}

/// The thin pool's data percent, from LVM's JSON report.
fn thin_data_percent(node: &mut Node) -> Result<f64> {
    let out = node.shell_check(
        "lvs --reportformat json -o lv_name,data_percent cairn-tank/thin",
        Deadline::secs(60),
    )?;
    let v: Value = serde_json::from_str(&out).with_context(|| format!("lvs JSON: {out}"))?;
    v["report"][0]["lv"][0]["data_percent"]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("no data_percent in {out}"))
}

/// Power the node off (ACPI) and boot it again; returns once cairnd answers and its domains
/// are ready.
fn reboot(node: &mut Node, api: &ApiSession) -> Result<()> {
    node.powerdown(Deadline::secs(180))
        .context("powering the node down")?;
    node.launch()?;
    node.wait_serial("cairn-init: cairnd ready", Deadline::secs(300))?;
    api.wait_ready(Deadline::secs(120))
        .context("the API and its domains after reboot")?;
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn shares() -> Result<()> {
    let Some(lab) = cairn_lab::Lab::for_test("shares") else {
        return Ok(());
    };
    let (mut node, api) = node_with_pool(&lab, node_config("shares1"))?;

    // --- Share: validation, create, files ------------------------------------------------------
    let bad = api.call(
        "POST",
        "/api/v1/pools/tank/shares",
        Some(&json!({"name": "Docs!", "size_bytes": 512u64 << 20})),
    )?;
    ensure!(
        bad.status == 422 && bad.json()["field"] == "name",
        "bad name: {} {}",
        bad.status,
        bad.body
    );
    let r = api.call(
        "POST",
        "/api/v1/pools/tank/shares",
        Some(&json!({"name": "docs", "size_bytes": 512u64 << 20})),
    )?;
    ensure!(
        r.status == 201,
        "creating share docs: {} {}",
        r.status,
        r.body
    );
    ensure!(r.json()["mounted"] == true, "share not mounted: {}", r.body);
    let fstype = node.shell_check(
        &format!("findmnt -n -o FSTYPE,SOURCE {}", share_dir("docs")),
        Deadline::secs(60),
    )?;
    ensure!(
        fstype.contains("btrfs") && fstype.contains("share--docs"),
        "mount: {fstype}"
    );
    node.shell_check(
        &format!("cd {} && for f in a b c; do dd if=/dev/urandom of=$f bs=1M count=4 status=none; done && sync", share_dir("docs")),
        Deadline::secs(300),
    )?;
    let original = sums(&mut node, "docs")?;
    ensure!(original.lines().count() == 3, "{original}");

    // --- Snapshot, change, restore as a new share -------------------------------------------------
    let r = api.call(
        "POST",
        "/api/v1/pools/tank/shares/docs/snapshots",
        Some(&json!({"name": "v1"})),
    )?;
    ensure!(r.status == 201, "snapshot: {} {}", r.status, r.body);
    let ro = node.shell_run(
        &format!("touch {}/.snapshots/v1/x", share_dir("docs")),
        Deadline::secs(60),
    )?;
    ensure!(ro.code != 0, "the snapshot is writable: {ro:?}");
    node.shell_check(
        &format!("cd {} && dd if=/dev/urandom of=a bs=1M count=2 status=none && rm b && echo new > d && sync", share_dir("docs")),
        Deadline::secs(120),
    )?;
    let changed = sums(&mut node, "docs")?;
    ensure!(changed != original, "files did not change");
    let t = api.run_task(
        "POST",
        "/api/v1/pools/tank/shares/docs/snapshots/v1/restore",
        &json!({"new_share": "docs-v1"}),
        Deadline::secs(300),
    )?;
    ensure!(t["kind"] == "share.restore", "{t}");
    let restored = sums(&mut node, "docs-v1")?;
    ensure!(
        restored == original,
        "restored share differs:\n{restored}\nwant:\n{original}"
    );
    ensure!(
        sums(&mut node, "docs")? == changed,
        "the original share changed on restore"
    );
    let shares = api.expect("GET", "/api/v1/pools/tank/shares", None)?;
    let names: BTreeSet<&str> = shares
        .as_array()
        .context("shares")?
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    ensure!(names == BTreeSet::from(["docs", "docs-v1"]), "{shares}");

    // --- Scheduled snapshots: the minute loop takes an hourly one ------------------------------
    let r = api.call(
        "PUT",
        "/api/v1/pools/tank/shares/docs/snapshot-schedule",
        Some(&json!({"hourly": 2})),
    )?;
    ensure!(r.status == 200, "schedule: {} {}", r.status, r.body);
    let snaps = api.wait_for(
        "/api/v1/pools/tank/shares/docs/snapshots",
        "a scheduled hourly snapshot",
        Deadline::secs(180),
        |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|s| s["scheduled"] == true))
        },
    )?;
    println!("snapshots after the schedule ran: {snaps}");

    // --- Thin volumes: 10 CoW clones ---------------------------------------------------------------
    let r = api.call(
        "POST",
        "/api/v1/pools/tank/volumes",
        Some(&json!({"name": "base", "size_bytes": 128u64 << 20})),
    )?;
    ensure!(r.status == 201, "volume: {} {}", r.status, r.body);
    node.shell_check(
        "dd if=/dev/urandom of=/dev/cairn-tank/vol-base bs=1M count=64 oflag=direct status=none",
        Deadline::secs(300),
    )?;
    let before = thin_data_percent(&mut node)?;
    let started = Instant::now();
    for i in 0..10 {
        let r = api.call(
            "POST",
            "/api/v1/pools/tank/volumes/base/clone",
            Some(&json!({"name": format!("c{i}")})),
        )?;
        ensure!(r.status == 201, "clone {i}: {} {}", r.status, r.body);
        ensure!(
            r.json()["origin"] == "base" && r.json()["active"] == true,
            "clone {i}: {}",
            r.body
        );
    }
    let took = started.elapsed();
    let after = thin_data_percent(&mut node)?;
    let vols = api.expect("GET", "/api/v1/pools/tank/volumes", None)?;
    ensure!(vols.as_array().map(Vec::len) == Some(11), "{vols}");
    let same = node.shell_check(
        "cmp /dev/cairn-tank/vol-base /dev/cairn-tank/vol-c9 && echo same",
        Deadline::secs(300),
    )?;
    ensure!(same.contains("same"), "clone content differs: {same}");
    cairn_lab::bench_println!(
        "volumes 10-clones: {:.1} s total ({:.2} s each over the API); thin pool data {before:.2} % -> {after:.2} % (base volume holds 64 MiB)",
        took.as_secs_f64(),
        took.as_secs_f64() / 10.0
    );
    ensure!(took < Duration::from_secs(120), "10 clones took {took:?}");
    ensure!(
        after - before < 0.5,
        "clones used pool data: {before} -> {after}"
    );
    let r = api.delete("/api/v1/pools/tank/volumes/c9", &json!({}))?;
    ensure!(r.status == 204, "delete clone: {} {}", r.status, r.body);

    // --- Scrub with progress -----------------------------------------------------------------------
    let t = api.run_task(
        "POST",
        "/api/v1/pools/tank/scrub",
        &json!({}),
        Deadline::secs(900),
    )?;
    let seen = progress_seen(&t);
    println!("scrub progress seen: {seen:?}; {}", t["message"]);
    ensure!(t["kind"] == "pool.scrub", "{t}");
    ensure!(
        seen.iter().any(|p| *p > 0 && *p < 100),
        "no intermediate progress: {seen:?}"
    );
    ensure!(
        t["message"].as_str().unwrap_or("").contains("0 mismatched"),
        "{t}"
    );
    let sc = api.expect("GET", "/api/v1/pools/tank/scrub", None)?;
    ensure!(
        sc["last"]["bytes_scrubbed"].as_u64().unwrap_or(0) > 0,
        "btrfs scrubbed nothing: {sc}"
    );
    let cap = api.expect("GET", "/api/v1/pools/tank/capacity", None)?;
    ensure!(
        cap["data_percent"].as_f64().is_some() && cap["shares"].as_array().map(Vec::len) == Some(2),
        "{cap}"
    );

    // --- Reboot: shares mounted again with the same data ----------------------------------------
    reboot(&mut node, &api)?;
    api.wait_for(
        "/api/v1/pools/tank/shares",
        "both shares mounted after reboot",
        Deadline::secs(300),
        |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 2 && a.iter().all(|s| s["mounted"] == true))
        },
    )?;
    ensure!(
        sums(&mut node, "docs")? == changed,
        "share docs changed over the reboot"
    );
    ensure!(
        sums(&mut node, "docs-v1")? == original,
        "share docs-v1 changed over the reboot"
    );
    let snaps = api.expect("GET", "/api/v1/pools/tank/shares/docs/snapshots", None)?;
    ensure!(
        snaps
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["name"] == "v1")),
        "{snaps}"
    );

    // --- Delete with typed confirmation ----------------------------------------------------------
    let r = api.delete(
        "/api/v1/pools/tank/shares/docs-v1",
        &json!({"confirm": "docs"}),
    )?;
    ensure!(
        r.status == 422 && r.json()["field"] == "confirm",
        "{} {}",
        r.status,
        r.body
    );
    let r = api.delete(
        "/api/v1/pools/tank/shares/docs-v1",
        &json!({"confirm": "docs-v1"}),
    )?;
    ensure!(r.status == 204, "{} {}", r.status, r.body);
    let lvs = node.shell_check("lvs --noheadings -o lv_name cairn-tank", Deadline::secs(60))?;
    ensure!(!lvs.contains("share-docs-v1"), "LV left behind: {lvs}");
    node.finish();
    Ok(())
}
