//! What the API serves from: the node facts a daemon provides.

use cairn_core::boot::BootStatus;
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

/// Shared state of every request handler.
#[derive(Clone)]
pub struct ApiState {
    pub node: Arc<dyn NodeInfo>,
}

impl ApiState {
    pub fn new(node: Arc<dyn NodeInfo>) -> Self {
        ApiState { node }
    }
}
