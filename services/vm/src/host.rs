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

    /// At boot a VM may autostart before the cluster's controller brought its resources
    /// up: the resource is brought up from its `.res` file (on STATE) and given up to
    /// [`PROMOTE_CONNECT_WAIT`] to connect, so the peer is not outdated for nothing. The
    /// promotion itself is safe without etcd: with the peer unknown, DRBD asks the
    /// fence-peer handler, which asks etcd and refuses when this node is not the recorded
    /// primary or etcd cannot say (decision 0027).
    fn promote(&self, resource: &str) -> Result<(), String> {
        use cairn_core::command::{run_ok, Invocation, SystemRunner};
        let run = |args: &[&str]| {
            run_ok(
                &SystemRunner,
                &Invocation::new("drbdadm", args.iter().copied()),
            )
            .map(|_| ())
            .map_err(|e| cairn_core::boot::error_chain(&e))
        };
        let minor = minor_of(resource)
            .ok_or_else(|| format!("{resource:?} is not one of Cairn's DRBD resources"))?;
        let proc = || std::fs::read_to_string("/proc/drbd").unwrap_or_default();
        if connection_of(&proc(), minor).is_none() {
            // The cluster's controller may bring it up at the same moment: only a resource
            // still missing after a failed `up` is an error.
            if let Err(e) = run(&["up", resource]) {
                if connection_of(&proc(), minor).is_none() {
                    return Err(e);
                }
            }
            let start = std::time::Instant::now();
            while connection_of(&proc(), minor).as_deref() != Some("Connected")
                && start.elapsed() < PROMOTE_CONNECT_WAIT
            {
                // poll interval while the peer connects; PROMOTE_CONNECT_WAIT bounds it
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
        run(&["primary", resource])
    }
}

/// How long a VM start waits for a resource it brought up to connect before promoting.
pub const PROMOTE_CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The minor of resource `cairn<i>`.
pub fn minor_of(resource: &str) -> Option<u32> {
    resource.strip_prefix("cairn")?.parse().ok()
}

/// The `cs:` of `minor` in `/proc/drbd`'s text (None: the kernel has no such minor).
pub fn connection_of(proc_drbd: &str, minor: u32) -> Option<String> {
    let head = format!("{minor}: cs:");
    proc_drbd.lines().find_map(|l| {
        l.trim_start()
            .strip_prefix(&head)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resources_connection_is_read_from_proc() {
        let text = "version: 8.4.11 (api:1/proto:86-101)\n\
            \x200: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n\
            \x20   ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n\
            12: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n";
        assert_eq!(connection_of(text, 0).as_deref(), Some("WFConnection"));
        assert_eq!(connection_of(text, 12).as_deref(), Some("Connected"));
        assert_eq!(connection_of(text, 2), None);
        assert_eq!(minor_of("cairn12"), Some(12));
        assert_eq!(minor_of("r0"), None);
    }

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
