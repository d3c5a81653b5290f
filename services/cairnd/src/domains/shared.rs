//! What the domain starts share: their outcome, the state they need, and waiting for another domain.

use cairn_api::domains::{DomainState, Domains, Slot};
use cairn_tasks::{AlertRegistry, TaskRegistry};
use std::sync::Arc;
use std::time::Duration;

/// What a domain's start gives: its service, or why this node does not run the domain.
pub enum Start<T> {
    Ready(Arc<T>),
    Absent(String),
}

/// What the domain starts need from the API state (clones share it).
#[derive(Clone)]
pub struct Shared {
    pub alerts: AlertRegistry,
    pub tasks: TaskRegistry,
    /// The slots the starts fill (the API reads the same ones).
    pub domains: Domains,
}

/// How long a domain waits for another it needs (SMART for storage's disk list) before it
/// gives up; storage's inventory can take minutes on a slow machine.
pub const DEPENDENCY_WAIT: Duration = Duration::from_secs(600);

/// Wait for a domain `needed` by another (`name` as messages say it): its service when it
/// is ready; `Ok(Err(reason))` when this node does not run it (then neither runs the other);
/// an error when it failed or is still starting after `wait`.
pub fn needed<T>(
    name: &str,
    needed: &Slot<T>,
    wait: Duration,
) -> anyhow::Result<Result<Arc<T>, String>> {
    match needed.wait_settled(wait) {
        DomainState::Ready { service, .. } => Ok(Ok(service)),
        DomainState::Absent { reason } => Ok(Err(format!(
            "the {name} service does not run on this node ({reason})"
        ))),
        DomainState::Failed { reason, .. } => {
            anyhow::bail!("the {name} service failed to start ({reason})")
        }
        DomainState::Starting { .. } => anyhow::bail!(
            "the {name} service was still starting after {} s",
            wait.as_secs()
        ),
    }
}
