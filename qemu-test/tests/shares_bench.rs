//! Scenario shares_bench: the share / md / disk throughput benchmark (`BENCH shares …`) on a raid1 pool: sequential direct-I/O writes and reads of a file on a share, of the md device's free tail and of a raw disk, with diagnostics (a thin volume, a NOCOW file, a thin pool with 64 KiB chunks); the pool's thin pool has 512 KiB chunks.

// Of the shared checks this scenario uses only `common::shares` (the node with pool tank).
#[allow(dead_code)]
mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::{Bus, Deadline, Node};
use common::shares::{disk_id, disk_ids, node_config, node_with_pool, share_dir, DISK_MIB};
use serde_json::json;

/// MiB each benchmark pass writes and reads: large enough that caches and the first
/// allocation do not dominate.
const BENCH_MIB: u64 = 256;
/// Benchmark passes over every target (each reported).
const BENCH_RUNS: usize = 2;

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

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn shares_bench() -> Result<()> {
    let Some(lab) = cairn_lab::Lab::for_test("shares_bench") else {
        return Ok(());
    };
    let (mut node, api) = node_with_pool(
        &lab,
        // 2: raw disk for the benchmark
        node_config("shbench1").disk(Bus::Virtio, DISK_MIB),
    )?;
    let d2 = disk_id(&disk_ids(&api)?, "CAIRNLAB0003")?;

    // --- Benchmark: share file vs raw md (free VG tail) vs raw disk, same run ----------------------
    let (md_off, md_len) = md_free_region(&mut node)?;
    ensure!(
        md_len >= BENCH_MIB,
        "only {md_len} MiB free on the md device"
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
    // Which crc32c implementation btrfs checksums with (crc32c-intel needs SSE4.2; read once
    // the share is mounted: this node has no other btrfs), and the thin pool's chunk size
    // and zeroing: printed with the numbers they explain.
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
    node.finish();
    Ok(())
}
