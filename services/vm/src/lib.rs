//! cairn-vm: VM specs, libvirt domain XML, lifecycle through libvirt, clones and snapshots.

pub mod action;
pub mod console;
pub mod error;
pub mod events;
pub mod host;
pub mod hypervisor;
pub mod ids;
pub mod libvirt;
pub mod service;
pub mod spec;
pub mod store;
pub mod volumes;
pub mod xml;

pub use error::VmError;
pub use hypervisor::{HvEvent, Hypervisor, Lifecycle, RunState};
pub use service::{ClonedVms, DiskStats, NewClone, Resources, VmStats, VmStatus, Vms, VmsConfig};
pub use spec::VmSpec;
pub use volumes::{VolumeError, VolumeUse, Volumes};
pub use xml::Accelerator;
