//! Starts the storage domain's service and records its handle in the API state.

use crate::cli::Config;
use cairn_api::ApiState;

/// Start the storage service (not wired yet: its routes answer 503).
pub fn start(_state: &mut ApiState, _cfg: &Config) -> anyhow::Result<()> {
    Ok(())
}
