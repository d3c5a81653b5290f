//! Facts about the node the VM service checks against: bridges, hardware acceleration, files.

use crate::xml::Accelerator;
use std::collections::BTreeSet;
use std::path::Path;

/// What the VM service asks the node (a double in tests).
pub trait Host: Send + Sync {
    /// Names of the bridges that exist.
    fn bridges(&self) -> BTreeSet<String>;
    /// KVM when `/dev/kvm` can be opened, else TCG.
    fn accelerator(&self) -> Accelerator;
    /// Whether a regular file exists (ISO images).
    fn is_file(&self, path: &Path) -> bool;
    /// Whether a path (a disk's block device) exists.
    fn exists(&self, path: &Path) -> bool;
    /// Make this node Primary for replicated disk `resource` (`drbdadm primary`), so QEMU
    /// can open `/dev/drbd<i>`; DRBD refuses while the other copy is Primary. The error is
    /// the reason.
    fn promote(&self, resource: &str) -> Result<(), String>;
}

/// The kernel command-line option that forces the accelerator: `cairn.vm.accel=tcg|kvm`
/// (e.g. where nested virtualization is advertised but not trusted, as in the lab).
pub const ACCEL_OPTION: &str = "cairn.vm.accel";

/// Parse the value of [`ACCEL_OPTION`].
pub fn parse_accel(value: &str) -> Option<Accelerator> {
    match value {
        "kvm" => Some(Accelerator::Kvm),
        "tcg" => Some(Accelerator::Tcg),
        _ => None,
    }
}

/// The real node: `/sys/class/net/*/bridge` and `/dev/kvm`, unless the accelerator is forced.
#[derive(Default)]
pub struct SysHost {
    pub forced: Option<Accelerator>,
}

impl Host for SysHost {
    fn bridges(&self) -> BTreeSet<String> {
        let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
            return BTreeSet::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().join("bridge").is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    fn accelerator(&self) -> Accelerator {
        if let Some(a) = self.forced {
            return a;
        }
        // /dev/kvm exists only where the kernel found VT-x/AMD-V; opening it read-write is
        // what QEMU does, so this is the test QEMU itself would pass.
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
        {
            Ok(_) => Accelerator::Kvm,
            Err(_) => Accelerator::Tcg,
        }
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn promote(&self, resource: &str) -> Result<(), String> {
        use cairn_core::command::{run_ok, Invocation, SystemRunner};
        run_ok(
            &SystemRunner,
            &Invocation::new("drbdadm", ["primary", resource]),
        )
        .map(|_| ())
        .map_err(|e| cairn_core::boot::error_chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accelerator_can_be_forced() {
        assert_eq!(parse_accel("tcg"), Some(Accelerator::Tcg));
        assert_eq!(parse_accel("kvm"), Some(Accelerator::Kvm));
        assert_eq!(parse_accel("xen"), None);
        let h = SysHost {
            forced: Some(Accelerator::Tcg),
        };
        assert_eq!(h.accelerator(), Accelerator::Tcg);
    }
}
