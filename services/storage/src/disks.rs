//! The disk list as the API shows it (usage, pool membership, why a disk is refused) and the confirmed wipe.

use crate::error::StorageError;
use crate::inventory::Disk;
use crate::plan::refuse_in_use;
use crate::service::Storage;
use crate::wipefs;
use cairn_core::alert::Progress;
use cairn_core::command::{run_ok, CommandOutput, Invocation};
use serde::Serialize;

/// What a disk is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// Blank: can join a pool.
    Free,
    /// Holds Cairn's own partitions.
    Boot,
    /// A member of one of our pools.
    Pool,
    /// Mounted, or held by md/device-mapper outside our pools.
    InUse,
    /// Carries partitions or signatures: wipe it before use.
    HasData,
}

/// One disk with its usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskView {
    #[serde(flatten)]
    pub disk: Disk,
    pub usage: Usage,
    /// The pool this disk is a member of.
    pub pool: Option<String>,
}

impl Storage {
    /// Run `inv`, turning a failure into an error that says what was being done.
    pub(crate) fn run_step(
        &self,
        step: &str,
        inv: &Invocation,
    ) -> Result<CommandOutput, StorageError> {
        tracing::info!("storage: {}", inv.display());
        run_ok(self.runner(), inv).map_err(|e| StorageError::command(step, e))
    }

    /// Every disk, with what it is used for (a fresh scan; publishes changes).
    pub fn disks(&self) -> Result<Vec<DiskView>, StorageError> {
        let records = self.records();
        Ok(self
            .refresh_disks()?
            .into_iter()
            .map(|disk| {
                let pool = records.pool_of(&disk.id).map(|p| p.name.clone());
                let usage = if disk.boot {
                    Usage::Boot
                } else if pool.is_some() {
                    Usage::Pool
                } else if !disk.mounts.is_empty() || !disk.holders.is_empty() {
                    Usage::InUse
                } else if disk.has_data() {
                    Usage::HasData
                } else {
                    Usage::Free
                };
                DiskView { disk, usage, pool }
            })
            .collect())
    }

    /// The disk `s` names (id, by-id path, kernel name or /dev path).
    pub fn disk(&self, s: &str) -> Result<DiskView, StorageError> {
        self.disks()?
            .into_iter()
            .find(|d| d.disk.matches(s))
            .ok_or_else(|| StorageError::NoSuchDisk(s.to_string()))
    }

    /// Check a wipe request without changing anything: the disk exists, may be wiped, and
    /// `confirm_serial` is its serial (or its id when it has no serial).
    pub fn check_wipe(&self, s: &str, confirm_serial: &str) -> Result<Disk, StorageError> {
        let disk = self.disk(s)?.disk;
        if let Some(why) = refuse_in_use(&disk, &self.records()) {
            return Err(StorageError::invalid(
                "disk",
                format!("disk {} {why}", disk.id),
            ));
        }
        let expected = disk.serial.clone().unwrap_or_else(|| disk.id.clone());
        if confirm_serial.trim() != expected {
            return Err(StorageError::invalid(
                "confirm_serial",
                format!(
                    "type the disk's serial ({}) to confirm that everything on {} is erased",
                    if disk.serial.is_some() {
                        "as shown in the disk list"
                    } else {
                        "it has none: type its id"
                    },
                    disk.id
                ),
            ));
        }
        Ok(disk)
    }

