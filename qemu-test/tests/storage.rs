//! Scenario storage: a raid5 pool over virtio, AHCI and NVMe disks survives a pulled disk (degraded + critical alert within 30 s), is rebuilt onto a hot-plugged disk, comes back after reboots (also with a disk missing: degraded + alert, data readable and writable), re-adds the stale member with a resync, grows from four to five disks (capacity shown first), is destroyed only with its typed name (leaving the disks free of signatures), and refuses an ext4 disk until it is wiped by serial; scenario storage_cli drives the same through cairnctl from the lab host, plus its shares, snapshot and SMART verbs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

// cairnctl from the lab host (shared with vm_cli); storage uses a part of it.
#[allow(dead_code)]
#[path = "common/cairnctl.rs"]
mod common_cairnctl;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{ApiSession, BootMode, Bus, Deadline, Lab, Node, NodeConfig};
use common_cairnctl::Cairnctl;
use serde_json::{json, Value};

/// Data disk size: small, so that md resyncs and rebuilds take seconds under TCG.
const DISK_MIB: u64 = 192;
/// Where the share with the test files is mounted by cairnd.
const SHARE_DIR: &str = "/var/lib/cairn/shares/tank/docs";
/// The benchmark target: disk loss to degraded alert.
const ALERT_LIMIT: Duration = Duration::from_secs(30);

fn node_config() -> NodeConfig {
    NodeConfig::new("stor1", BootMode::DirectKernel)
        .size(1, 1536)
        .disk(Bus::Virtio, DISK_MIB) // 0
        .disk(Bus::Ahci, DISK_MIB) // 1
        .disk(Bus::Nvme, DISK_MIB) // 2
        .disk(Bus::Virtio, DISK_MIB) // 3
        .disk(Bus::Ahci, DISK_MIB) // 4: carries ext4, made on the host before boot
        .hotplug_ports(1) // 5: the replacement disk
}

/// Disk id by serial, from GET /api/v1/disks.
fn ids_by_serial(api: &ApiSession) -> Result<BTreeMap<String, Value>> {
    let v = api.expect("GET", "/api/v1/disks", None)?;
    let mut out = BTreeMap::new();
    for d in v["disks"].as_array().context("disks array")? {
        if let Some(s) = d["serial"].as_str() {
            out.insert(s.to_string(), d.clone());
        }
    }
    Ok(out)
}

fn id(disks: &BTreeMap<String, Value>, serial: &str) -> Result<String> {
    disks
        .get(serial)
        .and_then(|d| d["id"].as_str())
        .map(str::to_string)
        .with_context(|| format!("no disk with serial {serial} in {disks:?}"))
}

/// Start a task (202) and wait for it to succeed; returns the finished task.
fn run_task(
    api: &ApiSession,
    method: &str,
    path: &str,
    body: &Value,
    d: Deadline,
) -> Result<Value> {
    let r = api.call(method, path, Some(body))?;
    ensure!(
        r.status == 202,
        "{method} {path}: want 202, got {} {}",
        r.status,
        r.body
    );
    let id = r.json()["id"].as_u64().context("task id")?;
    Ok(api.wait_task(id, d)?)
}

/// A 422 naming `field`.
fn expect_invalid(
    api: &ApiSession,
    method: &str,
    path: &str,
    body: &Value,
    field: &str,
) -> Result<Value> {
    let r = api.call(method, path, Some(body))?;
    let v = r.json();
    ensure!(
        r.status == 422 && v["field"] == field,
        "{method} {path} {body}: want 422 naming {field}, got {} {}",
        r.status,
        r.body
    );
    Ok(v)
}

fn pool_alert(api: &ApiSession) -> Result<Option<Value>> {
    let v = api.expect("GET", "/api/v1/alerts", None)?;
    Ok(v["active"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["key"] == "pool/tank/degraded").cloned()))
}

