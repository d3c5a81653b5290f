//! Scenario boot: a node boots (direct kernel and through UEFI) and is fully up.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use cairn_lab::{BootMode, Bus, Deadline, Lab, NodeConfig};

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn boot() -> Result<()> {
    let Some(lab) = Lab::for_test("boot") else {
        return Ok(());
    };
    // Data disks on each bus: udev's coldplug must load their drivers and name them by id.
    let cfg = NodeConfig::new("node1", BootMode::DirectKernel)
        .disk(Bus::Nvme, 64)
        .disk(Bus::Ahci, 64)
        .disk(Bus::Virtio, 64);
    let serials: Vec<String> = cfg.disks.iter().map(|d| d.serial.clone()).collect();
    let mut node = lab.start(cfg)?;
    let health = common::check_node_up(&mut node, Deadline::secs(300))?;
    ensure!(
        health["boot"]["slot"] == "a",
        "health's boot section does not show slot a: {health}"
    );
    let by_id = node.shell_check("ls /dev/disk/by-id", Deadline::secs(60))?;
    for serial in &serials {
        ensure!(
            by_id.contains(serial.as_str()),
            "no /dev/disk/by-id entry for the disk with serial {serial}: {by_id}"
        );
    }
    // The lab claims nodes through the real setup API and drives them with an API token.
    let api = node
        .claim(Deadline::secs(120))
        .context("claiming the node")?;
    let me = api.expect("GET", "/api/v1/auth/me", None)?;
    ensure!(
        me["user"] == "admin",
        "the token session is not the admin's: {me}"
    );
    let setup = api.expect("GET", "/api/v1/setup", None)?;
    ensure!(
        setup["claimed"] == true,
        "the node is not claimed after setup: {setup}"
    );
    node.finish();
    Ok(())
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn boot_uefi() -> Result<()> {
    let Some(lab) = Lab::for_test("boot-uefi") else {
        return Ok(());
    };
    let mut node = lab.start(NodeConfig::new("node1", BootMode::Uefi))?;
    let health = common::check_node_up(&mut node, Deadline::secs(360))?;
    ensure!(
        health["boot"]["slot"] == "a",
        "health's boot section does not show slot a: {health}"
    );
    // Through systemd-boot cairnd knows the booted entry (LoaderEntrySelected via efivarfs)…
    ensure!(
        health["boot"]["entry"]
            .as_str()
            .is_some_and(|e| e.starts_with("cairn-a")),
        "health does not name the booted loader entry (efivarfs not readable?): {}",
        health["boot"]
    );
    // …and blesses the boot once its API is up; its health report says when it has.
    let d = Deadline::secs(60);
    let mut health = health;
    while health["boot"]["blessed"] != true {
        ensure!(
            !d.expired(),
            "the boot was not blessed within {:?}: {}",
            d.total(),
            health["boot"]
        );
        // poll interval while cairnd renames the entry
        std::thread::sleep(Duration::from_millis(500));
        health = node.wait_health(d)?;
    }
    node.powerdown(Deadline::secs(60))
        .context("powering down (ACPI) to read the ESP")?;
    // The good boot was blessed: systemd-boot's counter is gone from the entry's name.
    let entries = node.esp()?.entries()?;
    ensure!(
        entries.iter().any(|e| e == "cairn-a.conf"),
        "slot A's entry was not blessed to cairn-a.conf: {entries:?}"
    );
    node.finish();
    Ok(())
}
