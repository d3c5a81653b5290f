//! What the API serves from: node facts, system access, stores, sessions, events, tasks and
//! alerts.

use crate::alerts::AlertRegistry;
use crate::auth::{CHECK_BURST, CHECK_INTERVAL, LOGIN_BACKOFF, LOGIN_LIMITS_FILE};
use crate::channels::Channels;
use crate::clock::Clock;
use crate::events::EventBus;
use crate::password::{self, Checks};
use crate::ratelimit::{Backoff, Pace};
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
    /// Failed password checks per address (kept on STATE).
    pub login_limiter: Arc<Backoff>,
    /// Password checks from all addresses together.
    pub check_pace: Arc<Pace>,
    /// The queue of password checks and hashings.
    pub passwords: Arc<Checks>,
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
    ) -> Result<Self, StoreError> {
        Self::open_with_clock(node, system, state_dir, Clock::system())
    }

    /// [`ApiState::open`] with the clock of the limits and expiries given (tests move it).
    pub fn open_with_clock(
        node: Arc<dyn NodeInfo>,
        system: Arc<dyn NodeSystem>,
        state_dir: &Path,
        clock: Clock,
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
            setup: Arc::new(Setup::open_with_clock(state_dir, clock.clone())?),
            users: Arc::new(Users::open(state_dir)?),
            sessions: Arc::new(Sessions::default()),
            tokens: Arc::new(Tokens::open(state_dir, clock.clone())?),
            login_limiter: Arc::new(Backoff::persistent(
                LOGIN_BACKOFF,
                clock.clone(),
                &state_dir.join(LOGIN_LIMITS_FILE),
            )?),
            check_pace: Arc::new(Pace::new(CHECK_BURST, CHECK_INTERVAL, clock.clone())),
            passwords: Checks::new(password::CONCURRENT, password::MAX_WAITING),
            clock,
            domains: crate::domains::Domains::default(),
        })
    }

    /// How long sessions last.
    pub fn sessions_ttl(&self) -> Duration {
        crate::sessions::TTL
    }
}
