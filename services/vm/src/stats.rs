//! Live statistics of running VMs (CPU use between two readings, memory, disk I/O) and the
//! pool space their disk volumes take, as the `vm-stats` thread reads them.

use crate::error::chain;
use crate::hypervisor::{DomainSample, Hypervisor};
use crate::spec::{DiskKind, VmRecord};
use crate::volumes::Volumes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the `vm-stats` thread reads the counters of running VMs: CPU use is averaged
/// over this interval.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// How often the pool space of the VMs' disk volumes is read (one `lvs` per pool): space
/// changes slowly, and each `lvs` takes LVM's lock that clone batches and creates need.
pub const DISK_USAGE_INTERVAL: Duration = Duration::from_secs(30);

/// A running VM's live statistics, read from libvirt every [`STATS_INTERVAL`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmStats {
    /// When the counters were read (Unix time, ms).
    pub sampled_at_unix_ms: u64,
    /// CPU use between the last two samples, in percent of all its vCPUs (100 = every
    /// vCPU busy): the QEMU process's CPU time over wall time × vCPUs, capped at 100.
    /// `None` on the first sample after the VM started.
    pub cpu_percent: Option<f64>,
    /// vCPUs it runs with.
    pub vcpus: u32,
    /// Memory the guest has now (libvirt's current memory).
    pub memory_bytes: u64,
    /// Resident memory of its QEMU process on the node, when libvirt reports it.
    pub memory_rss_bytes: Option<u64>,
    /// Bytes read and written since it started, per disk (`index` into its `disks`); a disk
    /// libvirt gives no counters for is left out.
    pub disks: Vec<DiskStats>,
}

/// One disk's I/O since the VM started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskStats {
    pub index: usize,
    pub read_bytes: u64,
    pub written_bytes: u64,
}

/// CPU use in percent of `vcpus` vCPUs from two readings of a domain's CPU time `wall`
/// apart: `(cpu_now - cpu_before) / (wall × vcpus) × 100`, capped at 100 (QEMU's own
/// threads count too) and rounded to 0.1. `None` when it cannot be told: no wall time, no
/// vCPUs, or a CPU time that went back (the domain was restarted in between).
pub fn cpu_percent(cpu_before_ns: u64, cpu_now_ns: u64, wall: Duration, vcpus: u32) -> Option<f64> {
    let wall_ns = wall.as_nanos() as f64;
    if wall_ns <= 0.0 || vcpus == 0 || cpu_now_ns < cpu_before_ns {
        return None;
    }
    let pct = (cpu_now_ns - cpu_before_ns) as f64 / (wall_ns * f64::from(vcpus)) * 100.0;
    Some((pct.min(100.0) * 10.0).round() / 10.0)
}

/// The last sample of a running VM.
pub(crate) struct Sampled {
    at: Instant,
    raw: DomainSample,
    stats: VmStats,
}

/// The stats thread's results.
#[derive(Default)]
pub(crate) struct StatsCache {
    running: BTreeMap<String, Sampled>,
    /// VM → pool space of its disk volumes (`None`: could not be read).
    disk_allocated: BTreeMap<String, Option<u64>>,
}

impl StatsCache {
    /// The statistics of VM `name` from the last sample, if it was running then.
    pub(crate) fn vm_stats(&self, name: &str) -> Option<VmStats> {
        self.running.get(name).map(|s| s.stats.clone())
    }

    /// The pool space of VM `name`'s disk volumes; `None` until read or when unreadable.
    pub(crate) fn disk_allocated(&self, name: &str) -> Option<u64> {
        self.disk_allocated.get(name).copied().flatten()
    }

    /// Replace the pool space of every VM's disk volumes (see [`disk_allocation`]).
    pub(crate) fn set_disk_allocated(&mut self, allocated: BTreeMap<String, Option<u64>>) {
        self.disk_allocated = allocated;
    }
}

