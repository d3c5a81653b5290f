//! The narrow interface to the hypervisor (libvirt), so the service can be tested with a
//! recording double; [`crate::libvirt::Libvirt`] is the real one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A VM's run state as libvirt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Paused,
    ShuttingDown,
    ShutOff,
    Crashed,
    Suspended,
    Unknown,
}

impl RunState {
    /// Whether a QEMU process exists (resources are in use).
    pub fn is_active(self) -> bool {
        !matches!(self, RunState::ShutOff | RunState::Crashed)
    }
}

/// CPUs and memory of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    pub cpus: u32,
    pub memory_mib: u64,
}

/// A hypervisor failure, with libvirt's message.
#[derive(Debug, thiserror::Error)]
pub enum HvError {
    #[error("cannot connect to libvirt at {uri}")]
    Connect {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("libvirt: {op} {name}")]
    Call {
        op: &'static str,
        name: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("no VM named {0} is defined in libvirt")]
    NotDefined(String),
}

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
    /// Every defined domain's state.
    fn states(&self) -> Result<BTreeMap<String, RunState>, HvError>;
}
