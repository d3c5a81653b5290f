//! Typed storage actions that change disks and pools: a request is checked into a
//! [`StorageTask`] that carries what the check found (the plan, the disk), and the task runs
//! from that without computing it again.

use crate::data_error::DataError;
use crate::error::StorageError;
use crate::inventory::Disk;
use crate::plan::CreatePlan;
use crate::pools::CreatePool;
use crate::replace::ReplacePlan;
use crate::scrub::{ScrubResult, ScrubTiming};
use crate::service::Storage;
use cairn_core::alert::{Progress, TaskAction};

/// A request to change disks or pools, as a caller names things (ids, kernel names, paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageRequest {
    /// Erase every signature and partition of a disk, confirmed by its serial.
    WipeDisk {
        disk: String,
        confirm_serial: String,
    },
    /// Build a pool (md array, LVM volume group, thin pool) over blank disks.
    CreatePool(CreatePool),
    /// Tear a pool down, confirmed by typing its name.
    DestroyPool { pool: String, confirm_name: String },
    /// Swap a member for a blank disk and rebuild onto it.
    ReplaceDisk {
        pool: String,
        old: String,
        new: String,
    },
    /// Grow a pool by one blank disk.
    AddDisk { pool: String, disk: String },
}

/// A checked request, ready to run as a task: it carries what the check found.
#[derive(Debug, Clone)]
pub enum StorageTask {
    /// Wipe `disk` (resolved); the run checks the confirmation again under the disk's claim.
    WipeDisk { disk: Disk, confirm_serial: String },
    /// Create the pool of this plan: the disks were probed once, by the check.
    CreatePool(CreatePlan),
    /// Destroy `pool`; the run reads the pool's record again under its claim.
    DestroyPool { pool: String, confirm_name: String },
    /// Replace `old` by `new` in `pool`, as checked into `plan`.
    ReplaceDisk {
        pool: String,
        old: String,
        new: String,
        plan: ReplacePlan,
    },
    /// Add `requested` (resolved to `disk`) to `pool`.
    AddDisk {
        pool: String,
        requested: String,
        disk: Disk,
    },
}

impl StorageRequest {
    /// Check the request without changing anything; a refusal names the field at fault.
    pub fn check(self, storage: &Storage) -> Result<StorageTask, StorageError> {
        Ok(match self {
            StorageRequest::WipeDisk {
                disk,
                confirm_serial,
            } => StorageTask::WipeDisk {
                disk: storage.check_wipe(&disk, &confirm_serial)?,
                confirm_serial,
            },
            StorageRequest::CreatePool(req) => StorageTask::CreatePool(storage.plan_pool(&req)?),
            StorageRequest::DestroyPool { pool, confirm_name } => {
                storage.check_destroy(&pool, &confirm_name)?;
                StorageTask::DestroyPool { pool, confirm_name }
            }
            StorageRequest::ReplaceDisk { pool, old, new } => StorageTask::ReplaceDisk {
                plan: storage.check_replace(&pool, &old, &new)?,
                pool,
                old,
                new,
            },
            StorageRequest::AddDisk { pool, disk } => StorageTask::AddDisk {
                disk: storage.check_add(&pool, &disk)?.1,
                pool,
                requested: disk,
            },
        })
    }
}

impl TaskAction for StorageTask {
    type Service = Storage;
    type Error = StorageError;

