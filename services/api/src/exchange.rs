//! One request and its answer: limits on the head and body, the body read within its
//! deadline, routing and the caller's access checked, then [`crate::dispatch`]; security
//! headers on every answer, `HEAD` answered like `GET` without the body.

use crate::auth;
use crate::conn::{self, Limits};
use crate::dispatch::dispatch;
use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::Body;
use crate::router::route;
use crate::routes::Access;
use crate::state::ApiState;
use crate::ui;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper::{header, Method, StatusCode};
use hyper::{Request, Response};
use std::net::SocketAddr;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Route a request, check who may make it, and run it. Never logs bodies or headers. A
/// `HEAD` request is answered like a `GET`, without the body.
pub async fn handle<B>(
    state: &ApiState,
    peer: SocketAddr,
    req: Request<B>,
    limits: &Limits,
) -> Response<Body>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let method = req.method().clone();
    let full_path = req.uri().path();
    // URIs are ASCII; a long one is cut for the log.
    let path = full_path[..full_path.len().min(200)].to_string();
    let http1 = req.version() < hyper::Version::HTTP_2;
    let mut close = false;
    let mut resp = match respond(state, peer, req, limits, &mut close).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    // The body was refused unread or cut off: the connection cannot carry another request.
    // (HTTP/2 ends just the stream.)
    if close && http1 {
        h.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    if method == Method::HEAD {
        without_body(&mut resp);
    }
    tracing::debug!(
        %peer,
        %method,
        path,
        status = resp.status().as_u16(),
        "request"
    );
    resp
}

/// The answer to a `HEAD`: the headers of the `GET` (with its length), no body.
fn without_body(resp: &mut Response<Body>) {
    let status = resp.status();
    if let Some(n) = hyper::body::Body::size_hint(resp.body()).exact() {
        if !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
            && !resp.headers().contains_key(header::CONTENT_LENGTH)
        {
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, header::HeaderValue::from(n));
        }
    }
    *resp.body_mut() = crate::response::full(Bytes::new());
}

/// 414 or 431 when the request's target or headers are over the API's limits.
pub fn head_over_limits<B>(req: &Request<B>) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > conn::MAX_URI {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "the request target is {target} bytes long; the API takes at most {}",
                conn::MAX_URI
            ),
        ));
    }
    let fields = req.headers().len();
    let bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if fields > conn::MAX_HEADERS || bytes > conn::MAX_HEADER_BYTES {
        return Some(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {fields} header fields of {bytes} bytes; the API takes at most {} fields and {} bytes",
                conn::MAX_HEADERS,
                conn::MAX_HEADER_BYTES
            ),
        ));
    }
    None
}

/// The head checks and the whole body of a request, with the API's limits: 414/431 for the
/// head, 413 for a declared or actual body over [`MAX_BODY`], 408 when the body does not
/// arrive within the body deadline; every refusal here also closes the connection
/// (`close`). The body is read before any other refusal: answering with unread bytes in the
/// socket makes the kernel reset the connection, and the client loses the answer. Shared by
/// the main API and the cluster port.
pub async fn read_limited<B>(
    req: Request<B>,
    limits: &Limits,
    close: &mut bool,
) -> Result<(hyper::http::request::Parts, Bytes), ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(e) = head_over_limits(&req) {
        *close = true;
        return Err(e);
    }
    // A declared length over the limit is refused before a byte of the body is read.
    if req.body().size_hint().lower() > MAX_BODY as u64 {
        *close = true;
        return Err(ApiError::too_large(MAX_BODY));
    }
    let (parts, body) = req.into_parts();
    match tokio::time::timeout(limits.body, read_body(body)).await {
        Ok(Ok(b)) => Ok((parts, b)),
        Ok(Err(e)) => {
            *close = true;
            Err(e)
        }
        Err(_) => {
            *close = true;
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request body did not arrive within {:?}; send it whole, at once",
                    limits.body
                ),
            ))
        }
    }
}

async fn respond<B>(
    state: &ApiState,
    peer: SocketAddr,
    req: Request<B>,
    limits: &Limits,
    close: &mut bool,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // An image upload streams its body to disk: routed (and refused) before it is read.
    if let Ok(r) = route(req.method(), req.uri().path()) {
        if r.op == crate::router::Op::Images(crate::images::ImagesOp::WriteUpload) {
            if let Some(e) = head_over_limits(&req) {
                *close = true;
                return Err(e);
            }
            return crate::images::write_upload(state, req, r.params, limits.body, close).await;
        }
    }
    let (parts, body) = read_limited(req, limits, close).await?;
    let req = Request::from_parts(parts, ());
    // Until setup completes, only public and setup routes answer; anything else, known or
    // not, is `not_claimed` (a wrong method on a known path is still a plain 405, and a
    // missing UI file a plain 404: the UI's files are public).
    let routed = match route(req.method(), req.uri().path()) {
        Err(e) if e.code == "method_not_allowed" => return Err(e),
        Err(e) if ui::is_ui_path(req.uri().path()) => return Err(e),
        Err(_) if !state.identity.setup().is_claimed() => return Err(ApiError::not_claimed()),
        Err(e) => return Err(e),
        Ok(r) => r,
    };
    if !state.identity.setup().is_claimed()
        && !matches!(routed.op.access(), Access::Public | Access::Setup)
    {
        return Err(ApiError::not_claimed());
    }
    let (parts, ()) = req.into_parts();
    let principal = match routed.op.access() {
        Access::User => Some(auth::require(state, &parts.method, &parts.headers)?),
        Access::Public | Access::Setup | Access::Login => None,
    };
    let ctx = Ctx {
        state,
        peer: peer.ip(),
        method: parts.method,
        headers: parts.headers,
        body,
        params: routed.params,
        principal,
    };
    dispatch(&ctx, routed.op).await
}

/// Read a request body of at most [`MAX_BODY`] bytes.
pub async fn read_body<B>(body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large(MAX_BODY))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}
