//! The md arrays' live state from sysfs (`/sys/block/mdX/md/…`): members, degraded count, sync progress.

use crate::level::Level;
use crate::paths::SystemPaths;
use serde::Serialize;
use std::path::Path;

/// One member as md sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdMember {
    /// Kernel name of the member device (`sdb`, `vdc`).
    pub name: String,
    /// Its role in the array (`None`: spare or not yet placed).
    pub slot: Option<u32>,
    /// md's flags: `in_sync`, `faulty`, `spare`, `write_error`, `replacement`, …
    pub state: Vec<String>,
    /// Whether the device is still present on the system (`false`: pulled out).
    pub present: bool,
}

impl MdMember {
    /// Whether md marked the member faulty.
    pub fn faulty(&self) -> bool {
        self.state.iter().any(|s| s == "faulty")
    }

    /// Whether the member holds current data.
    pub fn in_sync(&self) -> bool {
        self.state.iter().any(|s| s == "in_sync")
    }
}

/// An md array's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdArray {
    /// Kernel name (`md127`).
    pub kernel: String,
    /// `clear`, `inactive`, `suspended`, `readonly`, `read-auto`, `clean`, `active`, …
    pub array_state: String,
    pub raid_disks: u32,
    /// Missing members (`md/degraded`).
    pub degraded: u32,
    /// `idle`, `resync`, `recover`, `check`, `repair`, `reshape`, `frozen`.
    pub sync_action: String,
    /// (done, total) sectors of the running sync.
    pub sync_completed: Option<(u64, u64)>,
    pub size_bytes: u64,
    pub members: Vec<MdMember>,
}

impl MdArray {
    /// Whether the array is started.
    pub fn is_running(&self) -> bool {
        !matches!(self.array_state.as_str(), "clear" | "inactive" | "")
    }

    /// Whether more members are missing than the level survives (or the array will not run).
    pub fn is_failed_for(&self, level: Level) -> bool {
        if !self.is_running() {
            return true;
        }
        let lost = self.degraded as usize;
        match level {
            // With near=2 at most half the members can go, one per mirror pair.
            Level::Raid10 => lost > (self.raid_disks as usize) / 2,
            _ => lost > level.redundancy(),
        }
    }

    /// Whether the array cannot serve data at all.
    pub fn is_failed(&self) -> bool {
        !self.is_running() || self.degraded >= self.raid_disks
    }

    /// Percent done of the running sync (0–100), if one runs.
    pub fn sync_percent(&self) -> Option<u8> {
        let (done, total) = self.sync_completed?;
        if total == 0 {
            return None;
        }
        // done ≤ total: at most 100, so it fits.
        u8::try_from(done.min(total) * 100 / total).ok()
    }
}

/// Parse `sync_completed`: `none`, `delayed` or `DONE / TOTAL`.
pub fn parse_sync_completed(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.trim().split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The kernel name of pool `pool`'s array from the `/dev/md/<pool>` link, if it exists.
pub fn kernel_name(paths: &SystemPaths, pool: &str) -> Option<String> {
    let link = paths.dev.join("md").join(pool);
    let target = std::fs::read_link(link).ok()?;
    target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| paths.sys_block().join(n).join("md").is_dir())
}

/// The state of pool `pool`'s array, or `None` when it is not assembled.
pub fn read_array(paths: &SystemPaths, pool: &str) -> Option<MdArray> {
    let kernel = kernel_name(paths, pool)?;
    Some(read_md(paths, &kernel))
}

/// The state of array `kernel` (`md127`).
pub fn read_md(paths: &SystemPaths, kernel: &str) -> MdArray {
    let dir = paths.sys_block().join(kernel);
    let md = dir.join("md");
    let mut members = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&md) {
        let mut names: Vec<String> = rd
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_prefix("dev-")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        for name in names {
            let mdir = md.join(format!("dev-{name}"));
            let state = read(&mdir.join("state"));
            let present = device_present(paths, &name);
            members.push(MdMember {
                slot: read(&mdir.join("slot")).parse().ok(),
                state: state
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                present,
                name,
            });
        }
    }
    MdArray {
        kernel: kernel.to_string(),
        array_state: read(&md.join("array_state")),
        raid_disks: read(&md.join("raid_disks")).parse().unwrap_or(0),
        degraded: read(&md.join("degraded")).parse().unwrap_or(0),
        sync_action: read(&md.join("sync_action")),
        sync_completed: parse_sync_completed(&read(&md.join("sync_completed"))),
        size_bytes: read(&dir.join("size")).parse::<u64>().unwrap_or(0) * 512,
        members,
    }
}

