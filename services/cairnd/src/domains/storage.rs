//! Starts the storage domain: assembles our pools from their records, mounts their shares, and watches disks and pool health.

use super::shared::{Shared, Start};
use crate::cli::Config;
use cairn_core::command::SystemRunner;
use cairn_storage::{Storage, SystemPaths};
use std::sync::Arc;
use std::time::Duration;

/// How long boot assembly waits for a pool's member disks to appear (udev coldplug runs
/// alongside cairnd) before starting the pool without the missing ones.
pub const MEMBER_WAIT: Duration = Duration::from_secs(30);

/// Open the storage service (its disk inventory) and start its background work: boot
/// assembly, share mounts, then the udev/poll watch loop. Runs inside the async runtime.
pub fn start(shared: &Shared, cfg: &Config) -> anyhow::Result<Start<Storage>> {
    if !cfg.on_appliance() {
        return Ok(Start::Absent(
            "not a booted Cairn node; not managing disks".into(),
        ));
    }
    let storage = Arc::new(Storage::open(
        Arc::new(SystemRunner),
        &cfg.state_dir,
        Arc::new(shared.alerts.clone()),
        SystemPaths::system(),
    )?);
    // Scheduled snapshots, capacity alerts and scheduled scrubs (every minute).
    cairn_storage::schedule_loop::spawn_schedules(storage.clone(), shared.tasks.clone());
    let service = storage.clone();
    tokio::spawn(async move {
        let s = storage.clone();
        let boot = tokio::task::spawn_blocking(move || {
            for (pool, result) in s.assemble_pools(MEMBER_WAIT) {
                tracing::info!("storage: boot assembly of pool {pool}: {result:?}");
                match s.mount_shares(&pool) {
                    Ok(mounted) if !mounted.is_empty() => {
                        tracing::info!("storage: pool {pool}: mounted shares {mounted:?}")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(
                        "storage: pool {pool}: mounting shares failed: {}",
                        cairn_core::boot::error_chain(&e)
                    ),
                }
            }
        })
        .await;
        if let Err(e) = boot {
            tracing::error!("storage: boot assembly panicked: {e}");
        }
        cairn_storage::watch::run(storage).await;
    });
    Ok(Start::Ready(service))
}
