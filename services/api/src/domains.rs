//! The domains' services the API calls into, set by the daemon after it starts them.

use crate::error::ApiError;
use hyper::StatusCode;

/// Handles of the running domain services. A field is `None` where the daemon did not start
/// that domain (tests, or a node without the tools); its routes then answer 503.
#[derive(Clone, Default)]
pub struct Domains {
    pub storage: Option<std::sync::Arc<cairn_storage::Storage>>,
    pub vms: Option<std::sync::Arc<cairn_vm::Vms>>,
    pub smart: Option<std::sync::Arc<cairn_smart::SmartService>>,
    pub network: Option<std::sync::Arc<cairn_net::Network>>,
}

/// The error for a route whose domain service is not running.
pub fn unavailable(domain: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("the {domain} service is not running on this node"),
    )
}
