//! How domains name a disk to each other: its stable id, device node, bus and kind.

use std::path::PathBuf;

/// The bus a disk hangs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskBus {
    Sata,
    Sas,
    Scsi,
    Nvme,
    Virtio,
    Usb,
    Other,
}

/// A disk as the storage inventory reports it to other domains (SMART, VMs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskRef {
    /// Stable id: the preferred `/dev/disk/by-id` link name (`wwn-…` when the disk has a WWN,
    /// else the bus-specific one such as `ata-…`, `nvme-…`, `virtio-…`), else the kernel name.
    pub id: String,
    /// The device node now (`/dev/sda`); changes across boots, the id does not.
    pub dev: PathBuf,
    pub bus: DiskBus,
    /// Spinning disk (HDD) rather than flash.
    pub rotational: bool,
    /// The model the inventory read from sysfs/udev, if any.
    #[serde(default)]
    pub model: Option<String>,
    /// The serial the inventory read from udev (`ID_SERIAL_SHORT`) or sysfs, if any. SMART
    /// shows it when smartctl reports none (virtio disks have no SMART at all).
    #[serde(default)]
    pub serial: Option<String>,
}
