//! The OpenAPI 3 spec kept beside the code: `services/api/openapi.json` (the core) plus one
//! fragment per domain in `services/api/openapi/`, merged once and served.

use crate::response::{build, full, Body};
use hyper::{Response, StatusCode};
use std::sync::OnceLock;

/// The core's spec, compiled into the binary.
pub const CORE: &str = include_str!("../openapi.json");

/// Each domain's fragment: `{"paths": {...}, "components": {"schemas": {...}}}`.
pub const FRAGMENTS: &[(&str, &str)] = &[
    ("storage", include_str!("../openapi/storage.json")),
    ("shares", include_str!("../openapi/shares.json")),
    ("smart", include_str!("../openapi/smart.json")),
    ("network", include_str!("../openapi/network.json")),
    ("vms", include_str!("../openapi/vms.json")),
    ("images", include_str!("../openapi/images.json")),
    ("cluster", include_str!("../openapi/cluster.json")),
];

/// Merge the fragments' paths and schemas into the core document. A name defined twice is
/// an error (a test runs this, so a clash fails CI rather than the daemon).
pub fn merge(core: &str, fragments: &[(&str, &str)]) -> Result<serde_json::Value, String> {
    let mut doc: serde_json::Value =
        serde_json::from_str(core).map_err(|e| format!("openapi.json: {e}"))?;
    for (name, text) in fragments {
        let frag: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("openapi/{name}.json: {e}"))?;
        for (section, pointer) in [("paths", "/paths"), ("schemas", "/components/schemas")] {
            let Some(items) = frag.pointer(pointer).and_then(|v| v.as_object()) else {
                continue;
            };
            let target = doc
                .pointer_mut(pointer)
                .and_then(|v| v.as_object_mut())
                .ok_or_else(|| format!("openapi.json has no {pointer}"))?;
            for (k, v) in items {
                if target.insert(k.clone(), v.clone()).is_some() {
                    return Err(format!("openapi/{name}.json redefines {section} `{k}`"));
                }
            }
        }
    }
    Ok(doc)
}

/// The merged spec as served.
pub fn spec() -> &'static str {
    static SPEC: OnceLock<String> = OnceLock::new();
    SPEC.get_or_init(|| match merge(CORE, FRAGMENTS) {
        Ok(v) => v.to_string(),
        Err(e) => {
            tracing::error!("serving the core OpenAPI spec only: {e}");
            CORE.to_string()
        }
    })
}

/// Handle `GET /api/v1/openapi.json`.
pub fn get() -> Response<Body> {
    build(StatusCode::OK, "application/json", full(spec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::all_routes;
    use std::collections::BTreeSet;

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

    fn spec() -> serde_json::Value {
        merge(CORE, FRAGMENTS).expect("the spec and its fragments merge")
    }

    #[test]
    fn a_fragment_may_not_redefine_a_name() {
        let core = r#"{"paths": {"/a": {}}, "components": {"schemas": {"A": {}}}}"#;
        let e = merge(core, &[("x", r#"{"paths": {"/a": {}}}"#)]).unwrap_err();
        assert!(e.contains("redefines paths `/a`"), "{e}");
        let e = merge(core, &[("x", r#"{"components": {"schemas": {"A": {}}}}"#)]).unwrap_err();
        assert!(e.contains("redefines schemas `A`"), "{e}");
    }

    #[test]
    fn is_openapi_3() {
        let s = spec();
        assert!(s["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(s["info"]["version"], crate::health::VERSION);
    }

    /// Fails when a route of the router is missing from the spec, or the spec names a route
    /// (path and method) the router does not have.
    #[test]
    fn spec_and_router_name_the_same_routes() {
        let s = spec();
        let mut in_spec = BTreeSet::new();
        for (path, item) in s["paths"].as_object().unwrap() {
            for (method, _) in item.as_object().unwrap() {
                if METHODS.contains(&method.as_str()) {
                    in_spec.insert((path.clone(), method.to_uppercase()));
                }
            }
        }
        let in_router: BTreeSet<(String, String)> = all_routes()
            .flat_map(|r| {
                r.methods
                    .iter()
                    .map(|(m, _)| (r.path.to_string(), m.to_string()))
            })
            .collect();
        let missing: Vec<_> = in_router.difference(&in_spec).collect();
        let extra: Vec<_> = in_spec.difference(&in_router).collect();
        assert!(
            missing.is_empty(),
            "routes missing from openapi.json: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "openapi.json names routes the router lacks: {extra:?}"
        );
    }

    /// Every `$ref` points at something the spec defines.
    #[test]
    fn references_resolve() {
        let s = spec();
        let mut refs = Vec::new();
        collect_refs(&s, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(s.pointer(pointer).is_some(), "unresolved $ref {r}");
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
