//! Starts the storage domain: assembles our pools from their records, mounts their shares, and watches disks and pool health.

use super::shared::{Shared, Start};
use crate::cli::Config;
use cairn_core::command::SystemRunner;
use cairn_storage::{Storage, SystemPaths};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long boot assembly waits for a pool's member disks to appear (udev coldplug runs
/// alongside cairnd) before starting the pool without the missing ones.
pub const MEMBER_WAIT: Duration = Duration::from_secs(30);

/// Written by the `udev-trigger` service once the full coldplug has settled (or gave up):
/// every disk the node has at boot is then in udev's database and /dev/disk/by-id. The
/// coldplug starts after cairnd serves (decision 0025), so the storage domain stays
/// `starting` until then: its disk list and boot assembly would otherwise see only the
/// disks whose drivers happened to load already.
pub const COLDPLUG_DONE: &str = "/run/cairn/coldplug-done";

/// The longest the storage domain waits for [`COLDPLUG_DONE`] before taking its inventory
/// anyway (a coldplug under TCG takes ~20 s; `udevadm settle` gives up after 30 s).
pub const COLDPLUG_WAIT: Duration = Duration::from_secs(120);

/// Waits until `marker` exists or `wait` has passed; whether it appeared.
fn wait_for_coldplug(marker: &Path, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if marker.exists() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Polled: a file in /run, checked ten times a second for at most `wait`.
        std::thread::sleep(Duration::from_millis(100).min(deadline - Instant::now()));
    }
}

/// Open the storage service (its disk inventory) and start its background work: boot
/// assembly, share mounts, then the udev/poll watch loop. Runs inside the async runtime.
pub fn start(shared: &Shared, cfg: &Config) -> anyhow::Result<Start<Storage>> {
    if !cfg.on_appliance() {
        return Ok(Start::Absent(
            "not a booted Cairn node; not managing disks".into(),
        ));
    }
    let marker = Path::new(COLDPLUG_DONE);
    if !marker.exists() {
        tracing::info!(
            "storage: waiting for udev's coldplug ({COLDPLUG_DONE}) before taking the disk inventory"
        );
        if !wait_for_coldplug(marker, COLDPLUG_WAIT) {
            tracing::warn!(
                "storage: no {COLDPLUG_DONE} after {COLDPLUG_WAIT:?}; taking the inventory anyway (disks still appear as udev reports them)"
            );
        }
    }
    let storage = Arc::new(Storage::open(
        Arc::new(SystemRunner),
        &cfg.state_dir,
        Arc::new(shared.alerts.clone()),
        SystemPaths::system(),
    )?);
    // Scheduled snapshots, capacity alerts and scheduled scrubs (every minute, or the
    // kernel command line's `cairn.storage.tick_s=`).
    let cmdline = std::fs::read_to_string(&cfg.boot.cmdline).unwrap_or_default();
    let (tick, warning) = cairn_storage::schedule_loop::tick_from_cmdline(&cmdline);
    if let Some(w) = warning {
        tracing::warn!("storage: {w}");
    }
    cairn_storage::schedule_loop::spawn_schedules(storage.clone(), shared.tasks.clone(), tick);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coldplug_wait_ends_when_the_marker_appears_or_at_its_deadline() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("coldplug-done");
        // Absent: waits the whole (short) deadline, then says so.
        let t = Instant::now();
        assert!(!wait_for_coldplug(&marker, Duration::from_millis(300)));
        assert!(t.elapsed() >= Duration::from_millis(300));
        // Appears while waiting: returns soon after, well before the deadline.
        let m = marker.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::write(m, "").unwrap();
        });
        let t = Instant::now();
        assert!(wait_for_coldplug(&marker, Duration::from_secs(20)));
        writer.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        // Present: no wait.
        assert!(wait_for_coldplug(&marker, Duration::ZERO));
    }
}
