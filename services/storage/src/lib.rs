//! cairn-storage: disk inventory, pools (md → LVM thin), shares (btrfs), snapshots, thin volumes, scrub.

pub mod names;
