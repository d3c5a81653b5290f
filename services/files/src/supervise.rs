//! The file services as cairn-init supervises them: start/stop through `cairn-init svc`, and
//! alerts from `cairn-init svc status --json` when one stops, is restarted or cannot start.

use cairn_core::alert::{AlertLevel, AlertSink};
use cairn_core::command::Invocation;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// cairn-init's command-line tool on the appliance.
pub const CAIRN_INIT: &str = "/usr/sbin/cairn-init";
/// The SMB server (rootfs/overlay/etc/cairn/services/smbd.toml).
pub const SMBD: &str = "smbd";
/// The NFS server (nfsd.toml: rpc.nfsd + rpc.mountd).
pub const NFSD: &str = "nfsd";
/// The port mapper, for NFSv3 only.
pub const RPCBIND: &str = "rpcbind";
/// WS-Discovery.
pub const WSDD: &str = "wsdd";
/// mDNS.
pub const AVAHI: &str = "avahi";

/// `cairn-init svc <verb> <name>` (verb: start, stop, restart).
pub fn svc(verb: &str, name: &str) -> Invocation {
    Invocation::new(CAIRN_INIT, ["svc", verb, name])
}

/// `cairn-init svc status --json`.
pub fn status() -> Invocation {
    Invocation::new(CAIRN_INIT, ["svc", "status", "--json"])
}

/// One service's state as cairn-init reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SvcState {
    pub name: String,
    /// `ready`, `starting`, `backing-off`, `failed`, `stopped`, …
    pub state: String,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct StatusReply {
    #[serde(default)]
    services: Vec<SvcState>,
}

/// The services in `cairn-init svc status --json`'s output.
pub fn parse_status(json: &str) -> Result<Vec<SvcState>, serde_json::Error> {
    Ok(serde_json::from_str::<StatusReply>(json)?.services)
}

/// The alert key of file service `name`.
pub fn alert_key(name: &str) -> String {
    format!("files/service/{name}")
}

/// Raises and clears the file services' alerts from successive status readings.
#[derive(Default)]
pub struct ServiceWatch {
    restarts: Mutex<BTreeMap<String, u32>>,
}

impl ServiceWatch {
    /// A watch that has seen nothing yet.
    pub fn new() -> ServiceWatch {
        ServiceWatch::default()
    }

    /// Judge `statuses` for the services that should run (`wanted`); the ones not wanted
    /// have their alert cleared. A service that is down or failing raises a critical alert;
    /// one that was restarted since the last reading raises a warning, cleared at the next
    /// reading that finds it ready without a new restart.
    pub fn check(
        &self,
        statuses: &[SvcState],
        wanted: &[&str],
        all: &[&str],
        alerts: &dyn AlertSink,
    ) {
        let mut seen = self.restarts.lock().unwrap_or_else(|p| p.into_inner());
        for name in all {
            let key = alert_key(name);
            if !wanted.contains(name) {
                alerts.clear(&key, &format!("{name} is not needed"));
                seen.remove(*name);
                continue;
            }
            let Some(s) = statuses.iter().find(|s| s.name == *name) else {
                alerts.raise(
                    &key,
                    AlertLevel::Critical,
                    &format!("{name} is not a service on this node"),
                );
                continue;
            };
            let before = seen.insert(name.to_string(), s.restarts);
            let why = s
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            match s.state.as_str() {
                "ready" if before.is_some_and(|b| s.restarts > b) => {
                    alerts.raise(
                        &key,
                        AlertLevel::Warning,
                        &format!(
                            "{name} stopped and was restarted ({} restarts since boot)",
                            s.restarts
                        ),
                    );
                }
                "ready" => {
                    alerts.clear(&key, &format!("{name} is running"));
                }
                "starting" | "waiting" => {}
                "backing-off" => {
                    alerts.raise(
                        &key,
                        AlertLevel::Critical,
                        &format!("{name} stopped and is being restarted{why}"),
                    );
                }
                _ => {
                    alerts.raise(
                        &key,
                        AlertLevel::Critical,
                        &format!("{name} is {} and serves nobody{why}", s.state),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::alert::RecordingAlerts;

    fn active(a: &RecordingAlerts) -> BTreeMap<String, (AlertLevel, String)> {
        a.active.lock().unwrap().clone()
    }

    fn st(name: &str, state: &str, restarts: u32) -> SvcState {
        SvcState {
            name: name.into(),
            state: state.into(),
            restarts,
            reason: None,
        }
    }

    const ALL: &[&str] = &[SMBD, NFSD];

    #[test]
    fn status_json_from_cairn_init_parses() {
        let json = r#"{"ok":true,"services":[{"name":"smbd","state":"ready","pid":42,"restarts":1,"uptime_s":3,"last_exit":{"signal":9,"at":1},"reason":null},{"name":"nfsd","state":"failed","pid":null,"restarts":0,"uptime_s":null,"last_exit":null,"reason":"exited with 1"}]}"#;
        let s = parse_status(json).unwrap();
        assert_eq!(s[0], st("smbd", "ready", 1));
        assert_eq!(s[1].reason.as_deref(), Some("exited with 1"));
        assert_eq!(
            svc("start", "smbd").display(),
            "/usr/sbin/cairn-init svc start smbd"
        );
    }

    #[test]
    fn a_killed_smbd_raises_an_alert_that_clears_once_it_runs_again() {
        let alerts = RecordingAlerts::default();
        let w = ServiceWatch::new();
        w.check(&[st("smbd", "ready", 0)], &[SMBD], ALL, &alerts);
        assert!(active(&alerts).is_empty());
        // Killed: backing off, then ready again with one restart more.
        w.check(&[st("smbd", "backing-off", 1)], &[SMBD], ALL, &alerts);
        assert_eq!(
            active(&alerts)["files/service/smbd"].0,
            AlertLevel::Critical
        );
        w.check(&[st("smbd", "ready", 1)], &[SMBD], ALL, &alerts);
        assert!(active(&alerts).is_empty());
        // Restarted between two readings: a warning, cleared at the next quiet reading.
        w.check(&[st("smbd", "ready", 2)], &[SMBD], ALL, &alerts);
        let (level, msg) = &active(&alerts)["files/service/smbd"];
        assert_eq!(*level, AlertLevel::Warning);
        assert!(msg.contains("restarted (2 restarts"), "{msg}");
        w.check(&[st("smbd", "ready", 2)], &[SMBD], ALL, &alerts);
        assert!(active(&alerts).is_empty());
    }

    #[test]
    fn a_service_that_fails_to_start_is_critical_and_unwanted_ones_are_quiet() {
        let alerts = RecordingAlerts::default();
        let w = ServiceWatch::new();
        let failed = SvcState {
            reason: Some("readiness timed out".into()),
            ..st("nfsd", "failed", 3)
        };
        w.check(
            &[st("smbd", "stopped", 0), failed.clone()],
            &[NFSD],
            ALL,
            &alerts,
        );
        let now = active(&alerts);
        assert_eq!(now.len(), 1);
        assert!(now["files/service/nfsd"]
            .1
            .contains("failed and serves nobody: readiness timed out"));
        // No NFS share any more: the alert goes.
        w.check(&[st("smbd", "stopped", 0), failed], &[], ALL, &alerts);
        assert!(active(&alerts).is_empty());
    }
}
