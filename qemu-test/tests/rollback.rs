//! Scenario rollback: slot B preferred but broken; systemd-boot falls back to slot A and the API shows the failures.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use anyhow::{ensure, Context, Result};
use cairn_lab::{esp, gpt, BootMode, Deadline, Lab, NodeConfig};
use serde_json::Value;

/// A version that sorts above `v` for systemd-boot.
fn higher_version(v: &str) -> String {
    match v.trim().parse::<u64>() {
        Ok(n) => (n + 1).to_string(),
        Err(_) => format!("{}.1", v.trim()),
    }
}

fn mentions_b(v: &Value) -> bool {
    v["slot"] == "b"
        || v["entry"]
            .as_str()
            .is_some_and(|e| e.starts_with("cairn-b"))
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image); run by ./dev test"]
fn rollback() -> Result<()> {
    let Some(lab) = Lab::for_test("rollback") else {
        return Ok(());
    };
    let mut node = lab.prepare(NodeConfig::new("node1", BootMode::Uefi))?;
    // Prefer slot B: give its entry a higher version than A's.
    let e = node.esp()?;
    let a_name = e
        .entry_of_slot('a')?
        .context("no slot A entry on the ESP")?;
    let a_text = e.read(&format!("{}/{a_name}", esp::ENTRIES_DIR))?;
    let a_version = esp::field(&a_text, "version").context("slot A's entry has no version")?;
    e.set_version('b', &higher_version(a_version))?;
    // Break ROOT-B: zero its first MiB (the squashfs superblock).
    let root_b = gpt::find(node.disk(), "cairn-root-b")?;
    OpenOptions::new()
        .write(true)
        .open(node.disk())?
        .write_all_at(&vec![0u8; 1 << 20], root_b.offset)?;

    node.launch()?;
    let d = Deadline::secs(600);
    let a = node
        .wait_serial("cairn-init: switching root to slot a", d)
        .context("waiting for the fallback to slot A")?;
    let failures = node
        .serial()?
        .find_all(&regex::Regex::new("cairn-init: BOOT FAILED")?, 0);
    let before_a = failures.iter().filter(|f| f.index < a.index).count();
    ensure!(
        before_a == 3,
        "want 3 failed stage 1 attempts on slot B before slot A, saw {before_a}: {failures:?}"
    );
    let health = common::check_node_up(&mut node, d)?;
    let boot = &health["boot"];
    ensure!(boot["slot"] == "a", "health does not show slot a: {boot}");
    let attempts = boot["failed_attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        attempts.iter().any(mentions_b),
        "health shows no failed attempt of slot b: {boot}"
    );
    let stage1 = boot["stage1_failures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        stage1.iter().filter(|f| mentions_b(f)).count() >= 3,
        "health shows fewer than 3 stage 1 failures of slot b: {boot}"
    );
    ensure!(
        stage1
            .iter()
            .all(|f| f["reason"].as_str().is_some_and(|r| !r.is_empty())),
        "a stage 1 failure has no reason: {boot}"
    );
    node.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_higher() {
        assert_eq!(higher_version("1"), "2");
        assert_eq!(higher_version(" 41 "), "42");
        assert_eq!(higher_version("0.1.0"), "0.1.0.1");
    }
}
