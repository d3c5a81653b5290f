//! libvirt domain XML generated from a stored VM record.

use crate::spec::{BootDevice, DiskBus, DiskKind, VmRecord};
use std::fmt::Write;

/// How the node runs guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Accelerator {
    /// Hardware virtualization (`/dev/kvm` usable): domain type `kvm`.
    Kvm,
    /// QEMU's emulator (the lab, or a CPU without VT-x/AMD-V): domain type `qemu`.
    Tcg,
}

impl Accelerator {
    /// libvirt's domain type.
    pub fn domain_type(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "qemu",
        }
    }
}

/// Escape text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Device names per bus: `vda…`, `sda…`, `hda…`.
fn target(bus: DiskBus, index: usize) -> String {
    let prefix = match bus {
        DiskBus::Virtio => "vd",
        DiskBus::Sata => "sd",
        DiskBus::Ide => "hd",
    };
    // Specs have at most `MAX_DISKS` (8) disks: the letter stays within `a..=h`.
    let letter = u8::try_from(index)
        .ok()
        .and_then(|i| b'a'.checked_add(i))
        .map_or('?', char::from);
    format!("{prefix}{letter}")
}

fn bus_name(bus: DiskBus) -> &'static str {
    match bus {
        DiskBus::Virtio => "virtio",
        DiskBus::Sata => "sata",
        DiskBus::Ide => "ide",
    }
}

