//! Finding and mounting the ESP (`PARTLABEL=cairn-esp`) at `/run/cairn/esp`.

use std::io;
use std::path::{Path, PathBuf};

/// GPT partition label of the ESP.
pub const ESP_PARTLABEL: &str = "cairn-esp";
/// Where cairnd mounts the ESP.
pub const DEFAULT_ESP_MOUNT: &str = "/run/cairn/esp";
/// Where block devices are listed in sysfs.
pub const DEFAULT_SYS_CLASS_BLOCK: &str = "/sys/class/block";

/// The system calls and files ESP mounting needs, behind a trait for tests.
pub trait Mounter {
    /// Contents of `/proc/self/mountinfo`.
    fn mountinfo(&self) -> io::Result<String>;
    /// The `/dev` node of the partition with this GPT label, if any.
    fn find_partition(&self, label: &str) -> io::Result<Option<PathBuf>>;
    /// mkdir -p.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// mount(2) a vfat filesystem read-write.
    fn mount_vfat(&self, device: &Path, target: &Path) -> io::Result<()>;
}

/// The real system: sysfs for partitions, mount(2) through nix.
#[derive(Debug, Clone)]
pub struct RealMounter {
    pub sys_class_block: PathBuf,
}

impl Default for RealMounter {
    fn default() -> Self {
        RealMounter {
            sys_class_block: PathBuf::from(DEFAULT_SYS_CLASS_BLOCK),
        }
    }
}

impl Mounter for RealMounter {
    fn mountinfo(&self) -> io::Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
    }
    fn find_partition(&self, label: &str) -> io::Result<Option<PathBuf>> {
        find_partition(&self.sys_class_block, label)
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn mount_vfat(&self, device: &Path, target: &Path) -> io::Result<()> {
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some(device),
            target,
            Some("vfat"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("umask=0077"),
        )
        .map_err(io::Error::from)
    }
}

/// Why the ESP could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("cannot read the mount table")]
    MountInfo(#[source] io::Error),
    #[error("cannot look for partition {0} in sysfs")]
    Find(String, #[source] io::Error),
    #[error("no partition labelled {0} found")]
    NotFound(String),
    #[error("cannot create mount point {0}")]
    MountPoint(PathBuf, #[source] io::Error),
    #[error("cannot mount {0} (vfat) at {1}")]
    Mount(PathBuf, PathBuf, #[source] io::Error),
}

/// What [`ensure_mounted`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    AlreadyMounted,
    Mounted { device: PathBuf },
}

/// Mount the partition labelled `label` at `target` unless something is mounted there.
pub fn ensure_mounted(
    label: &str,
    target: &Path,
    m: &dyn Mounter,
) -> Result<MountOutcome, EspError> {
    let info = m.mountinfo().map_err(EspError::MountInfo)?;
    if is_mountpoint(&info, target) {
        return Ok(MountOutcome::AlreadyMounted);
    }
    let device = m
        .find_partition(label)
        .map_err(|e| EspError::Find(label.to_string(), e))?
        .ok_or_else(|| EspError::NotFound(label.to_string()))?;
    m.create_dir_all(target)
        .map_err(|e| EspError::MountPoint(target.to_path_buf(), e))?;
    m.mount_vfat(&device, target)
        .map_err(|e| EspError::Mount(device.clone(), target.to_path_buf(), e))?;
    Ok(MountOutcome::Mounted { device })
}

/// `DEVNAME` and `PARTNAME` of a sysfs `uevent` file.
pub fn parse_uevent(text: &str) -> (Option<&str>, Option<&str>) {
    let mut dev = None;
    let mut part = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("DEVNAME=") {
            dev = Some(v);
        } else if let Some(v) = line.strip_prefix("PARTNAME=") {
            part = Some(v);
        }
    }
    (dev, part)
}

/// Scan `<sys_class_block>/*/uevent` for `PARTNAME=label`; returns `/dev/DEVNAME`.
pub fn find_partition(sys_class_block: &Path, label: &str) -> io::Result<Option<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(sys_class_block)? {
        let entry = entry?;
        let text = match std::fs::read_to_string(entry.path().join("uevent")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let (Some(dev), Some(part)) = parse_uevent(&text) {
            if part == label {
                found.push(Path::new("/dev").join(dev));
            }
        }
    }
    found.sort();
    Ok(found.into_iter().next())
}

/// Whether `target` is a mount point according to mountinfo text (field 5, octal-escaped).
pub fn is_mountpoint(mountinfo: &str, target: &Path) -> bool {
    let want = target.to_string_lossy();
    let want = want.trim_end_matches('/');
    mountinfo.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .map(|mp| unescape_octal(mp) == want || (want.is_empty() && mp == "/"))
            .unwrap_or(false)
    })
}

