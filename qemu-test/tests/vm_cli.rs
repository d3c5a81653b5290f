//! Scenario vm_cli: VMs driven with `cairnctl` from the lab host, as an admin would. The test
//! guest with an ISO from a share as its CD-ROM → start (task progress) → snapshot while it
//! runs → the snapshot restored as a new VM that continues from the snapshot's flushed
//! sequence numbers (nothing the guest reported flushed before the snapshot is missing) →
//! list → delete refused without `--yes` and while running → deleted with its disks, or
//! keeping them.

mod common;

use anyhow::{ensure, Context, Result};
use cairn_lab::{Deadline, Lab, Node};
use common::cairnctl::Cairnctl;
use common::guest;
use serde_json::{json, Value};

const POOL: &str = "tank";
const SHARE: &str = "isos";
const ISO: &str = "tools.iso";

/// The pool's volumes: the logical volumes `vol-NAME` of its volume group, as NAMEs.
fn volumes(node: &mut Node) -> Result<Vec<String>> {
    let out = node.shell_check(
        &format!("lvs --noheadings -o lv_name cairn-{POOL}"),
        Deadline::secs(60),
    )?;
    Ok(out
        .split_whitespace()
        .filter_map(|v| v.strip_prefix("vol-"))
        .map(str::to_string)
        .collect())
}