fn lock(cache: &Mutex<StatsCache>) -> MutexGuard<'_, StatsCache> {
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// Read the counters of each VM of `running` (name, disk device paths) from `hv` and make
/// them the samples in `cache` (`now` and `now_unix_ms` are the time of the reading): CPU use
/// is computed against the VM's previous sample of the same run. VMs not in `running`, or
/// that `hv` has no counters for, lose their statistics. `cache` is only locked between
/// libvirt calls, so a slow call never blocks readers.
pub(crate) fn sample_running(
    hv: &dyn Hypervisor,
    cache: &Mutex<StatsCache>,
    running: Vec<(String, Vec<String>)>,
    now: Instant,
    now_unix_ms: u64,
) {
    let mut fresh = BTreeMap::new();
    for (name, paths) in running {
        let raw = match hv.sample(&name, &paths) {
            Ok(Some(raw)) => raw,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("cannot read the statistics of VM {name}: {}", chain(&e));
                continue;
            }
        };
        let cpu = {
            let samples = lock(cache);
            // Only counters of the same run compare (it may have restarted in between).
            let same_run = |prev: &&Sampled| prev.raw.run_id == raw.run_id;
            samples
                .running
                .get(&name)
                .filter(same_run)
                .and_then(|prev| {
                    cpu_percent(
                        prev.raw.cpu_time_ns,
                        raw.cpu_time_ns,
                        now.saturating_duration_since(prev.at),
                        raw.vcpus,
                    )
                })
        };
        let disks = paths
            .iter()
            .enumerate()
            .filter_map(|(index, p)| {
                raw.disks.get(p).map(|io| DiskStats {
                    index,
                    read_bytes: io.read_bytes,
                    written_bytes: io.written_bytes,
                })
            })
            .collect();
        let stats = VmStats {
            sampled_at_unix_ms: now_unix_ms,
            cpu_percent: cpu,
            vcpus: raw.vcpus,
            memory_bytes: raw.memory_kib.saturating_mul(1024),
            memory_rss_bytes: raw.rss_kib.map(|k| k.saturating_mul(1024)),
            disks,
        };
        fresh.insert(
            name,
            Sampled {
                at: now,
                raw,
                stats,
            },
        );
    }
    lock(cache).running = fresh;
}

/// The pool space of each VM's disk volumes, summed (one `usage` per pool in use); `None`
/// for a VM with a disk whose pool or volume cannot be read.
pub(crate) fn disk_allocation(
    volumes: &dyn Volumes,
    records: &[VmRecord],
) -> BTreeMap<String, Option<u64>> {
    let mut pools: BTreeMap<String, Option<BTreeMap<String, u64>>> = BTreeMap::new();
    for d in records.iter().flat_map(|r| &r.disks) {
        if d.kind != DiskKind::Disk || pools.contains_key(&d.pool) {
            continue;
        }
        let used = match volumes.usage(&d.pool) {
            Ok(list) => Some(list.into_iter().map(|v| (v.name, v.used_bytes)).collect()),
            Err(e) => {
                tracing::debug!("cannot read the volumes of pool {}: {e}", d.pool);
                None
            }
        };
        pools.insert(d.pool.clone(), used);
    }
    records
        .iter()
        .map(|r| {
            let sum = r
                .disks
                .iter()
                .filter(|d| d.kind == DiskKind::Disk)
                .map(|d| {
                    pools
                        .get(&d.pool)
                        .and_then(|p| p.as_ref())
                        .and_then(|p| p.get(&d.volume).copied())
                })
                .sum::<Option<u64>>();
            (r.name.clone(), sum)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time_and_vcpus() {
        let s = Duration::from_secs(1);
        // One of two vCPUs busy for the whole second: 50 %.
        assert_eq!(cpu_percent(0, 1_000_000_000, s, 2), Some(50.0));
        assert_eq!(cpu_percent(5, 5, s, 1), Some(0.0));
        // 0.25 s over 2 s on one vCPU; rounded to 0.1.
        assert_eq!(
            cpu_percent(1_000, 250_001_000, Duration::from_secs(2), 1),
            Some(12.5)
        );
        assert_eq!(cpu_percent(0, 333_333_333, s, 1), Some(33.3));
        // QEMU's own threads can add more than the vCPUs: capped.
        assert_eq!(cpu_percent(0, 3_000_000_000, s, 2), Some(100.0));
        // Cannot be told: no time passed, no vCPUs, the counter went back (a restart).
        assert_eq!(cpu_percent(0, 10, Duration::ZERO, 1), None);
        assert_eq!(cpu_percent(0, 10, s, 0), None);
        assert_eq!(cpu_percent(10, 5, s, 1), None);
    }
}
