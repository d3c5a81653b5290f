//! What can go wrong in the VM service, one variant per failure site.

use crate::hypervisor::HvError;
use crate::spec::Invalid;
use crate::store::StoreError;
use crate::volumes::VolumeError;
use cairn_core::shown::clip;

/// A failed VM operation.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("invalid request")]
    Invalid(#[from] Invalid),
    #[error("no VM named {}", clip(.0))]
    NotFound(String),
    #[error("no snapshot named {snapshot} of VM {vm}")]
    NoSnapshot { vm: String, snapshot: String },
    #[error("VM {vm} is {state}: {need}")]
    WrongState {
        vm: String,
        state: String,
        need: &'static str,
    },
    #[error(
        "VM {vm} needs {need_mib} MiB but only {free_mib} MiB of the node's memory is uncommitted"
    )]
    NoMemory {
        vm: String,
        need_mib: u64,
        free_mib: u64,
    },
    #[error("storage: {op}")]
    Volume {
        op: String,
        #[source]
        source: VolumeError,
    },
    #[error("cannot define clone {vm} in libvirt")]
    DefineClone {
        vm: String,
        #[source]
        source: HvError,
    },
    #[error("VM {vm}: replicated disk {disk} ({resource}) cannot be used here: {reason}")]
    Replica {
        vm: String,
        disk: String,
        resource: String,
        reason: String,
    },
    #[error("hypervisor")]
    Hypervisor(#[from] HvError),
    #[error("VM store")]
    Store(#[from] StoreError),
    #[error("cannot write the image to {path}")]
    Image {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the console of {vm}")]
    Console {
        vm: String,
        #[source]
        source: std::io::Error,
    },
}

/// An error and its sources on one line (the workspace's one `error_chain`).
pub use cairn_core::boot::error_chain as chain;
