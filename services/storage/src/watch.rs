//! The service's background loop: udev block events (a supervised `udevadm monitor`) and a short poll drive inventory and pool health.

use crate::service::Storage;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// How often pools are checked without any udev event (md notices a pulled disk only on I/O).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// One udev event line of `udevadm monitor --udev --subsystem-match=block`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEvent {
    /// `add`, `remove`, `change`, `bind`, …
    pub action: String,
    /// The sysfs device path (`/devices/…/block/vdb`).
    pub devpath: String,
}

/// Parse `UDEV  [1234.567890] remove   /devices/pci0000:00/…/block/vdb (block)`.
pub fn parse_monitor_line(line: &str) -> Option<BlockEvent> {
    let rest = line.strip_prefix("UDEV")?.trim_start();
    let rest = rest.strip_prefix('[')?;
    let (_, rest) = rest.split_once(']')?;
    let mut f = rest.split_whitespace();
    let action = f.next()?.to_string();
    let devpath = f.next()?.to_string();
    (f.next() == Some("(block)")).then_some(BlockEvent { action, devpath })
}

/// Run `udevadm monitor` and forward block events; restarts it (after a second) if it dies.
async fn udev_events(tx: mpsc::Sender<BlockEvent>) {
    loop {
        let child = tokio::process::Command::new("udevadm")
            .args(["monitor", "--udev", "--subsystem-match=block"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(mut child) => {
                if let Some(out) = child.stdout.take() {
                    let mut lines = BufReader::new(out).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Some(ev) = parse_monitor_line(&line) {
                            if tx.send(ev).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let status = child.wait().await;
                tracing::warn!("storage: udevadm monitor ended ({status:?}); restarting it");
            }
            Err(e) => tracing::warn!("storage: cannot run udevadm monitor: {e}; retrying"),
        }
        // restart backoff for the supervised event source
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Watch the system for the life of the daemon: on every block event (and every
/// [`POLL_INTERVAL`]) refresh the inventory and check the pools; after an `add` event also
/// re-add stale members.
pub async fn run(storage: Arc<Storage>) {
    let (tx, mut rx) = mpsc::channel(256);
    tokio::spawn(udev_events(tx));
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut added = false;
        tokio::select! {
            _ = tick.tick() => {}
            ev = rx.recv() => match ev {
                Some(ev) => {
                    added |= ev.action == "add";
                    while let Ok(more) = rx.try_recv() {
                        added |= more.action == "add";
                    }
                }
                None => return,
            },
        }
        let s = storage.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if added {
                s.readd_stale();
            }
            s.check_pools();
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udevadm_monitor_lines() {
        assert_eq!(
            parse_monitor_line("UDEV  [  123.456789] remove   /devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio3/block/vdb (block)"),
            Some(BlockEvent {
                action: "remove".into(),
                devpath: "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/virtio3/block/vdb".into()
            })
        );
        assert_eq!(
            parse_monitor_line("UDEV  [99.1] add      /devices/virtual/block/md127 (block)")
                .unwrap()
                .action,
            "add"
        );
        assert_eq!(
            parse_monitor_line("monitor will print the received events for:"),
            None
        );
        assert_eq!(
            parse_monitor_line("UDEV - the event which udev sends out after rule processing"),
            None
        );
        assert_eq!(
            parse_monitor_line("KERNEL[1.0] add /devices/x (block)"),
            None
        );
    }
}
