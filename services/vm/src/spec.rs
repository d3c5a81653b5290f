//! The VM spec a user asks for, the stored record it resolves to, and their validation.

use cairn_core::shown::quoted;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Largest number of disks and NICs per VM.
pub const MAX_DISKS: usize = 8;
/// Largest number of NICs per VM.
pub const MAX_NICS: usize = 8;
/// Smallest memory a VM may have (SeaBIOS and a tiny guest fit).
pub const MIN_MEMORY_MIB: u64 = 16;

/// Named CPU models QEMU provides on x86 (TCG emulates all of these); a named model keeps a
/// VM's CPU the same on unlike hosts, so it can move between them.
pub const CPU_MODELS: &[&str] = &[
    "qemu64",
    "kvm64",
    "Nehalem",
    "Westmere",
    "SandyBridge",
    "IvyBridge",
    "Haswell-noTSX",
    "Broadwell-noTSX",
    "Skylake-Client",
    "Skylake-Server",
    "Cascadelake-Server",
    "EPYC",
    "EPYC-Rome",
];

/// The default CPU model: QEMU's x86-64 baseline, available under KVM and TCG alike.
pub const DEFAULT_CPU_MODEL: &str = "qemu64";

/// What the user asks for when creating a VM (`POST /api/v1/vms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub disks: Vec<DiskSpec>,
    #[serde(default)]
    pub nics: Vec<NicSpec>,
    /// Boot devices in order; default: disk, then cdrom.
    #[serde(default)]
    pub boot: Vec<BootDevice>,
    /// A named CPU model (see [`CPU_MODELS`]); default `qemu64`.
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// The machine type: `pc` (i440fx, has legacy IDE) or `q35` (default).
    #[serde(default)]
    pub machine: Machine,
    /// Start this VM when the node boots.
    #[serde(default)]
    pub autostart: bool,
}

/// The emulated chipset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    /// i440fx + PIIX: legacy IDE, for old or tiny guests.
    Pc,
    /// Q35 + ICH9: PCIe, AHCI.
    #[default]
    Q35,
}

impl Machine {
    /// libvirt's machine alias.
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Pc => "pc",
            Machine::Q35 => "q35",
        }
    }
}

/// A device to boot from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootDevice {
    Disk,
    Cdrom,
    Network,
}

/// The bus a disk is attached to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskBus {
    #[default]
    Virtio,
    Sata,
    /// Legacy IDE: only with machine `pc`.
    Ide,
}

/// One disk of a new VM (serde cannot refuse unknown fields next to a flattened enum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSpec {
    #[serde(flatten)]
    pub source: DiskSource,
    /// Absent: [`DiskSpec::bus_on`] picks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<DiskBus>,
}

impl DiskSpec {
    /// The bus this disk is attached to on `machine`: the one asked for, else virtio for a
    /// disk and, for a CD-ROM (which virtio cannot be), SATA on q35 and IDE on pc.
    pub fn bus_on(&self, machine: Machine) -> DiskBus {
        match (self.bus, &self.source, machine) {
            (Some(bus), _, _) => bus,
            (None, DiskSource::Iso { .. }, Machine::Q35) => DiskBus::Sata,
            (None, DiskSource::Iso { .. }, Machine::Pc) => DiskBus::Ide,
            (None, _, _) => DiskBus::Virtio,
        }
    }
}

/// Where a disk's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum DiskSource {
    /// A new, empty thin volume on a pool.
    New { pool: String, size_bytes: u64 },
    /// A copy-on-write clone of another VM's disk, or of one of its snapshots.
    Clone {
        vm: String,
        disk: usize,
        #[serde(default)]
        snapshot: Option<String>,
    },
    /// An ISO image from a share, attached read-only as a CD-ROM.
    Iso {
        pool: String,
        share: String,
        file: String,
    },
}

/// One network interface on a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    pub bridge: String,
    /// A fixed MAC; generated (and then kept) when absent.
    #[serde(default)]
    pub mac: Option<String>,
}

/// What kind of device a resolved disk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskKind {
    Disk,
    Cdrom,
}

