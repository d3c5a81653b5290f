//! Disk inventory from sysfs and udev's database: identity, size, bus, and what is on each disk.

use crate::error::StorageError;
use crate::paths::SystemPaths;
use crate::udevdb::{decode_enc, UdevEntry};
use cairn_core::disk::{DiskBus, DiskRef};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// PARTLABELs of the boot disk's partitions (docs/decisions/0001).
pub const BOOT_PARTLABELS: [&str; 4] = ["cairn-esp", "cairn-root-a", "cairn-root-b", "cairn-state"];

/// One partition of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Kernel name (`sda1`).
    pub name: String,
    pub size_bytes: u64,
    /// GPT partition label, if any.
    pub label: Option<String>,
    /// What blkid saw in it (`ext4`, `linux_raid_member`, `LVM2_member`, …).
    pub fs_type: Option<String>,
}

/// One whole disk as the inventory sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Stable id: the preferred by-id link name, else the kernel name.
    pub id: String,
    /// Kernel name (`sda`, `nvme0n1`, `vdb`).
    pub name: String,
    /// Device node now (`/dev/sda`).
    pub dev: PathBuf,
    /// `/dev/disk/by-id/<id>` when udev made one.
    pub by_id: Option<PathBuf>,
    pub wwn: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub size_bytes: u64,
    pub bus: DiskBus,
    pub rotational: bool,
    pub removable: bool,
    pub partitions: Vec<Partition>,
    /// Signatures on the whole disk seen by udev's blkid (`gpt`, `ext4`, `linux_raid_member`, …).
    pub signatures: Vec<String>,
    /// Kernel devices built on this disk or its partitions (`md127`, `dm-0`).
    pub holders: Vec<String>,
    /// Mount points of the disk or its partitions.
    pub mounts: Vec<String>,
    /// The disk holding Cairn's ESP, root slots or STATE.
    pub boot: bool,
}

impl Disk {
    /// How other domains refer to this disk.
    pub fn to_ref(&self) -> DiskRef {
        DiskRef {
            id: self.id.clone(),
            dev: self.dev.clone(),
            bus: self.bus,
            rotational: self.rotational,
            model: self.model.clone(),
            serial: self.serial.clone(),
        }
    }

    /// Whether `s` names this disk: its id, any by-id name, its kernel name or its /dev path.
    pub fn matches(&self, s: &str) -> bool {
        s == self.id
            || s == self.name
            || Path::new(s) == self.dev
            || self.by_id.as_deref() == Some(Path::new(s))
    }

    /// Whether anything at all is on the disk (partitions, signatures, holders, mounts).
    pub fn has_data(&self) -> bool {
        !self.partitions.is_empty()
            || !self.signatures.is_empty()
            || !self.holders.is_empty()
            || !self.mounts.is_empty()
    }
}

