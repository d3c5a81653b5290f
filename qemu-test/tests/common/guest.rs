//! The lab's tiny test guest (qemu-test/guest): building its images, and reading its serial
//! console through the API (`CAIRN GUEST` banner, `HEARTBEAT n`, `FLUSHED s`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{Accel, ApiSession, BootMode, Bus, Deadline, Lab, NodeConfig};

/// The test guest's two variants, as `qemu-test/guest/build.sh DIR` builds them (nasm): the
/// base guest has no ACPI code at all and ignores the power button; the ACPI variant
/// (guest.asm assembled with `-DACPI_POWEROFF`) powers off (S5) when it is pressed.
pub struct GuestImages {
    pub base: Vec<u8>,
    pub acpi: Vec<u8>,
}

/// A node of `lab` that hosts test guests: 2 CPUs, 2 GiB, one 2 GiB virtio data disk for a
/// pool. Under TCG the VMs are forced onto plain TCG (the lab's tenants run under TCG,
/// DESIGN §3; the node's TCG CPU advertises SVM, so /dev/kvm would open). Under KVM
/// (`-cpu host`) cairnd chooses by itself: nested KVM where the host passes VMX/SVM through,
/// else TCG (decision 0020). `cmdline` adds kernel command-line words.
pub fn vm_host_config(lab: &Lab, name: &str, cmdline: &[&str]) -> Result<NodeConfig> {
    let mut words = Vec::new();
    if lab.accel()?.accel == Accel::Tcg {
        words.push("cairn.vm.accel=tcg");
    }
    words.extend_from_slice(cmdline);
    Ok(NodeConfig::new(name, BootMode::DirectKernel)
        .size(2, 2048)
        .disk(Bus::Virtio, 2048)
        .cmdline(&words))
}

/// Where the scenarios build the guest: `build/guest` in the repository.
pub fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/guest")
}

/// Build both variants of the test guest into `dir` with the repository's script.
pub fn build_images(dir: &Path) -> Result<GuestImages> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guest/build.sh");
    let status = Command::new(&script)
        .arg(dir)
        .status()
        .context("running qemu-test/guest/build.sh")?;
    ensure!(
        status.success(),
        "qemu-test/guest/build.sh failed: {status}"
    );
    let read = |name: &str| {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        ensure!(
            bytes.len() == 512 && bytes[510..] == [0x55, 0xaa],
            "{} is not a 512-byte boot sector",
            path.display()
        );
        Ok(bytes)
    };
    Ok(GuestImages {
        base: read("cairn-guest.img")?,
        acpi: read("cairn-guest-acpi.img")?,
    })
}

/// Standard base64 with padding (the image travels in a JSON body).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The console text of `vm` through the API.
pub fn console(api: &ApiSession, vm: &str) -> Result<String> {
    let r = api.get(&format!("/api/v1/vms/{vm}/console"))?;
    ensure!(
        r.status == 200,
        "GET console of {vm}: HTTP {} {}",
        r.status,
        r.body
    );
    Ok(r.body)
}

/// The numbers of the lines `PREFIX n` after the last boot banner of the console text.
fn numbers_since_boot<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = u64> + 'a {
    let boot = text.rfind("CAIRN GUEST").map_or(text.len(), |b| b);
    text[boot..]
        .lines()
        .filter_map(move |l| l.trim().strip_prefix(prefix))
        .filter_map(|n| n.trim().parse().ok())
}

/// The highest `HEARTBEAT n` after the last boot banner of the console text.
pub fn last_beat(text: &str) -> Option<u64> {
    numbers_since_boot(text, "HEARTBEAT ").max()
}

/// The sequence numbers the guest reported as flushed to its disk (`FLUSHED s`) since its
/// last boot, in order.
pub fn flushed_since_boot(text: &str) -> Vec<u64> {
    numbers_since_boot(text, "FLUSHED ").collect()
}

/// Wait until `vm`'s console shows at least `beats` heartbeats since its last boot and the
/// boot banner count reached `boots`; returns the console text.
pub fn wait_beats(
    api: &ApiSession,
    vm: &str,
    boots: usize,
    beats: u64,
    d: Deadline,
) -> Result<String> {
    let mut last = String::new();
    let t0 = Instant::now();
    while !d.expired() {
        last = console(api, vm)?;
        if last.matches("CAIRN GUEST").count() >= boots && last_beat(&last).unwrap_or(0) >= beats {
            eprintln!(
                "guest: {vm} beat {beats} times after boot {boots} ({:.1} s)",
                t0.elapsed().as_secs_f64()
            );
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(500).min(d.remaining()));
    }
    let tail: String = last.lines().rev().take(8).collect::<Vec<_>>().join(" | ");
    bail!("VM {vm}: no {beats} heartbeats after boot {boots} within {:?}; console tail (newest first): {tail}", d.total())
}
