//! Stage 1 against real file systems: squashfs root and STATE on loop devices, mounted in a
//! private mount namespace of the test thread. Only partition discovery, the kernel command
//! line, the reboot and the pauses are replaced (the host kernel cannot scan GPT on loop
//! devices). Needs root, losetup, mksquashfs and /sbin/mke2fs; otherwise prints SKIP.

use cairn_init::stage1::{fail_and_reboot, prepare, Layout, RealStage1Ops, Stage1Ops};
use nix::mount::MsFlags;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Command;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for tool in ["/usr/sbin/losetup", "/usr/bin/mksquashfs", "/sbin/mke2fs"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} not installed"));
        }
    }
    let ok = std::fs::read_to_string("/proc/filesystems")
        .map(|f| f.contains("squashfs") && f.contains("ext4"))
        .unwrap_or(false);
    if !ok {
        return Some("kernel lacks squashfs or ext4".into());
    }
    None
}

macro_rules! require_env {
    ($name:expr) => {
        if let Some(why) = skip_reason() {
            println!("SKIP {}: {why}", $name);
            return;
        }
    };
}

/// Gives this test thread its own mount namespace so nothing leaks to the host.
fn private_mounts() {
    // SAFETY: unshare(CLONE_NEWNS) affects only the calling thread's mount namespace.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(r, 0, "unshare(CLONE_NEWNS): {}", io::Error::last_os_error());
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
}

struct Loop(String);

