//! The hypervisor's data and failures (run states, lifecycle events, samples, errors): a leaf module shared by the `Hypervisor` trait, its libvirt implementation, the event FFI and the helper protocol; all of it serializes (it crosses `cairn-virt`'s pipe).

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

/// The system libvirtd of a node.
pub const SYSTEM_URI: &str = "qemu:///system";

/// A domain lifecycle event (libvirt's `virDomainEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// libvirt's event number as ours (`virDomainEventType`, part of libvirt's stable ABI;
    /// a test of the `libvirt` feature compares it with the bindings).
    pub fn from_raw(event: i32) -> Lifecycle {
        match event {
            0 => Lifecycle::Defined,
            1 => Lifecycle::Undefined,
            2 => Lifecycle::Started,
            3 => Lifecycle::Suspended,
            4 => Lifecycle::Resumed,
            5 => Lifecycle::Stopped,
            6 => Lifecycle::Shutdown,
            7 => Lifecycle::PmSuspended,
            8 => Lifecycle::Crashed,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// libvirt's own error, kept as its text (message, code and domain as libvirt shows them)
/// so it crosses the helper's pipe unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct LibvirtError {
    pub message: String,
}

impl LibvirtError {
    /// An error with this text.
    pub fn new(message: impl Into<String>) -> LibvirtError {
        LibvirtError {
            message: message.into(),
        }
    }
}

#[cfg(feature = "libvirt")]
impl From<virt::error::Error> for LibvirtError {
    fn from(e: virt::error::Error) -> LibvirtError {
        LibvirtError::new(e.to_string())
    }
}

/// A hypervisor failure, with libvirt's message. It serializes (externally tagged, snake
/// case) so the variant, which the service and the API act on, survives the helper's pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum HvError {
    /// libvirtd cannot be reached, or the helper process that talks to it is gone or
    /// restarting (the API's 503 `libvirt_unavailable`; the monitor resubscribes).
    #[error("cannot connect to libvirt at {uri}")]
    Connect {
        uri: String,
        #[source]
        source: LibvirtError,
    },
    #[error("libvirt: {op} {name}")]
    Call {
        op: String,
        name: String,
        #[source]
        source: LibvirtError,
    },
    #[error("cannot start libvirt's event loop")]
    EventLoop {
        #[source]
        source: LibvirtError,
    },
    #[error("cannot register for domain events at {uri}")]
    Subscribe {
        uri: String,
        #[source]
        source: LibvirtError,
    },
    #[error("no VM named {0} is defined in libvirt")]
    NotDefined(String),
    /// The helper and cairnd do not understand each other (a bad line, an answer of the
    /// wrong kind): a bug, or two builds that do not match.
    #[error("libvirt helper protocol: {0}")]
    Protocol(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_say_the_state_when_they_can() {
        assert_eq!(Lifecycle::from_raw(2), Lifecycle::Started);
        assert_eq!(Lifecycle::from_raw(5), Lifecycle::Stopped);
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

    #[cfg(feature = "libvirt")]
    #[test]
    fn event_numbers_are_libvirts() {
        use virt::sys;
        let all = [
            (sys::VIR_DOMAIN_EVENT_DEFINED, Lifecycle::Defined),
            (sys::VIR_DOMAIN_EVENT_UNDEFINED, Lifecycle::Undefined),
            (sys::VIR_DOMAIN_EVENT_STARTED, Lifecycle::Started),
            (sys::VIR_DOMAIN_EVENT_SUSPENDED, Lifecycle::Suspended),
            (sys::VIR_DOMAIN_EVENT_RESUMED, Lifecycle::Resumed),
            (sys::VIR_DOMAIN_EVENT_STOPPED, Lifecycle::Stopped),
            (sys::VIR_DOMAIN_EVENT_SHUTDOWN, Lifecycle::Shutdown),
            (sys::VIR_DOMAIN_EVENT_PMSUSPENDED, Lifecycle::PmSuspended),
            (sys::VIR_DOMAIN_EVENT_CRASHED, Lifecycle::Crashed),
        ];
        for (raw, ours) in all {
            assert_eq!(Lifecycle::from_raw(i32::try_from(raw).unwrap()), ours);
        }
    }

    #[test]
    fn errors_keep_their_variant_and_text_through_json() {
        let e = HvError::Connect {
            uri: "qemu:///system".into(),
            source: LibvirtError::new("Failed to connect socket"),
        };
        let back: HvError = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            cairn_core::boot::error_chain(&back),
            "cannot connect to libvirt at qemu:///system: Failed to connect socket"
        );
        let e = HvError::NotDefined("web".into());
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"not_defined":"web"}"#);
        assert_eq!(serde_json::from_str::<HvError>(&json).unwrap(), e);
    }
}