/// A disk as stored: which volume (or file) backs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    pub kind: DiskKind,
    pub bus: DiskBus,
    /// The pool holding it.
    pub pool: String,
    /// The thin volume's name (disks) or the share file (`<share>/<file>`, cdroms).
    pub volume: String,
    /// Block device or file path on the node.
    pub path: String,
    /// The volume this disk was cloned from, if any.
    #[serde(default)]
    pub origin: Option<String>,
    /// Replicated with DRBD (issue 18): `path` is then `/dev/drbd<i>` on the thin volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<DiskReplication>,
}

/// A replicated disk's resource and the node holding its other copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskReplication {
    /// `cairn<i>`.
    pub resource: String,
    pub replica: String,
}

/// A NIC as stored, with its MAC fixed for the VM's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    pub bridge: String,
    pub mac: String,
}

/// A VM as stored on STATE: the resolved spec the domain XML is generated from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub name: String,
    pub uuid: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    pub boot: Vec<BootDevice>,
    pub cpu_model: String,
    pub machine: Machine,
    pub autostart: bool,
    /// Disk snapshots taken of this VM: name → one volume per disk (same order as `disks`,
    /// `None` for CD-ROMs).
    #[serde(default)]
    pub snapshots: std::collections::BTreeMap<String, Vec<Option<String>>>,
}

/// What validation checks a spec against.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// Logical CPUs of the node.
    pub cpus: u32,
    /// Memory of the node.
    pub memory_mib: u64,
    /// Bridges that exist.
    pub bridges: BTreeSet<String>,
    /// Pools that exist.
    pub pools: BTreeSet<String>,
    /// VMs that exist.
    pub vms: BTreeSet<String>,
}

/// A spec rejected: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

/// Build an [`Invalid`].
pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Longest VM name: disk volumes are `<vm>-disk<i>-snap-<snapshot>` and the storage layer
/// allows 48 characters.
pub const MAX_VM_NAME: usize = 24;
/// Longest snapshot (and share) name.
pub const MAX_SNAPSHOT_NAME: usize = 12;

/// Check a VM name: 1–24 of `a-z 0-9 -`, starting with a letter.
pub fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    check_name_len(field, name, MAX_VM_NAME)
}

/// Check a snapshot name: 1–12 of `a-z 0-9 -`, starting with a letter.
pub fn check_snapshot_name(field: &str, name: &str) -> Result<(), Invalid> {
    check_name_len(field, name, MAX_SNAPSHOT_NAME)
}

fn check_name_len(field: &str, name: &str, max: usize) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{} is not a valid name: use 1-{max} of a-z, 0-9 and '-', starting with a letter",
                quoted(name)
            ),
        ))
    }
}

/// Check a MAC address `xx:xx:xx:xx:xx:xx`, unicast.
pub fn check_mac(field: &str, mac: &str) -> Result<(), Invalid> {
    let parts: Vec<&str> = mac.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(invalid(
            field,
            format!("{} is not a MAC address (xx:xx:xx:xx:xx:xx)", quoted(mac)),
        ));
    }
    let first = u8::from_str_radix(parts[0], 16).unwrap_or(1);
    if first & 1 == 1 {
        return Err(invalid(field, format!("{mac} is a multicast address")));
    }
    Ok(())
}

/// Check a file name inside a share (no directories, no hidden files).
fn check_file(field: &str, file: &str) -> Result<(), Invalid> {
    if file.is_empty() || file.contains('/') || file.starts_with('.') || file.contains('\0') {
        return Err(invalid(
            field,
            format!("{} is not a file name in the share", quoted(file)),
        ));
    }
    Ok(())
}