    /// The task kind the API and the events show.
    fn kind(&self) -> &'static str {
        match self {
            StorageTask::WipeDisk { .. } => "disk.wipe",
            StorageTask::CreatePool(_) => "pool.create",
            StorageTask::DestroyPool { .. } => "pool.destroy",
            StorageTask::ReplaceDisk { .. } => "pool.replace",
            StorageTask::AddDisk { .. } => "pool.add",
        }
    }

    /// The task's first message, from what the check found.
    fn message(&self) -> String {
        match self {
            StorageTask::WipeDisk { disk, .. } => format!("wiping disk {}", disk.id),
            StorageTask::CreatePool(plan) => format!(
                "creating pool {} ({}, {} disks, {} bytes usable)",
                plan.name,
                plan.level,
                plan.disks.len(),
                plan.usable_bytes
            ),
            StorageTask::DestroyPool { pool, .. } => format!("destroying pool {pool}"),
            StorageTask::ReplaceDisk { pool, plan, .. } => {
                format!("replacing {} by {} in pool {pool}", plan.old, plan.new.id)
            }
            StorageTask::AddDisk { pool, disk, .. } => format!("adding {} to pool {pool}", disk.id),
        }
    }

    /// Run the action (blocks); `Ok` carries the finished task's message.
    fn run(self, storage: &Storage, progress: &dyn Progress) -> Result<String, StorageError> {
        let done = match self {
            StorageTask::WipeDisk {
                disk,
                confirm_serial,
            } => {
                storage.wipe_disk(&disk.id, &confirm_serial, progress)?;
                "disk wiped"
            }
            StorageTask::CreatePool(plan) => {
                storage.create_planned(&plan, progress)?;
                "pool created"
            }
            StorageTask::DestroyPool { pool, confirm_name } => {
                storage.destroy_pool(&pool, &confirm_name, progress)?;
                "pool destroyed"
            }
            StorageTask::ReplaceDisk { pool, plan, .. } => {
                storage.replace_planned(&pool, &plan, progress)?;
                "rebuild complete"
            }
            StorageTask::AddDisk { pool, disk, .. } => {
                storage.add_checked(&pool, &disk, progress)?;
                "disk added"
            }
        };
        Ok(done.to_string())
    }
}

/// A share or pool-data action that runs as a task (errors are [`DataError`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareTask {
    /// Copy `snapshot` of `share` into a new share `new_share` of `pool`.
    RestoreSnapshot {
        pool: String,
        share: String,
        snapshot: String,
        new_share: String,
    },
    /// Check the pool's array, then every share's checksums.
    Scrub { pool: String },
}

impl ShareTask {
    /// Check what can be checked before the task starts (bad input gets a 4xx, not a task).
    pub fn check(&self, storage: &Storage) -> Result<(), DataError> {
        match self {
            ShareTask::RestoreSnapshot {
                pool,
                share,
                snapshot,
                new_share,
            } => {
                crate::volume::validate_name("new_share", new_share)?;
                if !storage
                    .snapshots(pool, share)?
                    .iter()
                    .any(|x| x.name == *snapshot)
                {
                    return Err(DataError::NoSuchSnapshot {
                        share: share.clone(),
                        snapshot: snapshot.clone(),
                    });
                }
                if storage.share_record(pool, new_share).is_ok() {
                    return Err(DataError::invalid(
                        "new_share",
                        "a share of that name exists",
                    ));
                }
                Ok(())
            }
            ShareTask::Scrub { pool } => storage.pool_usable(pool),
        }
    }
}

impl TaskAction for ShareTask {
    type Service = Storage;
    type Error = DataError;

    /// The task kind the API and the events show.
    fn kind(&self) -> &'static str {
        match self {
            ShareTask::RestoreSnapshot { .. } => "share.restore",
            ShareTask::Scrub { .. } => "pool.scrub",
        }
    }

    /// The task's first message.
    fn message(&self) -> String {
        match self {
            ShareTask::RestoreSnapshot {
                share,
                snapshot,
                new_share,
                ..
            } => format!("restoring {share}@{snapshot} as share {new_share}"),
            ShareTask::Scrub { pool } => format!("scrubbing pool {pool}"),
        }
    }

    /// Run the action (blocks); `Ok` carries the finished task's message.
    fn run(self, storage: &Storage, progress: &dyn Progress) -> Result<String, DataError> {
        match self {
            ShareTask::RestoreSnapshot {
                pool,
                share,
                snapshot,
                new_share,
            } => {
                let new =
                    storage.restore_snapshot(&pool, &share, &snapshot, &new_share, progress)?;
                Ok(format!(
                    "share {} restored from {share}@{snapshot}",
                    new.record.name
                ))
            }
            ShareTask::Scrub { pool } => {
                let result = storage.scrub_pool(&pool, progress, ScrubTiming::default())?;
                Ok(scrub_summary(&pool, &result))
            }
        }
    }
}

/// The message of a finished scrub of `pool` (the task's, and the scheduled scrub's).
pub fn scrub_summary(pool: &str, r: &ScrubResult) -> String {
    let errors: u64 = r.share_errors.values().sum();
    format!(
        "scrub of pool {pool} done: {} mismatched sector(s) in the array, {errors} error(s) in {} share(s), {} bytes verified",
        r.mismatch_cnt,
        r.share_errors.len(),
        r.bytes_scrubbed
    )
}
