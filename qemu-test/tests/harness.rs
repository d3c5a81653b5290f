//! Harness self-test: Debian's kernel with a busybox initramfs stands in for a node, so the lab's
//! console, shell, QMP and UEFI plumbing are checked without a Cairn image.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cairn_lab::artifacts::{Artifacts, OVMF_CODE, QEMU};
use cairn_lab::esp;
use cairn_lab::{BootMode, Deadline, Lab, NodeConfig};

const BUSYBOX: &str = "/bin/busybox";
const SYSTEMD_BOOT: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// The stand-in init: prints the markers the lab waits for and runs a shell on ttyS1.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "cairn-init: stage 1"
echo "cairn-init: switching root to slot a"
echo "cairn-init: stage 2 (pid 1)"
if grep -q cairn.lab=1 /proc/cmdline; then
  setsid sh -c 'exec sh </dev/ttyS1 >/dev/ttyS1 2>&1' &
fi
echo "cairn-init: all services ready"
while true; do sleep 1; done
"#;

fn sh(cmd: &str, dir: &Path) {
    let st = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
}

fn entry(slot: char) -> String {
    format!(
        "title Cairn (slot {slot})\nsort-key cairn\nversion 1\nlinux /cairn/{slot}/vmlinuz\ninitrd /cairn/{slot}/initrd\noptions cairn.slot={slot} console=ttyS0,115200\n"
    )
}

