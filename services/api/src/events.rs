//! `GET /api/v1/events`: the event bus as a server-sent event stream.

use crate::error::ApiError;
use crate::response::{build, Body};
pub use cairn_tasks::events::{Event, EventBus, EventKind, Subscription};
pub use cairn_tasks::stream::{KEEPALIVE, MAX_STREAMS};
pub use cairn_tasks::{now_s, AlertLevel, AlertState};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A response body fed from a channel of chunks, ending when the sender is dropped.
struct ChannelBody(mpsc::Receiver<String>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(Frame::data(Bytes::from(b)))))
    }
}

/// Handle `GET /api/v1/events`: a `text/event-stream` of every event from now on. The
/// stream ends within one keepalive period once `still_allowed` says no (the session ended
/// or the token was revoked).
pub fn get(
    bus: &EventBus,
    still_allowed: impl Fn() -> bool + Send + 'static,
) -> Result<Response<Body>, ApiError> {
    let rx = cairn_tasks::stream(bus, still_allowed).map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            e.to_string(),
        )
    })?;
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
    use std::sync::atomic::Ordering;

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
        cairn_tasks::AlertRegistry::new(bus.clone()).raise(
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
