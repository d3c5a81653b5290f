//! cairnd's health document: whether its domains have finished starting, and waiting until they have.
//!
//! cairnd answers `GET /api/v1/health` (and sends READY=1) before its domains have started;
//! a route of a domain that is still `starting` answers 503. The lab waits for
//! `"ready": true` before it uses domain routes. A health document without `ready` comes
//! from an older image, whose domains start before the API answers: it counts as ready.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::deadline::Deadline;
use crate::error::LabError;
use crate::https::{self, Trust};

/// The domains health reports, in its order.
pub const DOMAINS: [&str; 4] = ["storage", "smart", "network", "vms"];

/// One domain as health reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainState {
    pub name: String,
    /// `starting` | `ready` | `failed` | `absent` (or whatever a newer cairnd says).
    pub state: String,
    pub took_ms: Option<u64>,
    pub reason: Option<String>,
}

/// Where the domains are, from one health document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// No domain is starting (or the image predates the `ready` field).
    Ready,
    /// These domains are still starting.
    Starting(Vec<String>),
    /// A domain failed to start (the first one in [`DOMAINS`] order).
    Failed { domain: String, reason: String },
}

/// The domains of a health document, in [`DOMAINS`] order (missing ones left out).
pub fn domains(health: &Value) -> Vec<DomainState> {
    DOMAINS
        .iter()
        .filter_map(|name| {
            let d = health["domains"].get(*name)?;
            Some(DomainState {
                name: name.to_string(),
                state: d["state"].as_str().unwrap_or("unknown").to_string(),
                took_ms: d["took_ms"].as_u64(),
                reason: d["reason"].as_str().map(str::to_string),
            })
        })
        .collect()
}

/// What a health document says about the domains: a failed domain first, then whether
/// `ready` is true (absent `ready`: an older image, ready).
pub fn readiness(health: &Value) -> Readiness {
    let ds = domains(health);
    if let Some(f) = ds.iter().find(|d| d.state == "failed") {
        return Readiness::Failed {
            domain: f.name.clone(),
            reason: f.reason.clone().unwrap_or_else(|| "no reason given".into()),
        };
    }
    match health.get("ready") {
        None => Readiness::Ready,
        Some(Value::Bool(true)) => Readiness::Ready,
        Some(_) => {
            let starting: Vec<String> = ds
                .iter()
                .filter(|d| d.state == "starting")
                .map(|d| d.name.clone())
                .collect();
            Readiness::Starting(if starting.is_empty() {
                vec!["(none named: `ready` is false)".into()]
            } else {
                starting
            })
        }
    }
}

/// Whether a failed domain ends the wait with an error ([`Strictness::FailOnFailed`], what
/// scenarios want) or counts as settled ([`Strictness::Settle`], what the bench wants: it
/// reports the failure beside the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    FailOnFailed,
    Settle,
}

/// Polls `fetch` (one health document per call, within the deadline it is given) until no
/// domain is starting; returns the last document. A failed fetch is retried until the
/// deadline (cairnd may be restarting). On timeout the error names the domains still
/// starting; with [`Strictness::FailOnFailed`] a failed domain fails at once with its reason.
pub fn wait_domains(
    addr: SocketAddr,
    deadline: Deadline,
    strictness: Strictness,
    mut fetch: impl FnMut(Deadline) -> Result<Value, LabError>,
) -> Result<Value, LabError> {
    loop {
        let last = match fetch(deadline) {
            Ok(health) => match readiness(&health) {
                Readiness::Ready => return Ok(health),
                Readiness::Failed { domain, reason } => {
                    if strictness == Strictness::FailOnFailed {
                        return Err(LabError::DomainFailed {
                            addr,
                            domain,
                            reason,
                        });
                    }
                    if !health["domains"]
                        .as_object()
                        .is_some_and(|m| m.values().any(|d| d["state"] == "starting"))
                    {
                        return Ok(health);
                    }
                    format!("still starting (and {domain} failed: {reason})")
                }
                Readiness::Starting(names) => names.join(", "),
            },
            Err(e) if deadline.expired() => return Err(e),
            Err(e) => format!("no health answer: {e}"),
        };
        if deadline.expired() {
            return Err(LabError::DomainsStarting {
                addr,
                waited: deadline.total(),
                starting: last,
            });
        }
        // poll interval; the deadline bounds the whole wait
        std::thread::sleep(Duration::from_millis(250).min(deadline.remaining()));
    }
}

