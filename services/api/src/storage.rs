//! Disks, pools, shares, snapshots and thin volumes (backed by cairn-storage).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::Body;
use crate::router::{Access, Route};
use hyper::Response;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageOp {}

impl StorageOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        match self {}
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/storage.json` lists the same).
pub const ROUTES: &[Route] = &[];

/// Run one operation.
pub async fn handle(_ctx: &Ctx<'_>, op: StorageOp) -> Result<Response<Body>, ApiError> {
    match op {}
}
