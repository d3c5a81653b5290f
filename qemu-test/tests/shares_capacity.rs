//! Scenario shares_capacity: a share filled past 85 %, 90 % and 95 % raises its capacity alert and changes it (critical while the share still takes writes), cleared when emptied.

// Of the shared checks this scenario uses only `common::shares` (the node with pool tank).
#[allow(dead_code)]
mod common;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{ApiSession, Deadline, Node};
use common::shares::{node_config, node_with_pool, share_dir};
use serde_json::{json, Value};

/// Share `share`'s used percent as the capacity check sees it (`GET …/capacity`: btrfs's
/// figures after a commit, so every write that returned is counted).
fn share_percent(api: &ApiSession, share: &str) -> Result<f64> {
    let v = api.expect("GET", "/api/v1/pools/tank/capacity", None)?;
    v["shares"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["share"] == share))
        .and_then(|s| s["used_percent"].as_f64())
        .with_context(|| format!("no used_percent of {share} in {v}"))
}

/// Write files into `share` until the API reports at least `target` % used (smaller files
/// near the target); returns the percent reached.
fn fill_share(node: &mut Node, api: &ApiSession, share: &str, target: f64) -> Result<f64> {
    for i in 0..200 {
        let pct = share_percent(api, share)?;
        if pct >= target {
            return Ok(pct);
        }
        let mib = if target - pct > 10.0 { 16 } else { 1 };
        let w = node.shell_run(
            &format!(
                "dd if=/dev/urandom of={}/fill-{target}-{i} bs=1M count={mib} conv=fsync status=none",
                share_dir(share)
            ),
            Deadline::secs(120),
        )?;
        ensure!(
            w.code == 0,
            "writing to {share} failed at {pct:.1} % used (target {target} %): {w:?}"
        );
    }
    bail!("{share} did not reach {target} % used")
}

/// Wait for the active alert `key` at `level`.
fn wait_alert(api: &ApiSession, key: &str, level: &str, d: Deadline) -> Result<Value> {
    let v = api.wait_for(
        "/api/v1/alerts",
        &format!("alert {key} at level {level}"),
        d,
        |v| {
            v["active"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["key"] == key && x["level"] == level))
        },
    )?;
    Ok(v["active"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["key"] == key).cloned())
        .unwrap_or(Value::Null))
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn shares_capacity() -> Result<()> {
    let Some(lab) = cairn_lab::Lab::for_test("shares_capacity") else {
        return Ok(());
    };
    let (mut node, api) = node_with_pool(&lab, node_config("shcap1"))?;

    // --- Capacity alerts: a share filled past 85 %, 90 %, 95 % raises and changes its alert; emptying it clears it
    let r = api.call(
        "POST",
        "/api/v1/pools/tank/shares",
        Some(&json!({"name": "full", "size_bytes": 256u64 << 20})),
    )?;
    ensure!(r.status == 201, "share full: {} {}", r.status, r.body);
    let key = "pool/tank/share/full/capacity";
    let pct = fill_share(&mut node, &api, "full", 86.0)?;
    let a = wait_alert(&api, key, "warning", Deadline::secs(150))?;
    println!("shares: capacity alert at {pct:.1} % used: {a}");
    ensure!(a["message"].as_str().unwrap_or("").contains("85 %"), "{a}");
    // Past 90 %: the alert changes (once per threshold).
    let pct = fill_share(&mut node, &api, "full", 90.5)?;
    let a = wait_alert(&api, key, "warning", Deadline::secs(150))?;
    let a = if a["message"].as_str().unwrap_or("").contains("90 %") {
        a
    } else {
        api.wait_for(
            "/api/v1/alerts",
            "the share's capacity alert at the 90 % threshold",
            Deadline::secs(150),
            |v| {
                v["active"].as_array().is_some_and(|a| {
                    a.iter().any(|x| {
                        x["key"] == key && x["message"].as_str().unwrap_or("").contains("90 %")
                    })
                })
            },
        )?;
        wait_alert(&api, key, "warning", Deadline::secs(30))?
    };
    println!("shares: capacity alert at {pct:.1} % used: {a}");
    ensure!(a["message"].as_str().unwrap_or("").contains("90 %"), "{a}");
    // Past 95 %: critical, while the share still takes writes (the percent is of the space
    // btrfs can still give to file data, read after a commit: docs/storage.md).
    let pct = fill_share(&mut node, &api, "full", 95.0)?;
    let a = wait_alert(&api, key, "critical", Deadline::secs(150))?;
    println!("shares: capacity alert at {pct:.1} % used: {a}");
    ensure!(a["message"].as_str().unwrap_or("").contains("95 %"), "{a}");
    let w = node.shell_run(
        &format!(
            "dd if=/dev/urandom of={}/fill-after-critical bs=1M count=1 conv=fsync status=none",
            share_dir("full")
        ),
        Deadline::secs(120),
    )?;
    ensure!(
        w.code == 0,
        "the share was already full when its critical alert was raised at {pct:.1} %: {w:?}"
    );
    println!(
        "shares: 1 MiB more written after the critical alert ({:.1} % used now)",
        share_percent(&api, "full")?
    );
    node.shell_check(
        &format!("rm -f {}/fill-* && sync", share_dir("full")),
        Deadline::secs(60),
    )?;
    api.wait_for(
        "/api/v1/alerts",
        "the share's capacity alert cleared after emptying it",
        Deadline::secs(150),
        |v| {
            v["active"]
                .as_array()
                .is_some_and(|a| !a.iter().any(|x| x["key"] == key))
        },
    )?;
    let r = api.delete(
        "/api/v1/pools/tank/shares/full",
        &json!({"confirm": "full"}),
    )?;
    ensure!(
        r.status == 204,
        "delete share full: {} {}",
        r.status,
        r.body
    );

    node.finish();
    Ok(())
}
