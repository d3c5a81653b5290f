//! The event bus: every task change and alert change, numbered in publication order and
//! broadcast to the current subscribers (event streams, alert delivery).

use crate::alert::Alert;
use crate::task::Task;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// How many events a slow subscriber may fall behind before it skips some.
pub const BACKLOG: usize = 256;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A task was created or changed (the task as it is now).
    Task(Task),
    /// An alert was raised or cleared.
    Alert(Alert),
}

/// One event, numbered in publication order.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Increasing from 1; the stream's `id:` line.
    pub id: u64,
    /// The task or alert change.
    pub kind: EventKind,
}

impl Event {
    /// The event in server-sent event form (`id:`, `event:`, `data:`, blank line).
    pub fn to_sse(&self) -> String {
        let (name, data) = match &self.kind {
            EventKind::Task(t) => ("task", serde_json::to_string(t)),
            EventKind::Alert(a) => ("alert", serde_json::to_string(a)),
        };
        let data = data.unwrap_or_else(|e| format!(r#"{{"error":"cannot encode: {e}"}}"#));
        format!("id: {}\nevent: {name}\ndata: {data}\n\n", self.id)
    }
}

struct BusInner {
    tx: broadcast::Sender<Event>,
    next: AtomicU64,
    closed: watch::Sender<bool>,
}

/// Publishes events to every current subscriber; shared by all domains.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// A subscriber's view of the bus.
pub struct Subscription {
    /// Events from the moment of subscribing; lags by at most [`BACKLOG`].
    pub events: broadcast::Receiver<Event>,
    /// Turns true when the bus closes (shutdown).
    pub closed: watch::Receiver<bool>,
}

impl EventBus {
    /// A bus without subscribers, numbering from 1.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        let (closed, _) = watch::channel(false);
        EventBus {
            inner: Arc::new(BusInner {
                tx,
                next: AtomicU64::new(1),
                closed,
            }),
        }
    }

    /// Publish an event; returns its id. Without subscribers it is simply dropped.
    pub fn publish(&self, kind: EventKind) -> u64 {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let _ = self.inner.tx.send(Event { id, kind });
        id
    }

    /// Receive events published from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            events: self.inner.tx.subscribe(),
            closed: self.inner.closed.subscribe(),
        }
    }

    /// How many subscribers are listening now.
    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    /// End every event stream (on shutdown, so connections can drain).
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertState;
    use cairn_core::alert::AlertLevel;

    #[test]
    fn sse_form() {
        let ev = Event {
            id: 7,
            kind: EventKind::Alert(Alert {
                key: "k".into(),
                level: AlertLevel::Warning,
                state: AlertState::Raised,
                message: "m".into(),
                time: 1,
            }),
        };
        assert_eq!(
            ev.to_sse(),
            "id: 7\nevent: alert\ndata: {\"key\":\"k\",\"level\":\"warning\",\"state\":\"raised\",\"message\":\"m\",\"time\":1}\n\n"
        );
    }

    #[tokio::test]
    async fn subscribers_get_events_in_order() {
        let bus = EventBus::new();
        assert_eq!(bus.subscribers(), 0);
        let mut sub = bus.subscribe();
        assert_eq!(bus.subscribers(), 1);
        let alert = |state| {
            EventKind::Alert(Alert {
                key: "x".into(),
                level: AlertLevel::Info,
                state,
                message: "m".into(),
                time: 1,
            })
        };
        let a = bus.publish(alert(AlertState::Raised));
        let b = bus.publish(alert(AlertState::Cleared));
        assert!(b > a);
        assert_eq!(sub.events.recv().await.unwrap().id, a);
        assert_eq!(sub.events.recv().await.unwrap().id, b);
    }
}
