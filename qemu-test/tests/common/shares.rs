//! The node the shares scenarios (shares, shares_bench, shares_capacity) start from: set up
//! through the API, with pool `tank` (raid1 over its first two data disks) healthy.

use anyhow::{Context, Result};
use cairn_lab::{ApiSession, BootMode, Bus, Deadline, Lab, Node, NodeConfig};
use serde_json::json;

/// Data disk size: big enough for a benchmark region of `BENCH_MIB` in the VG's free tail
/// (the thin pool takes 90 % of the VG), small enough that the initial raid1 resync takes
/// seconds under TCG.
pub const DISK_MIB: u64 = 3072;

/// Where cairnd mounts share `s` of pool `tank`.
pub fn share_dir(s: &str) -> String {
    format!("/var/lib/cairn/shares/tank/{s}")
}

/// Node `name` with the two data disks of pool `tank` (serials `CAIRNLAB0001`, `0002`).
pub fn node_config(name: &str) -> NodeConfig {
    NodeConfig::new(name, BootMode::DirectKernel)
        .size(1, 1536)
        // SSE4.2 (and the rest TCG emulates), so btrfs checksums with crc32c-intel as on
        // any real server, not with the generic table code `qemu64` forces.
        .cpu_model("max")
        // O_DIRECT on the disk images: the build machine's page cache must not answer the
        // benchmark's reads (it made the raw disk read at GB/s).
        .data_disk_cache("none")
        .disk(Bus::Virtio, DISK_MIB) // 0: pool
        .disk(Bus::Virtio, DISK_MIB) // 1: pool
        // The storage loop (scheduled snapshots, capacity alerts) every 5 s, not every
        // minute: the scenarios wait seconds for a run (schedule_loop::TICK_OPTION).
        .cmdline(&["cairn.storage.tick_s=5"])
}

/// Every disk's (serial, id), sorted by serial.
pub fn disk_ids(api: &ApiSession) -> Result<Vec<(String, String)>> {
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

/// The id of the disk with `serial` in `disks` (from [`disk_ids`]).
pub fn disk_id(disks: &[(String, String)], serial: &str) -> Result<String> {
    disks
        .iter()
        .find(|(s, _)| s == serial)
        .map(|(_, i)| i.clone())
        .with_context(|| format!("no disk {serial} in {disks:?}"))
}

/// Boots the node of `cfg` (from [`node_config`]), claims it, and creates pool `tank`
/// (raid1 over `CAIRNLAB0001` and `CAIRNLAB0002`) through the storage API, waiting for its
/// initial resync. Returns the node and its session.
pub fn node_with_pool(lab: &Lab, cfg: NodeConfig) -> Result<(Node, ApiSession)> {
    let mut node = lab.prepare(cfg)?;
    node.launch()?;
    // Only cairnd matters here: wait for it rather than for every service (a slow NTP
    // service must not fail a storage scenario).
    node.wait_serial("cairn-init: cairnd ready", Deadline::secs(300))?;
    node.wait_ready(Deadline::secs(300))?;
    let api = node.claim(Deadline::secs(300))?;

    // --- A raid1 pool over two disks (the storage API) ---------------------------------------
    let disks = disk_ids(&api)?;
    let (d0, d1) = (
        disk_id(&disks, "CAIRNLAB0001")?,
        disk_id(&disks, "CAIRNLAB0002")?,
    );
    let create = json!({"name": "tank", "level": "raid1", "disks": [d0, d1]});
    api.run_task("POST", "/api/v1/pools", &create, Deadline::secs(300))
        .context("creating the pool")?;
    api.wait_pool(
        "tank",
        "pool tank healthy, resync done",
        Deadline::secs(900),
        |p| p["state"] == "healthy" && p["sync"].is_null(),
    )?;
    Ok((node, api))
}
