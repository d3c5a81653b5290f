//! Lab scenario `accel_probe`: the run's accelerator, decided once within the probe's deadline, recorded per node; TCG on the build machines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::accel::{self, Source, ENV_FORCE, ENV_NEXTEST_RUN_ID, ENV_RUN_ID};
use cairn_lab::artifacts::{workspace_root, Artifacts, QEMU};
use cairn_lab::{Accel, BootMode, Deadline, Decision, Lab, NodeConfig};

const BUSYBOX: &str = "/bin/busybox";

/// The stand-in init: says which virtualization flag its CPU shows, then idles.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "accel-probe: init up; cpu flags: $(/bin/busybox grep -m1 -o -w -E 'vmx|svm|hypervisor' /proc/cpuinfo | /bin/busybox tr '\n' ' ')"
while true; do /bin/busybox sleep 1; done
"#;

/// The kernel the lab boots: build/out/vmlinuz, else the Debian base's, else the host's.
fn find_kernel(root: &Path) -> Option<PathBuf> {
    let built = root.join("build/out/vmlinuz");
    if built.is_file() {
        return Some(built);
    }
    [root.join("build/rootfs-base/boot"), PathBuf::from("/boot")]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.filter_map(Result::ok).map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
                && std::fs::File::open(p).is_ok()
        })
}

/// build/out/{vmlinuz,initrd,cairn.img} under `root`: the kernel, a busybox initramfs and a
/// blank disk (the node boots from the initramfs alone). Err says why it cannot.
fn fixture(root: &Path) -> Result<Artifacts, String> {
    let kernel = find_kernel(&workspace_root()).ok_or(
        "no kernel: neither build/out/vmlinuz nor build/rootfs-base/boot/vmlinuz-* nor a readable /boot/vmlinuz-*",
    )?;
    if !Path::new(BUSYBOX).is_file() {
        return Err("busybox-static is not installed (apt-get install busybox-static)".into());
    }
    if Command::new(QEMU).arg("--version").output().is_err() {
        return Err("QEMU is not installed".into());
    }
    let a = Artifacts::under(root);
    let setup = || -> std::io::Result<()> {
        std::fs::create_dir_all(a.image.parent().unwrap_or(root))?;
        std::fs::copy(&kernel, &a.kernel)?;
        std::fs::File::create(&a.image)?.set_len(1 << 20)?;
        let ir = root.join("initramfs");
        for d in ["bin", "proc", "dev"] {
            std::fs::create_dir_all(ir.join(d))?;
        }
        std::fs::copy(BUSYBOX, ir.join("bin/busybox"))?;
        std::fs::write(ir.join("init"), INIT)?;
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "chmod 755 init bin/busybox && find . | cpio --quiet -o -H newc > '{}'",
                a.initrd.display()
            ))
            .current_dir(&ir)
            .stdout(Stdio::null())
            .status()?;
        if !st.success() {
            return Err(std::io::Error::other(format!("cpio: {st}")));
        }
        Ok(())
    };
    setup().map_err(|e| format!("cannot build the fixture: {e}"))?;
    Ok(a)
}

/// Whether this host's KVM is the paravirtual one of the build machines (DESIGN §5).
fn paravirtual_kvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

