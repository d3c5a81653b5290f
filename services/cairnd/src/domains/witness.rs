//! The witness role's effect on the domains: which a witness does not run, and how it knows it is one.

use crate::cli::Config;

/// Why a witness has no storage, SMART or VM domain (health shows it as the reason).
pub const NOT_ON_A_WITNESS: &str = "not on a witness";

/// Whether this node is a cluster witness: the marker the witness join writes on STATE.
pub fn is_witness(cfg: &Config) -> bool {
    cfg.state_dir
        .join("cluster")
        .join(cairn_cluster::local::WITNESS_MARKER)
        .exists()
}

/// Mark the domains a witness does not run absent, "not on a witness" (at boot, and when a
/// join made this node a witness while they ran: from then on their routes answer so).
pub fn set_witness(d: &cairn_api::domains::Domains) {
    d.storage.set_absent(NOT_ON_A_WITNESS);
    d.smart.set_absent(NOT_ON_A_WITNESS);
    d.vms.set_absent(NOT_ON_A_WITNESS);
}
