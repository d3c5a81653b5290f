//! cairn-storage: disk inventory, pools (md → LVM thin), shares (btrfs), snapshots, thin volumes, scrub.

pub mod action;
pub mod assemble;
pub mod btrfs;
pub mod capacity;
pub mod commit_throttle;
pub mod data_error;
pub mod disks;
pub mod error;
pub mod inventory;
pub mod level;
pub mod lvm;
pub mod md;
pub mod monitor;
pub mod names;
pub mod paths;
pub mod plan;
pub mod pools;
pub mod records;
pub mod replace;
pub mod schedule;
pub mod schedule_loop;
pub mod scrub;
pub mod service;
pub mod share;
pub mod snapshot;
pub mod status;
#[cfg(test)]
mod testing;
pub mod udevdb;
pub mod volume;
pub mod watch;
pub mod wipefs;

pub use action::{ShareTask, StorageRequest, StorageTask};
pub use data_error::DataError;
pub use disks::{DiskView, Usage};
pub use error::StorageError;
pub use inventory::Disk;
pub use level::Level;
pub use paths::SystemPaths;
pub use plan::CreatePlan;
pub use pools::CreatePool;
pub use records::PoolRecord;
pub use replace::AddPlan;
pub use service::Storage;
pub use status::{MemberState, PoolState, PoolStatus};
pub use volume::Volume;
