//! The command line of `cairnctl disks` and `cairnctl pools`.

use clap::{Args, Subcommand};

/// The disk and pool verbs (top-level verbs of cairnctl).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum StorageCommand {
    /// Every disk: id, model, serial, size, bus, usage, SMART.
    Disks(DisksArgs),
    /// Pools with state and rebuild progress.
    Pools(PoolsArgs),
}

/// `cairnctl disks [show|wipe]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DisksArgs {
    /// Without one: the disk table.
    #[command(subcommand)]
    pub command: Option<DisksCommand>,
}

/// What to do with one disk.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum DisksCommand {
    /// One disk with its partitions and signatures.
    Show {
        /// The disk's id (from `cairnctl disks`).
        disk: String,
    },
    /// Erase everything on a disk (type its serial to confirm).
    Wipe {
        /// The disk's id.
        disk: String,
        /// The disk's serial, typed to confirm.
        #[arg(long)]
        serial: String,
    },
}

/// `cairnctl pools [show|create|replace|add|destroy]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PoolsArgs {
    /// Without one: the pool table.
    #[command(subcommand)]
    pub command: Option<PoolsCommand>,
}

/// What to do with one pool.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum PoolsCommand {
    /// One pool with its members.
    Show {
        /// The pool's name.
        name: String,
    },
    /// Build a pool: shows the usable capacity, asks, then builds (progress bar).
    Create {
        /// The new pool's name.
        name: String,
        /// The RAID level: single, raid1, raid5, raid6 or raid10.
        #[arg(long)]
        level: String,
        /// The blank disks to build it on (ids from `cairnctl disks`).
        #[arg(required = true)]
        disks: Vec<String>,
        /// Do not ask (needed without a terminal).
        #[arg(short, long)]
        yes: bool,
    },
    /// Replace member OLD by blank disk NEW; waits for the rebuild.
    Replace {
        /// The pool's name.
        name: String,
        /// The member disk to take out.
        old: String,
        /// The blank disk to put in.
        new: String,
    },
    /// Add a disk and grow the pool: shows the capacity after the add, asks, then adds
    /// (progress bar).
    Add {
        /// The pool's name.
        name: String,
        /// The blank disk to add.
        disk: String,
        /// Do not ask (needed without a terminal).
        #[arg(short, long)]
        yes: bool,
    },
    /// Destroy a pool and all its data.
    Destroy {
        /// The pool's name.
        name: String,
        /// The pool's name, typed to confirm.
        #[arg(long, value_name = "NAME")]
        confirm: String,
    },
}
