//! The one error shape of the API: `{"code":…,"message":…,"field":…}` with its HTTP status.

use crate::response::{json, Body};
use cairn_core::shown::{clip, clip_to};
use hyper::{header, Response, StatusCode};
use std::time::Duration;

/// Most characters of a message an error answer carries (see [`ApiError::into_response`]).
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// An error the API reports to its client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `not_found`, `invalid`, `csrf`.
    pub code: &'static str,
    /// Human-readable explanation of what is wrong and how to fix it.
    pub message: String,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// Methods the resource does answer (sent as `Allow` with 405).
    pub allow: Option<&'static [&'static str]>,
    /// When the client may try again (sent as `Retry-After` with 429).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            allow: None,
            retry_after: None,
        }
    }

    /// The same error, naming the request field at fault (a client's key, so clipped).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        self.field = Some(clip(&field).into_owned());
        self
    }

    /// 404 `not_found`.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no resource at {}", clip(path)),
        )
    }

    /// 405 `method_not_allowed`, listing the methods the path answers.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &'static [&'static str]) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{method} is not allowed on {path}; allowed: {}",
                allow_list(allowed)
            ),
        );
        e.allow = Some(allowed);
        e
    }

    /// 400 `bad_request`: the request itself is malformed (not JSON, wrong types).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422 `invalid`: a field's value is not acceptable; the message says why.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).with_field(field)
    }

    /// 401 `unauthorized`: no valid session or token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `not_claimed`: the node is not set up yet.
    pub fn not_claimed() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "not_claimed",
            "this node is not set up yet; finish setup first (the setup code is on the node's console)",
        )
    }

    /// 403 `csrf`: a state-changing request with a session cookie lacks the CSRF token.
    pub fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong X-CSRF-Token header (it is given at login)",
        )
    }

    /// 409 `conflict`.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 `too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 429 `rate_limited`, with the wait before the next attempt.
    pub fn rate_limited(wait: Duration) -> Self {
        // Whole seconds, rounded up (a wait of 0.2 s says 1 s).
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many failed attempts from this address; try again in {secs} s"),
        );
        e.retry_after = Some(Duration::from_secs(secs));
        e
    }

    /// 500 `internal`: the node failed; the message says what it was doing.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON response (with `Allow` for 405 and `Retry-After` for 429). Values a message
    /// echoes are clipped where it is made ([`cairn_core::shown`]); as a last guard, no
    /// message is longer than [`MAX_MESSAGE_CHARS`].
    pub fn into_response(self) -> Response<Body> {
        let mut resp = json(
            self.status,
            &cairn_client::ErrorBody {
                code: self.code.to_string(),
                message: clip_to(&self.message, MAX_MESSAGE_CHARS).into_owned(),
                field: self.field.clone(),
            },
        );
        if let Some(allowed) = self.allow {
            if let Ok(v) = header::HeaderValue::from_str(&allow_list(allowed)) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        if let Some(wait) = self.retry_after {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(wait.as_secs()),
            );
        }
        resp
    }
}

/// The methods of an `Allow` list: the route's, with `HEAD` wherever `GET` is (the router
/// answers `HEAD` on every `GET` route).
fn allow_list(allowed: &[&str]) -> String {
    let mut list = allowed.to_vec();
    if list.contains(&"GET") && !list.contains(&"HEAD") {
        list.push("HEAD");
    }
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: Response<Body>) -> serde_json::Value {
        let body = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn not_found_json() {
        let r = ApiError::not_found("/x").into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body_of(r).await,
            serde_json::json!({"code": "not_found", "message": "no resource at /x", "field": null})
        );
    }

    #[tokio::test]
    async fn method_not_allowed_has_allow_header() {
        let r = ApiError::method_not_allowed("POST", "/api/v1/health", &["GET"]).into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        let v = body_of(r).await;
        assert_eq!(v["code"], "method_not_allowed");
        assert_eq!(
            v["message"],
            "POST is not allowed on /api/v1/health; allowed: GET, HEAD"
        );
    }

    #[tokio::test]
    async fn invalid_names_the_field() {
        let r = ApiError::invalid("hostname", "too long").into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v = body_of(r).await;
        assert_eq!(v["code"], "invalid");
        assert_eq!(v["field"], "hostname");
    }

    /// Echoed values are clipped: the path of a 404, a client's key as the field, and any
    /// message (the last guard) at most MAX_MESSAGE_CHARS.
    #[tokio::test]
    async fn long_values_are_clipped() {
        let long = "x".repeat(65 * 1024);
        let v = body_of(ApiError::not_found(&format!("/{long}")).into_response()).await;
        assert_eq!(v["message"], format!("no resource at /{}…", "x".repeat(99)));
        let v = body_of(ApiError::invalid(&long, "unknown setting").into_response()).await;
        assert_eq!(v["field"], format!("{}…", "x".repeat(100)));
        let v = body_of(ApiError::bad_request(long.clone()).into_response()).await;
        assert_eq!(
            v["message"].as_str().unwrap().chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[tokio::test]
    async fn rate_limited_has_retry_after_rounded_up() {
        let r = ApiError::rate_limited(Duration::from_millis(1500)).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(body_of(r).await["code"], "rate_limited");
    }
}
