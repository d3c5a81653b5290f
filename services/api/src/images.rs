//! The pools' image libraries over HTTP: start an upload, stream its raw body to disk (resumable at an offset, never buffered whole), list, cancel, delete (backed by `cairn_vm::images`).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{json, no_content, Body};
use crate::routes::{Access, Route};
use crate::state::ApiState;
use cairn_vm::images::{ImageError, Library, UploadStatus, Writer, LIBRARY_SHARE};
use cairn_vm::Vms;
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper::{header, Request, Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagesOp {
    List,
    StartUpload,
    GetUpload,
    /// Streamed: answered by [`write_upload`] before the body is read, never dispatched.
    WriteUpload,
    CancelUpload,
    Delete,
}

impl ImagesOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/images.json` lists the same).
pub const ROUTES: &[Route<ImagesOp>] = &[
    Route {
        path: "/api/v1/pools/{pool}/images",
        methods: &[("GET", ImagesOp::List), ("POST", ImagesOp::StartUpload)],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/images/uploads/{id}",
        methods: &[
            ("GET", ImagesOp::GetUpload),
            ("PUT", ImagesOp::WriteUpload),
            ("DELETE", ImagesOp::CancelUpload),
        ],
        allowed: &["GET", "PUT", "DELETE"],
    },
    Route {
        path: "/api/v1/pools/{pool}/images/{image}",
        methods: &[("DELETE", ImagesOp::Delete)],
        allowed: &["DELETE"],
    },
];

/// The header that carries an upload's offset in answers (as in the tus protocol).
pub const OFFSET_HEADER: &str = "upload-offset";

/// Bytes gathered from the body before one write to disk: the most an upload holds in
/// memory.
const CHUNK: usize = 1 << 20;

/// The API error for a library error.
pub fn api_error(e: ImageError) -> ApiError {
    let message = cairn_core::boot::error_chain(&e);
    match e {
        ImageError::Invalid { field, reason } => ApiError::invalid(&field, reason),
        ImageError::NoLibrary { .. } => {
            ApiError::conflict("no_library", message).with_field("pool")
        }
        ImageError::NotFound { .. } | ImageError::NoUpload { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
        }
        ImageError::Exists { .. } => ApiError::conflict("exists", message).with_field("name"),
        ImageError::InUse { .. } => ApiError::conflict("in_use", message),
        ImageError::WrongOffset { .. } => {
            ApiError::conflict("wrong_offset", message).with_field("offset")
        }
        ImageError::TooLong { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message).with_field("body")
        }
        ImageError::Busy { .. } => ApiError::conflict("busy", message),
        ImageError::NoSpace { .. } => {
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "no_space", message)
        }
        ImageError::Checksum { .. } => ApiError::invalid("sha256", message),
        ImageError::Io { .. } => ApiError::internal(message),
    }
}

fn vms(state: &ApiState) -> Result<Arc<Vms>, ApiError> {
    state.domains.vms.service("VM")
}

/// Run a blocking library call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the image library call did not finish: {e}")))?
        .map_err(api_error)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartReq {
    name: String,
    size_bytes: u64,
    #[serde(default)]
    sha256: Option<String>,
}

/// An upload's status, with its offset also in the `Upload-Offset` header.
fn upload_response(status: StatusCode, up: &UploadStatus) -> Response<Body> {
    let mut r = json(status, up);
    r.headers_mut()
        .insert(OFFSET_HEADER, header::HeaderValue::from(up.offset));
    r
}

/// The size of a library share made on the first upload: the pool's whole thin pool (thin,
/// so it takes only what its images use), at least the smallest share.
fn library_size(thin_pool_bytes: u64) -> u64 {
    thin_pool_bytes.max(cairn_storage::share::MIN_SHARE_BYTES)
}

/// Make the library of `pool` when it has none: its share `images`, created through the
/// same storage call as `POST /pools/{pool}/shares` (names, thin LV, btrfs, snapshots). An
/// unknown pool answers 404; a pool that cannot hold the share, 409 `no_library`.
async fn ensure_library(ctx: &Ctx<'_>, lib: &Arc<Library>, pool: &str) -> Result<(), ApiError> {
    if lib.has_library(pool) {
        return Ok(());
    }
    let no_library = |reason: String| {
        ApiError::conflict(
            "no_library",
            format!("pool {pool} cannot hold an image library: {reason}"),
        )
        .with_field("pool")
    };
    let storage = crate::shares::SHARES.service(ctx)?;
    let p = pool.to_string();
    let made = tokio::task::spawn_blocking(move || {
        if let Ok(share) = storage.share(&p, LIBRARY_SHARE) {
            return Err(Err(format!(
                "its share `{LIBRARY_SHARE}` exists but {} is not mounted (mounted: {})",
                share.mountpoint, share.mounted
            )));
        }
        let size = storage.capacity(&p).map_err(Ok)?.size_bytes;
        match storage.create_share(&p, LIBRARY_SHARE, library_size(size)) {
            Ok(_) | Err(cairn_storage::DataError::Exists { .. }) => Ok(()),
            Err(e) => Err(Ok(e)),
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("the image library creation did not finish: {e}")))?;
    match made {
        Ok(()) if lib.has_library(pool) => {
            tracing::info!(pool, "image library created (share {LIBRARY_SHARE})");
            Ok(())
        }
        Ok(()) => Err(no_library(format!(
            "its share `{LIBRARY_SHARE}` was made but is not mounted"
        ))),
        Err(Ok(e)) if e.is_not_found() => Err(crate::shares::api_error(e)),
        Err(Ok(e)) => Err(no_library(cairn_core::boot::error_chain(&e))),
        Err(Err(reason)) => Err(no_library(reason)),
    }
}

/// Run one (non-streamed) operation.
pub async fn handle(ctx: &Ctx<'_>, op: ImagesOp) -> Result<Response<Body>, ApiError> {
    let lib = vms(ctx.state)?.images().clone();
    let pool = ctx.param_at(0).to_string();
    match op {
        ImagesOp::List => {
            if !lib.has_library(&pool) {
                // Nothing uploaded yet: an empty library (nothing is made); an unknown pool
                // is 404.
                let storage = crate::shares::SHARES.service(ctx)?;
                let p = pool.clone();
                tokio::task::spawn_blocking(move || storage.capacity(&p))
                    .await
                    .map_err(|e| {
                        ApiError::internal(format!("the pool lookup did not finish: {e}"))
                    })?
                    .map_err(crate::shares::api_error)?;
                return Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({"images": [], "uploads": []}),
                ));
            }
            let (images, uploads) =
                blocking(move || Ok((lib.list(&pool)?, lib.uploads(&pool)?))).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"images": images, "uploads": uploads}),
            ))
        }
        ImagesOp::StartUpload => {
            let req: StartReq = ctx.json()?;
            ensure_library(ctx, &lib, &pool).await?;
            let up = blocking(move || {
                lib.start(&pool, &req.name, req.size_bytes, req.sha256.as_deref())
            })
            .await?;
            Ok(upload_response(StatusCode::CREATED, &up))
        }
        ImagesOp::GetUpload => {
            let id = ctx.param_at(1).to_string();
            let up = blocking(move || lib.status(&pool, &id)).await?;
            Ok(upload_response(StatusCode::OK, &up))
        }
        ImagesOp::CancelUpload => {
            let id = ctx.param_at(1).to_string();
            blocking(move || lib.cancel(&pool, &id)).await?;
            Ok(no_content())
        }
        ImagesOp::Delete => {
            let name = ctx.param_at(1).to_string();
            let v = vms(ctx.state)?;
            blocking(move || {
                let user = v.image_user(&pool, &name);
                lib.delete(&pool, &name, user)
            })
            .await?;
            Ok(no_content())
        }
        ImagesOp::WriteUpload => Err(ApiError::internal(
            "a streamed upload reached the JSON dispatch",
        )),
    }
}

/// The offset a write starts at: the query's `offset=N`, or the start of `Content-Range:
/// bytes N-M/T` (whose total, when given, must be the upload's size: checked later).
pub fn requested_offset(
    query: Option<&str>,
    content_range: Option<&str>,
) -> Result<(u64, Option<u64>), ApiError> {
    let from_query = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("offset="))
            .map(str::to_string)
    });
    if let Some(v) = from_query {
        let n = v
            .parse()
            .map_err(|_| ApiError::invalid("offset", "a byte offset (0, 1, …)"))?;
        return Ok((n, None));
    }
    let Some(cr) = content_range else {
        return Err(ApiError::invalid(
            "offset",
            "say where this body starts: ?offset=N or Content-Range: bytes N-M/SIZE",
        ));
    };
    let bad = || ApiError::invalid("Content-Range", "bytes FIRST-LAST/SIZE (or /*)");
    let rest = cr.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = rest.split_once('/').ok_or_else(bad)?;
    let (first, last) = range.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if last < first {
        return Err(bad());
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().map_err(|_| bad())?),
    };
    Ok((first, total))
}

