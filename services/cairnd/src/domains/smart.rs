//! Starts the SMART domain: polls every disk of the storage inventory with smartctl.

use super::shared::{needed, Shared, Start, DEPENDENCY_WAIT};
use crate::cli::Config;
use cairn_core::command::SystemRunner;
use cairn_smart::{service::system_clock, SmartService};
use std::sync::Arc;

/// Wait for the storage service (its disk list is what SMART watches), then open the SMART
/// service and start its poll loop. Storage failed: SMART fails; absent: SMART is absent.
pub fn start(shared: &Shared, cfg: &Config) -> anyhow::Result<Start<SmartService>> {
    let storage = match needed("storage", &shared.domains.storage, DEPENDENCY_WAIT) {
        Ok(Ok(storage)) => storage,
        Ok(Err(absent)) => return Ok(Start::Absent(format!("{absent}: no disks to watch"))),
        Err(e) => return Err(e.context("no disk list to watch")),
    };
    let svc = Arc::new(SmartService::open(
        cairn_smart::Config::new(&cfg.state_dir),
        Arc::new(SystemRunner),
        Arc::new(shared.alerts.clone()),
        system_clock(),
    )?);
    svc.spawn(storage.subscribe_disks());
    Ok(Start::Ready(svc))
}
