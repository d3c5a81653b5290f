//! The narrow interface to the hypervisor, so the service can be tested with a recording double; `Libvirt` (the `libvirt` feature) is the real one, which cairnd reaches through the helper process (`RemoteHypervisor`).

pub use crate::hv_types::{
    DiskIo, DomainSample, HvError, HvEvent, LibvirtError, Lifecycle, NodeCapacity, RunState,
    SYSTEM_URI,
};
use std::collections::BTreeMap;
use std::sync::mpsc::Sender;

/// What the VM service needs from the hypervisor. Every call blocks.
pub trait Hypervisor: Send + Sync {
    /// The node's CPUs and memory.
    fn capacity(&self) -> Result<NodeCapacity, HvError>;
    /// Define (or redefine) a persistent domain from XML.
    fn define(&self, xml: &str) -> Result<(), HvError>;
    /// Remove a shut-off domain's definition.
    fn undefine(&self, name: &str) -> Result<(), HvError>;
    /// Start a defined domain.
    fn start(&self, name: &str) -> Result<(), HvError>;
    /// Ask the guest to shut down (ACPI power button).
    fn shutdown(&self, name: &str) -> Result<(), HvError>;
    /// Power off at once.
    fn destroy(&self, name: &str) -> Result<(), HvError>;
    /// Ask the guest to reboot (ACPI).
    fn reboot(&self, name: &str) -> Result<(), HvError>;
    /// Hard reset.
    fn reset(&self, name: &str) -> Result<(), HvError>;
    /// The counters of running domain `name` now, with those of its disks at `disk_paths`;
    /// `None` when it is not running.
    fn sample(&self, name: &str, disk_paths: &[String]) -> Result<Option<DomainSample>, HvError>;
    /// Every defined domain's state.
    fn states(&self) -> Result<BTreeMap<String, RunState>, HvError>;
    /// Send every domain lifecycle event to `tx` from now on, replacing an earlier
    /// subscription; [`HvEvent::Lost`] follows when the events stop (subscribe again then).
    fn subscribe(&self, tx: Sender<HvEvent>) -> Result<(), HvError>;
}
