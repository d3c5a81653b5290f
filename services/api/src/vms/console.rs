//! `GET /api/v1/vms/{vm}/console/stream`: the console's recent text, then new output as it
//! is written, as server-sent events (`event: console`, the text in `data:` lines; joining
//! a block's data lines with `\n` gives the text back), until the client goes away.

use crate::error::ApiError;
use crate::executor::Domain;
use crate::response::{build, Body};
use cairn_vm::console::Cursor;
use cairn_vm::error::VmError;
use cairn_vm::Vms;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the console file is checked for new output.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

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

/// Console output as one SSE block (carriage returns dropped, invalid UTF-8 replaced).
pub fn sse(bytes: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(bytes).replace('\r', "");
    let mut out = String::from("event: console\n");
    for line in text.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// Follow VM `name`'s console; `domain` maps the VM service's errors.
pub async fn stream(
    domain: &'static Domain<Vms, VmError>,
    vms: Arc<Vms>,
    name: String,
) -> Result<Response<Body>, ApiError> {
    let first = {
        let name = name.clone();
        domain
            .blocking(vms.clone(), move |v| v.console(&name, None))
            .await?
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let (bytes, mut cursor): (Vec<u8>, Cursor) = first;
        if tx
            .send(Bytes::from_static(b"retry: 3000\n: connected\n\n"))
            .await
            .is_err()
        {
            return;
        }
        if !bytes.is_empty() && tx.send(sse(&bytes)).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(FOLLOW_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tx.closed() => return,
            }
            let (v, n, c) = (vms.clone(), name.clone(), cursor);
            let next = tokio::task::spawn_blocking(move || v.console(&n, Some(c))).await;
            match next {
                Ok(Ok((bytes, c))) => {
                    cursor = c;
                    if !bytes.is_empty() && tx.send(sse(&bytes)).await.is_err() {
                        return;
                    }
                }
                // The VM was deleted, or the file cannot be read: end the stream with why.
                Ok(Err(e)) => {
                    let msg = format!("\n[console ended: {}]\n", (domain.api_error)(e).message);
                    let _ = tx.send(sse(msg.as_bytes())).await;
                    return;
                }
                Err(_) => return,
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

    #[test]
    fn sse_blocks_give_the_text_back() {
        let b = sse(b"HEARTBEAT 1\r\nHEARTBEAT 2\r\n");
        let text = std::str::from_utf8(&b).unwrap();
        assert_eq!(
            text,
            "event: console\ndata: HEARTBEAT 1\ndata: HEARTBEAT 2\ndata: \n\n"
        );
        let ev = cairn_client::parse_sse_block(text).unwrap();
        assert_eq!(ev.event, "console");
        assert_eq!(ev.data, "HEARTBEAT 1\nHEARTBEAT 2\n");
    }
}