/// The node's libvirt disk list of `vm` (`virsh domblklist --details`).
fn domblklist(node: &mut Node, vm: &str) -> Result<String> {
    Ok(node.shell_check(
        &format!("virsh -c qemu:///system domblklist {vm} --details"),
        Deadline::secs(60),
    )?)
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn vm_cli() -> Result<()> {
    let Some(lab) = Lab::for_test("vm_cli") else {
        return Ok(());
    };
    let images = guest::build_images(&guest::default_dir())?;
    let cfg = guest::vm_host_config(&lab, "vmcli1", &[])?;
    let serial = cfg.disks[0].serial.clone();
    let mut node = lab.start(cfg)?;
    common::check_node_up(&mut node, Deadline::secs(300))?;
    let api = node
        .claim(Deadline::secs(120))
        .context("claiming the node")?;
    let ctl = Cairnctl::logged_in(&mut node, &api, "vm_cli")?;
    api.wait_for(
        "/api/v1/vms",
        "libvirt connected",
        Deadline::secs(120),
        |v| v["resources"]["libvirt_connected"] == true,
    )?;

    // A pool and a share holding an ISO image, made with cairnctl.
    let disks = ctl.json(&["disks"])?;
    let disk = disks["disks"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["serial"] == serial.as_str()))
        .and_then(|d| d["id"].as_str())
        .with_context(|| format!("no disk with serial {serial}: {disks}"))?
        .to_string();
    ctl.ok(&["pools", "create", POOL, "--level", "single", &disk, "--yes"])?;
    api.wait_for(
        &format!("/api/v1/pools/{POOL}"),
        "pool healthy",
        Deadline::secs(300),
        |p| p["state"] == "healthy",
    )?;
    ctl.ok(&["shares", "create", POOL, SHARE, "--size", "256M"])?;
    // An ISO 9660 image (the primary volume descriptor's signature at sector 16); QEMU hands
    // it to the guest as a CD; libvirt and QEMU must open it from the share.
    let iso_path = format!("/var/lib/cairn/shares/{POOL}/{SHARE}/{ISO}");
    node.shell_check(
        &format!(
            "dd if=/dev/zero of={iso_path} bs=64k count=16 status=none && \
             printf '\\001CD001\\001' | dd of={iso_path} bs=1 seek=32768 conv=notrunc status=none && sync"
        ),
        Deadline::secs(60),
    )?;

    // The guest: its boot disk on IDE, an ISO from the share as a SATA CD-ROM.
    let boot_disk = format!("{POOL}:1:ide");
    let create = |iso: &str| -> Vec<String> {
        [
            "vms",
            "create",
            "guest",
            "--vcpus",
            "1",
            "--memory",
            "32",
            "--machine",
            "pc",
            "--disk",
            &boot_disk,
            "--iso",
            iso,
        ]
        .map(String::from)
        .to_vec()
    };
    fn words(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    // Bad input names the field and makes nothing.
    let missing = create(&format!("{POOL}/{SHARE}/missing.iso"));
    let bad = ctl.run(&words(&missing))?;
    ensure!(
        bad.code != 0 && bad.stderr.contains("disks[1].file"),
        "an ISO that is not on the share must be refused naming disks[1].file: {bad:?}"
    );
    let list = ctl.json(&["vms"])?;
    ensure!(
        list["vms"].as_array().is_some_and(Vec::is_empty),
        "a refused create left a VM: {list}"
    );

    // The guest, booting from its disk first.
    let mut good = create(&format!("{POOL}/{SHARE}/{ISO}"));
    good.extend(["--boot".to_string(), "disk,cdrom".to_string()]);
    ctl.ok(&words(&good))?;
    api.expect(
        "PUT",
        "/api/v1/vms/guest/disks/0/image",
        Some(&json!({"data_base64": guest::base64(&images.base)})),
    )?;
    let out = ctl.ok(&["vms", "start", "guest"])?;
    ensure!(!out.trim().is_empty(), "start printed nothing");
    guest::wait_beats(&api, "guest", 1, 3, Deadline::secs(120))?;
    let blk = domblklist(&mut node, "guest")?;
    ensure!(
        blk.lines()
            .any(|l| l.contains("cdrom") && l.contains(&iso_path)),
        "the running guest has no CD-ROM from the share: {blk}"
    );
    let show = ctl.json(&["vms", "show", "guest"])?;
    ensure!(show["state"] == "running", "vms show guest: {show}");

    // A snapshot of the running guest, restored as a new VM.
    let before = guest::flushed_since_boot(&guest::console(&api, "guest")?);
    let out = ctl.ok(&["vms", "snapshot", "guest", "s1"])?;
    ensure!(
        out.contains("snapshot s1 of VM guest taken"),
        "vms snapshot: {out}"
    );
    let after = guest::flushed_since_boot(&guest::console(&api, "guest")?);
    let (Some(&before), Some(&after)) = (before.last(), after.last()) else {
        anyhow::bail!("the guest reported no flushed numbers around the snapshot");
    };
    let dup = ctl.run(&["vms", "snapshot", "guest", "s1"])?;
    ensure!(
        dup.code != 0 && dup.stderr.contains("s1"),
        "a second snapshot s1 must be refused: {dup:?}"
    );
    let show = ctl.json(&["vms", "show", "guest"])?;
    ensure!(
        show["snapshots"].to_string().contains("s1"),
        "vms show lists no snapshot s1: {show}"
    );
    ctl.ok(&["vms", "restore", "guest", "s1", "r1"])?;
    ctl.ok(&["vms", "start", "r1"])?;
    let text = guest::wait_beats(&api, "r1", 1, 2, Deadline::secs(120))?;
    let first = *guest::flushed_since_boot(&text)
        .first()
        .with_context(|| format!("r1 reported no flushed number: {text}"))?;
    eprintln!(
        "vm_cli: guest had flushed {before} before the snapshot and {after} when it returned; \
         r1 (restored from s1) continues at {first}"
    );
    ensure!(
        first > before && first <= after + 1,
        "r1 continues at {first}: the snapshot must hold every number flushed before it \
         ({before}) and none flushed after it returned ({after})"
    );

    let list = ctl.ok(&["vms"])?;
    for vm in ["guest", "r1"] {
        ensure!(
            list.lines()
                .any(|l| l.starts_with(vm) && l.contains("running")),
            "vms list does not show {vm} running: {list}"
        );
    }

    // Deleting: refused without --yes, refused while running; then with its disks.
    let r = ctl.run(&["vms", "delete", "r1"])?;
    ensure!(
        r.code != 0 && r.stderr.contains("--yes"),
        "delete without --yes: {r:?}"
    );
    let r = ctl.run(&["vms", "delete", "r1", "--yes"])?;
    ensure!(
        r.code != 0 && r.stderr.contains("shut it down"),
        "delete of a running VM: {r:?}"
    );
    ctl.ok(&["vms", "off", "r1"])?;
    ensure!(
        volumes(&mut node)?.iter().any(|v| v.starts_with("r1-")),
        "r1 has no volumes before its delete"
    );
    let out = ctl.ok(&["vms", "delete", "r1", "--yes", "--delete-disks"])?;
    ensure!(out.contains("with its disks"), "vms delete: {out}");
    let vols = volumes(&mut node)?;
    ensure!(
        !vols.iter().any(|v| v.starts_with("r1-")),
        "r1's volumes are still there: {vols:?}"
    );

    // The guest ignores ACPI: the shutdown times out and powers it off; deleted keeping its
    // disks (and its snapshot).
    let out = ctl.ok(&["vms", "shutdown", "guest", "--timeout", "3"])?;
    ensure!(
        out.contains("powered off"),
        "shutdown should time out and power off: {out}"
    );
    let out = ctl.ok(&["vms", "delete", "guest", "--yes"])?;
    ensure!(out.contains("disks are kept"), "vms delete: {out}");
    let vols = volumes(&mut node)?;
    ensure!(
        vols.iter().any(|v| v == "guest-disk0") && vols.iter().any(|v| v == "guest-disk0-snap-s1"),
        "the kept disks are gone: {vols:?}"
    );
    let list: Value = ctl.json(&["vms"])?;
    ensure!(
        list["vms"].as_array().is_some_and(Vec::is_empty),
        "VMs left: {list}"
    );
    node.finish();
    Ok(())
}
