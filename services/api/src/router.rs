//! Typed routing: a request line becomes an [`Action`] or an [`ApiError`].

use crate::error::ApiError;
use hyper::Method;

/// Everything the API can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET /api/v1/health`
    GetHealth,
}

/// One resource: its path and the methods it answers, each mapped to an action.
struct Route {
    path: &'static str,
    methods: &'static [(&'static str, Action)],
    allowed: &'static [&'static str],
}

const ROUTES: &[Route] = &[Route {
    path: "/api/v1/health",
    methods: &[("GET", Action::GetHealth)],
    allowed: &["GET"],
}];

/// Map method and path to an action. A trailing slash is ignored.
pub fn route(method: &Method, path: &str) -> Result<Action, ApiError> {
    let trimmed = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let r = ROUTES
        .iter()
        .find(|r| r.path == trimmed)
        .ok_or_else(|| ApiError::NotFound {
            path: path.to_string(),
        })?;
    r.methods
        .iter()
        .find(|(m, _)| *m == method.as_str())
        .map(|(_, a)| a.clone())
        .ok_or_else(|| ApiError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allowed: r.allowed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_routes() {
        assert_eq!(route(&Method::GET, "/api/v1/health"), Ok(Action::GetHealth));
        assert_eq!(
            route(&Method::GET, "/api/v1/health/"),
            Ok(Action::GetHealth)
        );
    }

    #[test]
    fn unknown_path_is_not_found() {
        for p in ["/", "/api/v1", "/api/v1/healthz", "/api/v2/health", ""] {
            assert!(
                matches!(route(&Method::GET, p), Err(ApiError::NotFound { .. })),
                "{p}"
            );
        }
    }

    #[test]
    fn wrong_method_lists_allowed() {
        assert_eq!(
            route(&Method::DELETE, "/api/v1/health"),
            Err(ApiError::MethodNotAllowed {
                method: "DELETE".into(),
                path: "/api/v1/health".into(),
                allowed: &["GET"],
            })
        );
    }

    #[test]
    fn every_route_lists_its_methods() {
        for r in ROUTES {
            let names: Vec<_> = r.methods.iter().map(|(m, _)| *m).collect();
            assert_eq!(names, r.allowed, "{}", r.path);
        }
    }
}