fn unescape_octal(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const MOUNTINFO: &str = "\
22 1 0:21 / / ro,relatime - squashfs /dev/sda3 ro
30 22 0:25 / /run rw,nosuid,nodev - tmpfs tmpfs rw
41 30 8:1 / /run/cairn/esp rw,nosuid,nodev,noexec - vfat /dev/sda1 rw
42 30 8:5 / /mnt/with\\040space rw - ext4 /dev/sda5 rw
";

    #[test]
    fn mountpoints_from_mountinfo() {
        assert!(is_mountpoint(MOUNTINFO, Path::new("/run/cairn/esp")));
        assert!(is_mountpoint(MOUNTINFO, Path::new("/run/cairn/esp/")));
        assert!(is_mountpoint(MOUNTINFO, Path::new("/mnt/with space")));
        assert!(is_mountpoint(MOUNTINFO, Path::new("/")));
        assert!(!is_mountpoint(MOUNTINFO, Path::new("/run/cairn")));
    }

    #[test]
    fn uevent_fields() {
        let t = "MAJOR=8\nMINOR=1\nDEVNAME=sda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=cairn-esp\n";
        assert_eq!(parse_uevent(t), (Some("sda1"), Some("cairn-esp")));
        assert_eq!(parse_uevent("DEVNAME=sda\n"), (Some("sda"), None));
    }

    #[test]
    fn finds_partition_in_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        for (name, part) in [
            ("vda", None),
            ("vda1", Some("cairn-esp")),
            ("vda2", Some("cairn-root-a")),
        ] {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            let mut t = format!("DEVNAME={name}\n");
            if let Some(p) = part {
                t.push_str(&format!("PARTNAME={p}\n"));
            }
            std::fs::write(d.join("uevent"), t).unwrap();
        }
        std::fs::create_dir(dir.path().join("no-uevent")).unwrap();
        assert_eq!(
            find_partition(dir.path(), "cairn-esp").unwrap(),
            Some(PathBuf::from("/dev/vda1"))
        );
        assert_eq!(find_partition(dir.path(), "cairn-state").unwrap(), None);
    }

    struct FakeMounter {
        info: String,
        part: Option<PathBuf>,
        log: RefCell<Vec<String>>,
    }

    impl Mounter for FakeMounter {
        fn mountinfo(&self) -> io::Result<String> {
            Ok(self.info.clone())
        }
        fn find_partition(&self, label: &str) -> io::Result<Option<PathBuf>> {
            self.log.borrow_mut().push(format!("find {label}"));
            Ok(self.part.clone())
        }
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("mkdir {}", dir.display()));
            Ok(())
        }
        fn mount_vfat(&self, device: &Path, target: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("mount {} {}", device.display(), target.display()));
            Ok(())
        }
    }

    #[test]
    fn mounts_when_not_mounted() {
        let m = FakeMounter {
            info: MOUNTINFO.lines().take(2).collect::<Vec<_>>().join("\n"),
            part: Some("/dev/vda1".into()),
            log: RefCell::default(),
        };
        let out = ensure_mounted(ESP_PARTLABEL, Path::new(DEFAULT_ESP_MOUNT), &m).unwrap();
        assert_eq!(
            out,
            MountOutcome::Mounted {
                device: "/dev/vda1".into()
            }
        );
        assert_eq!(
            *m.log.borrow(),
            vec![
                "find cairn-esp",
                "mkdir /run/cairn/esp",
                "mount /dev/vda1 /run/cairn/esp"
            ]
        );
    }

    #[test]
    fn already_mounted_does_nothing() {
        let m = FakeMounter {
            info: MOUNTINFO.into(),
            part: None,
            log: RefCell::default(),
        };
        let out = ensure_mounted(ESP_PARTLABEL, Path::new(DEFAULT_ESP_MOUNT), &m).unwrap();
        assert_eq!(out, MountOutcome::AlreadyMounted);
        assert!(m.log.borrow().is_empty());
    }

    #[test]
    fn missing_partition_is_an_error() {
        let m = FakeMounter {
            info: String::new(),
            part: None,
            log: RefCell::default(),
        };
        let err = ensure_mounted(ESP_PARTLABEL, Path::new(DEFAULT_ESP_MOUNT), &m).unwrap_err();
        assert_eq!(err.to_string(), "no partition labelled cairn-esp found");
    }
}