/// Builds build/out/{vmlinuz,initrd,cairn.img} under `root`, or says why it cannot.
fn fixture(root: &Path) -> Result<Artifacts, String> {
    let base = cairn_lab::artifacts::workspace_root().join("build/rootfs-base");
    let kernel = std::fs::read_dir(base.join("boot"))
        .map_err(|_| format!("no Debian kernel in {}/boot", base.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or("no vmlinuz-* in build/rootfs-base/boot")?;
    if !base.join(SYSTEMD_BOOT).is_file() {
        return Err(format!("no {SYSTEMD_BOOT} in {}", base.display()));
    }
    if !Path::new(BUSYBOX).is_file() {
        return Err("busybox-static is not installed (apt-get install busybox-static)".into());
    }
    if Command::new(QEMU).arg("--version").output().is_err() || !Path::new(OVMF_CODE).is_file() {
        return Err("QEMU or OVMF is not installed".into());
    }
    let a = Artifacts::under(root);
    let out = a.image.parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(&kernel, &a.kernel).unwrap();
    // initramfs
    let ir = root.join("initramfs");
    for d in ["bin", "proc", "sys", "dev"] {
        std::fs::create_dir_all(ir.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, ir.join("bin/busybox")).unwrap();
    std::fs::write(ir.join("init"), INIT).unwrap();
    sh("chmod 755 init bin/busybox", &ir);
    sh(
        &format!("find . | cpio --quiet -o -H newc > {}", a.initrd.display()),
        &ir,
    );
    // disk: ESP (systemd-boot, two entries), two small roots, STATE
    let img = &a.image;
    File::create(img).unwrap().set_len(96 << 20).unwrap();
    sh(
        &format!(
            "printf 'label: gpt\\nsize=48MiB, type=U, name=cairn-esp\\nsize=8MiB, type=L, name=cairn-root-a\\nsize=8MiB, type=L, name=cairn-root-b\\ntype=L, name=cairn-state\\n' | sfdisk --quiet {}",
            img.display()
        ),
        root,
    );
    let fat = root.join("esp.fat");
    File::create(&fat).unwrap().set_len(48 << 20).unwrap();
    let boot_efi = base.join(SYSTEMD_BOOT);
    let m = |args: &str| sh(&format!("MTOOLS_SKIP_CHECK=1 {args}"), root);
    m(&format!("mformat -F -i {} ::", fat.display()));
    m(&format!(
        "mmd -i {f} ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/cairn ::/cairn/a ::/cairn/b",
        f = fat.display()
    ));
    m(&format!(
        "mcopy -i {} {} ::/EFI/BOOT/BOOTX64.EFI",
        fat.display(),
        boot_efi.display()
    ));
    for slot in ['a', 'b'] {
        std::fs::write(root.join(format!("cairn-{slot}+3.conf")), entry(slot)).unwrap();
        m(&format!(
            "mcopy -i {f} cairn-{slot}+3.conf ::/loader/entries/ && mcopy -i {f} {k} ::/cairn/{slot}/vmlinuz && mcopy -i {f} {i} ::/cairn/{slot}/initrd",
            f = fat.display(),
            k = a.kernel.display(),
            i = a.initrd.display()
        ));
    }
    std::fs::write(root.join("loader.conf"), "timeout 0\n").unwrap();
    m(&format!(
        "mcopy -i {} loader.conf ::/loader/loader.conf",
        fat.display()
    ));
    let esp_part = cairn_lab::gpt::find(img, "cairn-esp").unwrap();
    let data = std::fs::read(&fat).unwrap();
    File::options()
        .write(true)
        .open(img)
        .unwrap()
        .write_all_at(&data, esp_part.offset)
        .unwrap();
    Ok(a)
}

fn lab(scenario: &str) -> Option<(tempfile::TempDir, Lab)> {
    let dir = tempfile::tempdir().unwrap();
    match fixture(dir.path()) {
        Ok(a) => {
            let lab = Lab::with_artifacts(scenario, a).unwrap();
            Some((dir, lab))
        }
        Err(why) => {
            eprintln!("SKIP harness self-test {scenario}: {why}");
            None
        }
    }
}

#[test]
#[ignore = "QEMU lab: boots Debian's kernel under the run's accelerator (KVM or TCG); run by ./dev test"]
fn direct_kernel_console_shell_and_qmp() {
    let Some((_tmp, lab)) = lab("harness-direct") else {
        return;
    };
    let mut node = lab
        .start(NodeConfig::new("n1", BootMode::DirectKernel).disk(cairn_lab::Bus::Nvme, 16))
        .unwrap();
    let d = Deadline::secs(120);
    let k = node.wait_serial("Linux version", d).unwrap();
    node.wait_serial_from("cairn-init: all services ready", k.index, d)
        .unwrap();
    // the shell: output, exit codes, PID 1
    let out = node.shell_run("echo $((6*7)); exit 3", d).unwrap();
    assert_eq!((out.code, out.output.as_str()), (3, "42"));
    assert_eq!(node.shell_check("cat /proc/1/comm", d).unwrap(), "init");
    assert!(node
        .shell_check("cat /proc/cmdline", d)
        .unwrap()
        .contains("cairn.slot=a console=ttyS0,115200 cairn.lab=1"));
    // a timeout says what it waited for
    let err = node
        .wait_serial(
            "never printed",
            Deadline::after(std::time::Duration::from_millis(200)),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("never printed"), "{err}");
    // QMP: status, stop/cont, cable, reset, then power loss
    let qmp = node.qmp().unwrap();
    assert_eq!(qmp.status(d).unwrap(), "running");
    qmp.stop(d).unwrap();
    assert_eq!(qmp.status(d).unwrap(), "paused");
    qmp.cont(d).unwrap();
    qmp.set_link("nic0", false, d).unwrap();
    assert!(qmp.device_del("no-such-device", d).is_err());
    let mark = node.serial().unwrap().mark();
    node.qmp().unwrap().system_reset(d).unwrap();
    node.qmp().unwrap().wait_event("RESET", d).unwrap();
    node.wait_serial_from("Linux version", mark, d).unwrap();
    node.qmp().unwrap().quit(d).unwrap();
    node.wait_exit(Deadline::secs(10)).unwrap();
    assert!(node.dir().join("serial.log").is_file());
    node.finish();
}

#[test]
#[ignore = "QEMU lab: boots Debian's kernel through OVMF under the run's accelerator; run by ./dev test"]
fn uefi_boot_counting_and_lab_option() {
    let Some((_tmp, lab)) = lab("harness-uefi") else {
        return;
    };
    let mut node = lab.prepare(NodeConfig::new("n1", BootMode::Uefi)).unwrap();
    // the harness put cairn.lab=1 into every entry of the node's copy
    let e = node.esp().unwrap();
    let a = e.read("loader/entries/cairn-a+3.conf").unwrap();
    assert!(esp::field(&a, "options").unwrap().ends_with("cairn.lab=1"));
    e.set_version('b', "2").unwrap();
    node.launch().unwrap();
    let d = Deadline::secs(180);
    node.wait_serial("cairn-init: all services ready", d)
        .unwrap();
    let cmdline = node.shell_check("cat /proc/cmdline", d).unwrap();
    // slot B has the higher version, so it is booted first
    assert!(cmdline.contains("cairn.slot=b"), "{cmdline}");
    assert!(cmdline.contains("cairn.lab=1"), "{cmdline}");
    node.qmp().unwrap().quit(d).unwrap();
    node.wait_exit(Deadline::secs(10)).unwrap();
    // systemd-boot counted the attempt
    let entries = node.esp().unwrap().entries().unwrap();
    assert!(
        entries.contains(&"cairn-b+2-1.conf".to_string()),
        "{entries:?}"
    );
    assert!(
        entries.contains(&"cairn-a+3.conf".to_string()),
        "{entries:?}"
    );
    node.finish();
}

#[test]
#[ignore = "QEMU lab: boots Debian's kernel under the run's accelerator (KVM or TCG); run by ./dev test"]
fn failure_keeps_logs() {
    let Some((_tmp, lab)) = lab("harness-failure") else {
        return;
    };
    let dir: PathBuf;
    {
        let node = lab
            .start(NodeConfig::new("n1", BootMode::DirectKernel))
            .unwrap();
        dir = node.dir().to_path_buf();
        node.wait_serial("cairn-init: all services ready", Deadline::secs(120))
            .unwrap();
        // dropped without finish(): treated as a failure
    }
    assert!(std::fs::read_to_string(dir.join("serial.log"))
        .unwrap()
        .contains("cairn-init: stage 1"));
    let status = std::fs::read_to_string(dir.join("svc-status.txt")).unwrap();
    // busybox has no cairn-init: the command fails, but its answer is kept
    assert!(
        status.starts_with("# cairn-init svc status (exit 127)"),
        "{status}"
    );
    assert!(std::fs::read_to_string(dir.join("journal.txt")).is_ok());
}
