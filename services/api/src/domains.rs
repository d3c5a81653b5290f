//! The domains' services the API calls into: one slot per domain, filled by the daemon as each starts.

use crate::error::ApiError;
use hyper::StatusCode;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a client is told to wait before retrying a domain that is still starting.
pub const STARTING_RETRY_AFTER: Duration = Duration::from_secs(2);

/// Where one domain is in its start.
pub enum DomainState<T: ?Sized> {
    /// The daemon began starting it at `since`.
    Starting { since: Instant },
    /// It runs; `took` is how long its start took.
    Ready { service: Arc<T>, took: Duration },
    /// Its start failed after `took`; `reason` says why (one line).
    Failed { reason: String, took: Duration },
    /// This node does not run it (a developer machine, a node without the tool).
    Absent { reason: String },
}

impl<T: ?Sized> Clone for DomainState<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Starting { since } => Self::Starting { since: *since },
            Self::Ready { service, took } => Self::Ready {
                service: service.clone(),
                took: *took,
            },
            Self::Failed { reason, took } => Self::Failed {
                reason: reason.clone(),
                took: *took,
            },
            Self::Absent { reason } => Self::Absent {
                reason: reason.clone(),
            },
        }
    }
}

/// One domain's slot, shared between the daemon (which fills it after the server runs) and
/// the API (which reads it per request). Clones share the slot.
pub struct Slot<T: ?Sized> {
    inner: Arc<(Mutex<DomainState<T>>, Condvar)>,
}

impl<T: ?Sized> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot {
            inner: self.inner.clone(),
        }
    }
}

/// The reason of a slot nobody started (tests, a program that does not start domains).
pub const NOT_STARTED: &str = "not started by this program";

impl<T: ?Sized> Default for Slot<T> {
    fn default() -> Self {
        Self::absent(NOT_STARTED)
    }
}

/// A one-line reason: the first line, trimmed.
fn one_line(reason: &str) -> String {
    reason.lines().next().unwrap_or("").trim().to_string()
}

impl<T: ?Sized> Slot<T> {
    fn with(state: DomainState<T>) -> Self {
        Slot {
            inner: Arc::new((Mutex::new(state), Condvar::new())),
        }
    }

    /// A slot whose domain this node does not run.
    pub fn absent(reason: &str) -> Self {
        Self::with(DomainState::Absent {
            reason: one_line(reason),
        })
    }

    /// A slot whose domain is starting from now.
    pub fn starting() -> Self {
        Self::with(DomainState::Starting {
            since: Instant::now(),
        })
    }

    /// A slot with a running service (tests' short way; `took` is zero).
    pub fn ready(service: Arc<T>) -> Self {
        Self::with(DomainState::Ready {
            service,
            took: Duration::ZERO,
        })
    }