#[test]
#[ignore = "QEMU lab: boots a kernel with a busybox initramfs; run by ./dev test"]
fn accel_probe() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let artifacts = match fixture(tmp.path()) {
        Ok(a) => a,
        Err(why) => {
            eprintln!("SKIP lab scenario accel_probe: {why}");
            return Ok(());
        }
    };
    let lab = Lab::with_artifacts("accel_probe", artifacts.clone())?;
    let t = Instant::now();
    let node = lab.start(NodeConfig::new("n1", BootMode::DirectKernel))?;
    let started_after = t.elapsed();
    let booted = node
        .wait_serial("accel-probe: init up", Deadline::secs(120))
        .context("waiting for the stand-in init under the chosen accelerator")?;
    let decision = lab.accel()?.clone();
    eprintln!(
        "accel_probe: {}; node up ({}) {:.1} s after launch was called",
        decision.summary(),
        booted.text.trim(),
        started_after.as_secs_f64()
    );

    // The node's results record it, and its QEMU got the arguments.
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(node.dir().join("accel.json")).context("reading accel.json")?,
    )?;
    let recorded_decision: Decision = serde_json::from_value(recorded.clone())?;
    ensure!(
        recorded_decision == decision,
        "accel.json {recorded} is not the run's decision {decision:?}"
    );
    let want_args = decision.accel.qemu_args(None).join(" ");
    ensure!(
        recorded["qemu_args"] == want_args.as_str(),
        "accel.json's qemu_args: {recorded}"
    );
    let cmdline = std::fs::read_to_string(node.dir().join("qemu-cmdline-1.txt"))?;
    ensure!(
        cmdline.contains(&format!("-machine q35 -accel {} ", decision.accel.name())),
        "QEMU ran without the run's accelerator: {cmdline}"
    );
    ensure!(
        cmdline.contains("-cpu host") == (decision.accel == Accel::Kvm),
        "-cpu host goes with KVM and only with it: {cmdline}"
    );

    // How it was decided, and how long that took.
    let forced = accel::forced(std::env::var(ENV_FORCE).ok().as_deref())?;
    match decision.source {
        Source::Forced => {
            ensure!(
                forced == Some(decision.accel),
                "forced {:?} but {ENV_FORCE} says {forced:?}",
                decision.accel
            );
            ensure!(
                decision.probe_ms.is_none(),
                "a forced choice probes nothing"
            );
        }
        Source::Probe => {
            ensure!(forced.is_none(), "{ENV_FORCE} is set, yet the run probed");
            let Some(ms) = decision.probe_ms else {
                bail!("a probed decision without the probe's time: {decision:?}")
            };
            // The probe's own deadline, plus the time to kill and reap QEMU.
            let limit = accel::PROBE_DEADLINE + Duration::from_secs(3);
            ensure!(
                Duration::from_millis(ms) <= limit,
                "the probe took {ms} ms, over its deadline ({limit:?}): {decision:?}"
            );
            ensure!(
                u128::from(decision.deadline_ms) == accel::PROBE_DEADLINE.as_millis(),
                "{decision:?}"
            );
            // Once per run: the run's cache holds the same decision.
            let run_id = accel::run_key(
                std::env::var(ENV_RUN_ID).ok().as_deref(),
                std::env::var(ENV_NEXTEST_RUN_ID).ok().as_deref(),
            );
            if let Some(id) = &run_id {
                ensure!(
                    &decision.run == id,
                    "decision of run {} in run {id}",
                    decision.run
                );
            }
            let cached = accel::cache_dir().join(&decision.run).join("decision.json");
            let cached: Decision = serde_json::from_str(
                &std::fs::read_to_string(&cached)
                    .with_context(|| format!("reading {}", cached.display()))?,
            )?;
            ensure!(
                cached == decision,
                "the run's cache says {cached:?}, the lab {decision:?}"
            );
            cairn_lab::bench_eprintln!(
                "accel probe: {} decided in {:.2} s (deadline {} s): {}",
                decision.accel,
                ms as f64 / 1000.0,
                accel::PROBE_DEADLINE.as_secs(),
                decision.reason
            );
        }
    }
    // On the build machines KVM hangs a stock kernel (or QEMU refuses -cpu host): TCG.
    if paravirtual_kvm() && forced.is_none() {
        ensure!(
            decision.accel == Accel::Tcg,
            "this host's KVM is paravirtual (kvm_pvm), yet the probe chose {}: {}",
            decision.accel,
            decision.reason
        );
    }

    // A second lab of the same run decides nothing again.
    let t = Instant::now();
    let again = Lab::with_artifacts("accel_probe-again", artifacts)?;
    let second = again.accel()?.clone();
    ensure!(
        second == decision && t.elapsed() < Duration::from_secs(2),
        "a second lab of the run took {:?} and decided {second:?}",
        t.elapsed()
    );
    node.finish();
    Ok(())
}