/// Validate `spec` against the node; every error names the field.
pub fn validate(spec: &VmSpec, facts: &NodeFacts) -> Result<(), Invalid> {
    check_name("name", &spec.name)?;
    if facts.vms.contains(&spec.name) {
        return Err(invalid(
            "name",
            format!("a VM named {} exists already", spec.name),
        ));
    }
    if spec.vcpus == 0 {
        return Err(invalid("vcpus", "a VM needs at least one vCPU"));
    }
    if spec.vcpus > facts.cpus {
        return Err(invalid(
            "vcpus",
            format!(
                "{} vCPUs is more than this node's {} CPUs",
                spec.vcpus, facts.cpus
            ),
        ));
    }
    if spec.memory_mib < MIN_MEMORY_MIB {
        return Err(invalid(
            "memory_mib",
            format!("at least {MIN_MEMORY_MIB} MiB"),
        ));
    }
    if spec.memory_mib > facts.memory_mib {
        return Err(invalid(
            "memory_mib",
            format!(
                "{} MiB is more than this node's {} MiB",
                spec.memory_mib, facts.memory_mib
            ),
        ));
    }
    if spec.disks.len() > MAX_DISKS {
        return Err(invalid("disks", format!("at most {MAX_DISKS} disks")));
    }
    for (i, d) in spec.disks.iter().enumerate() {
        if d.bus_on(spec.machine) == DiskBus::Ide && spec.machine != Machine::Pc {
            return Err(invalid(
                format!("disks[{i}].bus"),
                "IDE needs machine \"pc\" (q35 has no IDE controller)",
            ));
        }
        match &d.source {
            DiskSource::New { pool, size_bytes } => {
                if !facts.pools.contains(pool) {
                    return Err(invalid(
                        format!("disks[{i}].pool"),
                        format!("no pool named {pool}"),
                    ));
                }
                if *size_bytes < 1024 * 1024 || size_bytes % 512 != 0 {
                    return Err(invalid(
                        format!("disks[{i}].size_bytes"),
                        "at least 1 MiB and a multiple of 512",
                    ));
                }
            }
            DiskSource::Clone { vm, snapshot, .. } => {
                if !facts.vms.contains(vm) {
                    return Err(invalid(
                        format!("disks[{i}].vm"),
                        format!("no VM named {vm}"),
                    ));
                }
                if let Some(s) = snapshot {
                    check_snapshot_name(&format!("disks[{i}].snapshot"), s)?;
                }
            }
            DiskSource::Iso { pool, share, file } => {
                if !facts.pools.contains(pool) {
                    return Err(invalid(
                        format!("disks[{i}].pool"),
                        format!("no pool named {pool}"),
                    ));
                }
                check_name_len(&format!("disks[{i}].share"), share, 48)?;
                check_file(&format!("disks[{i}].file"), file)?;
                if d.bus_on(spec.machine) == DiskBus::Virtio {
                    return Err(invalid(
                        format!("disks[{i}].bus"),
                        "a CD-ROM needs bus \"sata\" or \"ide\"",
                    ));
                }
            }
        }
    }
    if spec.nics.len() > MAX_NICS {
        return Err(invalid("nics", format!("at most {MAX_NICS} NICs")));
    }
    let mut macs = BTreeSet::new();
    for (i, n) in spec.nics.iter().enumerate() {
        if !facts.bridges.contains(&n.bridge) {
            return Err(invalid(
                format!("nics[{i}].bridge"),
                format!("no bridge named {} on this node", n.bridge),
            ));
        }
        if let Some(mac) = &n.mac {
            check_mac(&format!("nics[{i}].mac"), mac)?;
            if !macs.insert(mac.to_ascii_lowercase()) {
                return Err(invalid(
                    format!("nics[{i}].mac"),
                    format!("{mac} is used twice"),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, b) in spec.boot.iter().enumerate() {
        if !seen.insert(*b) {
            return Err(invalid(format!("boot[{i}]"), "listed twice"));
        }
    }
    if let Some(model) = &spec.cpu_model {
        if !CPU_MODELS.contains(&model.as_str()) {
            return Err(invalid(
                "cpu_model",
                format!(
                    "unknown CPU model {}; one of {}",
                    quoted(model),
                    CPU_MODELS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            cpus: 2,
            memory_mib: 2048,
            bridges: ["br0".to_string()].into(),
            pools: ["tank".to_string()].into(),
            vms: ["old".to_string()].into(),
        }
    }

    fn spec() -> VmSpec {
        serde_json::from_value(serde_json::json!({
            "name": "web",
            "vcpus": 1,
            "memory_mib": 64,
            "disks": [{"source": "new", "pool": "tank", "size_bytes": 1073741824u64}],
            "nics": [{"bridge": "br0"}],
        }))
        .unwrap()
    }

    fn field(s: &VmSpec) -> String {
        validate(s, &facts()).unwrap_err().field
    }

    #[test]
    fn a_good_spec_passes() {
        validate(&spec(), &facts()).unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let mut s = spec();
        s.name = "Bad Name".into();
        assert_eq!(field(&s), "name");
        s.name = "old".into();
        assert!(validate(&s, &facts())
            .unwrap_err()
            .reason
            .contains("exists"));
        let mut s = spec();
        s.vcpus = 3;
        assert_eq!(field(&s), "vcpus");
        s.vcpus = 0;
        assert_eq!(field(&s), "vcpus");
        let mut s = spec();
        s.memory_mib = 4096;
        assert_eq!(field(&s), "memory_mib");
        let mut s = spec();
        s.disks[0].source = DiskSource::New {
            pool: "nope".into(),
            size_bytes: 1 << 30,
        };
        assert_eq!(field(&s), "disks[0].pool");
        s.disks[0].source = DiskSource::New {
            pool: "tank".into(),
            size_bytes: 1000,
        };
        assert_eq!(field(&s), "disks[0].size_bytes");
        let mut s = spec();
        s.nics[0].bridge = "br9".into();
        assert_eq!(field(&s), "nics[0].bridge");
        let mut s = spec();
        s.nics[0].mac = Some("01:00:00:00:00:01".into());
        assert_eq!(field(&s), "nics[0].mac");
        let mut s = spec();
        s.cpu_model = Some("Pentium9".into());
        assert_eq!(field(&s), "cpu_model");
        let mut s = spec();
        s.disks[0].bus = Some(DiskBus::Ide);
        assert_eq!(field(&s), "disks[0].bus");
        s.machine = Machine::Pc;
        validate(&s, &facts()).unwrap();
        let mut s = spec();
        s.disks.push(DiskSpec {
            source: DiskSource::Clone {
                vm: "ghost".into(),
                disk: 0,
                snapshot: None,
            },
            bus: Some(DiskBus::Virtio),
        });
        assert_eq!(field(&s), "disks[1].vm");
        let mut s = spec();
        s.boot = vec![BootDevice::Disk, BootDevice::Disk];
        assert_eq!(field(&s), "boot[1]");
    }

    #[test]
    fn iso_disks_are_checked() {
        let mut s = spec();
        s.disks.push(DiskSpec {
            source: DiskSource::Iso {
                pool: "tank".into(),
                share: "isos".into(),
                file: "../etc/passwd".into(),
            },
            bus: Some(DiskBus::Sata),
        });
        assert_eq!(field(&s), "disks[1].file");
    }

    #[test]
    fn a_cdrom_without_a_bus_gets_sata_on_q35_and_ide_on_pc() {
        let iso: DiskSpec = serde_json::from_value(serde_json::json!(
            {"source": "iso", "pool": "tank", "share": "isos", "file": "debian.iso"}
        ))
        .unwrap();
        assert_eq!(iso.bus, None);
        assert_eq!(iso.bus_on(Machine::Q35), DiskBus::Sata);
        assert_eq!(iso.bus_on(Machine::Pc), DiskBus::Ide);
        let disk: DiskSpec = serde_json::from_value(serde_json::json!(
            {"source": "new", "pool": "tank", "size_bytes": 1048576}
        ))
        .unwrap();
        assert_eq!(disk.bus_on(Machine::Q35), DiskBus::Virtio);
        let asked = DiskSpec {
            bus: Some(DiskBus::Ide),
            ..iso.clone()
        };
        assert_eq!(asked.bus_on(Machine::Q35), DiskBus::Ide);
        // The spec without a bus validates: the CD-ROM is not refused as virtio.
        let mut s = spec();
        s.disks.push(iso);
        validate(&s, &facts()).unwrap();
        s.machine = Machine::Pc;
        validate(&s, &facts()).unwrap();
    }

    #[test]
    fn names() {
        for good in ["a", "web-1", "db2"] {
            check_name("name", good).unwrap();
        }
        for bad in ["", "1a", "A", "a_b", "a-", &"a".repeat(25)] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_value::<VmSpec>(serde_json::json!({
            "name": "a", "vcpus": 1, "memory_mib": 64, "colour": "red"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
