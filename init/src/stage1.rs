//! Stage 1 (initramfs): modules, slot, partitions, STATE, root check, switch_root — or a
//! recorded failure and a reboot so the boot loader falls back to the other slot.

use crate::blockdev;
use crate::kmod::{self, DepMap};
use crate::log::log;
use cairn_base::{error_chain, KernelCmdline, Slot};
use nix::mount::MsFlags;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Marker file that tells cairn-init it runs in the initramfs.
pub const MARKER: &str = "/etc/cairn-initrd";
/// Where the root is assembled.
pub const NEWROOT: &str = "/newroot";
/// Where STATE is mounted to record a failure when the root could not be mounted.
pub const SCRATCH: &str = "/state-scratch";
/// STATE's partition label.
pub const STATE_LABEL: &str = "cairn-state";
/// How long to wait for the partitions.
pub const PARTITION_DEADLINE_MS: u64 = 10_000;
/// How long STATE may lag behind the root partition before we go on without it.
pub const STATE_GRACE_MS: u64 = 2_000;
/// Poll interval while waiting for partitions.
pub const PARTITION_POLL_MS: u64 = 100;
/// Pause before the reboot after a failure (so the message can be read).
pub const FAILURE_REBOOT_DELAY_MS: u64 = 5_000;

/// Where stage 1 assembles the root and where it mounts STATE to record a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub newroot: PathBuf,
    pub scratch: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            newroot: PathBuf::from(NEWROOT),
            scratch: PathBuf::from(SCRATCH),
        }
    }
}

/// The system operations stage 1 needs (a recording double tests the flow).
pub trait Stage1Ops {
    fn mkdir_p(&mut self, p: &Path) -> io::Result<()>;
    fn mount(
        &mut self,
        src: &str,
        target: &Path,
        fstype: &str,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn umount(&mut self, target: &Path) -> io::Result<()>;
    fn read_file(&mut self, p: &Path) -> io::Result<String>;
    /// finit_module; "already loaded" counts as success.
    fn load_module(&mut self, path: &Path) -> io::Result<()>;
    /// PARTNAME → DEVNAME.
    fn partitions(&mut self) -> BTreeMap<String, String>;
    fn is_blank(&mut self, dev: &Path) -> io::Result<bool>;
    fn mke2fs(&mut self, dev: &Path) -> io::Result<()>;
    /// Checks that `init` inside `root` is an executable that can be read.
    fn check_init(&mut self, root: &Path, init: &str) -> Result<(), String>;
    fn append_line(&mut self, file: &Path, line: &str) -> io::Result<()>;
    fn now_ms(&mut self) -> u64;
    fn unix_s(&mut self) -> u64;
    fn pause_ms(&mut self, ms: u64);
    fn sync(&mut self);
    /// Only returns on failure.
    fn reboot(&mut self) -> io::Error;
    /// Moves /dev /proc /sys, deletes the initramfs, MS_MOVE, chroot, exec. Only returns
    /// on failure.
    fn switch_root(&mut self, newroot: &Path, init: &str) -> io::Error;
}

/// Why stage 1 failed, and what it knows about STATE for recording it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub slot: Option<Slot>,
    /// STATE's device, if found and usable (has a filesystem).
    pub state_dev: Option<PathBuf>,
    /// Where STATE is mounted already, if it is.
    pub state_mounted: Option<PathBuf>,
}

/// The JSON line appended to STATE's boot/failures.jsonl.
pub fn failure_record(time: u64, slot: Option<Slot>, reason: &str) -> String {
    serde_json::json!({
        "time": time,
        "slot": slot.map(Slot::as_str),
        "reason": reason,
    })
    .to_string()
}

fn mount_early(ops: &mut dyn Stage1Ops) {
    for (src, target, fs, data) in [
        ("proc", "/proc", "proc", None),
        ("sysfs", "/sys", "sysfs", None),
        ("devtmpfs", "/dev", "devtmpfs", Some("mode=0755")),
    ] {
        let t = Path::new(target);
        let _ = ops.mkdir_p(t);
        if let Err(e) = ops.mount(src, t, fs, MsFlags::MS_NOSUID, data) {
            if e.raw_os_error() != Some(libc::EBUSY) {
                log(&format!("cannot mount {fs} on {target}: {e}"));
            }
        }
    }
}

