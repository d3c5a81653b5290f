//! Scenario shares: on a raid1 pool, a share's snapshot restored as a new share gives back the original checksums; 10 CoW clones of a volume take seconds and ~0 pool data; a scrub reports progress; a share filled past 85 %, 90 % and 95 % raises its capacity alert and changes it (critical while the share still takes writes), cleared when emptied; shares come back after a reboot; and the share/md/disk throughput benchmark.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{ApiSession, BootMode, Bus, Deadline, Node, NodeConfig};
use serde_json::{json, Value};

/// Data disk size: big enough for a benchmark region of `BENCH_MIB` in the VG's free tail
/// (the thin pool takes 90 % of the VG), small enough that the initial raid1 resync takes
/// seconds under TCG.
const DISK_MIB: u64 = 3072;
/// Where cairnd mounts share `s` of pool `tank`.
fn share_dir(s: &str) -> String {
    format!("/var/lib/cairn/shares/tank/{s}")
}
/// MiB each benchmark pass writes and reads: large enough that caches and the first
/// allocation do not dominate.
const BENCH_MIB: u64 = 256;
/// Benchmark passes over every target (each reported).
const BENCH_RUNS: usize = 2;

fn node_config() -> NodeConfig {
    NodeConfig::new("shares1", BootMode::DirectKernel)
        .size(1, 1536)
        // SSE4.2 (and the rest TCG emulates), so btrfs checksums with crc32c-intel as on
        // any real server, not with the generic table code `qemu64` forces.
        .cpu_model("max")
        // O_DIRECT on the disk images: the build machine's page cache must not answer the
        // benchmark's reads (it made the raw disk read at GB/s).
        .data_disk_cache("none")
        .disk(Bus::Virtio, DISK_MIB) // 0: pool
        .disk(Bus::Virtio, DISK_MIB) // 1: pool
        .disk(Bus::Virtio, DISK_MIB) // 2: raw disk for the benchmark
}

