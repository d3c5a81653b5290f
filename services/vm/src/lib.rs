//! cairn-vm: VM specs, libvirt domain XML, lifecycle through libvirt (in the helper `cairn-virt`, over `remote`), clones and snapshots.

pub mod action;
pub mod clones;
pub mod console;
pub mod error;
#[cfg(feature = "libvirt")]
pub mod events;
pub mod host;
pub mod hv_types;
pub mod hypervisor;
pub mod ids;
pub mod images;
#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod monitor;
pub mod protocol;
pub mod remote;
pub mod serve;
pub mod service;
pub mod spec;
pub mod stats;
pub mod store;
pub mod volumes;
pub mod xml;

pub use clones::{ClonedVms, NewClone};
pub use error::VmError;
pub use hv_types::{HvEvent, Lifecycle, RunState};
pub use hypervisor::Hypervisor;
pub use remote::RemoteHypervisor;
pub use service::{Resources, VmStatus, Vms, VmsConfig};
pub use spec::VmSpec;
pub use stats::{DiskStats, VmStats};
pub use volumes::{VolumeError, VolumeUse, Volumes};
pub use xml::Accelerator;