/// Why streaming a body stopped early.
#[derive(Debug)]
pub enum StreamStop {
    /// The client sent nothing for the stall deadline.
    Stalled(Duration),
    /// The body broke off (connection lost, reset).
    Broken(String),
    /// The library refused a write (past the size, disk full).
    Refused(ImageError),
}

/// Append `body` to the upload `w` in chunks of at most [`CHUNK`] bytes, each written on a
/// blocking thread; a frame must arrive within `stall`. Whatever arrived before a stop is
/// on disk (the offset moved that far). Gives the writer back.
pub async fn stream_body<B>(
    mut w: Writer,
    body: B,
    stall: Duration,
) -> (Writer, Result<(), StreamStop>)
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut stop = None;
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => {
                stop = Some(StreamStop::Stalled(stall));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                stop = Some(StreamStop::Broken(e.into().to_string()));
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        buf.extend_from_slice(&data);
        if buf.len() >= CHUNK {
            let (w2, b2, r) = write_chunk(w, buf).await;
            (w, buf) = (w2, b2);
            if let Err(e) = r {
                return (w, Err(StreamStop::Refused(e)));
            }
        }
    }
    if !buf.is_empty() {
        let (w2, _, r) = write_chunk(w, buf).await;
        w = w2;
        if let Err(e) = r {
            return (w, Err(StreamStop::Refused(e)));
        }
    }
    (w, stop.map_or(Ok(()), Err))
}

