//! What the API serves from: node facts, system access, identity, events, tasks, alerts and
//! their delivery channels, and the domains' services.

use crate::clock::Clock;
use crate::identity::Identity;
use crate::system::NodeSystem;
use cairn_alert_delivery::{Channels, ChannelsError};
use cairn_core::boot::BootStatus;
use cairn_core::store::StoreError;
use cairn_tasks::{AlertRegistry, EventBus, TaskRegistry};
use std::path::Path;
use std::sync::Arc;

/// Facts about the node, provided by the daemon (and by tests).
pub trait NodeInfo: Send + Sync + 'static {
    /// The node's hostname.
    fn hostname(&self) -> String;
    /// Seconds since the node booted.
    fn uptime_s(&self) -> u64;
    /// Boot slot, entry, blessing and failed attempts.
    fn boot(&self) -> BootStatus;
}

/// Why the API state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Users, tokens, sign-in limits or setup progress could not be read.
    #[error("cannot load identity and setup")]
    Identity(#[source] StoreError),
    /// The alert channels could not be loaded.
    #[error("cannot load the alert channels")]
    Channels(#[source] ChannelsError),
}

/// Shared state of every request handler.
#[derive(Clone)]
pub struct ApiState {
    /// Hostname, uptime, boot facts.
    pub node: Arc<dyn NodeInfo>,
    /// Hostname, time and zone changes on the system.
    pub system: Arc<dyn NodeSystem>,
    /// Task and alert changes, for event streams and delivery.
    pub events: EventBus,
    /// Long operations.
    pub tasks: TaskRegistry,
    /// Conditions the domains raised.
    pub alerts: AlertRegistry,
    /// Where alerts are delivered (cairnd runs the delivery loop).
    pub channels: Arc<Channels>,
    /// Users, sessions, tokens, sign-in limits and setup.
    pub identity: Arc<Identity>,
    /// The time of the sign-in limits and token expiry.
    pub clock: Clock,
    /// The domains' services (set by the daemon; absent ones answer 503).
    pub domains: crate::domains::Domains,
}

impl ApiState {
    /// State kept under `state_dir` (setup progress, users, tokens, sign-in limits).
    pub fn open(
        node: Arc<dyn NodeInfo>,
        system: Arc<dyn NodeSystem>,
        state_dir: &Path,
    ) -> Result<Self, StateError> {
        Self::open_with_clock(node, system, state_dir, Clock::system())
    }

    /// [`ApiState::open`] with the clock of the limits and expiries given (tests move it).
    pub fn open_with_clock(
        node: Arc<dyn NodeInfo>,
        system: Arc<dyn NodeSystem>,
        state_dir: &Path,
        clock: Clock,
    ) -> Result<Self, StateError> {
        let events = EventBus::new();
        let hostname = {
            let node = node.clone();
            move || node.hostname()
        };
        Ok(ApiState {
            node,
            system,
            tasks: TaskRegistry::new(events.clone()),
            alerts: AlertRegistry::new(events.clone()),
            channels: Arc::new(Channels::open(state_dir, hostname).map_err(StateError::Channels)?),
            events,
            identity: Arc::new(
                Identity::open(state_dir, clock.clone()).map_err(StateError::Identity)?,
            ),
            clock,
            domains: crate::domains::Domains::default(),
        })
    }
}
