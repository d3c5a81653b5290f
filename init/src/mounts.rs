//! The stage 2 mount table (tolerant of already-mounted targets) and the unmount at shutdown.

use nix::mount::MsFlags;
use std::io;
use std::path::{Path, PathBuf};

/// One mount of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub source: String,
    pub target: PathBuf,
    pub fstype: String,
    pub flags: MsFlags,
    pub data: Option<String>,
}

fn spec(source: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>) -> MountSpec {
    MountSpec {
        source: source.into(),
        target: target.into(),
        fstype: fstype.into(),
        flags,
        data: data.map(String::from),
    }
}

/// The table, in order (DESIGN/contract: proc, sysfs, devtmpfs, devpts, /dev/shm, /run,
/// cgroup2, /tmp; /state and /var are handled by `apply_state`). `efi` adds efivarfs
/// (the machine booted through UEFI: `/sys/firmware/efi` exists), which cairnd needs to
/// read systemd-boot's boot-counting variables and bless the boot.
pub fn table(efi: bool) -> Vec<MountSpec> {
    let ns = MsFlags::MS_NOSUID;
    let nsd = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let nsde = nsd | MsFlags::MS_NOEXEC;
    let mut table = vec![
        spec("proc", "/proc", "proc", nsde, None),
        spec("sysfs", "/sys", "sysfs", nsde, None),
        spec("devtmpfs", "/dev", "devtmpfs", ns, Some("mode=0755")),
        spec(
            "devpts",
            "/dev/pts",
            "devpts",
            ns | MsFlags::MS_NOEXEC,
            Some("gid=5,mode=620,ptmxmode=000"),
        ),
        spec("tmpfs", "/dev/shm", "tmpfs", nsd, Some("mode=1777")),
        spec("tmpfs", "/run", "tmpfs", nsd, Some("mode=0755")),
        spec(
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            nsde,
            Some("nsdelegate"),
        ),
        spec("tmpfs", "/tmp", "tmpfs", nsd, Some("mode=1777")),
    ];
    if efi {
        table.push(spec(
            "efivarfs",
            "/sys/firmware/efi/efivars",
            "efivarfs",
            nsde,
            None,
        ));
    }
    table
}

/// Whether the running system booted through UEFI (checked after /sys is mounted).
pub fn booted_with_efi() -> bool {
    Path::new("/sys/firmware/efi").is_dir()
}

/// Mount syscalls and the checks around them.
pub trait MountOps {
    /// Mount points in mount order.
    fn mountpoints(&mut self) -> Vec<PathBuf>;
    fn is_mountpoint(&mut self, target: &Path) -> bool {
        self.mountpoints().iter().any(|p| p == target)
    }
    fn mkdir_p(&mut self, path: &Path) -> io::Result<()>;
    fn mount(&mut self, m: &MountSpec) -> io::Result<()>;
    fn umount(&mut self, target: &Path) -> io::Result<()>;
    fn remount_ro(&mut self, target: &Path) -> io::Result<()>;
}