fn disk_ids(api: &ApiSession) -> Result<Vec<(String, String)>> {
    let v = api.expect("GET", "/api/v1/disks", None)?;
    let mut out = Vec::new();
    for d in v["disks"].as_array().context("disks array")? {
        if let (Some(s), Some(id)) = (d["serial"].as_str(), d["id"].as_str()) {
            out.push((s.to_string(), id.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// Start a task (202), poll it until it ends, and return it with every progress value seen.
fn follow_task(
    api: &ApiSession,
    method: &str,
    path: &str,
    body: &Value,
    d: Deadline,
) -> Result<(Value, Vec<u64>)> {
    let r = api.call(method, path, Some(body))?;
    ensure!(
        r.status == 202,
        "{method} {path}: want 202, got {} {}",
        r.status,
        r.body
    );
    let id = r.json()["id"].as_u64().context("task id")?;
    let mut seen = Vec::new();
    loop {
        let t = api.expect("GET", &format!("/api/v1/tasks/{id}"), None)?;
        let p = t["progress"].as_u64().unwrap_or(0);
        if seen.last() != Some(&p) {
            seen.push(p);
        }
        if t["state"] != "running" {
            ensure!(t["state"] == "succeeded", "task {id} did not succeed: {t}");
            return Ok((t, seen));
        }
        ensure!(!d.expired(), "task {id} still running at the deadline: {t}");
        // poll interval of the bounded wait above
        std::thread::sleep(Duration::from_millis(200));
    }
}

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

/// MB/s from dd's summary line (`… copied, 1.5 s, 44.7 MB/s`), computed from bytes and seconds.
fn dd_rate(out: &str) -> Result<f64> {
    let line = out
        .lines()
        .find(|l| l.contains("copied"))
        .with_context(|| format!("no dd summary in {out:?}"))?;
    let bytes: f64 = line
        .split_whitespace()
        .next()
        .and_then(|b| b.parse().ok())
        .with_context(|| format!("bytes in {line}"))?;
    let secs: f64 = line
        .split(", ")
        .find(|p| p.ends_with(" s"))
        .and_then(|p| p.trim_end_matches(" s").parse().ok())
        .with_context(|| format!("seconds in {line}"))?;
    Ok(bytes / secs / 1e6)
}

/// Sequential direct-I/O write then read of `BENCH_MIB` MiB at `target` (a file or a device,
/// `seek_mib` MiB in); returns (write MB/s, read MB/s).
fn bench(node: &mut Node, target: &str, seek_mib: u64) -> Result<(f64, f64)> {
    let d = Deadline::secs(600);
    let w = node.shell_check(
        &format!("dd if=/dev/zero of={target} bs=1M count={BENCH_MIB} seek={seek_mib} oflag=direct conv=notrunc,fsync 2>&1"),
        d,
    )?;
    let r = node.shell_check(
        &format!(
            "dd if={target} of=/dev/null bs=1M count={BENCH_MIB} skip={seek_mib} iflag=direct 2>&1"
        ),
        d,
    )?;
    Ok((dd_rate(&w)?, dd_rate(&r)?))
}

/// The first MiB of the volume group's largest free stretch on the md device (outside every
/// LV, so raw writes there destroy nothing), and its length in MiB.
fn md_free_region(node: &mut Node) -> Result<(u64, u64)> {
    let d = Deadline::secs(60);
    let pe_start: u64 = node
        .shell_check(
            "pvs --noheadings --units b --nosuffix -o pe_start /dev/md/tank",
            d,
        )?
        .trim()
        .parse()
        .context("pe_start")?;
    let extent: u64 = node
        .shell_check(
            "vgs --noheadings --units b --nosuffix -o vg_extent_size cairn-tank",
            d,
        )?
        .trim()
        .parse()
        .context("extent size")?;
    let segs = node.shell_check(
        "pvs --segments --noheadings -o pvseg_start,pvseg_size,lv_name /dev/md/tank",
        d,
    )?;
    let free = segs
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 2).then(|| Some((f[0].parse::<u64>().ok()?, f[1].parse::<u64>().ok()?)))?
        })
        .max_by_key(|(_, n)| *n)
        .with_context(|| format!("no free segment on /dev/md/tank: {segs}"))?;
    let start = pe_start + free.0 * extent;
    ensure!(
        start.is_multiple_of(1 << 20),
        "free region not MiB-aligned: {start}"
    );
    Ok((start >> 20, (free.1 * extent) >> 20))
}

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

/// Power the node off (ACPI) and boot it again; returns once cairnd answers.
fn reboot(node: &mut Node, api: &ApiSession) -> Result<()> {
    node.powerdown(Deadline::secs(180))
        .context("powering the node down")?;
    node.launch()?;
    node.wait_serial("cairn-init: cairnd ready", Deadline::secs(300))?;
    api.wait_for(
        "/api/v1/health",
        "the API after reboot",
        Deadline::secs(120),
        |v| v["status"] == "ok",
    )?;
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn shares() -> Result<()> {
    let Some(lab) = cairn_lab::Lab::for_test("shares") else {
        return Ok(());
    };
    let mut node = lab.prepare(node_config())?;
    node.launch()?;
    // Only cairnd matters here: wait for it rather than for every service (a slow NTP
    // service must not fail a storage scenario).
    node.wait_serial("cairn-init: cairnd ready", Deadline::secs(300))?;
    node.wait_health(Deadline::secs(300))?;
    let api = node.claim(Deadline::secs(300))?;

    // --- A raid1 pool over two disks (the storage API) ---------------------------------------
    let disks = disk_ids(&api)?;
    let id = |serial: &str| -> Result<String> {
        disks
            .iter()
            .find(|(s, _)| s == serial)
            .map(|(_, i)| i.clone())
            .with_context(|| format!("no disk {serial} in {disks:?}"))
    };
    let (d0, d1, d2) = (
        id("CAIRNLAB0001")?,
        id("CAIRNLAB0002")?,
        id("CAIRNLAB0003")?,
    );
    let create = json!({"name": "tank", "level": "raid1", "disks": [d0, d1]});
    let r = api.call("POST", "/api/v1/pools", Some(&create))?;
    ensure!(
        r.status == 202,
        "creating the pool: {} {}",
        r.status,
        r.body
    );
    api.wait_task(
        r.json()["id"].as_u64().context("task id")?,
        Deadline::secs(300),
    )?;
    api.wait_for(
        "/api/v1/pools/tank",
        "pool tank healthy, resync done",
        Deadline::secs(900),
        |p| p["state"] == "healthy" && p["sync"].is_null(),
    )?;

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
    let (t, _) = follow_task(
        &api,
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
    let (t, seen) = follow_task(
        &api,
        "POST",
        "/api/v1/pools/tank/scrub",
        &json!({}),
        Deadline::secs(900),
    )?;
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

    // --- Benchmark: share file vs raw md (free VG tail) vs raw disk, same run ----------------------
    let (md_off, md_len) = md_free_region(&mut node)?;
    ensure!(
        md_len >= BENCH_MIB,
        "only {md_len} MiB free on the md device"
    );
    // Which crc32c implementation btrfs checksums with (crc32c-intel needs SSE4.2), and the
    // thin pool's chunk size and zeroing: printed with the numbers they explain.
    let csum = node.shell_check(
        "for f in /sys/fs/btrfs/*/checksum; do cat $f; done | sort -u | tr '\\n' ' '",
        Deadline::secs(60),
    )?;
    let sse42 = node.shell_check(
        "grep -c -w sse4_2 /proc/cpuinfo || true",
        Deadline::secs(60),
    )?;
    let thin = node.shell_check(
        "lvs --noheadings -o chunk_size,zero cairn-tank/thin",
        Deadline::secs(60),
    )?;
    cairn_lab::bench_println!(
        "shares setup: btrfs checksum driver: {}; CPUs with sse4_2: {}; thin pool chunk size, zeroing: {}; {BENCH_MIB} MiB per pass, dd bs=1M direct",
        csum.trim(),
        sse42.trim(),
        thin.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    ensure!(
        thin.contains("512.00k"),
        "the pool's thin pool should have 512 KiB chunks: {thin}"
    );
    // Diagnostic target: a thin volume of the same pool (thin LV without btrfs), to separate
    // the thin pool's cost from the filesystem's.
    let r = api.call(
        "POST",
        "/api/v1/pools/tank/volumes",
        Some(&json!({"name": "bench", "size_bytes": (BENCH_MIB + 16) << 20})),
    )?;
    ensure!(r.status == 201, "bench volume: {} {}", r.status, r.body);
    let raw = node.shell_check(
        &format!("readlink -f /dev/disk/by-id/{d2}"),
        Deadline::secs(30),
    )?;
    // Its own share (no snapshots of it, room for every pass).
    let r = api.call(
        "POST",
        "/api/v1/pools/tank/shares",
        Some(&json!({"name": "bench", "size_bytes": 1u64 << 30})),
    )?;
    ensure!(r.status == 201, "share bench: {} {}", r.status, r.body);
    let share_file = format!("{}/bench.bin", share_dir("bench"));
    let nocow = format!("{}/bench-nocow.bin", share_dir("bench"));
    for run in 1..=BENCH_RUNS {
        node.shell_check(&format!("rm -f {share_file} && sync"), Deadline::secs(60))?;
        let (sw, sr) = bench(&mut node, &share_file, 0)?;
        let (mw, mr) = bench(&mut node, "/dev/md/tank", md_off)?;
        let (rw, rr) = bench(&mut node, raw.trim(), 0)?;
        let (tw, tr) = bench(&mut node, "/dev/cairn-tank/vol-bench", 0)?;
        cairn_lab::bench_println!(
            "shares run {run} seq-write MB/s: share {sw:.1}, md {mw:.1}, disk {rw:.1}; share/md {:.0} %, md/disk {:.0} %",
            100.0 * sw / mw,
            100.0 * mw / rw
        );
        cairn_lab::bench_println!(
            "shares run {run} seq-read  MB/s: share {sr:.1}, md {mr:.1}, disk {rr:.1}; share/md {:.0} %, md/disk {:.0} %",
            100.0 * sr / mr,
            100.0 * mr / rr
        );
        cairn_lab::bench_println!(
            "shares run {run} thin-volume MB/s (diagnostic, thin LV without btrfs): write {tw:.1} ({:.0} % of md), read {tr:.1} ({:.0} % of md)",
            100.0 * tw / mw,
            100.0 * tr / mr
        );
        // Where the share's time goes: the same file with btrfs data checksums off (NOCOW).
        node.shell_check(
            &format!("rm -f {share_file} {nocow} && sync"),
            Deadline::secs(60),
        )?;
        let made = node.shell_run(
            &format!("touch {nocow} && chattr +C {nocow}"),
            Deadline::secs(60),
        )?;
        if made.code == 0 {
            let (nw, nr) = bench(&mut node, &nocow, 0)?;
            cairn_lab::bench_println!(
                "shares run {run} nocow-file MB/s (diagnostic, no data checksums): write {nw:.1} ({:.0} % of md), read {nr:.1} ({:.0} % of md)",
                100.0 * nw / mw,
                100.0 * nr / mr
            );
        }
    }
    node.shell_check(
        &format!("rm -f {share_file} {nocow} && sync"),
        Deadline::secs(60),
    )?;
    // Diagnostic: the thin pool's chunk size. A temporary second thin pool with 64 KiB chunks
    // (what LVM picks for a pool this small; the product's pools use 512 KiB) in the VG's
    // free tail, which the md passes used.
    let made = node.shell_run(
        &format!(
            "lvcreate --yes --type thin-pool -L {}m --chunksize 64k -n benchpool cairn-tank && \
             lvcreate --yes -V {}m -T cairn-tank/benchpool -n benchvol 2>&1",
            md_len.saturating_sub(24),
            BENCH_MIB + 4
        ),
        Deadline::secs(120),
    )?;
    if made.code == 0 {
        for run in 1..=BENCH_RUNS {
            let (w, r) = bench(&mut node, "/dev/cairn-tank/benchvol", 0)?;
            cairn_lab::bench_println!(
                "shares run {run} thin-volume-64k MB/s (diagnostic, thin pool with 64 KiB chunks): write {w:.1}, read {r:.1}"
            );
        }
    } else {
        println!("shares: no 64 KiB-chunk thin pool for the diagnostic: {made:?}");
    }
    node.shell_run(
        "lvremove --yes cairn-tank/benchvol cairn-tank/benchpool",
        Deadline::secs(120),
    )?;
    let r = api.delete(
        "/api/v1/pools/tank/shares/bench",
        &json!({"confirm": "bench"}),
    )?;
    ensure!(
        r.status == 204,
        "delete share bench: {} {}",
        r.status,
        r.body
    );
    let r = api.delete("/api/v1/pools/tank/volumes/bench", &json!({}))?;
    ensure!(
        r.status == 204,
        "delete bench volume: {} {}",
        r.status,
        r.body
    );
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
