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

/// Kernel command line option for a shorter tick, in whole seconds (1 to 60): the lab's
/// capacity and snapshot-schedule scenarios use it so they wait seconds for a run, not a
/// minute. Hourly and daily schedules stay hourly and daily: a tick only checks what is due.
pub const TICK_OPTION: &str = "cairn.storage.tick_s";

/// The loop's tick from the kernel command line text, and a warning if the option was there
/// but unusable (then the default minute).
pub fn tick_from_cmdline(cmdline: &str) -> (Duration, Option<String>) {
    let parsed = cairn_core::cmdline::KernelCmdline::parse(cmdline);
    let Some(value) = parsed.get(TICK_OPTION) else {
        return (TICK, None);
    };
    match value.parse::<u64>() {
        Ok(s) if (1..=TICK.as_secs()).contains(&s) => (Duration::from_secs(s), None),
        _ => (
            TICK,
            Some(format!(
                "ignoring {TICK_OPTION}={value:?} (want whole seconds, 1 to {}); using {} s",
                TICK.as_secs(),
                TICK.as_secs()
            )),
        ),
    }
}

/// Run the storage data schedules in the background every `period` for as long as the runtime
/// lives; scheduled scrubs become tasks of `tasks`.
pub fn spawn_schedules<T>(
    storage: Arc<Storage>,
    tasks: T,
    period: Duration,
) -> tokio::task::JoinHandle<()>
where
    T: TaskStarter + 'static,
{
    tokio::spawn(async move {
        // The first run one tick after start: boot assembly and share mounts go first.
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_comes_from_the_command_line_within_its_range() {
        assert_eq!(tick_from_cmdline("quiet cairn.slot=a"), (TICK, None));
        assert_eq!(
            tick_from_cmdline("cairn.slot=a cairn.storage.tick_s=5"),
            (Duration::from_secs(5), None)
        );
        assert_eq!(
            tick_from_cmdline("cairn.storage.tick_s=60").0,
            Duration::from_secs(60)
        );
        for bad in ["0", "61", "5s", "-1", ""] {
            let (tick, warning) = tick_from_cmdline(&format!("cairn.storage.tick_s={bad}"));
            assert_eq!(tick, TICK, "{bad}");
            let w = warning.unwrap_or_default();
            assert!(
                w.contains("cairn.storage.tick_s") && w.contains("1 to 60"),
                "{bad}: {w}"
            );
        }
    }
}
