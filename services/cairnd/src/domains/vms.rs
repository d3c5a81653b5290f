//! Starts the vms domain's service (libvirt, thin volumes from storage) and records its
//! handle in its slot.

use super::shared::{Shared, Start};
use crate::cli::Config;
use cairn_api::domains::Slot;
use cairn_core::command::{run_ok, SystemRunner};
use cairn_storage::Storage;
use cairn_vm::host::SysHost;
use cairn_vm::remote::{RemoteHypervisor, HELPER_PATH};
use cairn_vm::{Vms, VmsConfig, VolumeError, VolumeUse, Volumes};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The QEMU binary in the root filesystem.
const EMULATOR: &str = "/usr/bin/qemu-system-x86_64";
/// Where virtlogd writes the VM consoles (on STATE, like all of /var).
const CONSOLE_DIR: &str = "/var/log/libvirt/qemu";

/// cairn-vm's volumes over the storage service's thin volumes; storage is looked up in its
/// slot at each call (it may still be starting when the VM service is ready).
struct StorageVolumes(Slot<Storage>);

impl StorageVolumes {
    fn storage(&self) -> Result<Arc<Storage>, VolumeError> {
        self.0
            .service("storage")
            .map_err(|e| VolumeError(e.message))
    }
}

fn err(e: impl std::error::Error) -> VolumeError {
    VolumeError(cairn_core::boot::error_chain(&e))
}

impl Volumes for StorageVolumes {
    fn pools(&self) -> Result<Vec<String>, VolumeError> {
        match self.0.get() {
            None => Ok(Vec::new()),
            Some(s) => Ok(s
                .pools()
                .map_err(err)?
                .into_iter()
                .map(|p| p.name)
                .collect()),
        }
    }

    fn create(&self, pool: &str, name: &str, size_bytes: u64) -> Result<PathBuf, VolumeError> {
        let v = self
            .storage()?
            .create_volume(pool, name, size_bytes)
            .map_err(err)?;
        Ok(PathBuf::from(v.path))
    }

    fn clone_volume(&self, pool: &str, source: &str, name: &str) -> Result<PathBuf, VolumeError> {
        let v = self
            .storage()?
            .clone_volume(pool, source, name)
            .map_err(err)?;
        Ok(PathBuf::from(v.path))
    }

    fn clone_many(
        &self,
        pool: &str,
        clones: &[(String, String)],
    ) -> Result<Vec<PathBuf>, VolumeError> {
        Ok(self
            .storage()?
            .clone_volumes(pool, clones)
            .map_err(err)?
            .into_iter()
            .map(|v| PathBuf::from(v.path))
            .collect())
    }

    fn path(&self, pool: &str, name: &str) -> PathBuf {
        cairn_storage::names::lv_path(pool, &cairn_storage::names::volume_lv(name))
    }

    fn snapshot(&self, pool: &str, source: &str, snap: &str) -> Result<(), VolumeError> {
        self.storage()?
            .snapshot_volume(pool, source, snap)
            .map_err(err)?;
        Ok(())
    }

    fn activate(&self, pool: &str, name: &str) -> Result<(), VolumeError> {
        // Storage's own activation command for its volume LVs (`lvchange -ay -K`).
        self.storage()?;
        let lv = cairn_storage::names::volume_lv(name);
        run_ok(&SystemRunner, &cairn_storage::lvm::activate(pool, &lv))
            .map(drop)
            .map_err(err)
    }

    fn delete(&self, pool: &str, name: &str) -> Result<(), VolumeError> {
        self.storage()?.delete_volume(pool, name).map_err(err)
    }

    fn usage(&self, pool: &str) -> Result<Vec<VolumeUse>, VolumeError> {
        Ok(self
            .storage()?
            .volumes(pool)
            .map_err(err)?
            .into_iter()
            .map(|v| VolumeUse {
                name: v.name,
                size_bytes: v.size_bytes,
                used_bytes: v.used_bytes,
            })
            .collect())
    }

    fn share_path(&self, pool: &str, share: &str) -> PathBuf {
        cairn_storage::names::share_mount(Path::new(cairn_storage::names::SHARES_ROOT), pool, share)
    }
}

/// `cairn.vm.accel=tcg|kvm` on the kernel command line, if given and valid.
fn forced_accel() -> Option<cairn_vm::Accelerator> {
    let text = std::fs::read_to_string("/proc/cmdline").ok()?;
    let value = cairn_core::cmdline::KernelCmdline::parse(&text)
        .get(cairn_vm::host::ACCEL_OPTION)?
        .to_string();
    let accel = cairn_vm::host::parse_accel(&value);
    match accel {
        Some(a) => tracing::info!("VMs: accelerator forced to {a:?} by the kernel command line"),
        None => tracing::warn!(
            "VMs: ignoring {}={value:?} (want kvm or tcg)",
            cairn_vm::host::ACCEL_OPTION
        ),
    }
    accel
}

/// Start the VM service: libvirt is connected lazily (libvirtd may start after cairnd); a
/// monitor thread waits for it, starts the autostart VMs once, and keeps VM states current
/// from libvirt's domain events (resubscribing after libvirtd restarts; decision 0013).
pub fn start(shared: &Shared, cfg: &Config) -> anyhow::Result<Start<Vms>> {
    if !Path::new("/usr/sbin/libvirtd").exists() {
        return Ok(Start::Absent(
            "libvirtd is not installed on this node".into(),
        ));
    }
    let vms = Arc::new(Vms::open(
        VmsConfig {
            state_dir: cfg.state_dir.clone(),
            console_dir: PathBuf::from(CONSOLE_DIR),
            emulator: EMULATOR.to_string(),
        },
        Arc::new(RemoteHypervisor::new(HELPER_PATH)),
        Arc::new(StorageVolumes(shared.domains.storage.clone())),
        Arc::new(SysHost {
            forced: forced_accel(),
        }),
    )?);
    let monitor = vms.clone();
    std::thread::Builder::new()
        .name("vm-monitor".into())
        .spawn(move || monitor.monitor())?;
    Ok(Start::Ready(vms))
}
