//! What the API serves from: node facts, system access, stores, sessions, events, tasks and
//! alerts.

use crate::alerts::AlertRegistry;
use crate::auth::LOGIN_BACKOFF;
use crate::channels::Channels;
use crate::events::EventBus;
use crate::ratelimit::Backoff;
use crate::sessions::Sessions;
use crate::setup::Setup;
use crate::store::StoreError;
use crate::system::NodeSystem;
use crate::tasks::TaskRegistry;
use crate::tokens::Tokens;
use crate::users::Users;
use cairn_core::boot::BootStatus;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Facts about the node, provided by the daemon (and by tests).
pub trait NodeInfo: Send + Sync + 'static {
    /// The node's hostname.
    fn hostname(&self) -> String;
    /// Seconds since the node booted.
    fn uptime_s(&self) -> u64;
    /// Boot slot, entry, blessing and failed attempts.
    fn boot(&self) -> BootStatus;
}

/// Shared state of every request handler.
#[derive(Clone)]
pub struct ApiState {
    pub node: Arc<dyn NodeInfo>,
    pub system: Arc<dyn NodeSystem>,
    pub events: EventBus,
    pub tasks: TaskRegistry,
    pub alerts: AlertRegistry,
    pub channels: Arc<Channels>,
    pub setup: Arc<Setup>,
    pub users: Arc<Users>,
    pub sessions: Arc<Sessions>,
    pub tokens: Arc<Tokens>,
    pub login_limiter: Arc<Backoff>,
    /// The domains' services (set by the daemon; absent ones answer 503).
    pub domains: crate::domains::Domains,
}

impl ApiState {
    /// State kept under `state_dir` (setup progress, users, tokens).
    pub fn open(
        node: Arc<dyn NodeInfo>,
        system: Arc<dyn NodeSystem>,
        state_dir: &Path,
    ) -> Result<Self, StoreError> {
        let events = EventBus::new();
        Ok(ApiState {
            node,
            system,
            tasks: TaskRegistry::new(events.clone()),
            alerts: AlertRegistry::new(events.clone()),
            channels: Arc::new(Channels::open(
                state_dir,
                crate::tls::public_client_config().map_err(StoreError::Tls)?,
            )?),
            events,
            setup: Arc::new(Setup::open(state_dir)?),
            users: Arc::new(Users::open(state_dir)?),
            sessions: Arc::new(Sessions::default()),
            tokens: Arc::new(Tokens::open(state_dir)?),
            login_limiter: Arc::new(Backoff::new(LOGIN_BACKOFF)),
            domains: crate::domains::Domains::default(),
        })
    }

    /// How long sessions last.
    pub fn sessions_ttl(&self) -> Duration {
        crate::sessions::TTL
    }
}
