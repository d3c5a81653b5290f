//! Starts each domain's service (storage, SMART, network, VMs) and hands it to the API.

mod network;
mod smart;
mod storage;
mod vms;

use crate::cli::Config;
use cairn_api::ApiState;

/// Whether this cairnd runs on a booted Cairn node (`cairn.slot=` on the kernel command
/// line and cairn-init's control socket present). Domains that change the machine (disks,
/// network) start only there: a developer's cairnd, the UI tests' and the API fuzzer's
/// must never touch the host's disks or network; their routes answer 503.
pub fn on_appliance(cfg: &Config) -> bool {
    let text = std::fs::read_to_string(&cfg.boot.cmdline).unwrap_or_default();
    text.split_whitespace()
        .any(|w| w.starts_with("cairn.slot="))
        && cfg.init_socket.exists()
}

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