fn load_modules(ops: &mut dyn Stage1Ops) {
    let list = match ops.read_file(Path::new("/etc/cairn/initrd-modules")) {
        Ok(l) => l,
        Err(_) => return,
    };
    let release = match ops.read_file(Path::new("/proc/sys/kernel/osrelease")) {
        Ok(r) => r.trim().to_string(),
        Err(e) => {
            log(&format!(
                "cannot read the kernel release: {e}; no modules loaded"
            ));
            return;
        }
    };
    let base = PathBuf::from("/lib/modules").join(&release);
    let dep = match ops.read_file(&base.join("modules.dep")) {
        Ok(t) => DepMap::parse(&t),
        Err(e) => {
            log(&format!(
                "{}: {e}; no modules loaded",
                base.join("modules.dep").display()
            ));
            return;
        }
    };
    let builtin = ops
        .read_file(&base.join("modules.builtin"))
        .unwrap_or_default();
    let plan = kmod::plan(&list, &dep, &builtin);
    for m in &plan.missing {
        log(&format!(
            "module {m}: not in modules.dep or modules.builtin"
        ));
    }
    let start = ops.now_ms();
    let mut slowest: Vec<(u64, String)> = Vec::new();
    let mut loaded = 0;
    for p in &plan.paths {
        let path = base.join(p);
        let t = ops.now_ms();
        match ops.load_module(&path) {
            Ok(()) => loaded += 1,
            Err(e) => log(&format!("cannot load {}: {e}", path.display())),
        }
        let name = p
            .rsplit('/')
            .next()
            .unwrap_or(p)
            .trim_end_matches(".ko")
            .to_string();
        slowest.push((ops.now_ms().saturating_sub(t), name));
    }
    slowest.sort_by_key(|(ms, _)| std::cmp::Reverse(*ms));
    let top: Vec<String> = slowest
        .iter()
        .take(3)
        .map(|(ms, n)| format!("{n} {ms} ms"))
        .collect();
    log(&format!(
        "{loaded} modules loaded in {} ms (slowest: {})",
        ops.now_ms().saturating_sub(start),
        top.join(", ")
    ));
}

/// Waits (deadline) for the root partition and, briefly after it, STATE.
fn wait_partitions(ops: &mut dyn Stage1Ops, root_label: &str) -> (Option<String>, Option<String>) {
    let start = ops.now_ms();
    let deadline = start + PARTITION_DEADLINE_MS;
    let mut root_seen_at = None;
    loop {
        let parts = ops.partitions();
        let root = parts.get(root_label).cloned();
        let state = parts.get(STATE_LABEL).cloned();
        let now = ops.now_ms();
        if root.is_some() && root_seen_at.is_none() {
            root_seen_at = Some(now);
        }
        let state_grace_over = root_seen_at.is_some_and(|t| now >= t + STATE_GRACE_MS);
        if (root.is_some() && state.is_some()) || state_grace_over || now >= deadline {
            return (root, state);
        }
        ops.pause_ms(PARTITION_POLL_MS);
    }
}

