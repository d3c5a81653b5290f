//! Scenario storage: a raid5 pool over virtio, AHCI and NVMe disks survives a pulled disk (degraded + critical alert within 30 s), is rebuilt onto a hot-plugged disk, comes back after reboots (also with a disk missing: degraded + alert, data readable and writable), re-adds the stale member with a resync, grows from four to five disks (capacity shown first), is destroyed only with its typed name (leaving the disks free of signatures), and refuses an ext4 disk until it is wiped by serial (storage_cli.rs drives pools through cairnctl).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::api_session::progress_seen;
use cairn_lab::{ApiSession, BootMode, Bus, Deadline, Lab, Node, NodeConfig};
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

fn healthy(p: &Value) -> bool {
    p["state"] == "healthy" && p["sync"].is_null()
}

/// Power the node off (ACPI) and boot it again; returns once cairnd answers and its domains
/// are ready.
fn reboot(node: &mut Node, api: &ApiSession) -> Result<()> {
    node.powerdown(Deadline::secs(120))
        .context("powering the node down")?;
    boot(node, api)
}

/// Launch the (powered-off) node and wait until cairnd answers with the pinned certificate
/// and its domains are ready.
fn boot(node: &mut Node, api: &ApiSession) -> Result<()> {
    node.launch()?;
    api.wait_ready(Deadline::secs(300))
        .context("the API and its domains after boot")?;
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
    let e = api.expect_invalid("POST", "/api/v1/pools", &ext4_pool, "disks[2]")?;
    ensure!(
        e["message"].as_str().unwrap_or("").contains("ext4"),
        "reason should name ext4: {e}"
    );
    api.expect_invalid(
        "POST",
        "/api/v1/pools",
        &json!({"name": "tank", "level": "raid5", "disks": [d[0], d[1]]}),
        "disks",
    )?;
    api.expect_invalid(
        "POST",
        &format!("/api/v1/disks/{}/wipe", d[4]),
        &json!({"confirm_serial": "WRONG"}),
        "confirm_serial",
    )?;
    let t = api.run_task(
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
    let t = api.run_task("POST", "/api/v1/pools", &create, Deadline::secs(300))?;
    ensure!(t["kind"] == "pool.create", "{t}");
    let p = api.wait_pool(
        "tank",
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
    api.expect_invalid(
        "POST",
        "/api/v1/pools/tank/replace",
        &json!({"old": d[0], "new": d[1]}),
        "new",
    )?;
    let t = api.run_task(
        "POST",
        "/api/v1/pools/tank/replace",
        &json!({"old": d[0], "new": new_id}),
        Deadline::secs(900),
    )?;
    let seen = progress_seen(&t);
    println!("storage: replace task progress seen: {seen:?}");
    ensure!(
        seen.iter().any(|p| (1..100).contains(p)),
        "no intermediate rebuild progress seen: {t}"
    );
    let p = api.wait_pool(
        "tank",
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
    api.wait_pool(
        "tank",
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
    let p = api.wait_pool(
        "tank",
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
    api.wait_pool(
        "tank",
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
    api.expect_invalid(
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
    let t = api.run_task(
        "POST",
        "/api/v1/pools/tank/add",
        &json!({"disk": d[4]}),
        Deadline::secs(900),
    )?;
    ensure!(t["kind"] == "pool.add", "{t}");
    let seen = progress_seen(&t);
    println!("storage: add (reshape) task progress seen: {seen:?}");
    ensure!(
        seen.iter().any(|p| (1..100).contains(p)),
        "no intermediate reshape progress seen: {t}"
    );
    let p = api.wait_pool(
        "tank",
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
    api.expect_invalid(
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
    let t = api.run_task(
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
