//! The command line of `cairnctl vms`.

use super::values::{self, CloneDisk, Iso, NewDisk, Nic};
use clap::{Args, Subcommand};

/// `cairnctl vms [VERB]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VmsArgs {
    /// Without one: VMs with state and the node's resources.
    #[command(subcommand)]
    pub command: Option<VmsCommand>,
}

/// A VM verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum VmsCommand {
    /// One VM with its disks, NICs, snapshots and live stats.
    Show(VmRef),
    /// Define a VM.
    Create(CreateArgs),
    /// Start a VM.
    Start(VmRef),
    /// Power a VM off at once.
    Off(VmRef),
    /// ACPI shutdown, then power off after the timeout.
    Shutdown {
        /// The VM.
        name: String,
        /// Seconds to wait for the guest before powering it off.
        #[arg(long, value_name = "SECONDS")]
        timeout: Option<u64>,
    },
    /// Reboot a VM.
    Reboot {
        /// The VM.
        name: String,
        /// Reset it instead of asking the guest.
        #[arg(long)]
        force: bool,
    },
    /// Clone a VM; several new names make one batch, all or nothing.
    Clone {
        /// The VM cloned.
        name: String,
        /// The new VMs' names.
        #[arg(value_name = "NEW_NAME", required = true)]
        new: Vec<String>,
        /// Clone the VM as it was in this snapshot.
        #[arg(long, value_name = "SNAP")]
        snapshot: Option<String>,
    },
    /// Snapshot a VM's disks.
    Snapshot {
        /// The VM.
        name: String,
        /// The snapshot's name.
        snap: String,
    },
    /// A new VM from a snapshot of a VM.
    Restore {
        /// The VM.
        name: String,
        /// The snapshot.
        snap: String,
        /// The new VM's name.
        new_name: String,
    },
    /// Start a VM when the node boots, or not.
    Autostart {
        /// The VM.
        name: String,
        /// on or off.
        #[arg(value_name = "on|off", value_parser = values::on_off, action = clap::ArgAction::Set)]
        on: bool,
    },
    /// Delete a VM (its disks too with --delete-disks); a VM with replicated disks needs
    /// `vms unreplicate` first.
    Delete {
        /// The VM.
        name: String,
        /// Confirm the delete (required).
        #[arg(long, required = true)]
        yes: bool,
        /// Delete the VM's disk volumes too.
        #[arg(long)]
        delete_disks: bool,
    },
    /// Follow the serial console (Ctrl-C ends).
    Console(VmRef),
    /// Turn replication on for a shut-off VM's disks, following the initial sync.
    ///
    /// Each disk gets a synchronous copy (DRBD) on another node of the cluster: a write is
    /// done once both copies have it. The VM must stay shut down until the initial sync,
    /// which copies each whole disk, is done.
    Replicate {
        /// The VM.
        name: String,
        /// The node to hold the copies (the API's replica field; default: the eligible node
        /// with the most free space).
        #[arg(long, value_name = "NODE", value_parser = clap::builder::NonEmptyStringValueParser::new())]
        to: Option<String>,
    },
    /// Each replicated disk of a VM and its state on this node (DRBD).
    Replication(VmRef),
    /// Turn replication off for a shut-off VM's disks, keeping one copy, following the task.
    ///
    /// The kept copy stays the disk's thin volume; the other node's copy is deleted. The VM
    /// then has no second copy (no failover). Only this node's copy can be kept: keeping the
    /// other node's would move the VM there, which Cairn cannot do yet.
    Unreplicate {
        /// The VM.
        name: String,
        /// The node whose copy stays (the API's keep field): this node.
        #[arg(long, value_name = "NODE", required = true)]
        keep: String,
    },
    /// Move the other copy of a VM's replicated disks to another node, following the task.
    ///
    /// The VM may run. The node now holding the other copy drops it at once and deletes it;
    /// the new node gets a fresh copy and the whole disk is copied to it. Until that copy
    /// ends only this node's copy is current: no failover meanwhile.
    MoveReplica {
        /// The VM.
        name: String,
        /// The node to hold the other copy from now on (the API's to field).
        #[arg(long, value_name = "NODE", required = true)]
        to: String,
    },
}

/// A VM, by name.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VmRef {
    /// The VM.
    pub name: String,
}

/// `cairnctl vms create`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CreateArgs {
    /// The VM's name.
    pub name: String,
    /// Virtual CPUs.
    #[arg(long, value_name = "N")]
    pub vcpus: u32,
    /// Memory in MiB.
    #[arg(long, value_name = "MIB")]
    pub memory: u64,
    /// A new disk volume, its size in GiB (repeat for more).
    #[arg(long, value_name = "POOL:SIZE_GIB[:BUS]", value_parser = values::new_disk)]
    pub disk: Vec<NewDisk>,
    /// A copy of another VM's disk (repeat for more).
    #[arg(long, value_name = "VM:DISK[:SNAPSHOT]", value_parser = values::clone_disk)]
    pub clone_disk: Vec<CloneDisk>,
    /// An ISO image on a share as a CD-ROM (repeat for more).
    #[arg(long, value_name = "POOL/SHARE/FILE", value_parser = values::iso)]
    pub iso: Vec<Iso>,
    /// A network card on a bridge (repeat for more).
    #[arg(long, value_name = "BRIDGE[=MAC]", value_parser = values::nic)]
    pub nic: Vec<Nic>,
    /// The machine type: pc or q35.
    #[arg(long, value_name = "pc|q35")]
    pub machine: Option<String>,
    /// The CPU model.
    #[arg(long, value_name = "MODEL")]
    pub cpu: Option<String>,
    /// Boot order, e.g. disk,cdrom,network.
    #[arg(long, value_name = "disk,cdrom,network")]
    pub boot: Option<String>,
    /// Start the VM when the node boots.
    #[arg(long)]
    pub autostart: bool,
}