impl Loop {
    fn attach(file: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
    fn name(&self) -> String {
        self.0.trim_start_matches("/dev/").to_string()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

struct TestOps {
    real: RealStage1Ops,
    cmdline: String,
    parts: BTreeMap<String, String>,
    reboots: u32,
}

impl Stage1Ops for TestOps {
    fn mkdir_p(&mut self, p: &Path) -> io::Result<()> {
        self.real.mkdir_p(p)
    }
    fn mount(
        &mut self,
        s: &str,
        t: &Path,
        fs: &str,
        f: MsFlags,
        d: Option<&str>,
    ) -> io::Result<()> {
        self.real.mount(s, t, fs, f, d)
    }
    fn umount(&mut self, t: &Path) -> io::Result<()> {
        self.real.umount(t)
    }
    fn read_file(&mut self, p: &Path) -> io::Result<String> {
        if p == Path::new("/proc/cmdline") {
            return Ok(self.cmdline.clone());
        }
        if p == Path::new("/etc/cairn/initrd-modules") {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        self.real.read_file(p)
    }
    fn load_module(&mut self, p: &Path) -> io::Result<()> {
        panic!("no modules expected, got {}", p.display())
    }
    fn partitions(&mut self) -> BTreeMap<String, String> {
        self.parts.clone()
    }
    fn is_blank(&mut self, d: &Path) -> io::Result<bool> {
        self.real.is_blank(d)
    }
    fn mke2fs(&mut self, d: &Path) -> io::Result<()> {
        self.real.mke2fs(d)
    }
    fn check_init(&mut self, r: &Path, i: &str) -> Result<(), String> {
        self.real.check_init(r, i)
    }
    fn append_line(&mut self, f: &Path, l: &str) -> io::Result<()> {
        self.real.append_line(f, l)
    }
    fn now_ms(&mut self) -> u64 {
        self.real.now_ms()
    }
    fn unix_s(&mut self) -> u64 {
        self.real.unix_s()
    }
    fn pause_ms(&mut self, _ms: u64) {}
    fn sync(&mut self) {
        self.real.sync()
    }
    fn reboot(&mut self) -> io::Error {
        self.reboots += 1;
        io::Error::other("reboot is not performed in tests")
    }
    fn switch_root(&mut self, _n: &Path, _i: &str) -> io::Error {
        panic!("switch_root must not be called by prepare")
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    root: Loop,
    state: Loop,
}

impl Fixture {
    /// `root_content`: Some(with_init) builds a squashfs; None writes garbage.
    fn new(root_content: Option<bool>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sbin")).unwrap();
        std::fs::create_dir_all(tree.join("state")).unwrap();
        let root_img = dir.path().join("root.img");
        match root_content {
            Some(with_init) => {
                if with_init {
                    std::fs::copy("/bin/true", tree.join("usr-init")).unwrap();
                    std::os::unix::fs::symlink("/usr-init", tree.join("sbin/init")).unwrap();
                }
                let st = Command::new("mksquashfs")
                    .arg(&tree)
                    .arg(&root_img)
                    .args(["-noappend", "-quiet", "-no-progress"])
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            None => {
                let garbage: Vec<u8> = (0..4 * 1024 * 1024u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13).to_le_bytes()[0])
                    .collect();
                std::fs::write(&root_img, garbage).unwrap();
            }
        }
        let state_img = dir.path().join("state.img");
        std::fs::write(&state_img, vec![0u8; 32 * 1024 * 1024]).unwrap();
        let root = Loop::attach(&root_img);
        let state = Loop::attach(&state_img);
        Fixture { dir, root, state }
    }

    fn ops(&self, slot: &str) -> TestOps {
        let mut parts = BTreeMap::new();
        parts.insert(format!("cairn-root-{slot}"), self.root.name());
        parts.insert("cairn-state".to_string(), self.state.name());
        TestOps {
            real: RealStage1Ops,
            cmdline: format!("quiet cairn.slot={slot}"),
            parts,
            reboots: 0,
        }
    }

    fn layout(&self) -> Layout {
        Layout {
            newroot: self.dir.path().join("newroot"),
            scratch: self.dir.path().join("scratch"),
        }
    }

    fn read_state(&self, file: &str) -> Option<String> {
        let m = self.dir.path().join("check");
        std::fs::create_dir_all(&m).unwrap();
        nix::mount::mount(
            Some(self.state.0.as_str()),
            &m,
            Some("ext4"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        let r = std::fs::read_to_string(m.join(file)).ok();
        nix::mount::umount(&m).unwrap();
        r
    }
}

#[test]
fn blank_state_is_formatted_once_and_root_mounted() {
    require_env!("blank_state_is_formatted_once_and_root_mounted");
    let handle = std::thread::spawn(|| {
        private_mounts();
        let fx = Fixture::new(Some(true));
        let layout = fx.layout();
        let mut ops = fx.ops("a");
        let init = prepare(&mut ops, &layout).unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(init, "/sbin/init");
        assert!(layout.newroot.join("usr-init").exists());
        let marker = layout.newroot.join("state/marker");
        std::fs::write(&marker, "kept").unwrap();
        nix::mount::umount(&layout.newroot.join("state")).unwrap();
        nix::mount::umount(&layout.newroot).unwrap();
        // Second boot: STATE has data now and must not be formatted again.
        let mut ops = fx.ops("a");
        prepare(&mut ops, &layout).unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "kept");
        nix::mount::umount(&layout.newroot.join("state")).unwrap();
        nix::mount::umount(&layout.newroot).unwrap();
        let label = Command::new("blkid")
            .args(["-s", "LABEL", "-o", "value", &fx.state.0])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "cairn-state");
    });
    handle.join().unwrap();
}

#[test]
fn corrupt_root_fails_and_is_recorded_on_state() {
    require_env!("corrupt_root_fails_and_is_recorded_on_state");
    let handle = std::thread::spawn(|| {
        private_mounts();
        let fx = Fixture::new(None);
        let layout = fx.layout();
        let mut ops = fx.ops("b");
        let f = prepare(&mut ops, &layout).unwrap_err();
        assert!(
            f.reason.starts_with("cannot mount cairn-root-b"),
            "{}",
            f.reason
        );
        fail_and_reboot(&mut ops, &f, &layout);
        assert_eq!(ops.reboots, 1);
        let rec = fx
            .read_state("boot/failures.jsonl")
            .expect("failure recorded");
        let v: serde_json::Value = serde_json::from_str(rec.trim()).unwrap();
        assert_eq!(v["slot"], "b");
        assert!(v["reason"]
            .as_str()
            .unwrap()
            .starts_with("cannot mount cairn-root-b"));
        assert!(v["time"].as_u64().unwrap() > 1_600_000_000);
    });
    handle.join().unwrap();
}

#[test]
fn root_without_init_is_unusable() {
    require_env!("root_without_init_is_unusable");
    let handle = std::thread::spawn(|| {
        private_mounts();
        let fx = Fixture::new(Some(false));
        let layout = fx.layout();
        let mut ops = fx.ops("a");
        let f = prepare(&mut ops, &layout).unwrap_err();
        assert!(
            f.reason
                .starts_with("root of slot a is unusable: /sbin/init"),
            "{}",
            f.reason
        );
        fail_and_reboot(&mut ops, &f, &layout);
        let rec = fx
            .read_state("boot/failures.jsonl")
            .expect("failure recorded");
        assert!(rec.contains("\"slot\":\"a\""), "{rec}");
    });
    handle.join().unwrap();
}