/// Everything up to (not including) switch_root. Ok = the init path to exec.
pub fn prepare(ops: &mut dyn Stage1Ops, layout: &Layout) -> Result<String, Failure> {
    let mut failure = Failure {
        reason: String::new(),
        slot: None,
        state_dev: None,
        state_mounted: None,
    };
    let fail = |f: &Failure, reason: String| Failure {
        reason,
        ..f.clone()
    };
    load_modules(ops);
    let cmdline = ops
        .read_file(Path::new("/proc/cmdline"))
        .unwrap_or_default();
    let cmdline = KernelCmdline::parse(&cmdline);
    let slot = cmdline
        .slot()
        .map_err(|e| fail(&failure, error_chain(&e)))?;
    failure.slot = Some(slot);
    let init = cmdline
        .init()
        .map_err(|e| fail(&failure, error_chain(&e)))?
        .to_string();
    let root_label = slot.root_partlabel();
    let waited_from = ops.now_ms();
    let (root, state) = wait_partitions(ops, root_label);
    if root.is_some() {
        log(&format!(
            "found {root_label} after {} ms",
            ops.now_ms().saturating_sub(waited_from)
        ));
    }

    // STATE first: make its filesystem if blank, so a failure can be recorded on it.
    match &state {
        None => log("no cairn-state partition: booting without STATE"),
        Some(dev) => {
            let dev = PathBuf::from("/dev").join(dev);
            match ops.is_blank(&dev) {
                Ok(true) => {
                    log(&format!("STATE {} is blank: creating ext4", dev.display()));
                    match ops.mke2fs(&dev) {
                        Ok(()) => failure.state_dev = Some(dev),
                        Err(e) => {
                            return Err(fail(
                                &failure,
                                format!("cannot create ext4 on STATE {}: {e}", dev.display()),
                            ))
                        }
                    }
                }
                Ok(false) => failure.state_dev = Some(dev),
                Err(e) => {
                    return Err(fail(
                        &failure,
                        format!("cannot read STATE {}: {e}", dev.display()),
                    ))
                }
            }
        }
    }

    let Some(root) = root else {
        return Err(fail(
            &failure,
            format!(
                "partition {root_label} not found within {}s",
                PARTITION_DEADLINE_MS / 1000
            ),
        ));
    };
    let root_dev = PathBuf::from("/dev").join(&root);
    let newroot = layout.newroot.as_path();
    let _ = ops.mkdir_p(newroot);
    ops.mount(
        &root_dev.display().to_string(),
        newroot,
        "squashfs",
        MsFlags::MS_RDONLY,
        None,
    )
    .map_err(|e| {
        fail(
            &failure,
            format!(
                "cannot mount {root_label} ({}) as squashfs: {e}",
                root_dev.display()
            ),
        )
    })?;
    if let Err(e) = ops.check_init(newroot, &init) {
        let _ = ops.umount(newroot);
        return Err(fail(
            &failure,
            format!("root of slot {} is unusable: {e}", slot.as_str()),
        ));
    }
    if let Some(dev) = failure.state_dev.clone() {
        let target = newroot.join("state");
        ops.mount(
            &dev.display().to_string(),
            &target,
            "ext4",
            MsFlags::empty(),
            None,
        )
        .map_err(|e| {
            fail(
                &failure,
                format!(
                    "cannot mount STATE {} on {}: {e}",
                    dev.display(),
                    target.display()
                ),
            )
        })?;
        failure.state_mounted = Some(target);
    }
    Ok(init)
}

/// Records the failure on STATE (if possible), prints it, syncs, waits, reboots.
pub fn fail_and_reboot(ops: &mut dyn Stage1Ops, f: &Failure, layout: &Layout) -> io::Error {
    log(&format!("BOOT FAILED: {}", f.reason));
    let mut mounted_here = None;
    let dir = match (&f.state_mounted, &f.state_dev) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(dev)) => {
            let scratch = layout.scratch.as_path();
            let _ = ops.mkdir_p(scratch);
            match ops.mount(
                &dev.display().to_string(),
                scratch,
                "ext4",
                MsFlags::empty(),
                None,
            ) {
                Ok(()) => {
                    mounted_here = Some(scratch.to_path_buf());
                    Some(scratch.to_path_buf())
                }
                Err(e) => {
                    log(&format!("cannot mount STATE to record the failure: {e}"));
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(dir) = &dir {
        let boot = dir.join("boot");
        let line = failure_record(ops.unix_s(), f.slot, &f.reason);
        let r = ops
            .mkdir_p(&boot)
            .and_then(|_| ops.append_line(&boot.join("failures.jsonl"), &line));
        if let Err(e) = r {
            log(&format!("cannot record the failure on STATE: {e}"));
        }
    }
    ops.sync();
    if let Some(m) = &f.state_mounted {
        let _ = ops.umount(m);
    }
    if let Some(m) = mounted_here {
        let _ = ops.umount(&m);
    }
    ops.sync();
    log(&format!("rebooting in {}s", FAILURE_REBOOT_DELAY_MS / 1000));
    ops.pause_ms(FAILURE_REBOOT_DELAY_MS);
    ops.reboot()
}

/// The whole of stage 1. Never returns.
pub fn run(ops: &mut dyn Stage1Ops) -> ! {
    mount_early(ops);
    let _ = crate::console::setup(Path::new("/dev/console"));
    crate::log::init(Path::new("/dev/console"), true);
    log("stage 1");
    let layout = Layout::default();
    let failure = match prepare(ops, &layout) {
        Ok(init) => {
            let slot = ops
                .read_file(Path::new("/proc/cmdline"))
                .ok()
                .and_then(|c| KernelCmdline::parse(&c).slot().ok());
            let letter = slot.map(Slot::as_str).unwrap_or("?");
            log(&format!("switching root to slot {letter}"));
            let e = ops.switch_root(&layout.newroot, &init);
            Failure {
                reason: format!("switch_root to {init} failed: {e}"),
                slot,
                state_dev: None,
                state_mounted: None,
            }
        }
        Err(f) => f,
    };
    let e = fail_and_reboot(ops, &failure, &layout);
    log(&format!("reboot(2) failed: {e}"));
    loop {
        ops.pause_ms(60_000);
    }
}

/// Resolves `path` inside `root`, following symlinks as if `root` were `/`.
pub fn resolve_in_root(root: &Path, path: &str) -> io::Result<PathBuf> {
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        let candidate = cur.join(&c);
        let full = root.join(&candidate);
        let meta = std::fs::symlink_metadata(&full)?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(io::Error::other(format!("{path}: too many symlinks")));
            }
            let target = std::fs::read_link(&full)?;
            if target.is_absolute() {
                cur = PathBuf::new();
            }
            let parts: Vec<String> = target
                .components()
                .filter_map(|comp| match comp {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    Component::ParentDir => Some("..".into()),
                    _ => None,
                })
                .collect();
            pending.extend(parts.into_iter().rev());
        } else {
            cur = candidate;
        }
    }
    Ok(root.join(cur))
}

