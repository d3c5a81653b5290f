//! The network spec, try mode with confirm or rollback, and link status (backed by cairn-net).

use crate::error::ApiError;
use crate::executor::Domain;
use crate::network_error::api_error;
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::routes::{Access, Route};
use cairn_net::action::NetAction;
use cairn_net::service::NetError;
use cairn_net::spec::NetworkSpec;
use cairn_net::Network;
use hyper::{Response, StatusCode};
use std::time::Duration;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkOp {
    Get,
    Status,
    Put,
    Plan,
    Confirm,
    Rollback,
}

impl NetworkOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

use NetworkOp::*;

/// The routes of this group (the OpenAPI fragment `openapi/network.json` lists the same).
pub const ROUTES: &[Route<NetworkOp>] = &[
    Route {
        path: "/api/v1/network",
        methods: &[("GET", Get), ("PUT", Put)],
        allowed: &["GET", "PUT"],
    },
    Route {
        path: "/api/v1/network/status",
        methods: &[("GET", Status)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/network/plan",
        methods: &[("POST", Plan)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/network/confirm",
        methods: &[("POST", Confirm)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/network/rollback",
        methods: &[("POST", Rollback)],
        allowed: &["POST"],
    },
];

/// How the API reaches the network service.
pub const NETWORK: Domain<Network, NetError> = Domain {
    name: "network",
    slot: |d| &d.network,
    api_error,
};

/// `PUT /api/v1/network`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    spec: NetworkSpec,
    /// Seconds before an unconfirmed change is rolled back (default: the node's setting).
    #[serde(default)]
    timeout_s: Option<u64>,
}

/// `POST /api/v1/network/plan`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanRequest {
    spec: NetworkSpec,
}

/// Run one operation: the request becomes a [`NetAction`], run off the async threads.
pub async fn handle(ctx: &Ctx<'_>, op: NetworkOp) -> Result<Response<Body>, ApiError> {
    let net = NETWORK.service(ctx)?;
    let action = match op {
        Get => NetAction::View,
        Status => NetAction::Status,
        Put => {
            let req: PutRequest = ctx.json()?;
            NetAction::TryApply {
                spec: Box::new(req.spec),
                timeout: req.timeout_s.map(Duration::from_secs),
            }
        }
        Plan => {
            let req: PlanRequest = ctx.json()?;
            NetAction::Plan { spec: req.spec }
        }
        Confirm => NetAction::Confirm,
        Rollback => NetAction::Rollback,
    };
    let outcome = NETWORK.blocking(net, move |n| action.run(n)).await?;
    Ok(json(StatusCode::OK, &outcome))
}