/// One `GET /api/v1/health` that must answer 200 with JSON.
pub fn fetch(addr: SocketAddr, trust: Trust, deadline: Deadline) -> Result<Value, LabError> {
    let r = https::get(
        addr,
        "/api/v1/health",
        trust,
        deadline.capped(Duration::from_secs(10)),
    )?;
    if r.status != 200 {
        return Err(LabError::ApiStatus {
            addr,
            method: "GET".into(),
            path: "/api/v1/health".into(),
            status: r.status,
            body: r.body,
        });
    }
    serde_json::from_str(&r.body).map_err(|source| LabError::HealthJson {
        body: r.body.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn health(ready: bool, storage: &str) -> Value {
        json!({
            "status": "ok", "ready": ready,
            "domains": {
                "storage": {"state": storage, "took_ms": 412},
                "smart": {"state": "ready", "took_ms": 30},
                "network": {"state": "ready", "took_ms": 20},
                "vms": {"state": "absent", "reason": "libvirtd is not installed on this node"}
            }
        })
    }

    #[test]
    fn readiness_of_documents() {
        assert_eq!(readiness(&health(true, "ready")), Readiness::Ready);
        assert_eq!(
            readiness(&health(false, "starting")),
            Readiness::Starting(vec!["storage".into()])
        );
        let mut failed = health(true, "failed");
        failed["domains"]["storage"]["reason"] = json!("cannot run mdadm");
        assert_eq!(
            readiness(&failed),
            Readiness::Failed {
                domain: "storage".into(),
                reason: "cannot run mdadm".into()
            }
        );
        // an older image: no `ready`, no `domains`
        assert_eq!(
            readiness(&json!({"status": "ok", "version": "0.1"})),
            Readiness::Ready
        );
        let ds = domains(&health(true, "ready"));
        assert_eq!(ds.len(), 4);
        assert_eq!(ds[0].took_ms, Some(412));
        assert_eq!(ds[3].state, "absent");
        assert_eq!(ds[3].took_ms, None);
        assert!(ds[3].reason.as_deref().unwrap().contains("libvirtd"));
    }

    #[test]
    fn waits_until_ready() {
        let mut answers = vec![
            Err(LabError::ApiTimeout {
                addr: addr(),
                waited: Duration::ZERO,
                last: "refused".into(),
            }),
            Ok(health(false, "starting")),
            Ok(health(true, "ready")),
        ]
        .into_iter();
        let got = wait_domains(addr(), Deadline::secs(30), Strictness::FailOnFailed, |_| {
            answers.next().unwrap()
        })
        .unwrap();
        assert_eq!(got["ready"], true);
    }

    #[test]
    fn a_failed_domain_fails_at_once_or_settles() {
        let mut failed = health(false, "failed");
        failed["domains"]["storage"]["reason"] = json!("cannot run mdadm");
        let f = failed.clone();
        let err = wait_domains(addr(), Deadline::secs(30), Strictness::FailOnFailed, |_| {
            Ok(f.clone())
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("storage") && err.to_string().contains("cannot run mdadm"),
            "{err}"
        );
        let got = wait_domains(addr(), Deadline::secs(30), Strictness::Settle, |_| {
            Ok(failed.clone())
        })
        .unwrap();
        assert_eq!(got["domains"]["storage"]["state"], "failed");
    }

    #[test]
    fn timeout_names_the_domains_still_starting() {
        let err = wait_domains(
            addr(),
            Deadline::after(Duration::from_millis(50)),
            Strictness::FailOnFailed,
            |_| Ok(health(false, "starting")),
        )
        .unwrap_err();
        assert!(
            matches!(&err, LabError::DomainsStarting { starting, .. } if starting == "storage"),
            "{err}"
        );
        assert!(err.to_string().contains("storage"), "{err}");
    }
}
