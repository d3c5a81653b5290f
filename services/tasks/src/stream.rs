//! An event stream as server-sent event chunks: every event from now on, keepalives, and an
//! end when the bus closes, the reader goes away, or the reader's access ends.

use crate::events::EventBus;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Most event streams open at once (each holds a connection and a task).
pub const MAX_STREAMS: usize = 64;
/// A comment line is sent this often so proxies and clients see the stream is alive.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// Why no stream was opened.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_STREAMS} event streams are open already; close one and retry")]
pub struct TooManyStreams;

/// Open a stream: a channel of SSE chunks fed by a background task (so call it inside a
/// tokio runtime). The stream ends within one keepalive period once `still_allowed` says no
/// (the session ended or the token was revoked), and when the receiver is dropped.
pub fn stream(
    bus: &EventBus,
    still_allowed: impl Fn() -> bool + Send + 'static,
) -> Result<mpsc::Receiver<String>, TooManyStreams> {
    if bus.subscribers() >= MAX_STREAMS {
        return Err(TooManyStreams);
    }
    let mut sub = bus.subscribe();
    let (tx, rx) = mpsc::channel::<String>(32);
    tokio::spawn(async move {
        if tx
            .send("retry: 3000\n: connected\n\n".to_string())
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
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}