    fn lock(&self) -> MutexGuard<'_, DomainState<T>> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, state: DomainState<T>) {
        *self.lock() = state;
        self.inner.1.notify_all();
    }

    /// How long since the start began (zero if it is not starting).
    fn elapsed(&self) -> Duration {
        match &*self.lock() {
            DomainState::Starting { since } => since.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// The daemon begins starting the domain now.
    pub fn begin(&self) {
        self.set(DomainState::Starting {
            since: Instant::now(),
        });
    }

    /// The domain's service runs; returns how long the start took.
    pub fn set_ready(&self, service: Arc<T>) -> Duration {
        let took = self.elapsed();
        self.set(DomainState::Ready { service, took });
        took
    }

    /// The domain's start failed; returns how long it took.
    pub fn set_failed(&self, reason: &str) -> Duration {
        let took = self.elapsed();
        self.set(DomainState::Failed {
            reason: one_line(reason),
            took,
        });
        took
    }

    /// This node does not run the domain.
    pub fn set_absent(&self, reason: &str) {
        self.set(DomainState::Absent {
            reason: one_line(reason),
        });
    }

    /// The current state.
    pub fn state(&self) -> DomainState<T> {
        self.lock().clone()
    }

    /// The service if it is ready.
    pub fn get(&self) -> Option<Arc<T>> {
        match &*self.lock() {
            DomainState::Ready { service, .. } => Some(service.clone()),
            _ => None,
        }
    }

    /// The service, or the 503 a request to it answers: `starting` (with `Retry-After`) or
    /// `unavailable` (with the failure's reason). `name` is the domain as messages name it.
    pub fn service(&self, name: &str) -> Result<Arc<T>, ApiError> {
        match &*self.lock() {
            DomainState::Ready { service, .. } => Ok(service.clone()),
            DomainState::Starting { .. } => Err(starting(name)),
            DomainState::Failed { reason, .. } => Err(failed(name, reason)),
            DomainState::Absent { .. } => Err(unavailable(name)),
        }
    }

    /// Block until the domain is no longer starting, or until `wait` passed (then the
    /// state is still `Starting`). For a domain that needs another's service at its start.
    pub fn wait_settled(&self, wait: Duration) -> DomainState<T> {
        let deadline = Instant::now() + wait;
        let mut guard = self.lock();
        loop {
            if !matches!(*guard, DomainState::Starting { .. }) {
                return guard.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return guard.clone();
            }
            guard = match self.inner.1.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// The slot as the health document shows it.
    pub fn health(&self) -> DomainHealth {
        let ms = |d: &Duration| Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match &*self.lock() {
            DomainState::Starting { .. } => DomainHealth {
                state: "starting",
                took_ms: None,
                reason: None,
            },
            DomainState::Ready { took, .. } => DomainHealth {
                state: "ready",
                took_ms: ms(took),
                reason: None,
            },
            DomainState::Failed { reason, took } => DomainHealth {
                state: "failed",
                took_ms: ms(took),
                reason: Some(reason.clone()),
            },
            DomainState::Absent { reason } => DomainHealth {
                state: "absent",
                took_ms: None,
                reason: Some(reason.clone()),
            },
        }
    }
}

/// One domain in the health document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DomainHealth {
    /// `starting` | `ready` | `failed` | `absent`.
    pub state: &'static str,
    /// Milliseconds from the start's beginning to ready/failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    /// Why it failed or is absent (one line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The domains in the health document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DomainsHealth {
    pub storage: DomainHealth,
    pub smart: DomainHealth,
    pub network: DomainHealth,
    pub vms: DomainHealth,
    pub cluster: DomainHealth,
}

impl DomainsHealth {
    /// No domain is still starting (failed and absent ones do not hold it back).
    pub fn ready(&self) -> bool {
        [
            &self.storage,
            &self.smart,
            &self.network,
            &self.vms,
            &self.cluster,
        ]
        .iter()
        .all(|d| d.state != "starting")
    }
}

/// The slots of the domain services. Default: every domain absent (tests, a program that
/// starts none); the daemon makes them [`Domains::starting`] and fills them as each starts.
/// Clones share the slots.
#[derive(Clone, Default)]
pub struct Domains {
    pub storage: Slot<cairn_storage::Storage>,
    pub vms: Slot<cairn_vm::Vms>,
    pub smart: Slot<cairn_smart::SmartService>,
    pub network: Slot<cairn_net::Network>,
    /// The cluster domain (issue 16): standalone, joining or a member.
    pub cluster: Slot<cairn_cluster::ClusterService>,
}

impl Domains {
    /// Every domain starting, but the cluster: it stays absent ("not started by this
    /// program") until the daemon's start of it begins the slot ([`Slot::begin`]), so a
    /// daemon that does not start it yet still becomes ready.
    pub fn starting() -> Self {
        Domains {
            storage: Slot::starting(),
            vms: Slot::starting(),
            smart: Slot::starting(),
            network: Slot::starting(),
            cluster: Slot::default(),
        }
    }

    /// The domains as the health document shows them.
    pub fn health(&self) -> DomainsHealth {
        DomainsHealth {
            storage: self.storage.health(),
            smart: self.smart.health(),
            network: self.network.health(),
            vms: self.vms.health(),
            cluster: self.cluster.health(),
        }
    }
}

/// 503 `starting`: the domain is still starting (with `Retry-After`).
pub fn starting(domain: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "starting",
        format!("the {domain} service is still starting on this node; try again in a moment"),
    );
    e.retry_after = Some(STARTING_RETRY_AFTER);
    e
}

/// 503 `unavailable`: the domain's start failed, with its reason.
pub fn failed(domain: &str, reason: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("the {domain} service failed to start on this node: {reason}"),
    )
}

