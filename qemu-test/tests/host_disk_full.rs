//! Scenario host_disk_full: the filesystem holding a node's disk image fills up; QEMU pauses the node, the lab says so, resumes it once there is room, and the guest's write completes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use cairn_lab::{BootMode, Bus, Deadline, Lab, NodeConfig};

/// Size of the small filesystem that holds the data disk's image.
const SMALL_FS_MIB: u64 = 48;
/// What the filler leaves free on it: less than the guest's write.
const LEFT_FREE_MIB: u64 = 8;
/// What the guest writes to its data disk (direct I/O).
const WRITE_MIB: u64 = 32;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_mib: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(at).with_context(|| format!("create {}", at.display()))?;
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size_mib}m").as_str()),
        )
        .with_context(|| format!("mount a {size_mib} MiB tmpfs on {}", at.display()))?;
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Polls `check` until it gives a value or `deadline` passes; `what` names the wait.
fn poll<T>(
    what: &str,
    deadline: Deadline,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if deadline.expired() {
            bail!("timed out after {:?} waiting for {what}", deadline.total());
        }
        std::thread::sleep(deadline.remaining().min(Duration::from_millis(250)));
    }
}

#[test]
#[ignore = "QEMU lab: needs a built image (cargo xtask image) and root (a small tmpfs); run by ./dev test"]
fn host_disk_full() -> Result<()> {
    let Some(lab) = Lab::for_test("host_disk_full") else {
        return Ok(());
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP lab scenario host_disk_full: needs root to mount a small tmpfs");
        return Ok(());
    }
    let small = Tmpfs::mount(&lab.dir().join("small-fs"), SMALL_FS_MIB)?;
    let mut node =
        lab.prepare(NodeConfig::new("node1", BootMode::DirectKernel).disk(Bus::Virtio, 64))?;
    // The data disk's image lives on the small filesystem, which a filler nearly fills.
    let link = node
        .data_disk_path(0)
        .context("the node has no data disk")?;
    let image = small.0.join("data0.img");
    std::fs::File::create(&image)?.set_len(64 << 20)?;
    std::fs::remove_file(&link)?;
    std::os::unix::fs::symlink(&image, &link)?;
    let filler = small.0.join("filler");
    std::fs::write(
        &filler,
        vec![0xa5u8; usize::try_from((SMALL_FS_MIB - LEFT_FREE_MIB) << 20)?],
    )?;

    node.launch()?;
    let d = Deadline::secs(300);
    node.wait_serial("cairn-init: all services ready", d)
        .context("waiting for cairn-init to report every service ready")?;
    let serial = node.data_disk_serial(0).context("no serial")?;
    let dev = format!("/dev/disk/by-id/virtio-{serial}");
    node.shell_check(&format!("udevadm settle -t 30; test -b {dev}"), d)?;
    node.shell_check(
        &format!(
            "setsid sh -c 'dd if=/dev/urandom of={dev} bs=1M count={WRITE_MIB} oflag=direct > /run/dd.out 2>&1; echo dd-exit=$? >> /run/dd.out' </dev/null >/dev/null 2>&1 &"
        ),
        d,
    )?;

    // QEMU pauses the node at the write that finds no room, and the watcher reports it.
    let pause = poll(
        "the host-disk watcher to report the pause",
        Deadline::secs(120),
        || Ok(node.host_disk_pauses().into_iter().next()),
    )?;
    ensure!(
        pause.resumed_after.is_none(),
        "resumed while still full: {pause:?}"
    );
    let status = node.qmp()?.status(d)?;
    ensure!(
        status == "io-error",
        "QEMU status is {status:?}, want io-error"
    );
    let log = std::fs::read_to_string(node.dir().join("host-disk.log"))?;
    ensure!(
        log.contains("ENOSPC"),
        "host-disk.log says no ENOSPC: {log}"
    );

    // Room again: the watcher resumes the node and the write completes.
    std::fs::remove_file(&filler)?;
    let paused = poll("the watcher to resume the node", Deadline::secs(60), || {
        Ok(node
            .host_disk_pauses()
            .first()
            .and_then(|p| p.resumed_after))
    })?;
    let status = node.qmp()?.status(d)?;
    ensure!(
        status == "running",
        "QEMU status is {status:?} after the resume"
    );
    let out = poll("dd to finish in the guest", Deadline::secs(120), || {
        let out = node.shell_check("cat /run/dd.out 2>/dev/null || true", d)?;
        Ok(out.contains("dd-exit=").then_some(out))
    })?;
    ensure!(out.contains("dd-exit=0"), "the guest's write failed: {out}");
    ensure!(
        out.contains(&format!("{} bytes", WRITE_MIB << 20)),
        "dd did not write {WRITE_MIB} MiB: {out}"
    );
    let log = std::fs::read_to_string(node.dir().join("host-disk.log"))?;
    ensure!(
        log.contains("resumed after"),
        "host-disk.log has no resume: {log}"
    );
    eprintln!(
        "host_disk_full: paused {:.1} s on {}; guest: {}",
        paused.as_secs_f64(),
        pause.device,
        out.lines().last().unwrap_or("")
    );
    node.finish();
    drop(small);
    Ok(())
}
