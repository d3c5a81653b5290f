//! The event bus (task progress, alerts) and its server-sent event stream `/api/v1/events`.

use crate::error::ApiError;
use crate::response::{build, Body};
use crate::tasks::Task;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, watch};

/// How many events a slow subscriber may fall behind before it skips some.
pub const BACKLOG: usize = 256;
/// Most event streams open at once (each holds a connection and a task).
pub const MAX_STREAMS: usize = 64;
/// A comment line is sent this often so proxies and clients see the stream is alive.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

pub use cairn_core::alert::AlertLevel;

/// Whether an alert condition began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Raised,
    Cleared,
}

/// An alert change, as published by a domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    /// Stable key of the condition (e.g. `disk/WWN/smart`), so raise and clear pair up.
    pub key: String,
    pub level: AlertLevel,
    pub state: AlertState,
    pub message: String,
    /// Seconds since the Unix epoch.
    pub time: u64,
}

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
    pub id: u64,
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
    pub events: broadcast::Receiver<Event>,
    pub closed: watch::Receiver<bool>,
}

impl EventBus {
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

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A response body fed from a channel, ending when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Handle `GET /api/v1/events`: a `text/event-stream` of every event from now on. The
/// stream ends within one keepalive period once `still_allowed` says no (the session ended
/// or the token was revoked).
pub fn get(
    bus: &EventBus,
    still_allowed: impl Fn() -> bool + Send + 'static,
) -> Result<Response<Body>, ApiError> {
    if bus.subscribers() >= MAX_STREAMS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("{MAX_STREAMS} event streams are open already; close one and retry"),
        ));
    }
    let mut sub = bus.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(32);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b"retry: 3000\n: connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            let chunk = tokio::select! {
                r = sub.events.recv() => match r {
                    Ok(ev) => ev.to_sse(),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        format!(": {n} events were skipped (client too slow)\n\n")
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    if !still_allowed() {
                        break;
                    }
                    ": keepalive\n\n".to_string()
                }
                _ = sub.closed.wait_for(|c| *c) => break,
                _ = tx.closed() => break,
            };
            if tx.send(Bytes::from(chunk)).await.is_err() {
                break;
            }
        }
    });
    Ok(build(
        StatusCode::OK,
        "text/event-stream",
        ChannelBody(rx).boxed(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

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

    async fn next_chunk(body: &mut Body) -> String {
        let f = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(f.into_data().unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn streams_are_capped() {
        let bus = EventBus::new();
        let open: Vec<_> = (0..MAX_STREAMS)
            .map(|_| get(&bus, || true).unwrap())
            .collect();
        assert_eq!(get(&bus, || true).unwrap_err().code, "too_many_streams");
        drop(open);
        // Each stream's task notices its client is gone and unsubscribes.
        for _ in 0..100 {
            if bus.subscribers() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(get(&bus, || true).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn stream_ends_when_no_longer_allowed() {
        let bus = EventBus::new();
        let allowed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let a = allowed.clone();
        let mut body = get(&bus, move || a.load(Ordering::SeqCst))
            .unwrap()
            .into_body();
        assert!(next_chunk(&mut body).await.contains("connected"));
        assert!(next_chunk(&mut body).await.contains("keepalive"));
        allowed.store(false, Ordering::SeqCst);
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none(), "ended at the next keepalive");
    }

    #[tokio::test]
    async fn stream_carries_events_and_ends_on_close() {
        let bus = EventBus::new();
        let resp = get(&bus, || true).unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body();
        assert!(next_chunk(&mut body).await.contains("connected"));
        crate::alerts::AlertRegistry::new(bus.clone()).raise(
            "k",
            AlertLevel::Critical,
            "pool degraded",
        );
        let chunk = next_chunk(&mut body).await;
        assert!(chunk.starts_with("id: 1\nevent: alert\n"), "{chunk}");
        assert!(chunk.contains("pool degraded"));
        bus.close();
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(end.is_none(), "stream ends when the bus closes");
    }
}
