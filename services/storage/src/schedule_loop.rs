//! The storage data loop: every minute, scheduled snapshots, capacity alerts, and scheduled
//! scrubs started as tasks the user sees.

use crate::scrub::ScrubTiming;
use crate::Storage;
use cairn_core::alert::{TaskRun, TaskStarter};
use cairn_core::boot::error_chain;
use std::sync::Arc;
use std::time::Duration;

/// How often the loop runs.
pub const TICK: Duration = Duration::from_secs(60);

/// Run the storage data schedules in the background for as long as the runtime lives;
/// scheduled scrubs become tasks of `tasks`.
pub fn spawn_schedules<T>(storage: Arc<Storage>, tasks: T) -> tokio::task::JoinHandle<()>
where
    T: TaskStarter + 'static,
{
    tokio::spawn(async move {
        // The first run one tick after start: boot assembly and share mounts go first.
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            tick(&storage, &tasks).await;
        }
    })
}

/// One run: snapshots and capacity on a blocking thread, then scrubs that are due as tasks.
pub async fn tick<T: TaskStarter>(storage: &Arc<Storage>, tasks: &T) {
    let st = storage;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let due = {
        let st = st.clone();
        tokio::task::spawn_blocking(move || {
            match st.run_snapshot_schedules(now) {
                Ok(run) if !run.created.is_empty() || !run.pruned.is_empty() => {
                    tracing::info!(created = ?run.created, pruned = ?run.pruned, "scheduled snapshots");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "snapshot schedules did not run"),
            }
            for pool in st.records().pools {
                if st.pool_usable(&pool.name).is_ok() {
                    if let Err(e) = st.check_capacity(&pool.name) {
                        tracing::warn!(pool = %pool.name, error = %e, "capacity check failed");
                    }
                }
            }
            st.scrubs_due(now).unwrap_or_default()
        })
        .await
        .unwrap_or_default()
    };
    for pool in due {
        if st.pool_usable(&pool).is_err() {
            continue;
        }
        let handle = tasks.start_task("pool.scrub", &format!("scheduled scrub of pool {pool}"));
        let st = st.clone();
        tokio::task::spawn_blocking(move || {
            match st.scrub_pool(&pool, &handle, ScrubTiming::default()) {
                Ok(r) => handle.succeed(&crate::action::scrub_summary(&pool, &r)),
                Err(e) => handle.fail(&error_chain(&e)),
            }
        });
    }
}
