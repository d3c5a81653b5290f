//! Shares (btrfs on thin LVs), their snapshots, thin volumes for VMs and scrubs (backed by cairn-storage).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::Body;
use crate::router::{Access, Route};
use hyper::Response;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharesOp {}

impl SharesOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        match self {}
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/shares.json` lists the same).
pub const ROUTES: &[Route] = &[];

/// Run one operation.
pub async fn handle(_ctx: &Ctx<'_>, op: SharesOp) -> Result<Response<Body>, ApiError> {
    match op {}
}
