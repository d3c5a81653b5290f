//! Starts the SMART domain: polls every disk of the storage inventory with smartctl.

use crate::cli::Config;
use anyhow::Context as _;
use cairn_api::ApiState;
use cairn_core::command::SystemRunner;
use cairn_smart::{service::system_clock, SmartService};
use std::sync::Arc;

/// Open the SMART service, record it in `state`, and start its poll loop on the storage
/// service's disk list (storage starts first; without it there are no disks to watch).
pub fn start(state: &mut ApiState, cfg: &Config) -> anyhow::Result<()> {
    let storage = state
        .domains
        .storage
        .clone()
        .context("the storage service is not running, so there is no disk list to watch")?;
    let svc = Arc::new(SmartService::open(
        cairn_smart::Config::new(&cfg.state_dir),
        Arc::new(SystemRunner),
        Arc::new(state.alerts.clone()),
        system_clock(),
    )?);
    state.domains.smart = Some(svc.clone());
    svc.spawn(storage.subscribe_disks());
    Ok(())
}