/// Checksums of the test files, computed on the node after dropping the page cache so the
/// data is read from the (maybe degraded) array.
fn checksums(node: &mut Node, d: Deadline) -> Result<String> {
    // Mounting shares at boot is the storage service's job (`Storage::mount_shares`, after
    // boot assembly): wait for it, bounded, inside the node.
    node.shell_check(
        &format!(
            "for i in $(seq 90); do mountpoint -q {SHARE_DIR} && exit 0; sleep 1; done; \
             echo 'cairnd did not mount {SHARE_DIR} within 90 s' >&2; exit 1"
        ),
        d,
    )?;
    Ok(node.shell_check(
        &format!(
            "sync && echo 3 > /proc/sys/vm/drop_caches && cd {SHARE_DIR} && sha256sum f1 f2 f3"
        ),
        d,
    )?)
}

fn wait_pool(
    api: &ApiSession,
    what: &str,
    d: Deadline,
    f: impl FnMut(&Value) -> bool,
) -> Result<Value> {
    Ok(api.wait_for("/api/v1/pools/tank", what, d, f)?)
}

fn healthy(p: &Value) -> bool {
    p["state"] == "healthy" && p["sync"].is_null()
}

/// Power the node off (ACPI) and boot it again; returns once cairnd answers.
fn reboot(node: &mut Node, api: &ApiSession) -> Result<()> {
    node.powerdown(Deadline::secs(120))
        .context("powering the node down")?;
    boot(node, api)
}

