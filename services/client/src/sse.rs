//! Server-sent event streams (`text/event-stream`, e.g. `/api/v1/events`) read event by event.

use crate::error::ClientError;
use http_body_util::BodyExt;
use hyper::StatusCode;
use std::net::SocketAddr;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field, when the server sent one (the resume point).
    pub id: Option<String>,
    /// The `event:` name (`message` when none was given).
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// A server-sent event stream being read; dropping it closes the connection.
pub struct EventStream {
    /// The HTTP status the stream was answered with (only 200 carries events).
    pub status: StatusCode,
    addr: SocketAddr,
    body: hyper::body::Incoming,
    buf: String,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl EventStream {
    /// A stream over an answer whose body is unread; `driver` runs its connection.
    pub(crate) fn new(
        addr: SocketAddr,
        response: hyper::Response<hyper::body::Incoming>,
        driver: tokio::task::JoinHandle<()>,
    ) -> Self {
        EventStream {
            status: response.status(),
            addr,
            body: response.into_body(),
            buf: String::new(),
            driver,
        }
    }

    /// The next event; `None` when the server ended the stream. Comments are skipped.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(ev) = parse_sse_block(&block) {
                    return Ok(Some(ev));
                }
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(ClientError::Body(self.addr, e)),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }
}

/// Parse one event block; `None` for comment-only or data-less blocks.
pub fn parse_sse_block(block: &str) -> Option<SseEvent> {
    let mut id = None;
    let mut event = "message".to_string();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => id = Some(value.to_string()),
            "event" => event = value.to_string(),
            "data" => data.push(value),
            _ => {}
        }
    }
    (!data.is_empty()).then(|| SseEvent {
        id,
        event,
        data: data.join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks() {
        assert_eq!(
            parse_sse_block("id: 3\nevent: task\ndata: {\"a\":1}\n\n"),
            Some(SseEvent {
                id: Some("3".into()),
                event: "task".into(),
                data: "{\"a\":1}".into()
            })
        );
        assert_eq!(parse_sse_block(": keepalive\n\n"), None);
        assert_eq!(parse_sse_block("retry: 3000\n: connected\n\n"), None);
        assert_eq!(
            parse_sse_block("data: a\ndata: b\n\n").unwrap().data,
            "a\nb"
        );
    }
}
