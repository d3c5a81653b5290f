//! SMART detail, history, self-tests and per-disk settings (backed by cairn-smart).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::Body;
use crate::router::{Access, Route};
use hyper::Response;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmartOp {}

impl SmartOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        match self {}
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/smart.json` lists the same).
pub const ROUTES: &[Route] = &[];

/// Run one operation.
pub async fn handle(_ctx: &Ctx<'_>, op: SmartOp) -> Result<Response<Body>, ApiError> {
    match op {}
}
