//! The hypervisor's data and failures (run states, lifecycle events, samples, errors): a leaf
//! module shared by the `Hypervisor` trait, its libvirt implementation and the
//! event FFI, so none of those needs another for its types.

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

/// A domain lifecycle event (libvirt's `virDomainEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Defined,
    Undefined,
    Started,
    Suspended,
    Resumed,
    Stopped,
    /// The guest finished its shutdown sequence (`Stopped` follows).
    Shutdown,
    PmSuspended,
    Crashed,
    /// An event type newer than this code.
    Other(i32),
}

impl Lifecycle {
    /// libvirt's event number as ours.
    pub fn from_raw(event: i32) -> Lifecycle {
        use virt::sys;
        match u32::try_from(event) {
            Ok(sys::VIR_DOMAIN_EVENT_DEFINED) => Lifecycle::Defined,
            Ok(sys::VIR_DOMAIN_EVENT_UNDEFINED) => Lifecycle::Undefined,
            Ok(sys::VIR_DOMAIN_EVENT_STARTED) => Lifecycle::Started,
            Ok(sys::VIR_DOMAIN_EVENT_SUSPENDED) => Lifecycle::Suspended,
            Ok(sys::VIR_DOMAIN_EVENT_RESUMED) => Lifecycle::Resumed,
            Ok(sys::VIR_DOMAIN_EVENT_STOPPED) => Lifecycle::Stopped,
            Ok(sys::VIR_DOMAIN_EVENT_SHUTDOWN) => Lifecycle::Shutdown,
            Ok(sys::VIR_DOMAIN_EVENT_PMSUSPENDED) => Lifecycle::PmSuspended,
            Ok(sys::VIR_DOMAIN_EVENT_CRASHED) => Lifecycle::Crashed,
            _ => Lifecycle::Other(event),
        }
    }

    /// The state a domain is in right after this event, when the event alone says so
    /// (`Defined`, `Undefined`, `Shutdown` and unknown events do not).
    pub fn state(self) -> Option<RunState> {
        match self {
            Lifecycle::Started | Lifecycle::Resumed => Some(RunState::Running),
            Lifecycle::Suspended => Some(RunState::Paused),
            Lifecycle::Stopped => Some(RunState::ShutOff),
            Lifecycle::PmSuspended => Some(RunState::Suspended),
            Lifecycle::Crashed => Some(RunState::Crashed),
            Lifecycle::Defined
            | Lifecycle::Undefined
            | Lifecycle::Shutdown
            | Lifecycle::Other(_) => None,
        }
    }
}

/// What a subscription (`Hypervisor::subscribe`) delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HvEvent {
    /// Domain `name` went through `event`.
    Domain { name: String, event: Lifecycle },
    /// The subscription's connection closed (libvirtd stopped or restarted): no more events
    /// come until the next `Hypervisor::subscribe`.
    Lost,
}

/// CPUs and memory of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCapacity {
    pub cpus: u32,
    pub memory_mib: u64,
}

/// One reading of a running domain's counters (`Hypervisor::sample`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSample {
    /// libvirt's id of the running domain: a new one on every start.
    pub run_id: Option<u32>,
    /// CPU time its QEMU process has used since it started (`virDomainGetInfo`), in ns.
    pub cpu_time_ns: u64,
    /// vCPUs it runs with.
    pub vcpus: u32,
    /// Memory the guest has now (`virDomainGetInfo`'s current memory), in KiB.
    pub memory_kib: u64,
    /// Resident memory of its QEMU process on the node (`memory_stats` RSS), in KiB, when
    /// libvirt reports it.
    pub rss_kib: Option<u64>,
    /// Bytes read and written so far by each disk asked for, by device path; a disk whose
    /// counters libvirt cannot give is left out.
    pub disks: BTreeMap<String, DiskIo>,
}

/// A disk's I/O counters since the domain started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskIo {
    pub read_bytes: u64,
    pub written_bytes: u64,
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
    #[error("cannot start libvirt's event loop")]
    EventLoop {
        #[source]
        source: std::sync::Arc<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot register for domain events at {uri}")]
    Subscribe {
        uri: String,
        #[source]
        source: virt::error::Error,
    },
    #[error("no VM named {0} is defined in libvirt")]
    NotDefined(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_say_the_state_when_they_can() {
        let raw = |e: u32| Lifecycle::from_raw(i32::try_from(e).unwrap());
        assert_eq!(raw(virt::sys::VIR_DOMAIN_EVENT_STARTED), Lifecycle::Started);
        assert_eq!(raw(virt::sys::VIR_DOMAIN_EVENT_STOPPED), Lifecycle::Stopped);
        assert_eq!(Lifecycle::from_raw(99), Lifecycle::Other(99));
        assert_eq!(Lifecycle::from_raw(-1), Lifecycle::Other(-1));
        assert_eq!(Lifecycle::Started.state(), Some(RunState::Running));
        assert_eq!(Lifecycle::Resumed.state(), Some(RunState::Running));
        assert_eq!(Lifecycle::Suspended.state(), Some(RunState::Paused));
        assert_eq!(Lifecycle::Stopped.state(), Some(RunState::ShutOff));
        assert_eq!(Lifecycle::Crashed.state(), Some(RunState::Crashed));
        assert_eq!(Lifecycle::Shutdown.state(), None);
        assert_eq!(Lifecycle::Defined.state(), None);
    }
}
