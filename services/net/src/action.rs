//! Typed network actions: what a caller may ask of the network service, each run by one call
//! whose answer serializes as the API shows it.

use crate::service::{
    ApplyReport, NetError, Network, NetworkStatus, NetworkView, PendingView, PlanPreview,
};
use crate::spec::NetworkSpec;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// One request to the network service.
#[derive(Debug, Clone)]
pub enum NetAction {
    /// The confirmed spec, a pending change and the last rollback.
    View,
    /// The links, addresses and routes the kernel has now.
    Status,
    /// What applying a spec would create, change and remove; nothing is changed.
    Plan { spec: NetworkSpec },
    /// Apply a spec in try mode; it is rolled back unless confirmed within `timeout`
    /// (`None`: the node's setting).
    TryApply {
        /// Boxed: a spec is hundreds of bytes, the other variants none.
        spec: Box<NetworkSpec>,
        timeout: Option<Duration>,
    },
    /// Keep the change applied in try mode.
    Confirm,
    /// Put the previous config back now.
    Rollback,
}

/// What a [`NetAction`] answers; serializes to the action's own document (no tag). The
/// documents are boxed: they differ in size by hundreds of bytes.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum NetOutcome {
    View(Box<NetworkView>),
    Status(Box<NetworkStatus>),
    Pending(Box<PendingView>),
    Plan(Box<PlanPreview>),
    /// The spec that is now confirmed, as `{"spec": …}`.
    Confirmed {
        spec: Box<NetworkSpec>,
    },
    RolledBack(Box<ApplyReport>),
}

impl NetAction {
    /// Run the action (may block: applying talks to the kernel and waits for links).
    pub fn run(self, network: &Arc<Network>) -> Result<NetOutcome, NetError> {
        Ok(match self {
            NetAction::View => NetOutcome::View(Box::new(network.view()?)),
            NetAction::Status => NetOutcome::Status(Box::new(network.status()?)),
            NetAction::Plan { spec } => NetOutcome::Plan(Box::new(network.preview(&spec)?)),
            NetAction::TryApply { spec, timeout } => {
                NetOutcome::Pending(Box::new(network.try_apply(*spec, timeout)?))
            }
            NetAction::Confirm => NetOutcome::Confirmed {
                spec: Box::new(network.confirm()?),
            },
            NetAction::Rollback => NetOutcome::RolledBack(Box::new(network.rollback()?)),
        })
    }
}
