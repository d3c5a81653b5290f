//! The command line of `cairnctl shares`, `snapshots`, `snapshot`, `restore`, `volumes`,
//! `volume`, `scrub` and `capacity`.

use super::values;
use clap::{Args, Subcommand};

/// The share, snapshot, volume and scrub verbs (top-level verbs of cairnctl).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SharesCommand {
    /// Shares of a pool with their usage; create, resize, delete.
    Shares(SharesArgs),
    /// Snapshots of a share (also: snapshot list POOL SHARE).
    Snapshots(ShareRef),
    /// Create, delete or list snapshots of a share; set its snapshot schedule.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Restore a snapshot as a new share (progress bar).
    #[command(override_usage = "cairnctl restore POOL SHARE SNAPSHOT NEW_SHARE")]
    Restore {
        /// The pool.
        pool: String,
        /// The share the snapshot is of.
        share: String,
        /// The snapshot.
        snapshot: String,
        /// The name of the share made from it.
        new_share: String,
    },
    /// Thin volumes (VM disks) of a pool.
    Volumes(PoolRef),
    /// Create, clone, snapshot or delete a thin volume.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Scrub a pool now with a progress bar (md check + btrfs scrub), or set the days
    /// between scheduled scrubs.
    Scrub {
        /// The pool.
        pool: String,
        /// Days between scheduled scrubs (0: off) instead of scrubbing now.
        #[arg(long, value_name = "DAYS")]
        interval: Option<u32>,
    },
    /// Thin pool and share usage.
    Capacity(PoolRef),
}

/// A pool, by name.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PoolRef {
    /// The pool.
    pub pool: String,
}

/// A share of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ShareRef {
    /// The pool.
    pub pool: String,
    /// The share.
    pub share: String,
}

/// `cairnctl shares POOL` or `cairnctl shares list|create|resize|delete …`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SharesArgs {
    /// The pool whose shares are listed.
    #[arg(required = true)]
    pub pool: Option<String>,
    /// A share verb instead of the list.
    #[command(subcommand)]
    pub command: Option<ShareCommand>,
}

/// A share verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ShareCommand {
    /// Shares of a pool with their usage.
    List(PoolRef),
    /// Create a share.
    Create(ShareSize),
    /// Grow a share.
    Resize(ShareSize),
    /// Delete a share and its snapshots.
    Delete {
        /// The pool.
        pool: String,
        /// The share.
        name: String,
        /// The share's name, typed to confirm.
        #[arg(long, value_name = "NAME")]
        confirm: String,
    },
}

/// A share and its size.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ShareSize {
    /// The pool.
    pub pool: String,
    /// The share.
    pub name: String,
    /// Like 10G, 512M or a byte count (binary units).
    #[arg(long, value_parser = values::parse_size)]
    pub size: u64,
}

/// A snapshot verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a share now.
    Create(SnapshotRef),
    /// Delete a snapshot.
    Delete(SnapshotRef),
    /// Snapshots of a share.
    List(ShareRef),
    /// Set how many scheduled snapshots of each kind are kept (the others stay as they are).
    Schedule {
        /// The pool.
        pool: String,
        /// The share.
        share: String,
        /// Hourly snapshots kept.
        #[arg(long, value_name = "N")]
        hourly: Option<u32>,
        /// Daily snapshots kept.
        #[arg(long, value_name = "N")]
        daily: Option<u32>,
        /// Weekly snapshots kept.
        #[arg(long, value_name = "N")]
        weekly: Option<u32>,
    },
}

/// One snapshot of a share.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SnapshotRef {
    /// The pool.
    pub pool: String,
    /// The share.
    pub share: String,
    /// The snapshot.
    pub name: String,
}

/// A thin volume verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum VolumeCommand {
    /// Create a thin volume.
    Create {
        /// The pool.
        pool: String,
        /// The volume.
        name: String,
        /// Like 10G, 512M or a byte count (binary units).
        #[arg(long, value_parser = values::parse_size)]
        size: u64,
    },
    /// A writable copy of a volume.
    Clone(VolumeCopy),
    /// A snapshot of a volume.
    Snapshot(VolumeCopy),
    /// Delete a thin volume.
    Delete {
        /// The pool.
        pool: String,
        /// The volume.
        name: String,
    },
}

/// A volume made from another.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VolumeCopy {
    /// The pool.
    pub pool: String,
    /// The volume copied.
    pub source: String,
    /// The new volume.
    pub name: String,
}
