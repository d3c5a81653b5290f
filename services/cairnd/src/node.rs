//! Node facts for the API: hostname, uptime, and the boot status cairnd gathered.

use cairn_api::NodeInfo;
use cairn_core::boot::BootStatus;
use std::sync::{Arc, RwLock};

/// The running node, with a boot status shared with the blessing task.
pub struct Node {
    boot: Arc<RwLock<BootStatus>>,
}

impl Node {
    pub fn new(boot: Arc<RwLock<BootStatus>>) -> Self {
        Node { boot }
    }
}

/// The kernel's hostname; empty if it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Seconds since boot, including suspended time (CLOCK_BOOTTIME).
pub fn uptime_s() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| u64::try_from(t.tv_sec()).unwrap_or(0))
        .unwrap_or(0)
}

impl NodeInfo for Node {
    fn hostname(&self) -> String {
        hostname()
    }
    fn uptime_s(&self) -> u64 {
        uptime_s()
    }
    fn boot(&self) -> BootStatus {
        match self.boot.read() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_live() {
        let status = BootStatus {
            slot: None,
            entry: None,
            blessed: false,
            failed_attempts: vec![],
            stage1_failures: vec![],
        };
        let shared = Arc::new(RwLock::new(status));
        let node = Node::new(shared.clone());
        assert!(!node.boot().blessed);
        shared.write().unwrap().blessed = true;
        assert!(node.boot().blessed);
        assert!(!node.hostname().is_empty());
        assert!(node.uptime_s() > 0);
    }
}