/// Mount points listed in a mountinfo text (octal escapes decoded).
pub fn mountpoints(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Applies the table; returns one message per problem (the rest still gets mounted).
pub fn apply(ops: &mut dyn MountOps, table: &[MountSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    for m in table {
        if ops.is_mountpoint(&m.target) {
            continue;
        }
        if let Err(e) = ops.mkdir_p(&m.target) {
            problems.push(format!(
                "{}: cannot create mount point: {e}",
                m.target.display()
            ));
            continue;
        }
        if let Err(e) = ops.mount(m) {
            if e.raw_os_error() != Some(libc::EBUSY) {
                problems.push(format!(
                    "cannot mount {} ({}) on {}: {e}",
                    m.source,
                    m.fstype,
                    m.target.display()
                ));
            }
        }
    }
    problems
}

/// /state (mounted by stage 1, only checked) and /var (bind of /state/var, created if
/// missing; a tmpfs when STATE is unavailable so services can still write).
pub fn apply_state(ops: &mut dyn MountOps, state: &Path, var: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    if ops.is_mountpoint(var) {
        return problems;
    }
    if ops.is_mountpoint(state) {
        let src = state.join("var");
        let bind = MountSpec {
            source: src.display().to_string(),
            target: var.to_path_buf(),
            fstype: String::new(),
            flags: MsFlags::MS_BIND,
            data: None,
        };
        match ops.mkdir_p(&src).and_then(|_| ops.mount(&bind)) {
            Ok(()) => return problems,
            Err(e) => problems.push(format!(
                "cannot bind {} on {}: {e}",
                src.display(),
                var.display()
            )),
        }
    } else {
        problems.push(format!(
            "{} is not mounted (no STATE partition): {} is volatile",
            state.display(),
            var.display()
        ));
    }
    let tmp = spec(
        "tmpfs",
        "",
        "tmpfs",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    );
    let tmp = MountSpec {
        target: var.to_path_buf(),
        ..tmp
    };
    if let Err(e) = ops.mount(&tmp) {
        problems.push(format!("cannot mount tmpfs on {}: {e}", var.display()));
    }
    problems
}

/// Whether a mount point is left alone at shutdown (API and volatile file systems).
fn keep_at_shutdown(p: &Path) -> bool {
    p == Path::new("/")
        || p == Path::new("/run")
        || p == Path::new("/tmp")
        || ["/proc", "/sys", "/dev"].iter().any(|a| p.starts_with(a))
}

/// Shutdown: unmounts every real mount (STATE, /var, the ESP, pools…) in reverse mount
/// order; one that stays busy is remounted read-only so its file system is clean.
/// Returns problems.
pub fn unmount_for_shutdown(ops: &mut dyn MountOps) -> Vec<String> {
    let mut problems = Vec::new();
    let points: Vec<PathBuf> = ops
        .mountpoints()
        .into_iter()
        .rev()
        .filter(|p| !keep_at_shutdown(p))
        .collect();
    for p in points {
        if let Err(e) = ops.umount(&p) {
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOENT) {
                continue; // already gone with a parent (stacked mounts)
            }
            problems.push(format!(
                "cannot unmount {}: {e}; remounting read-only",
                p.display()
            ));
            if let Err(e) = ops.remount_ro(&p) {
                problems.push(format!("cannot remount {} read-only: {e}", p.display()));
            }
        }
    }
    problems
}

/// The real implementation.
#[derive(Debug, Default)]
pub struct RealMountOps;

impl MountOps for RealMountOps {
    fn mountpoints(&mut self) -> Vec<PathBuf> {
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|t| mountpoints(&t))
            .unwrap_or_default()
    }
    fn mkdir_p(&mut self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn mount(&mut self, m: &MountSpec) -> io::Result<()> {
        let fstype = if m.fstype.is_empty() {
            None
        } else {
            Some(m.fstype.as_str())
        };
        nix::mount::mount(
            Some(m.source.as_str()),
            &m.target,
            fstype,
            m.flags,
            m.data.as_deref(),
        )
        .map_err(io::Error::from)
    }
    fn umount(&mut self, target: &Path) -> io::Result<()> {
        nix::mount::umount(target).map_err(io::Error::from)
    }
    fn remount_ro(&mut self, target: &Path) -> io::Result<()> {
        nix::mount::mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Default)]
    struct Rec {
        order: Vec<PathBuf>,
        mounted: BTreeSet<PathBuf>,
        calls: Vec<String>,
        fail: BTreeSet<PathBuf>,
        busy: BTreeSet<PathBuf>,
    }

    impl MountOps for Rec {
        fn mountpoints(&mut self) -> Vec<PathBuf> {
            self.order
                .iter()
                .filter(|p| self.mounted.contains(*p))
                .cloned()
                .collect()
        }
        fn is_mountpoint(&mut self, t: &Path) -> bool {
            self.mounted.contains(t)
        }
        fn mkdir_p(&mut self, p: &Path) -> io::Result<()> {
            self.calls.push(format!("mkdir {}", p.display()));
            Ok(())
        }
        fn mount(&mut self, m: &MountSpec) -> io::Result<()> {
            self.calls.push(format!(
                "mount {} {} {}",
                m.fstype,
                m.source,
                m.target.display()
            ));
            if self.fail.contains(&m.target) {
                return Err(io::Error::from_raw_os_error(libc::ENODEV));
            }
            self.mounted.insert(m.target.clone());
            Ok(())
        }
        fn umount(&mut self, t: &Path) -> io::Result<()> {
            self.calls.push(format!("umount {}", t.display()));
            if self.busy.contains(t) {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            self.mounted.remove(t);
            Ok(())
        }
        fn remount_ro(&mut self, t: &Path) -> io::Result<()> {
            self.calls.push(format!("remount-ro {}", t.display()));
            Ok(())
        }
    }

    #[test]
    fn table_skips_mounted_and_continues_after_failure() {
        let mut r = Rec::default();
        r.mounted.insert("/proc".into());
        r.mounted.insert("/dev".into());
        r.fail.insert("/sys/fs/cgroup".into());
        let p = apply(&mut r, &table(false));
        let mounts: Vec<&String> = r.calls.iter().filter(|c| c.starts_with("mount")).collect();
        assert_eq!(
            mounts,
            vec![
                "mount sysfs sysfs /sys",
                "mount devpts devpts /dev/pts",
                "mount tmpfs tmpfs /dev/shm",
                "mount tmpfs tmpfs /run",
                "mount cgroup2 cgroup2 /sys/fs/cgroup",
                "mount tmpfs tmpfs /tmp"
            ]
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("/sys/fs/cgroup"), "{p:?}");
    }

    #[test]
    fn var_is_bound_from_state_or_tmpfs() {
        let mut r = Rec::default();
        r.mounted.insert("/state".into());
        assert!(apply_state(&mut r, Path::new("/state"), Path::new("/var")).is_empty());
        assert_eq!(r.calls, vec!["mkdir /state/var", "mount  /state/var /var"]);

        let mut r = Rec::default();
        let p = apply_state(&mut r, Path::new("/state"), Path::new("/var"));
        assert_eq!(r.calls, vec!["mount tmpfs tmpfs /var"]);
        assert!(p[0].contains("volatile"));

        let mut r = Rec::default();
        r.mounted.insert("/var".into());
        assert!(apply_state(&mut r, Path::new("/state"), Path::new("/var")).is_empty());
        assert!(r.calls.is_empty());
    }

    #[test]
    fn shutdown_unmounts_in_reverse_order_and_falls_back_to_readonly() {
        let mut r = Rec::default();
        for p in [
            "/",
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/run",
            "/sys/fs/cgroup",
            "/tmp",
            "/state",
            "/var",
            "/run/cairn/esp",
        ] {
            r.order.push(p.into());
            r.mounted.insert(p.into());
        }
        assert!(unmount_for_shutdown(&mut r).is_empty());
        assert_eq!(
            r.calls,
            vec!["umount /run/cairn/esp", "umount /var", "umount /state"]
        );

        let mut r = Rec::default();
        for p in ["/", "/state", "/var"] {
            r.order.push(p.into());
            r.mounted.insert(p.into());
        }
        r.busy.insert("/state".into());
        let p = unmount_for_shutdown(&mut r);
        assert_eq!(
            r.calls,
            vec!["umount /var", "umount /state", "remount-ro /state"]
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("cannot unmount /state"), "{p:?}");
    }

    #[test]
    fn mountinfo_parsing() {
        let t = "22 1 0:21 / / ro,relatime - squashfs /dev/vda2 ro\n\
                 30 22 8:4 / /state rw - ext4 /dev/vda4 rw\n\
                 31 22 8:4 /var /my\\040dir rw - ext4 /dev/vda4 rw\n";
        assert_eq!(
            mountpoints(t),
            vec![PathBuf::from("/"), "/state".into(), "/my dir".into()]
        );
    }

    #[test]
    fn efi_adds_efivarfs_last() {
        assert!(table(false).iter().all(|m| m.fstype != "efivarfs"));
        let t = table(true);
        let last = t.last().expect("table is not empty");
        assert_eq!(last.fstype, "efivarfs");
        assert_eq!(last.target, Path::new("/sys/firmware/efi/efivars"));
        assert_eq!(t.len(), table(false).len() + 1);
    }
}
