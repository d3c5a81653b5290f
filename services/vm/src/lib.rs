//! cairn-vm: VM specs, libvirt domain XML, lifecycle through libvirt, clones and snapshots.

pub mod action;
pub mod clones;
pub mod console;
pub mod error;
pub mod events;
pub mod host;
pub mod hv_types;
pub mod hypervisor;
pub mod ids;
pub mod libvirt;
pub mod monitor;
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
pub use service::{Resources, VmStatus, Vms, VmsConfig};
pub use spec::VmSpec;
pub use stats::{DiskStats, VmStats};
pub use volumes::{VolumeError, VolumeUse, Volumes};
pub use xml::Accelerator;
