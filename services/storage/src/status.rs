//! A pool's status from our record, the disks present and the md array: state, sync progress, members.

use crate::inventory::Disk;
use crate::level::Level;
use crate::md::MdArray;
use crate::names;
use crate::records::PoolRecord;
use serde::Serialize;

/// How a pool is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    /// Every member present and in sync (an initial resync or a check may run).
    Healthy,
    /// Members missing or faulty, no rebuild running.
    Degraded,
    /// A member is being rebuilt (or the array reshaped after growing).
    Rebuilding,
    /// The array is not running, or lost more members than its level survives.
    Failed,
}

/// A running sync: md's action and how far it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncStatus {
    /// `resync`, `recover`, `reshape`, `check`, `repair`.
    pub action: String,
    pub percent: Option<u8>,
}

/// How one member of our record is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    InSync,
    Rebuilding,
    Spare,
    Faulty,
    /// The disk is not on the system.
    Missing,
    /// The disk is present but not part of the running array (e.g. it came back with older
    /// data): it is re-added with a resync, never trusted as it is.
    Stale,
}

/// One member of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    /// Disk id.
    pub disk: String,
    /// Device node now, when present.
    pub dev: Option<String>,
    pub state: MemberState,
}

/// What the API shows for a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    pub name: String,
    pub level: Level,
    pub state: PoolState,
    /// Why the pool is not healthy (empty when it is).
    pub reason: String,
    pub md_uuid: String,
    /// `/dev/md/<name>`.
    pub device: String,
    /// The md kernel name (`md127`) when assembled.
    pub md: Option<String>,
    pub volume_group: String,
    /// Size of the array.
    pub size_bytes: u64,
    pub sync: Option<SyncStatus>,
    pub members: Vec<MemberStatus>,
    pub created: u64,
}

