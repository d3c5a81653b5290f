//! Typed routing: the table of route groups, where a method and path become an [`Op`] (with
//! its path parameters) or an error.

use crate::error::ApiError;
pub use crate::routes::Access;
use crate::routes::{matches, Route};
use hyper::Method;
use std::sync::LazyLock;

/// Everything the API can be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    GetHealth,
    GetOpenApi,
    ListTasks,
    GetTask,
    Events,
    ListAlerts,
    GetChannels,
    PutEmail,
    PutWebhook,
    TestEmail,
    TestWebhook,
    GetSetup,
    SetupCode,
    SetupPassword,
    SetupHostname,
    SetupTimezone,
    SetupNtp,
    SetupComplete,
    Login,
    Logout,
    Me,
    ChangePassword,
    ListTokens,
    CreateToken,
    RevokeToken,
    ListTimezones,
    GetTime,
    PutTime,
    UiIndex,
    UiAsset,
    /// Disks, pools, shares, snapshots, volumes (`storage` module).
    Storage(crate::storage::StorageOp),
    /// Shares, snapshots, thin volumes, scrubs (`shares` module).
    Shares(crate::shares::SharesOp),
    /// SMART detail, self-tests, per-disk settings (`smart` module).
    Smart(crate::smart::SmartOp),
    /// Network spec, try/confirm, status (`network` module).
    Network(crate::network::NetworkOp),
    /// The setup wizard's network step (`setup_network` module).
    SetupNetwork(crate::setup_network::SetupNetworkOp),
    /// Virtual machines (`vms` module).
    Vms(crate::vms::VmOp),
    /// The pools' image libraries (`images` module).
    Images(crate::images::ImagesOp),
    /// The cluster: status, create, tokens, join, leave, remove (`cluster` module).
    Cluster(crate::cluster::ClusterOp),
}

impl Op {
    /// Who may call this operation.
    pub fn access(self) -> Access {
        match self {
            Op::Storage(o) => o.access(),
            Op::Shares(o) => o.access(),
            Op::Smart(o) => o.access(),
            Op::Network(o) => o.access(),
            Op::SetupNetwork(o) => o.access(),
            Op::Vms(o) => o.access(),
            Op::Images(o) => o.access(),
            Op::Cluster(o) => o.access(),
            Op::GetHealth | Op::GetOpenApi | Op::ListTimezones | Op::UiIndex | Op::UiAsset => {
                Access::Public
            }
            Op::GetSetup
            | Op::SetupCode
            | Op::SetupPassword
            | Op::SetupHostname
            | Op::SetupTimezone
            | Op::SetupNtp
            | Op::SetupComplete => Access::Setup,
            Op::Login => Access::Login,
            Op::ListTasks
            | Op::GetTask
            | Op::Events
            | Op::ListAlerts
            | Op::GetChannels
            | Op::PutEmail
            | Op::PutWebhook
            | Op::TestEmail
            | Op::TestWebhook
            | Op::Logout
            | Op::Me
            | Op::ChangePassword
            | Op::ListTokens
            | Op::CreateToken
            | Op::RevokeToken
            | Op::GetTime
            | Op::PutTime => Access::User,
        }
    }
}

/// Every route of the API, in matching order: the core's, then each resource file's (whose
/// own op is wrapped into [`Op`]). The OpenAPI spec must list exactly these (a test checks).
pub fn all_routes() -> impl Iterator<Item = &'static Route<Op>> {
    static ALL: LazyLock<Vec<Route<Op>>> = LazyLock::new(|| {
        let mut all: Vec<Route<Op>> = CORE_ROUTES.iter().map(|r| lift(r, |o| o)).collect();
        all.extend(crate::storage::ROUTES.iter().map(|r| lift(r, Op::Storage)));
        all.extend(crate::shares::ROUTES.iter().map(|r| lift(r, Op::Shares)));
        all.extend(crate::smart::ROUTES.iter().map(|r| lift(r, Op::Smart)));
        all.extend(crate::network::ROUTES.iter().map(|r| lift(r, Op::Network)));
        all.extend(
            crate::setup_network::ROUTES
                .iter()
                .map(|r| lift(r, Op::SetupNetwork)),
        );
        all.extend(crate::vms::ROUTES.iter().map(|r| lift(r, Op::Vms)));
        all.extend(crate::images::ROUTES.iter().map(|r| lift(r, Op::Images)));
        all.extend(crate::cluster::ROUTES.iter().map(|r| lift(r, Op::Cluster)));
        all
    });
    ALL.iter()
}

