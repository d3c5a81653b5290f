//! Scenario storage_cli: the host's cairnctl against a node: `disks -o json`, `pools create --yes` (capacity shown, task followed), `pools`, `pools add` refused without `--yes`, `pools destroy` refused with a wrong name; shares, snapshots (a buffered write counted in the listed usage within 5 s) and SMART verbs on virtio and NVMe disks.

// Of the shared checks this scenario uses only `common::cairnctl`.
#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use cairn_lab::{ApiSession, BootMode, Bus, Deadline, Lab, Node, NodeConfig};
use common::cairnctl::Cairnctl;
use serde_json::Value;

/// Data disk size: small, so that md resyncs take seconds under TCG.
const DISK_MIB: u64 = 192;

/// Serial of storage_cli's NVMe disk: its fourth data disk (NodeConfig::disk numbers data
/// disks' serials from `CAIRNLAB0001`).
const NVME_CLI_SERIAL: &str = "CAIRNLAB0004";

/// `used_bytes` of share `docs` in `cairnctl shares mirror -o json`.
fn cli_docs_used(ctl: &Cairnctl) -> Result<u64> {
    let (code, out, err) = ctl.parts(&["shares", "mirror", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("cairnctl shares -o json: {code} {out} {err}"))?;
    v.as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "docs"))
        .and_then(|s| s["usage"]["used_bytes"].as_u64())
        .with_context(|| format!("no usage of docs: {v}"))
}

/// `Used` of `btrfs filesystem usage -b` run on the node itself: what btrfs reports
/// without a commit.
fn node_used(node: &mut Node, mnt: &str) -> Result<u64> {
    let out = node.shell_check(
        &format!("btrfs filesystem usage -b {mnt} | awk '/^ *Used:/ {{print $2; exit}}'"),
        Deadline::secs(60),
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("btrfs filesystem usage: {out:?}"))
}

