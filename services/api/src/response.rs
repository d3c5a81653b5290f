//! JSON response building.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{header, Response, StatusCode};

/// The body type of every API response.
pub type Body = Full<Bytes>;

/// A JSON response with the given status. Serializing our own response types cannot fail;
/// if it ever did, the client gets a 500 with a JSON error instead of a panic.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => build(status, body),
        Err(e) => build(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(r#"{{"code":"internal","message":"cannot encode response: {e}"}}"#)
                .into_bytes(),
        ),
    }
}

fn build(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
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
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn sets_status_type_and_body() {
        let r = json(StatusCode::CREATED, &serde_json::json!({"a": 1}));
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"a":1}"#);
    }
}
