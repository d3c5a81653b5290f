//! `GET /api/v1/health`: liveness, version, hostname, uptime, boot status and the domains' start.

use crate::domains::{Domains, DomainsHealth};
use crate::response::{json, Body};
use crate::state::{ApiState, NodeInfo};
use cairn_core::boot::BootStatus;
use hyper::{Response, StatusCode};

/// The API version reported by `GET /api/v1/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The health document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    pub hostname: String,
    /// Seconds since the node booted.
    pub uptime_s: u64,
    pub boot: BootStatus,
    /// No domain is still starting.
    pub ready: bool,
    /// Each domain's start: `starting` | `ready` | `failed` | `absent`. On a witness,
    /// storage, SMART and VMs are `absent` with the reason `not on a witness`.
    pub domains: DomainsHealth,
    /// This node is a cluster witness: etcd, the API and the cluster domain only.
    pub witness: bool,
}

/// Gather the health document from the node facts and the domains' slots.
pub fn health(node: &dyn NodeInfo, domains: &Domains) -> Health {
    let witness = domains.cluster.get().is_some_and(|c| c.is_witness());
    let domains = domains.health();
    Health {
        status: "ok",
        version: VERSION,
        hostname: node.hostname(),
        uptime_s: node.uptime_s(),
        boot: node.boot(),
        ready: domains.ready(),
        domains,
        witness,
    }
}

/// Handle `GET /api/v1/health`.
pub fn get(state: &ApiState) -> Response<Body> {
    json(StatusCode::OK, &health(state.node.as_ref(), &state.domains))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use cairn_core::boot::FailedAttempt;
    use cairn_core::Slot;

    /// A system that applies nothing and has no tz database, for tests.
    pub(crate) struct NoSystem;

    impl crate::system::NodeSystem for NoSystem {
        fn set_hostname(&self, _name: &str) -> std::io::Result<()> {
            Ok(())
        }
        fn zoneinfo_dir(&self) -> Option<std::path::PathBuf> {
            None
        }
    }

    /// Fixed node facts for tests.
    pub(crate) struct FixedNode;

    impl NodeInfo for FixedNode {
        fn hostname(&self) -> String {
            "cairn-abc123".into()
        }
        fn uptime_s(&self) -> u64 {
            42
        }
        fn boot(&self) -> BootStatus {
            BootStatus {
                slot: Some(Slot::A),
                entry: Some("cairn-a.conf".into()),
                blessed: true,
                failed_attempts: vec![FailedAttempt {
                    slot: Some(Slot::B),
                    entry: "cairn-b".into(),
                    tries: 3,
                }],
                stage1_failures: vec![],
            }
        }
    }

    #[test]
    fn document_shape() {
        let domains = Domains::starting();
        domains.cluster.begin();
        domains
            .storage
            .set_failed("no disk inventory: lsblk failed");
        domains
            .network
            .set_failed("cannot open netlink: permission denied");
        domains
            .vms
            .set_absent("libvirtd is not installed on this node");
        let mut v = serde_json::to_value(health(&FixedNode, &domains)).unwrap();
        // Start times vary; their presence is what counts.
        for d in ["storage", "network"] {
            assert!(v["domains"][d]["took_ms"].is_u64(), "{v}");
            v["domains"][d]["took_ms"] = 0.into();
        }
        assert_eq!(
            v,
            serde_json::json!({
                "status": "ok",
                "version": "0.1.0",
                "hostname": "cairn-abc123",
                "uptime_s": 42,
                "boot": {
                    "slot": "a",
                    "entry": "cairn-a.conf",
                    "blessed": true,
                    "failed_attempts": [{"slot": "b", "entry": "cairn-b", "tries": 3}],
                    "stage1_failures": []
                },
                "ready": false,
                "domains": {
                    "storage": {"state": "failed", "took_ms": 0, "reason": "no disk inventory: lsblk failed"},
                    "smart": {"state": "starting"},
                    "network": {"state": "failed", "took_ms": 0, "reason": "cannot open netlink: permission denied"},
                    "vms": {"state": "absent", "reason": "libvirtd is not installed on this node"},
                    "cluster": {"state": "starting"}
                },
                "witness": false
            })
        );
        domains.smart.set_absent("no disks");
        assert!(
            !health(&FixedNode, &domains).ready,
            "cluster still starting"
        );
        domains.cluster.set_absent("not a booted Cairn node");
        assert!(health(&FixedNode, &domains).ready);
    }
}