/// The real check: regular file, executable, and its first bytes readable (ELF or `#!`),
/// which catches a squashfs that mounts but whose data is corrupt.
pub fn check_init_real(root: &Path, init: &str) -> Result<(), String> {
    let p = resolve_in_root(root, init).map_err(|e| format!("{init}: {e}"))?;
    let meta = std::fs::metadata(&p).map_err(|e| format!("{init}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{init}: not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{init}: not executable"));
    }
    let mut head = [0u8; 4];
    std::fs::File::open(&p)
        .and_then(|mut f| f.read_exact(&mut head))
        .map_err(|e| format!("{init}: cannot read: {e}"))?;
    if &head != b"\x7fELF" && &head[..2] != b"#!" {
        return Err(format!("{init}: not an executable format"));
    }
    Ok(())
}

/// Deletes everything under `dir` that lives on device `dev` (the initramfs), without
/// crossing into other mounts.
pub fn delete_tree(dir: &Path, dev: u64) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.dev() != dev {
            continue;
        }
        if m.is_dir() {
            let _ = delete_tree(&p, dev);
            let _ = std::fs::remove_dir(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    Ok(())
}

/// The real operations.
#[derive(Debug, Default)]
pub struct RealStage1Ops;

impl Stage1Ops for RealStage1Ops {
    fn mkdir_p(&mut self, p: &Path) -> io::Result<()> {
        std::fs::create_dir_all(p)
    }
    fn mount(
        &mut self,
        src: &str,
        target: &Path,
        fstype: &str,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(Some(src), target, Some(fstype), flags, data).map_err(io::Error::from)
    }
    fn umount(&mut self, target: &Path) -> io::Result<()> {
        nix::mount::umount(target).map_err(io::Error::from)
    }
    fn read_file(&mut self, p: &Path) -> io::Result<String> {
        std::fs::read_to_string(p)
    }
    fn load_module(&mut self, path: &Path) -> io::Result<()> {
        let f = std::fs::File::open(path)?;
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
            Err(e) => Err(io::Error::from(e)),
        }
    }
    fn partitions(&mut self) -> BTreeMap<String, String> {
        blockdev::partitions(Path::new("/sys/class/block"))
    }
    fn is_blank(&mut self, dev: &Path) -> io::Result<bool> {
        blockdev::is_blank(dev)
    }
    fn mke2fs(&mut self, dev: &Path) -> io::Result<()> {
        let out = std::process::Command::new("/sbin/mke2fs")
            .args(["-t", "ext4", "-F", "-L", STATE_LABEL, "-q"])
            .arg(dev)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "mke2fs {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
    fn check_init(&mut self, root: &Path, init: &str) -> Result<(), String> {
        check_init_real(root, init)
    }
    fn append_line(&mut self, file: &Path, line: &str) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)?;
        f.write_all(format!("{line}\n").as_bytes())?;
        f.sync_all()?;
        if let Some(dir) = file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
    fn now_ms(&mut self) -> u64 {
        crate::clock::now().mono_ms
    }
    fn unix_s(&mut self) -> u64 {
        crate::clock::now().unix_s
    }
    fn pause_ms(&mut self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    fn sync(&mut self) {
        nix::unistd::sync();
    }
    fn reboot(&mut self) -> io::Error {
        match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
            Ok(never) => match never {},
            Err(e) => io::Error::from(e),
        }
    }
    fn switch_root(&mut self, newroot: &Path, init: &str) -> io::Error {
        match switch_root_real(newroot, init) {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }
}

fn switch_root_real(newroot: &Path, init: &str) -> io::Result<std::convert::Infallible> {
    use nix::mount::mount;
    use std::os::unix::process::CommandExt;
    for d in ["dev", "proc", "sys"] {
        let target = newroot.join(d);
        mount(
            Some(Path::new("/").join(d).as_path()),
            &target,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        )
        .map_err(|e| io::Error::other(format!("move /{d} to {}: {e}", target.display())))?;
    }
    std::env::set_current_dir(newroot)?;
    let root_dev = std::fs::metadata("/")?.dev();
    let _ = delete_tree(Path::new("/"), root_dev);
    mount(
        Some(newroot),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(|e| io::Error::other(format!("move {} to /: {e}", newroot.display())))?;
    nix::unistd::chroot(".").map_err(|e| io::Error::other(format!("chroot: {e}")))?;
    std::env::set_current_dir("/")?;
    let e = std::process::Command::new(init).exec();
    Err(io::Error::other(format!("exec {init}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Default)]
    struct Rec {
        calls: Vec<String>,
        files: BTreeMap<PathBuf, String>,
        parts: Vec<BTreeMap<String, String>>,
        blank: bool,
        fail_mount: BTreeSet<PathBuf>,
        bad_init: bool,
        t: u64,
        appended: Vec<(PathBuf, String)>,
    }

    impl Stage1Ops for Rec {
        fn mkdir_p(&mut self, _p: &Path) -> io::Result<()> {
            Ok(())
        }
        fn mount(
            &mut self,
            src: &str,
            target: &Path,
            fs: &str,
            _f: MsFlags,
            _d: Option<&str>,
        ) -> io::Result<()> {
            self.calls
                .push(format!("mount {fs} {src} {}", target.display()));
            if self.fail_mount.contains(target) {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            Ok(())
        }
        fn umount(&mut self, t: &Path) -> io::Result<()> {
            self.calls.push(format!("umount {}", t.display()));
            Ok(())
        }
        fn read_file(&mut self, p: &Path) -> io::Result<String> {
            self.files
                .get(p)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn load_module(&mut self, p: &Path) -> io::Result<()> {
            self.calls.push(format!("insmod {}", p.display()));
            Ok(())
        }
        fn partitions(&mut self) -> BTreeMap<String, String> {
            if self.parts.len() > 1 {
                self.parts.remove(0)
            } else {
                self.parts.first().cloned().unwrap_or_default()
            }
        }
        fn is_blank(&mut self, _d: &Path) -> io::Result<bool> {
            Ok(self.blank)
        }
        fn mke2fs(&mut self, d: &Path) -> io::Result<()> {
            self.calls.push(format!("mke2fs {}", d.display()));
            Ok(())
        }
        fn check_init(&mut self, _r: &Path, init: &str) -> Result<(), String> {
            if self.bad_init {
                Err(format!("{init}: cannot read: Input/output error"))
            } else {
                Ok(())
            }
        }
        fn append_line(&mut self, f: &Path, l: &str) -> io::Result<()> {
            self.appended.push((f.to_path_buf(), l.to_string()));
            Ok(())
        }
        fn now_ms(&mut self) -> u64 {
            self.t
        }
        fn unix_s(&mut self) -> u64 {
            1_800_000_000
        }
        fn pause_ms(&mut self, ms: u64) {
            self.t += ms;
        }
        fn sync(&mut self) {
            self.calls.push("sync".into());
        }
        fn reboot(&mut self) -> io::Error {
            self.calls.push("reboot".into());
            io::Error::other("test")
        }
        fn switch_root(&mut self, _n: &Path, init: &str) -> io::Error {
            self.calls.push(format!("switch_root {init}"));
            io::Error::other("test")
        }
    }

    fn rec(cmdline: &str) -> Rec {
        let mut r = Rec::default();
        r.files.insert("/proc/cmdline".into(), cmdline.into());
        r.parts.push(
            [
                ("cairn-root-a", "vda2"),
                ("cairn-root-b", "vda3"),
                ("cairn-state", "vda4"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
        );
        r
    }

    #[test]
    fn happy_path_mounts_root_then_state() {
        let mut r = rec("quiet cairn.slot=b");
        r.files
            .insert("/etc/cairn/initrd-modules".into(), "ext4\n".into());
        r.files.insert(
            "/proc/sys/kernel/osrelease".into(),
            "6.1.0-13-amd64\n".into(),
        );
        r.files.insert(
            "/lib/modules/6.1.0-13-amd64/modules.dep".into(),
            "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\n".into(),
        );
        let init = prepare(&mut r, &Layout::default()).unwrap();
        assert_eq!(init, "/sbin/init");
        assert_eq!(
            r.calls,
            vec![
                "insmod /lib/modules/6.1.0-13-amd64/kernel/fs/jbd2/jbd2.ko",
                "insmod /lib/modules/6.1.0-13-amd64/kernel/fs/ext4/ext4.ko",
                "mount squashfs /dev/vda3 /newroot",
                "mount ext4 /dev/vda4 /newroot/state",
            ]
        );
    }

    #[test]
    fn blank_state_is_formatted_and_custom_init() {
        let mut r = rec("cairn.slot=a cairn.init=/lib/systemd/systemd");
        r.blank = true;
        assert_eq!(
            prepare(&mut r, &Layout::default()).unwrap(),
            "/lib/systemd/systemd"
        );
        assert_eq!(r.calls[0], "mke2fs /dev/vda4");
    }

    #[test]
    fn missing_slot_fails_without_state() {
        let mut r = rec("quiet");
        let f = prepare(&mut r, &Layout::default()).unwrap_err();
        assert_eq!(f.reason, "cairn.slot missing from the kernel command line");
        assert_eq!(f.slot, None);
        fail_and_reboot(&mut r, &f, &Layout::default());
        assert!(r.appended.is_empty());
        assert_eq!(r.calls.last().unwrap(), "reboot");
        assert_eq!(r.t, FAILURE_REBOOT_DELAY_MS);
    }

    #[test]
    fn missing_root_partition_times_out_and_is_recorded() {
        let mut r = rec("cairn.slot=b");
        r.parts = vec![[("cairn-state".to_string(), "vda4".to_string())]
            .into_iter()
            .collect()];
        let f = prepare(&mut r, &Layout::default()).unwrap_err();
        assert_eq!(f.reason, "partition cairn-root-b not found within 10s");
        assert!(r.t >= PARTITION_DEADLINE_MS && r.t < PARTITION_DEADLINE_MS + 200);
        fail_and_reboot(&mut r, &f, &Layout::default());
        assert_eq!(
            r.appended,
            vec![(
                PathBuf::from("/state-scratch/boot/failures.jsonl"),
                "{\"reason\":\"partition cairn-root-b not found within 10s\",\"slot\":\"b\",\"time\":1800000000}"
                    .to_string()
            )]
        );
        let i = r
            .calls
            .iter()
            .position(|c| c == "mount ext4 /dev/vda4 /state-scratch")
            .unwrap();
        assert!(r.calls[i..].contains(&"umount /state-scratch".to_string()));
    }

    #[test]
    fn partitions_appearing_late_are_found() {
        let mut r = rec("cairn.slot=a");
        let full = r.parts[0].clone();
        r.parts = vec![BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), full];
        prepare(&mut r, &Layout::default()).unwrap();
        assert_eq!(r.t, 3 * PARTITION_POLL_MS);
    }

    #[test]
    fn no_state_partition_boots_after_grace() {
        let mut r = rec("cairn.slot=a");
        r.parts = vec![[("cairn-root-a".to_string(), "vda2".to_string())]
            .into_iter()
            .collect()];
        prepare(&mut r, &Layout::default()).unwrap();
        assert_eq!(r.calls, vec!["mount squashfs /dev/vda2 /newroot"]);
        assert!(r.t >= STATE_GRACE_MS && r.t < PARTITION_DEADLINE_MS);
    }

    #[test]
    fn corrupt_root_is_caught_and_recorded_on_scratch() {
        let mut r = rec("cairn.slot=b");
        r.bad_init = true;
        let f = prepare(&mut r, &Layout::default()).unwrap_err();
        assert!(
            f.reason
                .starts_with("root of slot b is unusable: /sbin/init"),
            "{}",
            f.reason
        );
        assert_eq!(f.state_mounted, None);
        fail_and_reboot(&mut r, &f, &Layout::default());
        assert_eq!(
            r.appended[0].0,
            PathBuf::from("/state-scratch/boot/failures.jsonl")
        );
        assert!(r.calls.contains(&"umount /newroot".to_string()));
    }

    #[test]
    fn root_mount_failure_is_recorded() {
        let mut r = rec("cairn.slot=b");
        r.fail_mount.insert("/newroot".into());
        let f = prepare(&mut r, &Layout::default()).unwrap_err();
        assert!(
            f.reason
                .starts_with("cannot mount cairn-root-b (/dev/vda3) as squashfs"),
            "{}",
            f.reason
        );
        fail_and_reboot(&mut r, &f, &Layout::default());
        assert_eq!(r.appended.len(), 1);
    }

    #[test]
    fn record_json() {
        assert_eq!(
            failure_record(5, Some(Slot::B), "x \"y\""),
            "{\"reason\":\"x \\\"y\\\"\",\"slot\":\"b\",\"time\":5}"
        );
        assert_eq!(
            failure_record(5, None, "r"),
            "{\"reason\":\"r\",\"slot\":null,\"time\":5}"
        );
    }

    #[test]
    fn resolve_and_check_init_in_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::write(root.join("usr/sbin/cairn-init"), b"\x7fELF....").unwrap();
        std::fs::set_permissions(
            root.join("usr/sbin/cairn-init"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::os::unix::fs::symlink("/usr/sbin/cairn-init", root.join("sbin/init")).unwrap();
        std::os::unix::fs::symlink("../usr/sbin/cairn-init", root.join("sbin/rel")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/sbin/init").unwrap(),
            root.join("usr/sbin/cairn-init")
        );
        assert_eq!(
            resolve_in_root(root, "/sbin/rel").unwrap(),
            root.join("usr/sbin/cairn-init")
        );
        assert!(check_init_real(root, "/sbin/init").is_ok());
        std::fs::write(root.join("sbin/text"), b"hello").unwrap();
        std::fs::set_permissions(
            root.join("sbin/text"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert!(check_init_real(root, "/sbin/text")
            .unwrap_err()
            .contains("not an executable format"));
        std::fs::write(root.join("sbin/noexec"), b"#!/bin/sh").unwrap();
        std::fs::set_permissions(
            root.join("sbin/noexec"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert!(check_init_real(root, "/sbin/noexec")
            .unwrap_err()
            .contains("not executable"));
        assert!(check_init_real(root, "/sbin/missing").is_err());
        std::os::unix::fs::symlink("loop2", root.join("sbin/loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", root.join("sbin/loop2")).unwrap();
        assert!(check_init_real(root, "/sbin/loop1")
            .unwrap_err()
            .contains("too many symlinks"));
    }

    #[test]
    fn delete_tree_empties_same_device() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), "x").unwrap();
        std::fs::write(d.path().join("g"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        let dev = std::fs::metadata(d.path()).unwrap().dev();
        delete_tree(d.path(), dev).unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        assert!(Path::new("/etc/hostname").exists() || Path::new("/etc").exists());
    }
}
