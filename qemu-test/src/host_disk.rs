//! A full host disk: QEMU pauses a node whose disk write hits ENOSPC; this watcher says so and resumes it once space is back.
//!
//! QEMU's default write-error policy (`werror=enospc`) stops the whole guest when a write to a
//! disk image fails with ENOSPC, and retries the write on `cont`. To the lab a paused node looks
//! hung: its console goes silent and every wait runs out. The lab's host disk is shared with
//! other work, so its free space can drop for a while. Each QEMU run gets a second QMP monitor
//! that only this watcher reads: on `BLOCK_IO_ERROR` with `nospace` it records the pause,
//! prints it, waits until the filesystems of the node's disk images have room again and sends
//! `cont`. What it saw is in the node's `host-disk.log` and in its failure diagnostics.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::deadline::Deadline;
use crate::error::LabError;
use crate::qmp::{Qmp, QmpEvent};

/// Free space that counts as "room again" on a large filesystem.
pub const RESUME_FREE_BYTES: u64 = 1 << 30;
/// On a small filesystem, a quarter of its size counts as room again.
const RESUME_FREE_FRACTION: u64 = 4;
/// How often a paused node's filesystems are checked.
const POLL: Duration = Duration::from_millis(500);

/// Free and total bytes of the filesystem holding `path`.
pub fn fs_space(path: &Path) -> Result<(u64, u64), LabError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|e| LabError::Io {
        what: "read the free space of the filesystem of",
        path: path.to_path_buf(),
        source: std::io::Error::from(e),
    })?;
    let frsize = st.fragment_size();
    Ok((
        st.blocks_available().saturating_mul(frsize),
        st.blocks().saturating_mul(frsize),
    ))
}

/// Free space a node needs before its disk copies are made: its image's written blocks
/// (about 0.4 GiB) and room for the first boots' writes.
pub const PREPARE_FREE_BYTES: u64 = 2 << 30;

/// Waits until the filesystem of `dir` has `need` bytes free, printing once what it waits for.
pub fn wait_for_room(dir: &Path, need: u64, deadline: Deadline) -> Result<(), LabError> {
    let mut said = false;
    loop {
        let (free, _) = fs_space(dir)?;
        if free >= need {
            return Ok(());
        }
        if deadline.expired() {
            return Err(LabError::HostDiskFull {
                path: dir.to_path_buf(),
                free_mib: free >> 20,
                need_mib: need >> 20,
                waited: deadline.total(),
            });
        }
        if !said {
            eprintln!(
                "cairn-lab: waiting up to {:?} for {} MiB free in {} (the host disk has {} MiB)",
                deadline.total(),
                need >> 20,
                dir.display(),
                free >> 20
            );
            said = true;
        }
        std::thread::sleep(deadline.remaining().min(Duration::from_secs(2)));
    }
}

/// Whether a filesystem with `free` of `total` bytes has room for a paused node to go on.
pub fn has_room(free: u64, total: u64) -> bool {
    free >= RESUME_FREE_BYTES.min(total / RESUME_FREE_FRACTION)
}

/// One pause of the node for a full host disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    /// When QEMU reported the failed write.
    pub at: Instant,
    /// The QEMU block device (`device` or `node-name` of the event).
    pub device: String,
    /// How long the node stayed paused, once resumed.
    pub resumed_after: Option<Duration>,
}

/// What the watcher saw during one QEMU run.
#[derive(Debug, Default)]
pub struct Record {
    pub pauses: Vec<Pause>,
    /// Why the watcher stopped watching early (it could not connect, or QMP failed).
    pub watch_error: Option<String>,
}

impl Record {
    /// One line for the diagnostics, or `None` when the node never paused.
    pub fn summary(&self) -> Option<String> {
        if self.pauses.is_empty() && self.watch_error.is_none() {
            return None;
        }
        let mut parts = Vec::new();
        for p in &self.pauses {
            parts.push(match p.resumed_after {
                Some(d) => format!("{} paused {:.1} s", p.device, d.as_secs_f64()),
                None => format!(
                    "{} paused since {:.0} s ago, not resumed",
                    p.device,
                    p.at.elapsed().as_secs_f64()
                ),
            });
        }
        if let Some(e) = &self.watch_error {
            parts.push(format!("watcher stopped: {e}"));
        }
        Some(format!(
            "QEMU paused the node {} time(s) on a full host disk (ENOSPC): {}",
            self.pauses.len(),
            parts.join("; ")
        ))
    }
}

/// Whether `ev` is QEMU stopping the guest on ENOSPC.
pub fn is_nospace_stop(ev: &QmpEvent) -> bool {
    ev.name == "BLOCK_IO_ERROR"
        && ev.data["nospace"].as_bool() == Some(true)
        && ev.data["action"].as_str() == Some("stop")
}

fn device_of(ev: &QmpEvent) -> String {
    [&ev.data["device"], &ev.data["node-name"]]
        .iter()
        .filter_map(|v| v.as_str())
        .find(|s| !s.is_empty())
        .unwrap_or("a disk")
        .to_string()
}

/// The watcher of one QEMU run; it ends when QEMU closes the monitor.
pub struct HostDiskWatch {
    record: Arc<Mutex<Record>>,
    _thread: Option<JoinHandle<()>>,
}