/// `cairnctl shares …` and `snapshot …` on pool `mirror`: create, list (text and JSON),
/// a file written on the node shows in the listed usage at once (decision 0016), snapshot,
/// list snapshots, delete the snapshot, refused and confirmed share delete.
fn cli_shares(node: &mut Node, ctl: &Cairnctl) -> Result<()> {
    let (code, out, err) = ctl.parts(&["shares", "create", "mirror", "docs", "--size", "256M"])?;
    ensure!(
        code == 0
            && out.starts_with("docs")
            && out.contains("256.0 MiB")
            && out.contains("mounted  /var/lib/cairn/shares/mirror/docs"),
        "shares create: {code} {out} {err}"
    );
    let (code, out, _) = ctl.parts(&["shares", "list", "mirror"])?;
    ensure!(
        code == 0 && out.lines().count() == 1 && out.starts_with("docs") && out.contains("mounted"),
        "shares list: {out}"
    );
    let (code, out, _) = ctl.parts(&["shares", "mirror", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out).context("cairnctl shares -o json")?;
    ensure!(
        code == 0
            && v.as_array().map(Vec::len) == Some(1)
            && v[0]["name"] == "docs"
            && v[0]["size_bytes"] == 256u64 << 20
            && v[0]["mounted"] == true,
        "shares -o json: {v}"
    );
    // Fresh usage (decision 0016): a listing commits a share whose last commit is over 5 s
    // old before reading, so a write that returned more than 5 s ago is always counted.
    // Without the commit btrfs counts buffered writes only at its next commit (every 30 s).
    let mnt = "/var/lib/cairn/shares/mirror/docs";
    let before = cli_docs_used(ctl)?;
    node.shell_check(
        &format!("dd if=/dev/urandom of={mnt}/fresh.bin bs=1M count=16 status=none"),
        Deadline::secs(120),
    )?;
    let written = Instant::now();
    if let Some(rest) = Duration::from_millis(5_500).checked_sub(written.elapsed()) {
        // Not a readiness wait: the documented bound on how old an uncounted write can be.
        std::thread::sleep(rest);
    }
    // What btrfs itself reports now, without a commit.
    let raw = node_used(node, mnt)?;
    let asked = Instant::now();
    let after = cli_docs_used(ctl)?;
    let took = asked.elapsed();
    let wrote = 16u64 << 20;
    cairn_lab::bench_println!(
        "share list usage {:.1} s after a 16 MiB buffered write: before {before}, btrfs without a commit {raw} ({}), listed {after} (cairnctl shares -o json took {:.0} ms)",
        written.elapsed().as_secs_f64(),
        if raw < before + wrote - (2 << 20) {
            "not counted yet: the listing's commit made the difference"
        } else {
            "already counted: a commit of btrfs's own came first"
        },
        took.as_secs_f64() * 1e3
    );
    ensure!(
        after >= before + wrote - (2 << 20),
        "the listed usage does not count the 16 MiB written 5.5 s before: before {before}, after {after} (btrfs without a commit: {raw})"
    );
    let (code, out, err) =
        ctl.parts(&["snapshot", "create", "mirror", "docs", "before-upgrade"])?;
    ensure!(
        code == 0 && out.starts_with("before-upgrade") && out.contains("manual"),
        "snapshot create: {code} {out} {err}"
    );
    let (code, out, _) = ctl.parts(&["snapshots", "mirror", "docs"])?;
    ensure!(
        code == 0 && out.lines().count() == 1 && out.starts_with("before-upgrade"),
        "snapshots: {out}"
    );
    let (code, out, _) = ctl.parts(&["snapshot", "list", "mirror", "docs", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out).context("cairnctl snapshot list -o json")?;
    ensure!(
        code == 0 && v[0]["name"] == "before-upgrade" && v[0]["scheduled"] == false,
        "snapshot list -o json: {v}"
    );
    let (code, out, err) =
        ctl.parts(&["snapshot", "delete", "mirror", "docs", "before-upgrade"])?;
    ensure!(
        code == 0 && out.contains("deleted snapshot docs@before-upgrade"),
        "snapshot delete: {code} {out} {err}"
    );
    let (code, out, _) = ctl.parts(&["snapshots", "mirror", "docs"])?;
    ensure!(
        code == 0 && out == "no snapshots\n",
        "snapshots after delete: {out}"
    );
    // Delete: a wrong typed name is refused (naming the field) and the share stays.
    let (code, _, err) = ctl.parts(&["shares", "delete", "mirror", "docs", "--confirm", "dcos"])?;
    ensure!(
        code != 0 && err.contains("confirm: "),
        "shares delete with a wrong name (the error names the field): {code} {err}"
    );
    let (code, out, _) = ctl.parts(&["shares", "mirror"])?;
    ensure!(
        code == 0 && out.starts_with("docs"),
        "share gone after a refused delete: {out}"
    );
    let (code, out, err) =
        ctl.parts(&["shares", "delete", "mirror", "docs", "--confirm", "docs"])?;
    ensure!(
        code == 0 && out.contains("deleted share docs"),
        "shares delete: {code} {out} {err}"
    );
    let (code, out, _) = ctl.parts(&["shares", "mirror"])?;
    ensure!(
        code == 0 && out == "no shares\n",
        "shares after delete: {out}"
    );
    Ok(())
}

/// `cairnctl smart -o json` and `smart show` of a virtio disk (no SMART): unavailable, with
/// the serial of the disk inventory.
fn cli_smart_virtio(api: &ApiSession, ctl: &Cairnctl, id: &str, serial: &str) -> Result<()> {
    api.wait_for(
        &format!("/api/v1/smart/{id}"),
        "the virtio disk checked by the SMART service",
        Deadline::secs(60),
        |d| d["checked_at"].is_u64(),
    )?;
    let (code, out, err) = ctl.parts(&["smart", "-o", "json"])?;
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("cairnctl smart -o json: {code} {err}"))?;
    let d = v["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == id))
        .with_context(|| format!("smart -o json: no {id}: {v}"))?;
    ensure!(
        d["serial"] == serial && d["verdict"] == "unavailable",
        "smart -o json of the virtio disk {id}: want serial {serial}: {d}"
    );
    let (code, out, err) = ctl.parts(&["smart", "show", id])?;
    ensure!(
        code == 0 && out.starts_with(id) && out.contains(&format!("serial {serial}")),
        "smart show {id}: want serial {serial}: {code} {out} {err}"
    );
    println!(
        "storage_cli: smart show {id}: {}",
        out.lines().take(2).collect::<Vec<_>>().join(" | ")
    );
    Ok(())
}

/// `cairnctl smart` (every disk) and `smart show` (one disk's detail) of the NVMe disk, in
/// text and JSON, once the SMART service has polled it.
fn cli_smart(api: &ApiSession, ctl: &Cairnctl, nvme: &str) -> Result<()> {
    api.wait_for(
        "/api/v1/smart",
        "the NVMe disk checked by the SMART service",
        Deadline::secs(180),
        |v| {
            v["disks"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|d| d["serial"] == NVME_CLI_SERIAL && d["checked_at"].is_u64())
            })
        },
    )?;
    let (code, out, err) = ctl.parts(&["smart"])?;
    let line = out
        .lines()
        .find(|l| l.starts_with(nvme))
        .with_context(|| format!("smart: no line for {nvme}: {out} {err}"))?;
    ensure!(
        code == 0
            && ["healthy", "warning", "failing"]
                .iter()
                .any(|v| line.contains(v))
            && line.contains("°C"),
        "smart list line of {nvme}: {line}"
    );
    let (code, out, err) = ctl.parts(&["smart", "show", nvme])?;
    ensure!(
        code == 0
            && out.starts_with(nvme)
            && out.contains("model QEMU NVMe Ctrl")
            && out.contains(&format!("serial {NVME_CLI_SERIAL}"))
            && out.contains("NVMe health log:")
            && out.contains("available_spare")
            && out.contains("settings: polling"),
        "smart show {nvme}: {code} {out} {err}"
    );
    let (code, out, err) = ctl.parts(&["smart", "show", nvme, "-o", "json"])?;
    let v: Value = serde_json::from_str(&out)
        .with_context(|| format!("cairnctl smart show -o json: {code} {err}"))?;
    ensure!(
        v["id"] == nvme && v["device"]["serial"] == NVME_CLI_SERIAL && v["nvme"].is_object(),
        "smart show -o json: {v}"
    );
    let (code, _, err) = ctl.parts(&["smart", "show", "nvme-nosuchdisk"])?;
    ensure!(
        code != 0 && err.contains("nvme-nosuchdisk"),
        "smart show of an unknown disk: {code} {err}"
    );
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image) and cairnctl (cargo build -p cairnctl)"]
fn storage_cli() -> Result<()> {
    let Some(lab) = Lab::for_test("storage_cli") else {
        return Ok(());
    };
    // Fail before booting a node if cairnctl is not built.
    common::cairnctl::bin()?;
    let mut node = lab.prepare(
        NodeConfig::new("storcli1", BootMode::DirectKernel)
            .size(1, 1536)
            .disk(Bus::Virtio, DISK_MIB)
            .disk(Bus::Virtio, DISK_MIB)
            .disk(Bus::Virtio, DISK_MIB)
            // 3: for `cairnctl smart` (QEMU emulates an NVMe health log), kept out of the pool.
            .disk(Bus::Nvme, 64),
    )?;
    node.launch()?;
    let api = node.claim(Deadline::secs(300))?;
    // What `cairnctl login` would have stored: the pinned certificate and an API token.
    let ctl = Cairnctl::logged_in(&mut node, &api, "storage_cli")?;

    let (code, out, _) = ctl.parts(&["-o", "json", "disks"])?;
    ensure!(code == 0, "cairnctl disks failed");
    let v: Value = serde_json::from_str(&out).context("cairnctl disks -o json")?;
    let mut free: Vec<String> = v["disks"]
        .as_array()
        .context("disks")?
        .iter()
        .filter(|d| d["usage"] == "free" && d["bus"] == "virtio")
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    free.sort();
    ensure!(free.len() == 3, "three free virtio data disks: {v}");
    let nvme = v["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["serial"] == NVME_CLI_SERIAL))
        .and_then(|d| d["id"].as_str())
        .with_context(|| format!("no disk with serial {NVME_CLI_SERIAL}: {v}"))?
        .to_string();

    // Create: the capacity is printed before anything runs; the task is followed to the end.
    let (code, out, err) = ctl.parts(&[
        "pools", "create", "mirror", "--level", "raid1", &free[0], &free[1], "--yes",
    ])?;
    ensure!(code == 0, "pools create failed: {err}");
    ensure!(
        out.contains("pool mirror (raid1) over 2 disks") && out.contains("192.0 MiB usable"),
        "no capacity shown: {out}"
    );
    api.wait_pool(
        "mirror",
        "pool mirror healthy, resync done",
        Deadline::secs(300),
        |p| p["state"] == "healthy" && p["sync"].is_null(),
    )?;
    let (code, out, _) = ctl.parts(&["pools"])?;
    ensure!(code == 0 && out.contains("mirror"), "pools: {out}");

    cli_shares(&mut node, &ctl)?;
    cli_smart(&api, &ctl, &nvme)?;
    let virtio_serial = v["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["id"] == free[0].as_str()))
        .and_then(|d| d["serial"].as_str())
        .with_context(|| format!("no serial for {}: {v}", free[0]))?
        .to_string();
    cli_smart_virtio(&api, &ctl, &free[0], &virtio_serial)?;

    // Add: without a terminal and without --yes nothing changes; with it the disk is added.
    let (code, out, err) = ctl.parts(&["pools", "add", "mirror", &free[2]])?;
    ensure!(
        code != 0 && out.contains("on 3 disks") && err.contains("--yes"),
        "pools add without --yes: {code} {out} {err}"
    );
    let p = api.expect("GET", "/api/v1/pools/mirror", None)?;
    ensure!(
        p["members"].as_array().map(Vec::len) == Some(2),
        "add ran without confirmation: {p}"
    );
    let (code, _, err) = ctl.parts(&["pools", "add", "mirror", &free[2], "--yes"])?;
    ensure!(code == 0, "pools add failed: {err}");
    let p = api.wait_pool(
        "mirror",
        "pool mirror healthy on three disks",
        Deadline::secs(300),
        |p| {
            p["state"] == "healthy"
                && p["sync"].is_null()
                && p["members"].as_array().map(Vec::len) == Some(3)
        },
    )?;
    println!("storage_cli: after add: {p}");

    // Destroy: a wrong typed name is refused and changes nothing; the right one destroys.
    let (code, _, err) = ctl.parts(&["pools", "destroy", "mirror", "--confirm", "mirorr"])?;
    ensure!(
        code != 0 && err.contains("type the pool's name"),
        "wrong confirm: {code} {err}"
    );
    ensure!(
        api.get("/api/v1/pools/mirror")?.status == 200,
        "the pool went away after a refused destroy"
    );
    let (code, _, err) = ctl.parts(&["pools", "destroy", "mirror", "--confirm", "mirror"])?;
    ensure!(code == 0, "pools destroy failed: {err}");
    ensure!(
        api.get("/api/v1/pools/mirror")?.status == 404,
        "the pool is still there"
    );
    node.finish();
    Ok(())
}
