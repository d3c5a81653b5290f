//! Data disks of a running node: pull one out (QMP `device_del`), hot-plug a new blank one, leave one out of the next boot.

use std::fs::File;

use serde_json::json;

use crate::config::{disk_id, disk_port, Bus, DiskSpec};
use crate::deadline::Deadline;
use crate::error::LabError;
use crate::node::Node;

impl Node {
    /// The image file behind data disk number `i` (to prepare content before a launch).
    pub fn data_disk_path(&mut self, i: usize) -> Option<std::path::PathBuf> {
        self.qemu_paths_mut().data_disks.get(i).cloned()
    }

    /// The serial of data disk number `i` (`CAIRNLAB0001`, …).
    pub fn data_disk_serial(&mut self, i: usize) -> Option<String> {
        self.config_mut().disks.get(i).map(|d| d.serial.clone())
    }

    /// Pulls data disk `i` out of the running node (`device_del`) and waits, within
    /// `deadline`, for QEMU's `DEVICE_DELETED` event (the guest released it). The disk stays
    /// out of later launches until [`Node::set_disk_present`].
    pub fn unplug_disk(&mut self, i: usize, deadline: Deadline) -> Result<(), LabError> {
        let id = disk_id(i);
        let qmp = self.qmp()?;
        qmp.take_events();
        qmp.device_del(&id, deadline)?;
        loop {
            let ev = qmp.wait_event("DEVICE_DELETED", deadline)?;
            if ev.data["device"] == id.as_str() {
                break;
            }
        }
        if let Some(d) = self.config_mut().disks.get_mut(i) {
            d.absent = true;
        }
        Ok(())
    }

    /// Whether data disk `i` is attached at the next launch (a disk pulled while the node is
    /// off, or put back).
    pub fn set_disk_present(&mut self, i: usize, present: bool) {
        if let Some(d) = self.config_mut().disks.get_mut(i) {
            d.absent = !present;
        }
    }

    /// Hot-plugs a new blank disk of `size_mib` on `bus` (virtio or NVMe: they sit on a
    /// PCIe root port) into the running node, on the next spare port
    /// ([`crate::config::NodeConfig::hotplug_ports`]). Returns its index; it stays attached on later
    /// launches.
    pub fn hot_add_disk(
        &mut self,
        bus: Bus,
        size_mib: u64,
        deadline: Deadline,
    ) -> Result<usize, LabError> {
        let i = self.config_mut().disks.len();
        let serial = format!("CAIRNLAB{:04}", i + 1);
        let path = self.dir().join(format!("data{i}.img"));
        File::create(&path)
            .and_then(|f| f.set_len(size_mib << 20))
            .map_err(|source| LabError::Io {
                what: "create a hot-plugged data disk",
                path: path.clone(),
                source,
            })?;
        let node_name = format!("hot{i}");
        let driver = match bus {
            Bus::Virtio => "virtio-blk-pci",
            Bus::Nvme => "nvme",
            Bus::Ahci => {
                return Err(LabError::Unavailable {
                    why: "AHCI disks cannot be hot-plugged in QEMU; use virtio or NVMe".into(),
                })
            }
        };
        let qmp = self.qmp()?;
        qmp.blockdev_add(
            json!({
                "driver": "raw",
                "node-name": node_name,
                "file": { "driver": "file", "filename": path.display().to_string() },
            }),
            deadline,
        )?;
        qmp.device_add(
            json!({
                "driver": driver,
                "drive": node_name,
                "id": disk_id(i),
                "serial": serial,
                "bus": disk_port(i),
            }),
            deadline,
        )?;
        self.qemu_paths_mut().data_disks.push(path);
        self.config_mut().disks.push(DiskSpec {
            bus,
            size_bytes: size_mib << 20,
            serial,
            absent: false,
        });
        Ok(i)
    }
}
