//! cairn-vm: VM specs, libvirt domain XML, lifecycle through libvirt, clones and snapshots.

pub mod console;
pub mod error;
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
pub use hypervisor::{Hypervisor, RunState};
pub use service::{ClonedVms, NewClone, Resources, VmStatus, Vms, VmsConfig};
pub use spec::VmSpec;
pub use volumes::{VolumeError, VolumeUse, Volumes};
pub use xml::Accelerator;
