//! One request as handlers see it: client address, headers, body, path parameters, user.

use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::ApiState;
use cairn_core::shown::{clip, clip_spans};
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

/// Parse a JSON request body. A value of the wrong type or range names its field by path
/// (`port`, `disks[2].size_bytes`) and says what was expected; quoted values are clipped
/// ([`cairn_core::shown`]).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request needs a JSON body (Content-Type: application/json)",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(body_error)?;
    // Trailing characters after the document (`{}x`) are refused like serde_json::from_slice.
    de.end().map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON: {}",
            clip_spans(&e.to_string())
        ))
    })?;
    Ok(value)
}

/// The API error for a body serde refused: syntax errors say where, data errors name the
/// field.
fn body_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if !inner.is_data() {
        return ApiError::bad_request(format!(
            "the request body is not valid JSON: {}",
            clip_spans(&inner.to_string())
        ));
    }
    // serde_json appends the position; the field path says more.
    let text = inner.to_string();
    let suffix = format!(" at line {} column {}", inner.line(), inner.column());
    let text = text.strip_suffix(&suffix).unwrap_or(&text);
    let text = expected_in_words(&clip_spans(text));
    // `missing field `x`` and `unknown field `x`` name the field inside the object at `path`.
    let named = text
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(f, _)| f.to_string());
    let field = match (path.as_str(), named) {
        (".", Some(f)) => Some(f),
        (p, Some(f)) if text.starts_with("missing field") => Some(format!("{p}.{f}")),
        (".", None) => None,
        (p, _) => Some(p.to_string()),
    };
    match field {
        Some(f) => {
            let f = clip(&f).into_owned();
            ApiError::bad_request(format!("{f}: {text}")).with_field(f)
        }
        None => ApiError::bad_request(format!("the request body is not acceptable: {text}")),
    }
}

/// serde's Rust type names in `expected …` as people say them.
fn expected_in_words(text: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected u8", "expected an integer from 0 to 255"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        (
            "expected u64",
            "expected an integer from 0 to 18446744073709551615",
        ),
        (
            "expected usize",
            "expected an integer from 0 to 18446744073709551615",
        ),
        (
            "expected i32",
            "expected an integer from -2147483648 to 2147483647",
        ),
        ("expected i64", "expected an integer"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
    ];
    for (rust, words) in WORDS {
        if let Some(head) = text.strip_suffix(rust) {
            return format!("{head}{words}");
        }
    }
    text.to_string()
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

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        hostname: Option<String>,
        port: Option<u16>,
        #[serde(default)]
        disks: Vec<Disk>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Disk {
        size: u64,
        #[serde(default)]
        bus: Option<Bus>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Bus {
        Virtio,
        Sata,
    }

    fn err(body: &str) -> (String, Option<String>, String) {
        let e = parse_json::<Nested>(body.as_bytes()).unwrap_err();
        (e.code.to_string(), e.field, e.message)
    }

    #[test]
    fn type_errors_name_the_field_path_and_what_was_expected() {
        let (code, field, msg) = err(r#"{"hostname": 12345}"#);
        assert_eq!(
            (code.as_str(), field.as_deref()),
            ("bad_request", Some("hostname"))
        );
        assert_eq!(
            msg,
            "hostname: invalid type: integer `12345`, expected a string"
        );
        let (_, field, msg) = err(r#"{"port": 70000}"#);
        assert_eq!(field.as_deref(), Some("port"));
        assert_eq!(
            msg,
            "port: invalid value: integer `70000`, expected an integer from 0 to 65535"
        );
        let (_, field, msg) = err(r#"{"disks": [{"size": 1}, {"size": 2}, {"size": "big"}]}"#);
        assert_eq!(field.as_deref(), Some("disks[2].size"));
        assert!(msg.contains("expected an integer"), "{msg}");
        let (_, field, _) = err(r#"{"disks": [{"size": 1}, {}]}"#);
        assert_eq!(
            field.as_deref(),
            Some("disks[1].size"),
            "missing nested field"
        );
        let (_, field, _) = err(r#"{"disks": [{"size": 1, "colour": "red"}]}"#);
        assert_eq!(
            field.as_deref(),
            Some("disks[0].colour"),
            "unknown nested field"
        );
        let (_, field, msg) = err(r#"{"disks": [{"size": 1, "bus": "scsi"}]}"#);
        assert_eq!(field.as_deref(), Some("disks[0].bus"));
        assert!(
            msg.contains("unknown variant `scsi`, expected `virtio` or `sata`"),
            "{msg}"
        );
        let (_, field, msg) = err(r#"{"hostname": "a"} x"#);
        assert_eq!(field, None);
        assert!(msg.contains("not valid JSON"), "{msg}");
        let (_, field, msg) = err(r#"{"hostname": "#);
        assert_eq!(field, None);
        assert!(msg.contains("not valid JSON"), "{msg}");
    }

    #[test]
    fn long_rejected_values_are_clipped() {
        let long = "x".repeat(65 * 1024);
        for body in [
            format!(r#"{{"port": "{long}"}}"#),
            format!(r#"{{"disks": [{{"size": 1, "bus": "{long}"}}]}}"#),
            format!(r#"{{"{long}": 1}}"#),
        ] {
            let e = parse_json::<Nested>(body.as_bytes()).unwrap_err();
            assert!(
                e.message.len() < 400,
                "{} bytes: {}",
                e.message.len(),
                &e.message[..400]
            );
            assert!(e.message.contains("xxx…"), "{}", e.message);
            assert!(
                e.field.as_ref().is_some_and(|f| f.len() < 200),
                "{:?}",
                e.field
            );
        }
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