/// Work out the status of `rec` from `disks` (the inventory) and `array` (None: not assembled).
pub fn pool_status(rec: &PoolRecord, disks: &[Disk], array: Option<&MdArray>) -> PoolStatus {
    let members: Vec<MemberStatus> = rec
        .members
        .iter()
        .map(|id| {
            let disk = disks.iter().find(|d| d.id == *id);
            let state = match (disk, array) {
                (None, _) => MemberState::Missing,
                (Some(_), None) => MemberState::Stale,
                (Some(d), Some(a)) => match a.members.iter().find(|m| m.name == d.name) {
                    None => MemberState::Stale,
                    Some(m) if m.faulty() => MemberState::Faulty,
                    Some(m) if m.in_sync() => MemberState::InSync,
                    Some(m) if m.slot.is_some() => MemberState::Rebuilding,
                    Some(_) if matches!(a.sync_action.as_str(), "recover" | "reshape") => {
                        MemberState::Rebuilding
                    }
                    Some(_) => MemberState::Spare,
                },
            };
            MemberStatus {
                disk: id.clone(),
                dev: disk.map(|d| d.dev.display().to_string()),
                state,
            }
        })
        .collect();
    let sync = array
        .filter(|a| !matches!(a.sync_action.as_str(), "idle" | "" | "frozen"))
        .map(|a| SyncStatus {
            action: a.sync_action.clone(),
            percent: a.sync_percent(),
        });
    let missing: Vec<&str> = members
        .iter()
        .filter(|m| m.state != MemberState::InSync && m.state != MemberState::Rebuilding)
        .map(|m| m.disk.as_str())
        .collect();
    let (state, reason) = match array {
        None => (PoolState::Failed, "the array is not assembled".to_string()),
        Some(a) if a.is_failed_for(rec.level) => (
            PoolState::Failed,
            format!(
                "the array is {} with {} of {} members missing",
                a.array_state, a.degraded, a.raid_disks
            ),
        ),
        Some(a) if a.degraded > 0 && matches!(a.sync_action.as_str(), "recover" | "reshape") => (
            PoolState::Rebuilding,
            format!(
                "rebuilding: {} of {} members missing",
                a.degraded, a.raid_disks
            ),
        ),
        Some(a) if a.sync_action == "reshape" => {
            (PoolState::Rebuilding, "reshaping after growing".to_string())
        }
        Some(a) if a.degraded > 0 => (
            PoolState::Degraded,
            format!(
                "{} of {} members missing{}",
                a.degraded,
                a.raid_disks,
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", missing.join(", "))
                }
            ),
        ),
        Some(_) => (PoolState::Healthy, String::new()),
    };
    PoolStatus {
        name: rec.name.clone(),
        level: rec.level,
        state,
        reason,
        md_uuid: rec.md_uuid.clone(),
        device: names::md_path(&rec.name).display().to_string(),
        md: array.map(|a| a.kernel.clone()),
        volume_group: names::vg_name(&rec.name),
        size_bytes: array.map(|a| a.size_bytes).unwrap_or(0),
        sync,
        members,
        created: rec.created,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::md::MdMember;
    use crate::plan::tests_support::disk;

    fn rec() -> PoolRecord {
        PoolRecord {
            name: "tank".into(),
            level: Level::Raid5,
            md_uuid: "u".into(),
            members: vec!["a".into(), "b".into(), "c".into()],
            created: 0,
        }
    }

    fn member(name: &str, slot: Option<u32>, state: &str) -> MdMember {
        MdMember {
            name: name.into(),
            slot,
            state: state.split(',').map(str::to_string).collect(),
            present: true,
        }
    }

    fn array(degraded: u32, action: &str, members: Vec<MdMember>) -> MdArray {
        MdArray {
            kernel: "md127".into(),
            array_state: "clean".into(),
            raid_disks: 3,
            degraded,
            sync_action: action.into(),
            sync_completed: (action != "idle").then_some((50, 100)),
            size_bytes: 1 << 30,
            members,
        }
    }

    #[test]
    fn healthy_when_all_members_in_sync() {
        let disks = vec![disk("a", 1), disk("b", 1), disk("c", 1)];
        let a = array(
            0,
            "idle",
            vec![
                member("a", Some(0), "in_sync"),
                member("b", Some(1), "in_sync"),
                member("c", Some(2), "in_sync"),
            ],
        );
        let s = pool_status(&rec(), &disks, Some(&a));
        assert_eq!(s.state, PoolState::Healthy);
        assert!(s.members.iter().all(|m| m.state == MemberState::InSync));
        assert_eq!(s.sync, None);
    }

    #[test]
    fn a_missing_disk_makes_it_degraded_and_is_named() {
        let disks = vec![disk("a", 1), disk("b", 1)];
        let a = array(
            1,
            "idle",
            vec![
                member("a", Some(0), "in_sync"),
                member("b", Some(1), "in_sync"),
            ],
        );
        let s = pool_status(&rec(), &disks, Some(&a));
        assert_eq!(s.state, PoolState::Degraded);
        assert_eq!(s.members[2].state, MemberState::Missing);
        assert!(
            s.reason.contains("1 of 3") && s.reason.contains("(c)"),
            "{}",
            s.reason
        );
    }

    #[test]
    fn recovery_is_rebuilding_with_progress() {
        let mut r = rec();
        r.members[2] = "d".into();
        let disks = vec![disk("a", 1), disk("b", 1), disk("d", 1)];
        let a = array(
            1,
            "recover",
            vec![
                member("a", Some(0), "in_sync"),
                member("b", Some(1), "in_sync"),
                member("d", Some(2), ""),
            ],
        );
        let s = pool_status(&r, &disks, Some(&a));
        assert_eq!(s.state, PoolState::Rebuilding);
        assert_eq!(s.members[2].state, MemberState::Rebuilding);
        assert_eq!(s.sync.unwrap().percent, Some(50));
    }

    #[test]
    fn present_but_outside_the_array_is_stale_and_too_many_lost_is_failed() {
        let disks = vec![disk("a", 1), disk("b", 1), disk("c", 1)];
        let a = array(2, "idle", vec![member("a", Some(0), "in_sync")]);
        let s = pool_status(&rec(), &disks, Some(&a));
        assert_eq!(s.state, PoolState::Failed);
        assert_eq!(s.members[1].state, MemberState::Stale);
        let s = pool_status(&rec(), &disks, None);
        assert_eq!(s.state, PoolState::Failed);
        assert!(s.reason.contains("not assembled"));
    }
}
