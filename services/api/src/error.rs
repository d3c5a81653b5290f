//! API errors and their JSON form `{"code":…,"message":…}`.

use crate::response::{json, Body};
use hyper::{header, Response, StatusCode};

/// An error the API reports to its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No resource at this path.
    NotFound { path: String },
    /// The resource exists but not with this method.
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static [&'static str],
    },
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Human-readable message.
    pub fn message(&self) -> String {
        match self {
            ApiError::NotFound { path } => format!("no resource at {path}"),
            ApiError::MethodNotAllowed {
                method,
                path,
                allowed,
            } => format!(
                "{method} is not allowed on {path}; allowed: {}",
                allowed.join(", ")
            ),
        }
    }

    /// The JSON response (with an `Allow` header for 405).
    pub fn into_response(self) -> Response<Body> {
        let mut resp = json(
            self.status(),
            &ErrorBody {
                code: self.code(),
                message: self.message(),
            },
        );
        if let ApiError::MethodNotAllowed { allowed, .. } = &self {
            if let Ok(v) = header::HeaderValue::from_str(&allowed.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn not_found_json() {
        let r = ApiError::NotFound { path: "/x".into() }.into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "not_found", "message": "no resource at /x"})
        );
    }

    #[tokio::test]
    async fn method_not_allowed_has_allow_header() {
        let r = ApiError::MethodNotAllowed {
            method: "POST".into(),
            path: "/api/v1/health".into(),
            allowed: &["GET"],
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "method_not_allowed");
        assert_eq!(
            v["message"],
            "POST is not allowed on /api/v1/health; allowed: GET"
        );
    }
}