/// A resource file's route with its op wrapped into the router's [`Op`]. Built once, for the
/// static table of [`all_routes`].
fn lift<O: Copy>(r: &'static Route<O>, wrap: fn(O) -> Op) -> Route<Op> {
    let methods: Vec<(&'static str, Op)> = r.methods.iter().map(|(m, o)| (*m, wrap(*o))).collect();
    Route {
        path: r.path,
        methods: Vec::leak(methods),
        allowed: r.allowed,
    }
}

/// The core's routes (health, spec, tasks, events, alerts, setup, auth, UI).
pub const CORE_ROUTES: &[Route<Op>] = &[
    Route {
        path: "/api/v1/health",
        methods: &[("GET", Op::GetHealth)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/openapi.json",
        methods: &[("GET", Op::GetOpenApi)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/tasks",
        methods: &[("GET", Op::ListTasks)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/tasks/{id}",
        methods: &[("GET", Op::GetTask)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/events",
        methods: &[("GET", Op::Events)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/alerts",
        methods: &[("GET", Op::ListAlerts)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/alerts/channels",
        methods: &[("GET", Op::GetChannels)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/alerts/channels/email",
        methods: &[("PUT", Op::PutEmail)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/alerts/channels/webhook",
        methods: &[("PUT", Op::PutWebhook)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/alerts/channels/email/test",
        methods: &[("POST", Op::TestEmail)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/alerts/channels/webhook/test",
        methods: &[("POST", Op::TestWebhook)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/setup",
        methods: &[("GET", Op::GetSetup)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/setup/code",
        methods: &[("POST", Op::SetupCode)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/setup/password",
        methods: &[("PUT", Op::SetupPassword)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/setup/hostname",
        methods: &[("PUT", Op::SetupHostname)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/setup/timezone",
        methods: &[("PUT", Op::SetupTimezone)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/setup/ntp",
        methods: &[("PUT", Op::SetupNtp)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/setup/complete",
        methods: &[("POST", Op::SetupComplete)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/auth/login",
        methods: &[("POST", Op::Login)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/auth/logout",
        methods: &[("POST", Op::Logout)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/auth/me",
        methods: &[("GET", Op::Me)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/auth/password",
        methods: &[("PUT", Op::ChangePassword)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/auth/tokens",
        methods: &[("GET", Op::ListTokens), ("POST", Op::CreateToken)],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/auth/tokens/{id}",
        methods: &[("DELETE", Op::RevokeToken)],
        allowed: &["DELETE"],
    },
    Route {
        path: "/api/v1/timezones",
        methods: &[("GET", Op::ListTimezones)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/time",
        methods: &[("GET", Op::GetTime), ("PUT", Op::PutTime)],
        allowed: &["GET", "PUT"],
    },
    Route {
        path: "/",
        methods: &[("GET", Op::UiIndex)],
        allowed: &["GET"],
    },
    Route {
        path: "/ui/{file}",
        methods: &[("GET", Op::UiAsset)],
        allowed: &["GET"],
    },
];

/// A routed request: the operation and the values of the path parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub op: Op,
    pub params: Vec<String>,
}

/// Map method and path to an operation. A trailing slash is ignored. `HEAD` is answered
/// wherever `GET` is (the server leaves out the body).
pub fn route(method: &Method, path: &str) -> Result<Routed, ApiError> {
    let wanted = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let trimmed = match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p,
        _ => path,
    };
    let (r, params) = all_routes()
        .find_map(|r| matches(r.path, trimmed).map(|p| (r, p)))
        .ok_or_else(|| ApiError::not_found(path))?;
    r.methods
        .iter()
        .find(|(m, _)| *m == wanted)
        .map(|(_, op)| Routed { op: *op, params })
        .ok_or_else(|| ApiError::method_not_allowed(method.as_str(), path, r.allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(m: Method, p: &str) -> Result<Routed, ApiError> {
        route(&m, p)
    }

    #[test]
    fn health_routes() {
        let want = Routed {
            op: Op::GetHealth,
            params: vec![],
        };
        assert_eq!(op(Method::GET, "/api/v1/health"), Ok(want.clone()));
        assert_eq!(op(Method::GET, "/api/v1/health/"), Ok(want));
    }

    #[test]
    fn parameter_is_captured() {
        assert_eq!(
            op(Method::GET, "/api/v1/tasks/17"),
            Ok(Routed {
                op: Op::GetTask,
                params: vec!["17".into()]
            })
        );
        assert_eq!(op(Method::GET, "/api/v1/tasks").unwrap().op, Op::ListTasks);
        assert_eq!(op(Method::GET, "/api/v1/tasks/").unwrap().op, Op::ListTasks);
        assert!(op(Method::GET, "/api/v1/tasks/1/x").is_err());
    }

    #[test]
    fn unknown_path_is_not_found() {
        for p in [
            "/api/v1",
            "/api/v1/healthz",
            "/api/v2/health",
            "",
            "/ui",
            "/ui/a/b",
        ] {
            let e = op(Method::GET, p).unwrap_err();
            assert_eq!(e.code, "not_found", "{p}");
        }
    }

    #[test]
    fn ui_routes() {
        assert_eq!(op(Method::GET, "/").unwrap().op, Op::UiIndex);
        assert_eq!(
            op(Method::GET, "/ui/app.js"),
            Ok(Routed {
                op: Op::UiAsset,
                params: vec!["app.js".into()]
            })
        );
        assert_eq!(Op::UiAsset.access(), Access::Public);
        assert_eq!(
            op(Method::POST, "/").unwrap_err().code,
            "method_not_allowed"
        );
    }

    #[test]
    fn head_is_answered_wherever_get_is() {
        assert_eq!(
            op(Method::HEAD, "/api/v1/health").unwrap().op,
            Op::GetHealth
        );
        assert_eq!(
            op(Method::HEAD, "/api/v1/tasks/7"),
            Ok(Routed {
                op: Op::GetTask,
                params: vec!["7".into()]
            })
        );
        assert_eq!(op(Method::HEAD, "/").unwrap().op, Op::UiIndex);
        let e = op(Method::HEAD, "/api/v1/auth/login").unwrap_err();
        assert_eq!(e.code, "method_not_allowed");
        assert_eq!(e.allow, Some(&["POST"][..]));
    }

    #[test]
    fn wrong_method_lists_allowed() {
        let e = op(Method::DELETE, "/api/v1/health").unwrap_err();
        assert_eq!(e.code, "method_not_allowed");
        assert_eq!(e.allow, Some(&["GET"][..]));
    }

    #[test]
    fn no_two_routes_share_a_path() {
        let mut seen = std::collections::BTreeSet::new();
        for r in all_routes() {
            assert!(seen.insert(r.path), "duplicate route {}", r.path);
        }
    }

    #[test]
    fn every_route_lists_its_methods() {
        for r in all_routes() {
            let names: Vec<_> = r.methods.iter().map(|(m, _)| *m).collect();
            assert_eq!(names, r.allowed, "{}", r.path);
        }
    }
}
