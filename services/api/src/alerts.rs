//! `GET /api/v1/alerts`: the node's active alerts and recent changes.

use crate::response::{json, Body};
pub use cairn_tasks::{ActiveAlert, Alert, AlertRegistry};
use hyper::{Response, StatusCode};

#[derive(serde::Serialize)]
struct AlertList {
    active: Vec<ActiveAlert>,
    recent: Vec<Alert>,
}

/// Handle `GET /api/v1/alerts`.
pub fn list(reg: &AlertRegistry) -> Response<Body> {
    json(
        StatusCode::OK,
        &AlertList {
            active: reg.active(),
            recent: reg.recent(),
        },
    )
}
