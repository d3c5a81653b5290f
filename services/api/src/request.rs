//! One request as handlers see it: client address, headers, body, path parameters, user.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::ApiState;
use hyper::body::Bytes;
use hyper::{HeaderMap, Method};
use std::net::IpAddr;

/// Everything a handler may look at.
pub struct Ctx<'a> {
    pub state: &'a ApiState,
    pub peer: IpAddr,
    pub method: Method,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The `{…}` segments of the route, in order.
    pub params: Vec<String>,
    /// The signed-in user, for operations that need one.
    pub principal: Option<Principal>,
}

impl Ctx<'_> {
    /// The body as a JSON document of type `T`; errors name the field where serde can.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        require_json_type(&self.headers)?;
        parse_json(&self.body)
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The signed-in user; handlers of `User` operations always have one.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("sign in first"))
    }

    /// The first path parameter (empty if the route has none).
    pub fn param(&self) -> &str {
        self.param_at(0)
    }

    /// Path parameter number `i` (0-based; empty if the route has fewer).
    pub fn param_at(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or_default()
    }
}

/// A header's value, if present and text.
pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name` from the `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Bodies must be declared as JSON: a cross-site form cannot send that without the browser
/// asking first (CORS preflight), which this API never allows.
pub fn require_json_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = header(headers, hyper::header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    Err(ApiError::new(
        hyper::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the request body as JSON with Content-Type: application/json",
    ))
}

/// Parse a JSON request body.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request needs a JSON body (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let mut err = ApiError::bad_request(format!("the request body is not acceptable: {text}"));
        if let Some(field) = text
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(f, _)| f.to_string())
        {
            err = err.with_field(field);
        }
        err
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        password: String,
    }

    #[test]
    fn json_errors_name_fields() {
        let e = parse_json::<Req>(b"{}").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("bad_request", Some("password"))
        );
        let e = parse_json::<Req>(br#"{"password":"x","extra":1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("extra"));
        assert_eq!(parse_json::<Req>(b"").unwrap_err().code, "bad_request");
        assert_eq!(parse_json::<Req>(b"nope").unwrap_err().code, "bad_request");
        assert!(parse_json::<Req>(br#"{"password":"x"}"#).is_ok());
    }

    #[test]
    fn json_content_type_is_required() {
        let mut h = HeaderMap::new();
        assert_eq!(require_json_type(&h).unwrap_err().status, 415);
        h.insert("content-type", "text/plain".parse().unwrap());
        assert_eq!(
            require_json_type(&h).unwrap_err().code,
            "unsupported_media_type"
        );
        h.insert(
            "content-type",
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json_type(&h).is_ok());
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.append("cookie", "a=1; cairn_session=abc".parse().unwrap());
        h.append("cookie", "b=2".parse().unwrap());
        assert_eq!(cookie(&h, "cairn_session"), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