/// Read every whole disk under `/sys/block` (skipping loop, ram, zram, md, dm, optical and
/// empty devices), with `mounts` the text of /proc/mounts.
pub fn scan(paths: &SystemPaths) -> Result<Vec<Disk>, StorageError> {
    let block = paths.sys_block();
    let entries = std::fs::read_dir(&block).map_err(|e| StorageError::Read(block.clone(), e))?;
    let mounts_path = paths.proc.join("mounts");
    let mounts = match std::fs::read_to_string(&mounts_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(StorageError::Read(mounts_path, e)),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut disks = Vec::new();
    for name in names {
        if let Some(d) = read_disk(paths, &block.join(&name), &name, &mounts) {
            disks.push(d);
        }
    }
    Ok(disks)
}

/// Whether a kernel name is a virtual or optical device the inventory leaves out.
pub fn is_virtual(name: &str) -> bool {
    [
        "loop", "ram", "zram", "md", "dm-", "sr", "nbd", "drbd", "fd",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_u64(p: &Path) -> Option<u64> {
    read_trim(p).and_then(|s| s.parse().ok())
}

fn udev_entry(paths: &SystemPaths, sysdir: &Path) -> UdevEntry {
    read_trim(&sysdir.join("dev"))
        .and_then(|majmin| std::fs::read_to_string(paths.udev_data.join(format!("b{majmin}"))).ok())
        .map(|t| UdevEntry::parse(&t))
        .unwrap_or_default()
}

/// The `KEY=value` lines of a sysfs `uevent` file.
fn uevent_value(sysdir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(sysdir.join("uevent")).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The mount points in /proc/mounts whose source is one of `devs` (kernel names).
fn mounts_of(mounts: &str, devs: &[&str]) -> Vec<String> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .filter(|(src, _)| src.strip_prefix("/dev/").is_some_and(|n| devs.contains(&n)))
        .map(|(_, mp)| mp.replace("\\040", " "))
        .collect()
}

/// The bus from udev's ID_BUS / ID_PATH and the kernel name.
pub fn bus_of(name: &str, udev: &UdevEntry, device_link: Option<&Path>) -> DiskBus {
    let path = udev.get("ID_PATH").unwrap_or_default();
    let devpath = device_link
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.starts_with("nvme") {
        DiskBus::Nvme
    } else if name.starts_with("vd") || devpath.contains("/virtio") {
        DiskBus::Virtio
    } else if udev.get("ID_BUS") == Some("usb")
        || path.contains("-usb-")
        || devpath.contains("/usb")
    {
        DiskBus::Usb
    } else if udev.get("ID_BUS") == Some("ata")
        || path.contains("-ata-")
        || devpath.contains("/ata")
    {
        DiskBus::Sata
    } else if path.contains("-sas-") || udev.get("ID_SAS_PATH").is_some() {
        DiskBus::Sas
    } else if udev.get("ID_BUS") == Some("scsi") {
        DiskBus::Scsi
    } else {
        DiskBus::Other
    }
}

fn read_disk(paths: &SystemPaths, dir: &Path, name: &str, mounts: &str) -> Option<Disk> {
    if is_virtual(name) {
        return None;
    }
    let size_bytes = read_u64(&dir.join("size"))? * 512;
    if size_bytes == 0 {
        return None;
    }
    let udev = udev_entry(paths, dir);
    let device_link = std::fs::read_link(dir.join("device")).ok();
    let bus = bus_of(name, &udev, device_link.as_deref());

    let mut partitions = Vec::new();
    let mut holders = list_dir(&dir.join("holders"));
    let mut boot = false;
    for child in list_dir(dir) {
        let pdir = dir.join(&child);
        if !pdir.join("partition").exists() {
            continue;
        }
        let pudev = udev_entry(paths, &pdir);
        let label = uevent_value(&pdir, "PARTNAME")
            .or_else(|| pudev.get("ID_PART_ENTRY_NAME").map(decode_enc));
        if label
            .as_deref()
            .is_some_and(|l| BOOT_PARTLABELS.contains(&l))
        {
            boot = true;
        }
        holders.extend(list_dir(&pdir.join("holders")));
        partitions.push(Partition {
            size_bytes: read_u64(&pdir.join("size")).unwrap_or(0) * 512,
            label,
            fs_type: pudev.get("ID_FS_TYPE").map(str::to_string),
            name: child,
        });
    }
    holders.sort();
    holders.dedup();
    let mut devs: Vec<&str> = vec![name];
    devs.extend(partitions.iter().map(|p| p.name.as_str()));
    let mounts = mounts_of(mounts, &devs);

    let mut signatures = Vec::new();
    if let Some(pt) = udev.get("ID_PART_TABLE_TYPE") {
        signatures.push(pt.to_string());
    }
    if let Some(fs) = udev.get("ID_FS_TYPE") {
        signatures.push(fs.to_string());
    }

    let id = udev.preferred_id().unwrap_or_else(|| name.to_string());
    let by_id = (id != name).then(|| paths.dev.join("disk/by-id").join(&id));
    let by_id = by_id.map(|p| {
        // Report the real path even when reading a recorded tree.
        Path::new("/dev/disk/by-id").join(p.file_name().unwrap_or_default())
    });
    let model = udev
        .get("ID_MODEL_ENC")
        .map(decode_enc)
        .or_else(|| udev.get("ID_MODEL").map(|m| m.replace('_', " ")))
        .or_else(|| read_trim(&dir.join("device/model")))
        .filter(|m| !m.is_empty());
    let serial = udev
        .get("ID_SERIAL_SHORT")
        .or_else(|| udev.get("ID_SERIAL"))
        .map(str::to_string)
        .or_else(|| read_trim(&dir.join("serial")))
        .or_else(|| read_trim(&dir.join("device/serial")));
    let wwn = udev
        .get("ID_WWN_WITH_EXTENSION")
        .or_else(|| udev.get("ID_WWN"))
        .map(str::to_string)
        .or_else(|| read_trim(&dir.join("wwid")))
        .or_else(|| read_trim(&dir.join("device/wwid")));
    Some(Disk {
        id,
        name: name.to_string(),
        dev: SystemPaths::dev_node(name),
        by_id,
        wwn,
        serial,
        model,
        size_bytes,
        bus,
        rotational: read_u64(&dir.join("queue/rotational")) == Some(1),
        removable: read_u64(&dir.join("removable")) == Some(1),
        partitions,
        signatures,
        holders,
        mounts,
        boot,
    })
}

/// Recorded sysfs/udev trees for tests (shared with the service and API tests).
#[cfg(any(test, feature = "test-util"))]
pub mod fake {
    use std::path::Path;

    /// One fake disk to write into a tree.
    pub struct FakeDisk<'a> {
        pub name: &'a str,
        pub majmin: &'a str,
        pub sectors: u64,
        pub rotational: bool,
        /// udev database text of the disk.
        pub udev: &'a str,
        /// (partition name, majmin, sectors, PARTNAME, udev text)
        pub partitions: Vec<(&'a str, &'a str, u64, Option<&'a str>, &'a str)>,
        pub holders: Vec<&'a str>,
    }

    /// Write `disk` under `root` in the layout [`crate::paths::SystemPaths::under`] reads.
    pub fn add_disk(root: &Path, disk: &FakeDisk<'_>) {
        let dir = root.join("sys/block").join(disk.name);
        std::fs::create_dir_all(dir.join("queue")).unwrap();
        std::fs::create_dir_all(dir.join("holders")).unwrap();
        std::fs::create_dir_all(root.join("run/udev/data")).unwrap();
        std::fs::write(dir.join("dev"), format!("{}\n", disk.majmin)).unwrap();
        std::fs::write(dir.join("size"), format!("{}\n", disk.sectors)).unwrap();
        std::fs::write(dir.join("removable"), "0\n").unwrap();
        std::fs::write(
            dir.join("queue/rotational"),
            if disk.rotational { "1\n" } else { "0\n" },
        )
        .unwrap();
        std::fs::write(
            root.join("run/udev/data").join(format!("b{}", disk.majmin)),
            disk.udev,
        )
        .unwrap();
        for h in &disk.holders {
            std::fs::create_dir_all(dir.join("holders").join(h)).unwrap();
        }
        for (pname, majmin, sectors, label, udev) in &disk.partitions {
            let p = dir.join(pname);
            std::fs::create_dir_all(p.join("holders")).unwrap();
            std::fs::write(p.join("partition"), "1\n").unwrap();
            std::fs::write(p.join("dev"), format!("{majmin}\n")).unwrap();
            std::fs::write(p.join("size"), format!("{sectors}\n")).unwrap();
            let mut uevent = format!("DEVNAME={pname}\nDEVTYPE=partition\n");
            if let Some(l) = label {
                uevent.push_str(&format!("PARTNAME={l}\n"));
            }
            std::fs::write(p.join("uevent"), uevent).unwrap();
            std::fs::write(root.join("run/udev/data").join(format!("b{majmin}")), udev).unwrap();
        }
    }

    /// Virtio disks `vdb`, `vdc`, … (254:16, 254:32, …), one per serial, each with its
    /// `disk/by-id/virtio-SERIAL` link.
    pub fn add_virtio_disks(root: &Path, serials: &[&str]) {
        for (i, ser) in serials.iter().enumerate() {
            let letter = u8::try_from(i).ok().and_then(|i| b'b'.checked_add(i));
            let name = format!(
                "vd{}",
                char::from(letter.expect("a test names a few disks"))
            );
            let majmin = format!("254:{}", 16 * (i + 1));
            let udev = format!("E:ID_SERIAL={ser}\nS:disk/by-id/virtio-{ser}\n");
            add_disk(root, &virtio(&name, &majmin, &udev));
        }
    }

    /// Records raid5 pool `tank` over virtio-B, -C and -D, array UUID `md_uuid`, in
    /// `root/state/storage`.
    pub fn record_raid5_tank(root: &Path, md_uuid: &str) {
        use crate::level::Level;
        use crate::records::{PoolRecord, Records};
        let state = root.join("state/storage");
        std::fs::create_dir_all(&state).unwrap();
        Records {
            pools: vec![PoolRecord {
                name: "tank".into(),
                level: Level::Raid5,
                md_uuid: md_uuid.into(),
                members: vec!["virtio-B".into(), "virtio-C".into(), "virtio-D".into()],
                created: 0,
            }],
        }
        .save(&state)
        .unwrap();
    }

    /// Remove a disk from the tree (an unplug).
    pub fn remove_disk(root: &Path, name: &str) {
        std::fs::remove_dir_all(root.join("sys/block").join(name)).unwrap();
    }

    /// A virtio disk with serial `serial`.
    pub fn virtio<'a>(name: &'a str, majmin: &'a str, udev: &'a str) -> FakeDisk<'a> {
        FakeDisk {
            name,
            majmin,
            sectors: 262144,
            rotational: true,
            udev,
            partitions: vec![],
            holders: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        // The boot disk: GPT with Cairn's partitions, STATE mounted.
        add_disk(
            root,
            &FakeDisk {
                name: "vda",
                majmin: "254:0",
                sectors: 8388608,
                rotational: true,
                udev: "E:ID_PART_TABLE_TYPE=gpt\nE:ID_SERIAL=CAIRN-BOOT\nS:disk/by-id/virtio-CAIRN-BOOT\n",
                partitions: vec![
                    ("vda1", "254:1", 524288, Some("cairn-esp"), "E:ID_FS_TYPE=vfat\n"),
                    ("vda4", "254:4", 2097152, Some("cairn-state"), "E:ID_FS_TYPE=ext4\n"),
                ],
                holders: vec![],
            },
        );
        add_disk(
            root,
            &virtio(
                "vdb",
                "254:16",
                "E:ID_SERIAL=CAIRN-V1\nS:disk/by-id/virtio-CAIRN-V1\n",
            ),
        );
        add_disk(
            root,
            &FakeDisk {
                name: "sda",
                majmin: "8:0",
                sectors: 524288,
                rotational: true,
                udev: "E:ID_BUS=ata\nE:ID_MODEL=QEMU_HARDDISK\nE:ID_MODEL_ENC=QEMU\\x20HARDDISK\nE:ID_SERIAL=QEMU_HARDDISK_CAIRN-A1\nE:ID_SERIAL_SHORT=CAIRN-A1\nE:ID_FS_TYPE=linux_raid_member\nS:disk/by-id/ata-QEMU_HARDDISK_CAIRN-A1\n",
                partitions: vec![],
                holders: vec!["md127"],
            },
        );
        add_disk(
            root,
            &FakeDisk {
                name: "nvme0n1",
                majmin: "259:0",
                sectors: 524288,
                rotational: false,
                udev: "E:ID_MODEL=QEMU NVMe Ctrl\nE:ID_SERIAL_SHORT=CAIRN-N1\nE:ID_WWN=eui.0011\nS:disk/by-id/nvme-QEMU_NVMe_Ctrl_CAIRN-N1\nS:disk/by-id/nvme-eui.0011\n",
                partitions: vec![],
                holders: vec![],
            },
        );
        // Virtual devices that are not disks.
        add_disk(root, &virtio("loop0", "7:0", ""));
        add_disk(root, &virtio("md127", "9:127", ""));
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(
            root.join("proc/mounts"),
            "/dev/vda4 /state ext4 rw 0 0\nproc /proc proc rw 0 0\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn scan_reads_identity_bus_and_usage() {
        let t = tree();
        let disks = scan(&SystemPaths::under(t.path())).unwrap();
        let names: Vec<_> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "vda", "vdb"]);

        let vda = &disks[2];
        assert!(vda.boot);
        assert_eq!(vda.mounts, ["/state"]);
        assert_eq!(vda.partitions.len(), 2);
        assert_eq!(vda.partitions[0].label.as_deref(), Some("cairn-esp"));
        assert_eq!(vda.signatures, ["gpt"]);

        let sda = &disks[1];
        assert_eq!(sda.id, "ata-QEMU_HARDDISK_CAIRN-A1");
        assert_eq!(sda.bus, DiskBus::Sata);
        assert_eq!(sda.serial.as_deref(), Some("CAIRN-A1"));
        assert_eq!(sda.model.as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(sda.holders, ["md127"]);
        assert_eq!(sda.signatures, ["linux_raid_member"]);
        assert_eq!(sda.size_bytes, 256 << 20);
        assert!(sda.has_data() && !sda.boot);

        let nvme = &disks[0];
        assert_eq!(nvme.bus, DiskBus::Nvme);
        assert!(!nvme.rotational);
        assert_eq!(nvme.id, "nvme-QEMU_NVMe_Ctrl_CAIRN-N1");
        assert_eq!(nvme.wwn.as_deref(), Some("eui.0011"));

        let vdb = &disks[3];
        assert_eq!(vdb.bus, DiskBus::Virtio);
        assert_eq!(
            vdb.by_id.as_deref(),
            Some(Path::new("/dev/disk/by-id/virtio-CAIRN-V1"))
        );
        assert!(!vdb.has_data());
        assert!(vdb.matches("vdb") && vdb.matches("/dev/vdb") && vdb.matches("virtio-CAIRN-V1"));
        let r = vdb.to_ref();
        assert_eq!(r.id, "virtio-CAIRN-V1");
        // SMART shows the inventory's identity when smartctl has none (virtio).
        assert_eq!(r.serial.as_deref(), Some("CAIRN-V1"));
        assert_eq!(r.model, None);
        let r = sda.to_ref();
        assert_eq!(r.serial.as_deref(), Some("CAIRN-A1"));
        assert_eq!(r.model.as_deref(), Some("QEMU HARDDISK"));
    }

    #[test]
    fn a_disk_without_udev_data_falls_back_to_its_kernel_name() {
        let t = tempfile::tempdir().unwrap();
        add_disk(t.path(), &virtio("vdc", "254:32", ""));
        std::fs::remove_file(t.path().join("run/udev/data/b254:32")).unwrap();
        let disks = scan(&SystemPaths::under(t.path())).unwrap();
        assert_eq!(disks[0].id, "vdc");
        assert_eq!(disks[0].by_id, None);
    }

    #[test]
    fn bus_from_udev_path() {
        let sas = UdevEntry::parse("E:ID_BUS=scsi\nE:ID_PATH=pci-0000:03:00.0-sas-phy0-lun-0\n");
        assert_eq!(bus_of("sdb", &sas, None), DiskBus::Sas);
        let usb = UdevEntry::parse("E:ID_BUS=usb\n");
        assert_eq!(bus_of("sdc", &usb, None), DiskBus::Usb);
        let scsi = UdevEntry::parse("E:ID_BUS=scsi\n");
        assert_eq!(bus_of("sdd", &scsi, None), DiskBus::Scsi);
    }
}
