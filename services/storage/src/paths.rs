//! Where the storage domain reads the system: sysfs, udev's database, /dev and /proc (a tempdir in tests).

use std::path::{Path, PathBuf};

/// The roots of the system trees the inventory and the md monitor read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemPaths {
    /// sysfs (`/sys`).
    pub sys: PathBuf,
    /// udev's device database (`/run/udev/data`).
    pub udev_data: PathBuf,
    /// The device directory (`/dev`).
    pub dev: PathBuf,
    /// procfs (`/proc`), for `mounts` and `mdstat`.
    pub proc: PathBuf,
}

impl SystemPaths {
    /// The real system's paths.
    pub fn system() -> SystemPaths {
        SystemPaths {
            sys: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
            dev: PathBuf::from("/dev"),
            proc: PathBuf::from("/proc"),
        }
    }

    /// Paths under one root (`<root>/sys`, `<root>/run/udev/data`, `<root>/dev`, `<root>/proc`),
    /// for tests with a recorded tree.
    pub fn under(root: &Path) -> SystemPaths {
        SystemPaths {
            sys: root.join("sys"),
            udev_data: root.join("run/udev/data"),
            dev: root.join("dev"),
            proc: root.join("proc"),
        }
    }

    /// `/sys/block`.
    pub fn sys_block(&self) -> PathBuf {
        self.sys.join("block")
    }

    /// The device node of kernel name `name` as the tools must see it. Commands always get
    /// the real `/dev/<name>` path: in tests the runner is a recording double and the
    /// tree is only read, never handed to a tool.
    pub fn dev_node(name: &str) -> PathBuf {
        PathBuf::from("/dev").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_a_root_keeps_the_layout() {
        let p = SystemPaths::under(Path::new("/t"));
        assert_eq!(p.sys_block(), PathBuf::from("/t/sys/block"));
        assert_eq!(p.udev_data, PathBuf::from("/t/run/udev/data"));
        assert_eq!(SystemPaths::dev_node("sda"), PathBuf::from("/dev/sda"));
    }
}
