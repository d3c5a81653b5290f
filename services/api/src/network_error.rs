//! The API error for a network service error: a leaf that the network resource and the setup
//! flow (which applies the wizard's network at the end) both use.

use crate::error::ApiError;
use cairn_net::service::NetError;

/// Map a service error to the API's error shape.
pub fn api_error(e: NetError) -> ApiError {
    match e {
        NetError::Invalid(f) => ApiError::invalid(&format!("spec.{}", f.field), f.reason),
        NetError::NothingPending => ApiError::conflict(
            "nothing_pending",
            "no network change is waiting for confirmation",
        ),
        NetError::Timeout => ApiError::invalid("timeout_s", e.to_string()),
        other => ApiError::internal(cairn_core::boot::error_chain(&other)),
    }
}