async fn write_chunk(mut w: Writer, mut buf: Vec<u8>) -> (Writer, Vec<u8>, Result<(), ImageError>) {
    let joined = tokio::task::spawn_blocking(move || {
        let r = w.write(&buf);
        buf.clear();
        (w, buf, r)
    })
    .await;
    match joined {
        Ok(t) => t,
        // A write thread that panicked: the process is in trouble; abort rather than
        // pretend.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// `PUT /api/v1/pools/{pool}/images/uploads/{id}`: the raw body appended at the offset the
/// query or `Content-Range` names (it must be where the upload is: 409 `wrong_offset`
/// naming `offset` otherwise). Answers 200 with the new offset, or 201 with the image when
/// the last byte arrived (SHA-256 checked, renamed into the library). Runs before the body
/// is read: this route's only limit is the declared size (itself at most the pool's free
/// space). A refusal before the body is read closes the connection (`close`).
pub async fn write_upload<B>(
    state: &ApiState,
    req: Request<B>,
    params: Vec<String>,
    stall: Duration,
    close: &mut bool,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Until the body is read, every refusal closes the connection.
    *close = true;
    if !state.identity.setup().is_claimed() {
        return Err(ApiError::not_claimed());
    }
    crate::auth::require(state, req.method(), req.headers())?;
    let lib: Arc<Library> = vms(state)?.images().clone();
    let pool = params.first().cloned().unwrap_or_default();
    let id = params.get(1).cloned().unwrap_or_default();
    let (offset, total) = requested_offset(
        req.uri().query(),
        crate::request::header(req.headers(), "content-range"),
    )?;
    let w = {
        let (pool, id, lib) = (pool.clone(), id.clone(), lib.clone());
        blocking(move || lib.writer(&pool, &id, offset)).await?
    };
    if let Some(t) = total {
        if t != w.size() {
            return Err(ApiError::invalid(
                "Content-Range",
                format!("the upload is {} bytes long, not {t}", w.size()),
            ));
        }
    }
    let (w, r) = stream_body(w, req.into_body(), stall).await;
    match r {
        Ok(()) => *close = false,
        Err(StreamStop::Refused(e)) => return Err(api_error(e)),
        Err(StreamStop::Stalled(d)) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "no bytes for {d:?}; the upload is at byte {}: resume from there",
                    w.offset()
                ),
            ))
        }
        Err(StreamStop::Broken(e)) => {
            return Err(ApiError::bad_request(format!(
                "the body broke off ({e}); the upload is at byte {}: resume from there",
                w.offset()
            )))
        }
    }
    if w.complete() {
        let image = blocking(move || w.finish()).await?;
        tracing::info!(
            pool,
            image = image.name,
            bytes = image.size_bytes,
            "image uploaded"
        );
        return Ok(json(StatusCode::CREATED, &image));
    }
    let offset = w.offset();
    drop(w);
    let up = blocking(move || lib.status(&pool, &id)).await?;
    debug_assert_eq!(up.offset, offset);
    Ok(upload_response(StatusCode::OK, &up))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_vm::images::LIBRARY_SHARE;
    use hyper::body::Frame;

    fn lib() -> (tempfile::TempDir, Arc<Library>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("tank/images")).unwrap();
        let root = t.path().to_path_buf();
        let l = Library::new(Box::new(move |pool| root.join(pool).join(LIBRARY_SHARE)));
        (t, l)
    }

    type Item = Result<Frame<Bytes>, String>;

    /// A body fed through a channel (frames, then an error or the end).
    struct ChannelBody(tokio::sync::mpsc::Receiver<Item>);

    impl hyper::body::Body for ChannelBody {
        type Data = Bytes;
        type Error = String;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Item>> {
            self.0.poll_recv(cx)
        }
    }

    fn channel_body() -> (tokio::sync::mpsc::Sender<Item>, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        (tx, ChannelBody(rx))
    }

    #[test]
    fn a_library_made_on_the_first_upload_spans_the_thin_pool() {
        let min = cairn_storage::share::MIN_SHARE_BYTES;
        assert_eq!(library_size(10 << 30), 10 << 30);
        assert_eq!(library_size(1 << 20), min);
    }

    #[test]
    fn offsets_come_from_the_query_or_content_range() {
        assert_eq!(
            requested_offset(Some("offset=42"), None).unwrap(),
            (42, None)
        );
        assert_eq!(
            requested_offset(Some("a=1&offset=7"), Some("bytes 9-10/11")).unwrap(),
            (7, None)
        );
        assert_eq!(
            requested_offset(None, Some("bytes 100-199/1000")).unwrap(),
            (100, Some(1000))
        );
        assert_eq!(
            requested_offset(None, Some("bytes 0-9/*")).unwrap(),
            (0, None)
        );
        let field =
            |q: Option<&str>, cr: Option<&str>| requested_offset(q, cr).unwrap_err().field.unwrap();
        assert_eq!(field(None, None), "offset");
        assert_eq!(field(Some("offset=-1"), None), "offset");
        assert_eq!(field(Some("offset=x"), None), "offset");
        assert_eq!(field(None, Some("bytes=0-9/10")), "Content-Range");
        assert_eq!(field(None, Some("bytes 9-0/10")), "Content-Range");
        assert_eq!(field(None, Some("bytes 0-9")), "Content-Range");
    }

    #[test]
    fn library_errors_name_their_field_and_status() {
        let e = api_error(ImageError::WrongOffset {
            expected: 5,
            given: 3,
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.field.as_deref(), Some("offset"));
        assert!(e.message.contains("resume from 5"), "{}", e.message);
        let e = api_error(ImageError::NoSpace {
            pool: "tank".into(),
            need: 10,
            free: 1,
        });
        assert_eq!(e.status, StatusCode::INSUFFICIENT_STORAGE);
        assert!(e.message.contains("pool tank is full"));
        let e = api_error(ImageError::InUse {
            name: "d.iso".into(),
            vm: "web".into(),
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(e.message.contains("VM web"));
    }

    #[tokio::test]
    async fn a_body_streams_in_chunks_and_a_broken_one_keeps_what_arrived() {
        let (t, l) = lib();
        let size = 3 * CHUNK as u64 + 5;
        let up = l.start("tank", "big.img", size, None).unwrap();
        let w = l.writer("tank", &up.meta.id, 0).unwrap();
        let (tx, body) = channel_body();
        let feeder = tokio::spawn(async move {
            // 1.5 chunks in 64 KiB frames, then the connection breaks.
            for _ in 0..24 {
                tx.send(Ok(Frame::data(Bytes::from(vec![7u8; 64 * 1024]))))
                    .await
                    .unwrap();
            }
            tx.send(Err("connection reset".into())).await.unwrap();
        });
        let (w, r) = stream_body(w, body, Duration::from_secs(10)).await;
        feeder.await.unwrap();
        assert!(
            matches!(r, Err(StreamStop::Broken(ref e)) if e.contains("reset")),
            "{r:?}"
        );
        assert_eq!(w.offset(), 24 * 64 * 1024, "every byte received is kept");
        drop(w);
        assert_eq!(
            l.status("tank", &up.meta.id).unwrap().offset,
            24 * 64 * 1024
        );
        // Resume: the rest, in one go.
        let w = l.writer("tank", &up.meta.id, 24 * 64 * 1024).unwrap();
        let (tx, body) = channel_body();
        let rest = size - 24 * 64 * 1024;
        tokio::spawn(async move {
            let mut left = rest;
            while left > 0 {
                let n = left.min(100_000);
                tx.send(Ok(Frame::data(Bytes::from(vec![7u8; n as usize]))))
                    .await
                    .unwrap();
                left -= n;
            }
        });
        let (w, r) = stream_body(w, body, Duration::from_secs(10)).await;
        r.unwrap();
        assert!(w.complete());
        let img = w.finish().unwrap();
        assert_eq!(img.size_bytes, size);
        assert_eq!(
            std::fs::metadata(t.path().join("tank/images/big.img"))
                .unwrap()
                .len(),
            size
        );
    }

    #[tokio::test]
    async fn a_stalled_body_stops_with_its_bytes_kept_and_a_long_one_is_refused() {
        let (_t, l) = lib();
        let up = l.start("tank", "s.img", 10, None).unwrap();
        let w = l.writer("tank", &up.meta.id, 0).unwrap();
        let (tx, body) = channel_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))))
            .await
            .unwrap();
        let (w, r) = stream_body(w, body, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(StreamStop::Stalled(_))), "{r:?}");
        assert_eq!(w.offset(), 3);
        drop(tx);
        let (tx, body) = channel_body();
        tx.send(Ok(Frame::data(Bytes::from_static(b"defghijklmnop"))))
            .await
            .unwrap();
        drop(tx);
        let (w, r) = stream_body(w, body, Duration::from_secs(10)).await;
        match r {
            Err(StreamStop::Refused(e)) => {
                assert_eq!(api_error(e).field.as_deref(), Some("body"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.offset(), 3, "a body past the size writes nothing of it");
    }
}
