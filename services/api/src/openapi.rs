//! The OpenAPI 3 spec kept beside the code (`services/api/openapi.json`), served as is.

use crate::response::{build, full, Body};
use hyper::{Response, StatusCode};

/// The spec, compiled into the binary.
pub const SPEC: &str = include_str!("../openapi.json");

/// Handle `GET /api/v1/openapi.json`.
pub fn get() -> Response<Body> {
    build(StatusCode::OK, "application/json", full(SPEC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::ROUTES;
    use std::collections::BTreeSet;

    const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

    fn spec() -> serde_json::Value {
        serde_json::from_str(SPEC).expect("openapi.json is JSON")
    }

    #[test]
    fn is_openapi_3() {
        let s = spec();
        assert!(s["openapi"].as_str().unwrap().starts_with("3."));
        assert_eq!(s["info"]["version"], crate::VERSION);
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
        let in_router: BTreeSet<(String, String)> = ROUTES
            .iter()
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