/// Whether block device `name` (a disk or a partition) still exists.
fn device_present(paths: &SystemPaths, name: &str) -> bool {
    if paths.sys_block().join(name).exists() {
        return true;
    }
    // A partition: /sys/class/block/<name>.
    paths.sys.join("class/block").join(name).exists()
}

/// Recorded md sysfs trees for tests.
#[cfg(any(test, feature = "test-util"))]
pub mod fake {
    use std::path::Path;

    /// Write array `kernel` of pool `pool` under `root`, with members (name, slot, state).
    pub fn add_array(
        root: &Path,
        pool: &str,
        kernel: &str,
        raid_disks: u32,
        degraded: u32,
        sync: (&str, &str),
        members: &[(&str, &str, &str)],
    ) {
        let dir = root.join("sys/block").join(kernel);
        let md = dir.join("md");
        let _ = std::fs::remove_dir_all(&md);
        std::fs::create_dir_all(&md).unwrap();
        std::fs::write(dir.join("dev"), "9:127\n").unwrap();
        std::fs::write(dir.join("size"), "1048576\n").unwrap();
        std::fs::write(md.join("array_state"), "clean\n").unwrap();
        std::fs::write(md.join("raid_disks"), format!("{raid_disks}\n")).unwrap();
        std::fs::write(md.join("degraded"), format!("{degraded}\n")).unwrap();
        std::fs::write(md.join("sync_action"), format!("{}\n", sync.0)).unwrap();
        std::fs::write(md.join("sync_completed"), format!("{}\n", sync.1)).unwrap();
        for (name, slot, state) in members {
            let m = md.join(format!("dev-{name}"));
            std::fs::create_dir_all(&m).unwrap();
            std::fs::write(m.join("slot"), format!("{slot}\n")).unwrap();
            std::fs::write(m.join("state"), format!("{state}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("dev/md")).unwrap();
        let link = root.join("dev/md").join(pool);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("../{kernel}"), link).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::fake::add_array;
    use super::*;

    #[test]
    fn reads_a_rebuilding_array() {
        let t = tempfile::tempdir().unwrap();
        for d in ["vdb", "sda", "nvme0n1"] {
            std::fs::create_dir_all(t.path().join("sys/block").join(d)).unwrap();
        }
        add_array(
            t.path(),
            "tank",
            "md127",
            4,
            1,
            ("recover", "1000 / 4000"),
            &[
                ("vdb", "0", "in_sync"),
                ("sda", "1", "in_sync"),
                ("nvme0n1", "2", "in_sync,write_error"),
                ("vdd", "3", "spare"),
            ],
        );
        let paths = SystemPaths::under(t.path());
        assert_eq!(kernel_name(&paths, "tank").as_deref(), Some("md127"));
        let a = read_array(&paths, "tank").unwrap();
        assert!(a.is_running());
        assert_eq!(a.degraded, 1);
        assert_eq!(a.sync_action, "recover");
        assert_eq!(a.sync_percent(), Some(25));
        assert_eq!(a.members.len(), 4);
        let vdd = a.members.iter().find(|m| m.name == "vdd").unwrap();
        assert!(!vdd.present, "vdd is not in /sys/block");
        assert_eq!(
            a.members[0].state,
            ["in_sync", "write_error"],
            "nvme0n1 sorts first"
        );
        assert!(!a.is_failed_for(Level::Raid5));
        assert!(read_array(&paths, "other").is_none());
    }

    #[test]
    fn failure_depends_on_level() {
        let a = MdArray {
            kernel: "md0".into(),
            array_state: "clean".into(),
            raid_disks: 4,
            degraded: 2,
            sync_action: "idle".into(),
            sync_completed: None,
            size_bytes: 0,
            members: vec![],
        };
        assert!(a.is_failed_for(Level::Raid5));
        assert!(!a.is_failed_for(Level::Raid6));
        assert!(!a.is_failed_for(Level::Raid10));
        let inactive = MdArray {
            array_state: "inactive".into(),
            degraded: 0,
            ..a
        };
        assert!(inactive.is_failed_for(Level::Raid6));
    }

    #[test]
    fn sync_completed_forms() {
        assert_eq!(parse_sync_completed("none"), None);
        assert_eq!(parse_sync_completed("delayed"), None);
        assert_eq!(parse_sync_completed("12 / 24"), Some((12, 24)));
    }
}