/// The domain XML of `vm`. The serial console goes to `console_log` (through virtlogd).
pub fn domain_xml(vm: &VmRecord, accel: Accelerator, emulator: &str, console_log: &str) -> String {
    let mut x = String::new();
    let e = escape;
    // Writing to a String cannot fail.
    let _ = writeln!(x, "<domain type='{}'>", accel.domain_type());
    let _ = writeln!(x, "  <name>{}</name>", e(&vm.name));
    let _ = writeln!(x, "  <uuid>{}</uuid>", e(&vm.uuid));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", vm.memory_mib);
    let _ = writeln!(
        x,
        "  <currentMemory unit='MiB'>{}</currentMemory>",
        vm.memory_mib
    );
    let _ = writeln!(x, "  <vcpu placement='static'>{}</vcpu>", vm.vcpus);
    x.push_str("  <os>\n");
    let _ = writeln!(
        x,
        "    <type arch='x86_64' machine='{}'>hvm</type>",
        vm.machine.as_str()
    );
    x.push_str("  </os>\n");
    x.push_str("  <features>\n    <acpi/>\n    <apic/>\n  </features>\n");
    let _ = writeln!(
        x,
        "  <cpu mode='custom' match='exact' check='none'>\n    <model fallback='forbid'>{}</model>\n  </cpu>",
        e(&vm.cpu_model)
    );
    x.push_str("  <clock offset='utc'/>\n");
    x.push_str("  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <devices>\n");
    let _ = writeln!(x, "    <emulator>{}</emulator>", e(emulator));
    // Per-bus device index, and the boot order of disks and cdroms.
    let order = |dev: BootDevice| vm.boot.iter().position(|b| *b == dev).map(|p| p + 1);
    let mut per_bus = [0usize; 3];
    let mut disk_boot_done = false;
    let mut cdrom_boot_done = false;
    for d in &vm.disks {
        let slot = match d.bus {
            DiskBus::Virtio => 0,
            DiskBus::Sata => 1,
            DiskBus::Ide => 2,
        };
        let dev = target(d.bus, per_bus[slot]);
        per_bus[slot] += 1;
        match d.kind {
            DiskKind::Disk => {
                x.push_str("    <disk type='block' device='disk'>\n");
                x.push_str(
                    "      <driver name='qemu' type='raw' cache='none' io='native' discard='unmap'/>\n",
                );
                let _ = writeln!(x, "      <source dev='{}'/>", e(&d.path));
            }
            DiskKind::Cdrom => {
                x.push_str("    <disk type='file' device='cdrom'>\n");
                x.push_str("      <driver name='qemu' type='raw'/>\n");
                let _ = writeln!(x, "      <source file='{}'/>", e(&d.path));
                x.push_str("      <readonly/>\n");
            }
        }
        let _ = writeln!(x, "      <target dev='{dev}' bus='{}'/>", bus_name(d.bus));
        // Only the first device of each kind gets a boot index.
        let (done, dev_kind) = match d.kind {
            DiskKind::Disk => (&mut disk_boot_done, BootDevice::Disk),
            DiskKind::Cdrom => (&mut cdrom_boot_done, BootDevice::Cdrom),
        };
        if !*done {
            if let Some(o) = order(dev_kind) {
                let _ = writeln!(x, "      <boot order='{o}'/>");
            }
            *done = true;
        }
        x.push_str("    </disk>\n");
    }
    for (i, n) in vm.nics.iter().enumerate() {
        x.push_str("    <interface type='bridge'>\n");
        let _ = writeln!(x, "      <source bridge='{}'/>", e(&n.bridge));
        let _ = writeln!(x, "      <mac address='{}'/>", e(&n.mac));
        x.push_str("      <model type='virtio'/>\n");
        if i == 0 {
            if let Some(o) = order(BootDevice::Network) {
                let _ = writeln!(x, "      <boot order='{o}'/>");
            }
        }
        x.push_str("    </interface>\n");
    }
    x.push_str("    <serial type='file'>\n");
    let _ = writeln!(x, "      <source path='{}' append='on'/>", e(console_log));
    x.push_str("      <target port='0'/>\n    </serial>\n");
    x.push_str("    <console type='file'>\n");
    let _ = writeln!(x, "      <source path='{}' append='on'/>", e(console_log));
    x.push_str("      <target type='serial' port='0'/>\n    </console>\n");
    x.push_str("    <memballoon model='none'/>\n");
    x.push_str("  </devices>\n</domain>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Disk, Machine, Nic};

    fn record() -> VmRecord {
        VmRecord {
            name: "web".into(),
            uuid: "6f0c3b8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            vcpus: 2,
            memory_mib: 512,
            disks: vec![
                Disk {
                    kind: DiskKind::Disk,
                    bus: DiskBus::Virtio,
                    pool: "tank".into(),
                    volume: "web-disk0".into(),
                    path: "/dev/cairn-tank/vol-web-disk0".into(),
                    origin: None,
                    replication: None,
                },
                Disk {
                    kind: DiskKind::Cdrom,
                    bus: DiskBus::Sata,
                    pool: "tank".into(),
                    volume: "isos/debian.iso".into(),
                    path: "/var/lib/cairn/shares/tank/isos/debian.iso".into(),
                    origin: None,
                    replication: None,
                },
            ],
            nics: vec![Nic {
                bridge: "br0".into(),
                mac: "52:54:00:12:34:56".into(),
            }],
            boot: vec![BootDevice::Cdrom, BootDevice::Disk],
            cpu_model: "Westmere".into(),
            machine: Machine::Q35,
            autostart: true,
            snapshots: Default::default(),
        }
    }

    #[test]
    fn golden_domain_xml() {
        let got = domain_xml(
            &record(),
            Accelerator::Tcg,
            "/usr/bin/qemu-system-x86_64",
            "/var/log/libvirt/qemu/web.console.log",
        );
        let want = "\
<domain type='qemu'>
  <name>web</name>
  <uuid>6f0c3b8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b</uuid>
  <memory unit='MiB'>512</memory>
  <currentMemory unit='MiB'>512</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode='custom' match='exact' check='none'>
    <model fallback='forbid'>Westmere</model>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none' io='native' discard='unmap'/>
      <source dev='/dev/cairn-tank/vol-web-disk0'/>
      <target dev='vda' bus='virtio'/>
      <boot order='2'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/cairn/shares/tank/isos/debian.iso'/>
      <readonly/>
      <target dev='sda' bus='sata'/>
      <boot order='1'/>
    </disk>
    <interface type='bridge'>
      <source bridge='br0'/>
      <mac address='52:54:00:12:34:56'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/web.console.log' append='on'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='/var/log/libvirt/qemu/web.console.log' append='on'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
";
        assert_eq!(got, want);
    }

    #[test]
    fn kvm_and_ide_targets() {
        let mut r = record();
        r.machine = Machine::Pc;
        r.disks[0].bus = DiskBus::Ide;
        r.disks[1].bus = DiskBus::Ide;
        let x = domain_xml(&r, Accelerator::Kvm, "/q", "/c");
        assert!(x.starts_with("<domain type='kvm'>"));
        assert!(x.contains("machine='pc'"));
        assert!(x.contains("<target dev='hda' bus='ide'/>"));
        assert!(x.contains("<target dev='hdb' bus='ide'/>"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
        let mut r = record();
        r.disks[0].path = "/dev/x'><evil/>".into();
        let x = domain_xml(&r, Accelerator::Tcg, "/q", "/c");
        assert!(x.contains("/dev/x&apos;&gt;&lt;evil/&gt;"));
        assert!(!x.contains("<evil/>"));
    }
}