    /// Erase every signature, partition and md superblock on disk `s`, after
    /// [`Storage::check_wipe`]. Blocks.
    pub fn wipe_disk(
        &self,
        s: &str,
        confirm_serial: &str,
        progress: &dyn Progress,
    ) -> Result<DiskView, StorageError> {
        let disk = self.check_wipe(s, confirm_serial)?;
        let _busy = self.claim(&[format!("disk:{}", disk.id)])?;
        let mut md_devs = Vec::new();
        let mut devs: Vec<String> = disk
            .partitions
            .iter()
            .map(|p| format!("/dev/{}", p.name))
            .collect();
        devs.push(disk.dev.display().to_string());
        for dev in &devs {
            if wipefs::list(self.runner(), dev)?
                .iter()
                .any(|t| t == "linux_raid_member")
            {
                md_devs.push(dev.clone());
            }
        }
        let cmds = wipefs::wipe_commands(&disk, &md_devs);
        let n = cmds.len();
        for (i, inv) in cmds.iter().enumerate() {
            // i < n: below 100, so it fits.
            let pct = u8::try_from(i * 100 / n).unwrap_or(100);
            progress.progress(pct, &format!("running {}", inv.program));
            self.run_step(&format!("wiping disk {}", disk.id), inv)?;
        }
        let left = wipefs::list(self.runner(), &disk.dev.display().to_string())?;
        if !left.is_empty() {
            return Err(StorageError::Parse {
                tool: "wipefs".into(),
                reason: format!(
                    "signatures remain on {} after the wipe: {}",
                    disk.id,
                    left.join(", ")
                ),
            });
        }
        progress.progress(100, "wiped");
        self.disk(&disk.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::fake::{add_disk, virtio, FakeDisk};
    use crate::paths::SystemPaths;
    use cairn_core::alert::{NoProgress, RecordingAlerts};
    use cairn_core::command::RecordingRunner;
    use std::sync::Arc;

    fn setup() -> (tempfile::TempDir, Arc<RecordingRunner>, Storage) {
        let t = tempfile::tempdir().unwrap();
        add_disk(
            t.path(),
            &FakeDisk {
                partitions: vec![("vdb1", "254:17", 1000, None, "E:ID_FS_TYPE=ext4\n")],
                udev: "E:ID_SERIAL=SER-B\nE:ID_PART_TABLE_TYPE=gpt\nS:disk/by-id/virtio-SER-B\n",
                ..virtio("vdb", "254:16", "")
            },
        );
        let r = Arc::new(RecordingRunner::new());
        let s = Storage::open(
            r.clone(),
            &t.path().join("state"),
            Arc::new(RecordingAlerts::default()),
            SystemPaths::under(t.path()),
        )
        .unwrap();
        (t, r, s)
    }

    #[test]
    fn wrong_serial_is_refused_and_changes_nothing() {
        let (_t, r, s) = setup();
        assert_eq!(s.disk("vdb").unwrap().usage, Usage::HasData);
        let e = s
            .wipe_disk("virtio-SER-B", "SER-X", &NoProgress)
            .unwrap_err();
        assert_eq!(e.field(), Some("confirm_serial"));
        assert!(r.calls().is_empty(), "nothing ran: {:?}", r.command_lines());
        assert!(matches!(
            s.wipe_disk("nope", "x", &NoProgress),
            Err(StorageError::NoSuchDisk(_))
        ));
    }

    #[test]
    fn wipe_runs_the_tools_and_checks_the_result() {
        let (_t, r, s) = setup();
        r.expect(
            "wipefs",
            &["--json", "/dev/vdb1"],
            CommandOutput::ok(r#"{"signatures":[{"type":"linux_raid_member"}]}"#),
        );
        s.wipe_disk("virtio-SER-B", "SER-B", &NoProgress).unwrap();
        assert_eq!(
            r.command_lines(),
            [
                "wipefs --json /dev/vdb1",
                "wipefs --json /dev/vdb",
                "mdadm --zero-superblock --force /dev/vdb1",
                "wipefs --all --force /dev/vdb1",
                "wipefs --all --force /dev/vdb",
                "sgdisk --zap-all /dev/vdb",
                "blockdev --rereadpt /dev/vdb",
                "udevadm settle --timeout=30",
                "wipefs --json /dev/vdb",
            ]
        );
    }

    #[test]
    fn the_boot_disk_is_never_wiped() {
        let t = tempfile::tempdir().unwrap();
        add_disk(
            t.path(),
            &FakeDisk {
                partitions: vec![("vda4", "254:4", 1000, Some("cairn-state"), "")],
                ..virtio("vda", "254:0", "E:ID_SERIAL=BOOT\n")
            },
        );
        let r = Arc::new(RecordingRunner::new());
        let s = Storage::open(
            r.clone(),
            &t.path().join("state"),
            Arc::new(RecordingAlerts::default()),
            SystemPaths::under(t.path()),
        )
        .unwrap();
        let e = s.wipe_disk("vda", "BOOT", &NoProgress).unwrap_err();
        assert_eq!(e.field(), Some("disk"));
        assert!(e.to_string().contains("boot disk"));
        assert!(r.calls().is_empty());
    }
}
