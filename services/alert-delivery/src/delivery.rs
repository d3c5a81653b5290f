//! The delivery loop (every alert change to the enabled channels whose level it reaches) and
//! the test send, run as a task.

use crate::channels::{Channels, Kind};
use crate::send::send;
use cairn_core::alert::AlertLevel;
use cairn_tasks::{now_s, severity, Alert, AlertState, EventBus, EventKind, TaskRegistry};
use std::sync::Arc;

/// Deliver every alert change on `bus` to the enabled channels whose level it reaches,
/// until the bus closes.
pub fn spawn_delivery(channels: Arc<Channels>, bus: &EventBus) -> tokio::task::JoinHandle<()> {
    let mut sub = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                r = sub.events.recv() => r,
                _ = sub.closed.wait_for(|c| *c) => break,
            };
            let alert = match ev {
                Ok(e) => match e.kind {
                    EventKind::Alert(a) => a,
                    EventKind::Task(_) => continue,
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("alert delivery fell behind; {n} events skipped");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let doc = channels.doc();
            let wanted = [
                (
                    Kind::Email,
                    doc.email.as_ref().map(|e| (e.enabled, e.min_level)),
                ),
                (
                    Kind::Webhook,
                    doc.webhook.as_ref().map(|w| (w.enabled, w.min_level)),
                ),
            ];
            for (kind, cfg) in wanted {
                let Some((true, min)) = cfg else { continue };
                if severity(alert.level) < severity(min) {
                    continue;
                }
                let result = send(&channels, kind, &alert, false).await;
                if let Err(e) = &result {
                    tracing::warn!(channel = kind.name(), key = %alert.key, "alert not delivered: {e}");
                }
                channels.record(kind, &result);
            }
        }
    })
}

/// Why no test was sent.
#[derive(Debug, thiserror::Error)]
#[error("set up the {} channel first", .0.name())]
pub struct NotConfigured(pub Kind);

/// Send a test alert on channel `kind` in the background, as a task of `tasks`; returns the
/// task's id.
pub fn send_test(
    channels: &Arc<Channels>,
    tasks: &TaskRegistry,
    kind: Kind,
) -> Result<u64, NotConfigured> {
    if !channels.is_configured(kind) {
        return Err(NotConfigured(kind));
    }
    let task = tasks.start(
        &format!("alerts.test.{}", kind.name()),
        &format!("sending a test alert by {}", kind.name()),
    );
    let id = task.id();
    let channels = channels.clone();
    tokio::spawn(async move {
        let alert = Alert {
            key: "cairn/test".to_string(),
            level: AlertLevel::Info,
            state: AlertState::Raised,
            message: format!("Test alert from {}", channels.hostname()),
            time: now_s(),
        };
        let result = send(&channels, kind, &alert, true).await;
        channels.record(kind, &result);
        match result {
            Ok(()) => task.succeed("test alert delivered"),
            Err(e) => task.fail(&e),
        }
    });
    Ok(id)
}
