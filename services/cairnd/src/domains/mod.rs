//! Starts each domain's service (storage, SMART, network, VMs) and hands it to the API.

mod network;
mod smart;
mod storage;
mod vms;

use crate::cli::Config;
use cairn_api::ApiState;

/// Start every domain whose tools this node has, and record their handles in `state`.
/// A domain that cannot start is logged and left out (its routes answer 503); the API and
/// the other domains still come up, so the admin can see what is wrong.
pub fn start(state: &mut ApiState, cfg: &Config) {
    for (name, result) in [
        ("storage", storage::start(state, cfg)),
        ("smart", smart::start(state, cfg)),
        ("network", network::start(state, cfg)),
        ("vms", vms::start(state, cfg)),
    ] {
        if let Err(e) = result {
            tracing::error!("the {name} service did not start: {e:#}");
        }
    }
}