/// The error for a route whose domain service is not running.
pub fn unavailable(domain: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("the {domain} service is not running on this node"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn answer(e: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let retry = r
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn starting_answers_503_starting_with_retry_after_naming_the_domain() {
        let slot: Slot<u32> = Slot::starting();
        let (status, retry, body) = answer(slot.service("storage").unwrap_err()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("2"));
        assert_eq!(
            body,
            serde_json::json!({
                "code": "starting",
                "message": "the storage service is still starting on this node; try again in a moment",
                "field": null
            })
        );
    }

    #[tokio::test]
    async fn failed_answers_503_unavailable_with_the_reason() {
        let slot: Slot<u32> = Slot::starting();
        slot.set_failed("cannot open netlink: permission denied\nmore");
        let (status, retry, body) = answer(slot.service("network").unwrap_err()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry, None);
        assert_eq!(body["code"], "unavailable");
        assert_eq!(
            body["message"],
            "the network service failed to start on this node: cannot open netlink: permission denied"
        );
    }

    #[tokio::test]
    async fn absent_answers_503_unavailable_as_before() {
        let slot: Slot<u32> = Slot::absent("libvirtd is not installed on this node");
        let (status, _, body) = answer(slot.service("VM").unwrap_err()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "unavailable");
        assert_eq!(
            body["message"],
            "the VM service is not running on this node"
        );
    }

    #[test]
    fn ready_slot_gives_the_service_and_its_start_time() {
        let slot: Slot<u32> = Slot::starting();
        assert!(slot.get().is_none());
        let took = slot.set_ready(Arc::new(7));
        assert_eq!(*slot.service("storage").unwrap(), 7);
        assert_eq!(
            slot.health().took_ms,
            Some(u64::try_from(took.as_millis()).unwrap())
        );
        assert_eq!(slot.health().state, "ready");
        assert_eq!(*Slot::ready(Arc::new(3)).get().unwrap(), 3);
    }

    #[test]
    fn health_ready_only_when_nothing_is_starting() {
        let d = Domains::starting();
        assert!(!d.health().ready());
        d.storage.set_failed("no disks");
        d.smart.set_absent("the storage service failed");
        d.network.set_absent("not a booted Cairn node");
        assert!(!d.health().ready(), "vms still starting");
        d.vms.set_failed("libvirt");
        assert!(d.health().ready(), "the cluster is absent until begun");
        d.cluster.begin();
        assert!(!d.health().ready(), "cluster still starting");
        d.cluster.set_absent("not started by this program");
        assert!(d.health().ready());
        let v = serde_json::to_value(d.health()).unwrap();
        assert_eq!(v["storage"]["state"], "failed");
        assert_eq!(v["storage"]["reason"], "no disks");
        assert!(v["storage"]["took_ms"].is_u64());
        assert_eq!(
            v["network"],
            serde_json::json!({"state": "absent", "reason": "not a booted Cairn node"})
        );
        assert_eq!(
            serde_json::to_value(Slot::<u32>::starting().health()).unwrap(),
            serde_json::json!({"state": "starting"})
        );
    }

    #[test]
    fn wait_settled_returns_when_the_slot_is_filled_or_the_wait_ends() {
        let slot: Slot<u32> = Slot::starting();
        let s = slot.clone();
        let filler = std::thread::spawn(move || s.set_ready(Arc::new(1)));
        let got = slot.wait_settled(Duration::from_secs(10));
        assert!(matches!(got, DomainState::Ready { .. }));
        filler.join().unwrap();
        let other: Slot<u32> = Slot::starting();
        let got = other.wait_settled(Duration::from_millis(10));
        assert!(matches!(got, DomainState::Starting { .. }));
    }
}