impl HostDiskWatch {
    /// Starts watching the monitor at `socket` for node `node`; `images` are its disk files,
    /// `log` where each pause and resume is written.
    pub fn start(node: &str, socket: &Path, images: Vec<PathBuf>, log: PathBuf) -> HostDiskWatch {
        let record = Arc::new(Mutex::new(Record::default()));
        let shared = record.clone();
        let node = node.to_string();
        let socket = socket.to_path_buf();
        let thread = std::thread::Builder::new()
            .name(format!("host-disk-{node}"))
            .spawn(move || {
                let mut qmp = match Qmp::connect(&socket, Deadline::secs(30)) {
                    Ok(q) => q,
                    Err(e) => {
                        lock(&shared).watch_error = Some(format!("cannot connect: {e}"));
                        return;
                    }
                };
                if let Err(e) = watch(&mut qmp, &node, &images, &log, &shared) {
                    if !matches!(e, LabError::QmpClosed) {
                        lock(&shared).watch_error = Some(e.to_string());
                    }
                }
            });
        HostDiskWatch {
            record,
            _thread: thread.ok(),
        }
    }

    /// What the watcher saw so far.
    pub fn record(&self) -> MutexGuard<'_, Record> {
        lock(&self.record)
    }
}

fn lock(r: &Mutex<Record>) -> MutexGuard<'_, Record> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

fn note(node: &str, log: &Path, msg: &str) {
    use std::io::Write;
    let line = format!("cairn-lab: {node}: {msg}");
    eprintln!("{line}");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{} {line}", crate::timestamp::now_compact());
    }
}

/// The tightest of the filesystems of `images`, as (free, total, path): the one furthest from
/// having room (the one with least free space when all have room).
fn tightest(images: &[PathBuf]) -> Option<(u64, u64, PathBuf)> {
    images
        .iter()
        .filter_map(|p| fs_space(p).ok().map(|(f, t)| (f, t, p.clone())))
        .max_by_key(|(f, t, _)| {
            let deficit = RESUME_FREE_BYTES
                .min(t / RESUME_FREE_FRACTION)
                .saturating_sub(*f);
            (deficit, std::cmp::Reverse(*f))
        })
}

fn watch(
    qmp: &mut Qmp,
    node: &str,
    images: &[PathBuf],
    log: &Path,
    shared: &Mutex<Record>,
) -> Result<(), LabError> {
    loop {
        let Some(ev) = qmp.next_event(Duration::from_secs(3600))? else {
            continue;
        };
        if !is_nospace_stop(&ev) {
            continue;
        }
        let device = device_of(&ev);
        let at = Instant::now();
        let space = tightest(images);
        note(
            node,
            log,
            &format!(
                "QEMU paused the node: a write to {device} failed with ENOSPC (host disk full{}); resuming once there is room",
                space
                    .as_ref()
                    .map(|(f, _, p)| format!(": {} MiB free for {}", f >> 20, p.display()))
                    .unwrap_or_default()
            ),
        );
        lock(shared).pauses.push(Pause {
            at,
            device: device.clone(),
            resumed_after: None,
        });
        // Wait for room, then resume; further ENOSPC events of the same pause are drained.
        loop {
            while qmp.next_event(POLL)?.is_some() {}
            if let Some((free, total, _)) = tightest(images) {
                if has_room(free, total) {
                    qmp.cont(Deadline::secs(30))?;
                    let paused = at.elapsed();
                    note(
                        node,
                        log,
                        &format!(
                            "resumed after {:.1} s paused ({} MiB free)",
                            paused.as_secs_f64(),
                            free >> 20
                        ),
                    );
                    if let Some(p) = lock(shared).pauses.last_mut() {
                        p.resumed_after = Some(paused);
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, data: serde_json::Value) -> QmpEvent {
        QmpEvent {
            name: name.into(),
            data,
        }
    }

    #[test]
    fn recognises_a_nospace_stop() {
        let stop = ev(
            "BLOCK_IO_ERROR",
            json!({"device": "", "node-name": "data0", "operation": "write", "action": "stop", "nospace": true, "reason": "No space left on device"}),
        );
        assert!(is_nospace_stop(&stop));
        assert_eq!(device_of(&stop), "data0");
        let other = ev(
            "BLOCK_IO_ERROR",
            json!({"device": "virtio0", "operation": "write", "action": "report", "nospace": false}),
        );
        assert!(!is_nospace_stop(&other));
        assert!(!is_nospace_stop(&ev("STOP", json!({}))));
    }

    #[test]
    fn room_is_a_gib_or_a_quarter_of_a_small_filesystem() {
        assert!(!has_room(512 << 20, 100 << 30));
        assert!(has_room(1 << 30, 100 << 30));
        assert!(!has_room(8 << 20, 48 << 20));
        assert!(has_room(12 << 20, 48 << 20));
    }

    #[test]
    fn summary_names_each_pause() {
        let mut r = Record::default();
        assert_eq!(r.summary(), None);
        r.pauses.push(Pause {
            at: Instant::now(),
            device: "data0".into(),
            resumed_after: Some(Duration::from_millis(2500)),
        });
        r.pauses.push(Pause {
            at: Instant::now(),
            device: "disk0".into(),
            resumed_after: None,
        });
        let s = r.summary().unwrap();
        assert!(s.contains("2 time(s)"), "{s}");
        assert!(s.contains("data0 paused 2.5 s"), "{s}");
        assert!(s.contains("disk0 paused since"), "{s}");
        assert!(s.contains("not resumed"), "{s}");
    }

    #[test]
    fn fs_space_reads_this_filesystem() {
        let (free, total) = fs_space(Path::new(".")).unwrap();
        assert!(total > 0 && free <= total);
    }
}
