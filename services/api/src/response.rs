//! Response building: JSON documents, raw bodies and the boxed body type of every response.

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{header, Response, StatusCode};
use std::convert::Infallible;

/// The body type of every API response (whole documents and event streams).
pub type Body = BoxBody<Bytes, Infallible>;

/// A body holding `bytes` whole.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON response with the given status. Serializing our own response types cannot fail;
/// if it ever did, the client gets a 500 with a JSON error instead of a panic.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => build(status, "application/json", full(body)),
        Err(e) => build(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            full(
                format!(
                    r#"{{"code":"internal","message":"cannot encode response: {e}","field":null}}"#
                )
                .into_bytes(),
            ),
        ),
    }
}

/// 204 No Content.
pub fn no_content() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A response with a content type and body, not cached.
pub fn build(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sets_status_type_and_body() {
        let r = json(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"a":1}"#);
    }

    #[tokio::test]
    async fn no_content_is_empty() {
        let r = no_content();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty());
    }
}