/// Launch the (powered-off) node and wait until cairnd answers with the pinned certificate.
fn boot(node: &mut Node, api: &ApiSession) -> Result<()> {
    node.launch()?;
    api.wait_for(
        "/api/v1/health",
        "the API after boot",
        Deadline::secs(300),
        |v| v["status"] == "ok",
    )?;
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn storage() -> Result<()> {
    let Some(lab) = Lab::for_test("storage") else {
        return Ok(());
    };
    let mut node = lab.prepare(node_config())?;
    // A disk holding ext4, as if brought from another machine.
    let ext4_img = node.data_disk_path(4).context("data disk 4")?;
    let out = std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "foreign"])
        .arg(&ext4_img)
        .output()
        .context("running mkfs.ext4 on the host")?;
    ensure!(
        out.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    node.launch()?;
    // Not common::check_node_up: storage needs cairnd and udev, not every service of the
    // image (the claim waits for the API's health).
    let api = node.claim(Deadline::secs(300))?;
    // A fresh deadline for each shell command (one shared Deadline would run out mid-test).
    let sh = || Deadline::secs(120);

    // --- Inventory -----------------------------------------------------------------------
    let disks = ids_by_serial(&api)?;
    let serial = |i: usize| format!("CAIRNLAB{:04}", i + 1);
    let d: Vec<String> = (0..5)
        .map(|i| id(&disks, &serial(i)))
        .collect::<Result<_>>()?;
    for (i, bus) in [
        (0, "virtio"),
        (1, "sata"),
        (2, "nvme"),
        (3, "virtio"),
        (4, "sata"),
    ] {
        let disk = &disks[&serial(i)];
        ensure!(disk["bus"] == bus, "disk {i}: want bus {bus}: {disk}");
        ensure!(
            disk["size_bytes"] == json!(DISK_MIB << 20),
            "disk {i} size: {disk}"
        );
        ensure!(
            disk["by_id"].is_string(),
            "disk {i} has no by-id path: {disk}"
        );
    }
    ensure!(
        disks[&serial(0)]["usage"] == "free",
        "{}",
        disks[&serial(0)]
    );
    ensure!(
        disks[&serial(4)]["usage"] == "has_data",
        "ext4 disk: {}",
        disks[&serial(4)]
    );
    let all = api.expect("GET", "/api/v1/disks", None)?;
    ensure!(
        all["disks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["usage"] == "boot")),
        "no boot disk reported: {all}"
    );

    // --- Safety: ext4 refused until wiped by serial -------------------------------------
    let ext4_pool = json!({"name": "tank", "level": "raid5", "disks": [d[0], d[1], d[4]]});
    let e = expect_invalid(&api, "POST", "/api/v1/pools", &ext4_pool, "disks[2]")?;
    ensure!(
        e["message"].as_str().unwrap_or("").contains("ext4"),
        "reason should name ext4: {e}"
    );
    expect_invalid(
        &api,
        "POST",
        "/api/v1/pools",
        &json!({"name": "tank", "level": "raid5", "disks": [d[0], d[1]]}),
        "disks",
    )?;
    expect_invalid(
        &api,
        "POST",
        &format!("/api/v1/disks/{}/wipe", d[4]),
        &json!({"confirm_serial": "WRONG"}),
        "confirm_serial",
    )?;
    let t = run_task(
        &api,
        "POST",
        &format!("/api/v1/disks/{}/wipe", d[4]),
        &json!({"confirm_serial": serial(4)}),
        Deadline::secs(120),
    )?;
    ensure!(t["kind"] == "disk.wipe", "{t}");
    let blkid = node.shell_run(&format!("blkid -p /dev/disk/by-id/{}", d[4]), sh())?;
    ensure!(
        !blkid.output.contains("ext4"),
        "ext4 still there after the wipe: {blkid:?}"
    );
    let plan = api.expect("POST", "/api/v1/pools/plan", Some(&ext4_pool))?;
    ensure!(
        plan["usable_bytes"] == json!(2 * (DISK_MIB << 20)),
        "after the wipe the disk is accepted: {plan}"
    );

    // --- Create raid5 over virtio + AHCI + NVMe + virtio ------------------------------------
    let create = json!({"name": "tank", "level": "raid5", "disks": [d[0], d[1], d[2], d[3]]});
    let plan = api.expect("POST", "/api/v1/pools/plan", Some(&create))?;
    ensure!(
        plan["usable_bytes"] == json!(3 * (DISK_MIB << 20)),
        "{plan}"
    );
    let t = run_task(&api, "POST", "/api/v1/pools", &create, Deadline::secs(300))?;
    ensure!(t["kind"] == "pool.create", "{t}");
    let p = wait_pool(
        &api,
        "the new pool healthy with its initial resync done",
        Deadline::secs(600),
        healthy,
    )?;
    ensure!(
        p["level"] == "raid5" && p["members"].as_array().map(Vec::len) == Some(4),
        "{p}"
    );
    let detail = node.shell_check("mdadm --detail /dev/md/tank", sh())?;
    ensure!(
        detail.contains("Intent Bitmap : Internal"),
        "no write-intent bitmap: {detail}"
    );
    node.shell_check(
        "lvs --noheadings -o lv_name,segtype cairn-tank | grep -q 'thin *thin-pool'",
        sh(),
    )
    .context("thin pool `thin` in VG cairn-tank")?;

    // --- A share with files of known checksums ---------------------------------------------
    let r = api.post(
        "/api/v1/pools/tank/shares",
        &json!({"name": "docs", "size_bytes": 256u64 << 20}),
    )?;
    ensure!(
        r.status == 201,
        "creating the share: {} {}",
        r.status,
        r.body
    );
    node.shell_check(
        &format!("for f in f1 f2 f3; do dd if=/dev/urandom of={SHARE_DIR}/$f bs=1M count=16 status=none; done; sync"),
        Deadline::secs(300),
    )?;
    let sums = checksums(&mut node, sh())?;
    ensure!(sums.lines().count() == 3, "{sums}");

    // --- Pull a disk: degraded + critical alert within 30 s ----------------------------------
    ensure!(pool_alert(&api)?.is_none(), "alert before the disk loss");
    let pulled = Instant::now();
    node.unplug_disk(0, Deadline::secs(60))
        .context("device_del of data disk 0")?;
    let unplugged = pulled.elapsed();
    let alert = loop {
        if let Some(a) = pool_alert(&api)? {
            break a;
        }
        ensure!(
            pulled.elapsed() < ALERT_LIMIT,
            "no pool/tank/degraded alert within {ALERT_LIMIT:?} of device_del"
        );
        // poll interval of the bounded wait above
        std::thread::sleep(Duration::from_millis(250));
    };
    let to_alert = pulled.elapsed();
    cairn_lab::bench_println!(
        "storage disk-loss-to-degraded-alert: {:.1} s (device_del acknowledged by the guest after {:.1} s)",
        to_alert.as_secs_f64(),
        unplugged.as_secs_f64()
    );
    ensure!(alert["level"] == "critical", "{alert}");
    let p = api.expect("GET", "/api/v1/pools/tank", None)?;
    ensure!(p["state"] == "degraded", "{p}");
    ensure!(
        p["members"].as_array().is_some_and(|m| m
            .iter()
            .any(|x| x["disk"] == d[0].as_str() && x["state"] == "missing")),
        "{p}"
    );
    ensure!(
        checksums(&mut node, sh())? == sums,
        "files changed on the degraded pool"
    );

    // --- Hot-add a blank disk and replace ----------------------------------------------------
    let new_ix = node.hot_add_disk(Bus::Virtio, DISK_MIB, Deadline::secs(60))?;
    let new_serial = serial(new_ix);
    api.wait_for(
        "/api/v1/disks",
        "the hot-plugged disk in the inventory under its stable by-id name",
        Deadline::secs(60),
        |v| {
            // Until udev has made its by-id link the inventory names a new disk by its
            // kernel name (vdX); the stable id contains the serial.
            v["disks"].as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["serial"] == new_serial.as_str()
                        && x["id"]
                            .as_str()
                            .is_some_and(|i| i.contains(new_serial.as_str()))
                })
            })
        },
    )?;
    let new_id = id(&ids_by_serial(&api)?, &new_serial)?;
    expect_invalid(
        &api,
        "POST",
        "/api/v1/pools/tank/replace",
        &json!({"old": d[0], "new": d[1]}),
        "new",
    )?;
    let t = run_task(
        &api,
        "POST",
        "/api/v1/pools/tank/replace",
        &json!({"old": d[0], "new": new_id}),
        Deadline::secs(900),
    )?;
    let seen: Vec<u64> = t["progress_seen"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    println!("storage: replace task progress seen: {seen:?}");
    ensure!(
        seen.iter().any(|p| (1..100).contains(p)),
        "no intermediate rebuild progress seen: {t}"
    );
    let p = wait_pool(
        &api,
        "the pool healthy after the rebuild",
        Deadline::secs(300),
        healthy,
    )?;
    ensure!(
        p["members"]
            .as_array()
            .is_some_and(|m| m.iter().all(|x| x["state"] == "in_sync")
                && m.iter().any(|x| x["disk"] == new_id.as_str())),
        "{p}"
    );
    ensure!(
        pool_alert(&api)?.is_none(),
        "the degraded alert was not cleared"
    );
    ensure!(
        checksums(&mut node, sh())? == sums,
        "files changed after the rebuild"
    );

    // --- Reboot: the pool and share come back from our records -------------------------------
    reboot(&mut node, &api)?;
    wait_pool(
        &api,
        "the pool healthy after reboot",
        Deadline::secs(180),
        healthy,
    )?;
    ensure!(
        checksums(&mut node, sh())? == sums,
        "files changed across the reboot"
    );

    // --- Reboot with a disk missing: degraded, alert, data readable --------------------------
    node.powerdown(Deadline::secs(120))?;
    node.set_disk_present(3, false);
    boot(&mut node, &api)?;
    let p = wait_pool(
        &api,
        "the pool degraded after booting without a disk",
        Deadline::secs(240),
        |p| p["state"] == "degraded",
    )?;
    ensure!(
        p["members"].as_array().is_some_and(|m| m
            .iter()
            .any(|x| x["disk"] == d[3].as_str() && x["state"] == "missing")),
        "{p}"
    );
    // The state is visible as soon as md runs; the alert follows once boot assembly has
    // activated the volume group and checked the pool.
    let seen = Instant::now();
    let a = loop {
        if let Some(a) = pool_alert(&api)? {
            break a;
        }
        ensure!(
            seen.elapsed() < ALERT_LIMIT,
            "no degraded alert within {ALERT_LIMIT:?} of the pool reading degraded after boot"
        );
        // poll interval of the bounded wait above
        std::thread::sleep(Duration::from_millis(250));
    };
    println!(
        "storage: degraded boot: alert {:.1} s after the pool read degraded",
        seen.elapsed().as_secs_f64()
    );
    ensure!(a["level"] == "critical", "{a}");
    // Data is readable in this boot, and writable: the write makes the missing member stale.
    ensure!(
        checksums(&mut node, sh())? == sums,
        "files changed on the pool assembled degraded at boot"
    );
    node.shell_check(
        &format!("dd if=/dev/urandom of={SHARE_DIR}/f4 bs=1M count=4 status=none && sync"),
        sh(),
    )?;

    // --- The stale member comes back: re-added with a resync, never trusted as is -------------
    node.powerdown(Deadline::secs(120))?;
    node.set_disk_present(3, true);
    boot(&mut node, &api)?;
    wait_pool(
        &api,
        "the stale member re-added and the pool healthy",
        Deadline::secs(300),
        healthy,
    )?;
    let alerts = api.expect("GET", "/api/v1/alerts", None)?;
    let stale_key = format!("pool/tank/member/{}/stale", d[3]);
    ensure!(
        alerts["recent"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x["key"] == stale_key.as_str())),
        "the re-add of the stale member was not reported: {alerts}"
    );
    ensure!(
        checksums(&mut node, sh())? == sums,
        "files changed after the stale member's resync"
    );

    // --- Grow: add the wiped disk, raid5 4 -> 5 disks; capacity shown first ----------------------
    let lvm_sizes = |node: &mut Node| -> Result<(u64, u64, u64)> {
        let out = node.shell_check(
            "pvs --noheadings --units b --nosuffix -o pv_size /dev/md/tank && \
             vgs --noheadings --units b --nosuffix -o vg_size cairn-tank && \
             lvs --noheadings --units b --nosuffix -o lv_size cairn-tank/thin",
            Deadline::secs(60),
        )?;
        let v: Vec<u64> = out
            .split_whitespace()
            .map(|w| w.parse().with_context(|| format!("size {w} in {out}")))
            .collect::<Result<_>>()?;
        ensure!(v.len() == 3, "pv, vg and thin pool sizes: {out}");
        Ok((v[0], v[1], v[2]))
    };
    let before = api.expect("GET", "/api/v1/pools/tank", None)?;
    let md_before = before["size_bytes"].as_u64().context("pool size")?;
    let (pv0, vg0, thin0) = lvm_sizes(&mut node)?;
    expect_invalid(
        &api,
        "POST",
        "/api/v1/pools/tank/add/plan",
        &json!({"disk": d[1]}),
        "disk",
    )?;
    let plan = api.expect(
        "POST",
        "/api/v1/pools/tank/add/plan",
        Some(&json!({"disk": d[4]})),
    )?;
    ensure!(
        plan["level"] == "raid5"
            && plan["members"] == 5
            && plan["usable_bytes_before"] == json!(3 * (DISK_MIB << 20))
            && plan["usable_bytes"] == json!(4 * (DISK_MIB << 20)),
        "add plan: {plan}"
    );
    ensure!(
        api.expect("GET", "/api/v1/pools/tank", None)?["members"]
            .as_array()
            .map(Vec::len)
            == Some(4),
        "the add plan changed the pool"
    );
    let t = run_task(
        &api,
        "POST",
        "/api/v1/pools/tank/add",
        &json!({"disk": d[4]}),
        Deadline::secs(900),
    )?;
    ensure!(t["kind"] == "pool.add", "{t}");
    let seen: Vec<u64> = t["progress_seen"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    println!("storage: add (reshape) task progress seen: {seen:?}");
    ensure!(
        seen.iter().any(|p| (1..100).contains(p)),
        "no intermediate reshape progress seen: {t}"
    );
    let p = wait_pool(
        &api,
        "the pool healthy on five disks after the reshape",
        Deadline::secs(300),
        healthy,
    )?;
    ensure!(
        p["members"].as_array().is_some_and(|m| m.len() == 5
            && m.iter().all(|x| x["state"] == "in_sync")
            && m.iter().any(|x| x["disk"] == d[4].as_str())),
        "{p}"
    );
    let md_after = p["size_bytes"].as_u64().context("pool size")?;
    let (pv1, vg1, thin1) = lvm_sizes(&mut node)?;
    println!(
        "storage: grow: md {md_before} -> {md_after} B, PV {pv0} -> {pv1}, VG {vg0} -> {vg1}, thin pool {thin0} -> {thin1}"
    );
    // One more member's worth (less md's per-disk metadata) in every layer.
    let member = DISK_MIB << 20;
    ensure!(
        md_after >= md_before + member * 9 / 10,
        "md did not grow by a member: {md_before} -> {md_after}"
    );
    ensure!(
        pv1 >= pv0 + member * 9 / 10 && vg1 >= vg0 + member * 9 / 10 && thin1 > thin0,
        "LVM did not grow: PV {pv0} -> {pv1}, VG {vg0} -> {vg1}, thin {thin0} -> {thin1}"
    );
    ensure!(
        checksums(&mut node, sh())? == sums,
        "files changed over the grow"
    );

    // --- Destroy: typed name, then the disks are free, no signatures left--------------------------------------------------
    expect_invalid(
        &api,
        "DELETE",
        "/api/v1/pools/tank",
        &json!({"confirm_name": "tnak"}),
        "confirm_name",
    )?;
    if api.get("/api/v1/pools/tank")?.status != 200 {
        bail!("the pool went away after a refused destroy");
    }
    let members: Vec<String> = api.expect("GET", "/api/v1/pools/tank", None)?["members"]
        .as_array()
        .context("members")?
        .iter()
        .filter_map(|m| m["disk"].as_str().map(str::to_string))
        .collect();
    ensure!(members.len() == 5, "{members:?}");
    let t = run_task(
        &api,
        "DELETE",
        "/api/v1/pools/tank",
        &json!({"confirm_name": "tank"}),
        Deadline::secs(300),
    )?;
    ensure!(t["kind"] == "pool.destroy", "{t}");
    let r = api.get("/api/v1/pools/tank")?;
    ensure!(
        r.status == 404,
        "the destroyed pool: {} {}",
        r.status,
        r.body
    );
    let pools = api.expect("GET", "/api/v1/pools", None)?;
    ensure!(
        pools["pools"].as_array().is_some_and(|a| a.is_empty()),
        "our records still list a pool: {pools}"
    );
    api.wait_for(
        "/api/v1/disks",
        "every former member listed as free",
        Deadline::secs(60),
        |v| {
            v["disks"].as_array().is_some_and(|a| {
                members.iter().all(|m| {
                    a.iter()
                        .any(|x| x["id"] == m.as_str() && x["usage"] == "free")
                })
            })
        },
    )?;
    for m in &members {
        let dev = format!("/dev/disk/by-id/{m}");
        let sigs = node.shell_check(&format!("wipefs --noheadings {dev}"), sh())?;
        ensure!(sigs.trim().is_empty(), "signatures left on {m}: {sigs}");
        let ex = node.shell_run(&format!("mdadm --examine {dev}"), sh())?;
        ensure!(ex.code != 0, "md superblock left on {m}: {ex:?}");
    }
    let left = node.shell_check(
        "ls /dev/md/ 2>/dev/null; vgs --noheadings -o vg_name 2>/dev/null; true",
        sh(),
    )?;
    ensure!(
        !left.contains("tank"),
        "array or volume group left behind: {left}"
    );
    println!(
        "storage: pool destroyed; {} disks free with no signatures",
        members.len()
    );
    node.finish();
    Ok(())
}

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
    common_cairnctl::bin()?;
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
    api.wait_for(
        "/api/v1/pools/mirror",
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
    let p = api.wait_for(
        "/api/v1/pools/mirror",
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
