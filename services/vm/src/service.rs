//! The VM service: creates, starts, stops, clones and deletes VMs, keeps their state current
//! from libvirt's domain events (with a slow safety-net poll), and starts autostart VMs once
//! libvirtd answers.

use crate::console::{self, Cursor};
use crate::error::VmError;
use crate::host::Host;
use crate::hypervisor::{DomainSample, HvError, HvEvent, Hypervisor, Lifecycle, RunState};
use crate::spec::{
    self, BootDevice, Disk, DiskKind, DiskSource, Nic, NodeFacts, VmRecord, VmSpec,
    DEFAULT_CPU_MODEL,
};
use crate::store::Store;
use crate::volumes::{disk_volume, snapshot_volume, VolumeError, Volumes};
use crate::xml::{domain_xml, Accelerator};
use cairn_core::alert::Progress;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often libvirt is polled for domain states while there are no domain events (libvirtd
/// down, restarting, or the subscription failing), and how often autostart looks again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often every domain's state is read while events flow: a safety net for an event
/// lost in a reconnect.
pub const SAFETY_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// The first wait before subscribing to domain events again; it doubles up to
/// [`RESUBSCRIBE_MAX`].
pub const RESUBSCRIBE_MIN: Duration = Duration::from_millis(250);
/// The longest wait between two subscription attempts.
pub const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);
/// After this long without a subscription the monitor logs an error (it keeps trying, and
/// polls every [`POLL_INTERVAL`] meanwhile).
pub const RESUBSCRIBE_DEADLINE: Duration = Duration::from_secs(60);
/// Memory kept for the node itself (cairnd, libvirtd, QEMU overhead) when admitting VMs.
pub const HOST_RESERVE_MIB: u64 = 256;
/// How long autostart waits for a VM's disks to appear after libvirt is up.
pub const AUTOSTART_WAIT: Duration = Duration::from_secs(300);
/// Default time a guest gets to act on an ACPI shutdown before it is powered off.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the `vm-stats` thread reads the counters of running VMs: CPU use is averaged
/// over this interval.
pub const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// How often the pool space of the VMs' disk volumes is read (one `lvs` per pool): space
/// changes slowly, and each `lvs` takes LVM's lock that clone batches and creates need.
pub const DISK_USAGE_INTERVAL: Duration = Duration::from_secs(30);

/// Where the service keeps things.
#[derive(Debug, Clone)]
pub struct VmsConfig {
    /// The daemon's state directory (records under `vms/`).
    pub state_dir: PathBuf,
    /// Where console files are written (`/var/log/libvirt/qemu`).
    pub console_dir: PathBuf,
    /// The QEMU binary libvirt runs.
    pub emulator: String,
}

/// A VM as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VmStatus {
    #[serde(flatten)]
    pub record: VmRecord,
    pub state: RunState,
    /// Live statistics; `None` while it is not running, and until the first sample after
    /// it started.
    pub stats: Option<VmStats>,
    /// Pool space allocated by its disk volumes (thin LVs' data in use, summed); `None`
    /// until first read or when a disk's pool or volume cannot be read.
    pub disk_allocated_bytes: Option<u64>,
}

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
struct Sampled {
    at: Instant,
    raw: DomainSample,
    stats: VmStats,
}

/// The stats thread's results.
#[derive(Default)]
struct StatsCache {
    running: BTreeMap<String, Sampled>,
    /// VM → pool space of its disk volumes (`None`: could not be read).
    disk_allocated: BTreeMap<String, Option<u64>>,
}

/// The node's resources and what VMs commit of them.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub accelerator: Accelerator,
    /// Whether libvirtd answered the last poll.
    pub libvirt_connected: bool,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Committed by running VMs.
    pub vcpus_running: u32,
    pub memory_running_mib: u64,
    /// Committed by all defined VMs (what autostart would need).
    pub vcpus_defined: u32,
    pub memory_defined_mib: u64,
    /// Memory left for starting more VMs (after [`HOST_RESERVE_MIB`]).
    pub memory_free_mib: u64,
}

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownOutcome {
    /// The guest powered off by itself.
    Graceful,
    /// The guest ignored the request until the timeout; it was powered off.
    Forced,
    /// It was not running.
    AlreadyOff,
}

struct Inner {
    records: BTreeMap<String, VmRecord>,
    states: BTreeMap<String, RunState>,
    connected: bool,
}

/// The VM service of a node.
pub struct Vms {
    cfg: VmsConfig,
    hv: Arc<dyn Hypervisor>,
    volumes: Arc<dyn Volumes>,
    host: Arc<dyn Host>,
    store: Store,
    inner: Mutex<Inner>,
    /// Serializes changes (create, clone, delete…) so names and volumes cannot race.
    change: Mutex<()>,
    /// Live statistics (a lock of their own: sampling never blocks the states).
    stats: Mutex<StatsCache>,
}

fn vol_err(op: String) -> impl FnOnce(VolumeError) -> VmError {
    move |source| VmError::Volume { op, source }
}

impl Vms {
    /// Open the service: load the stored records. Nothing talks to libvirt yet.
    pub fn open(
        cfg: VmsConfig,
        hv: Arc<dyn Hypervisor>,
        volumes: Arc<dyn Volumes>,
        host: Arc<dyn Host>,
    ) -> Result<Vms, VmError> {
        let store = Store::open(&cfg.state_dir)?;
        let records = store.load()?;
        Ok(Vms {
            cfg,
            hv,
            volumes,
            host,
            store,
            inner: Mutex::new(Inner {
                records,
                states: BTreeMap::new(),
                connected: false,
            }),
            change: Mutex::new(()),
            stats: Mutex::new(StatsCache::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_change(&self) -> MutexGuard<'_, ()> {
        self.change.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_stats(&self) -> MutexGuard<'_, StatsCache> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// KVM or TCG on this node.
    pub fn accelerator(&self) -> Accelerator {
        self.host.accelerator()
    }

    fn xml(&self, r: &VmRecord) -> String {
        let log = console::console_path(&self.cfg.console_dir, &r.name);
        domain_xml(
            r,
            self.accelerator(),
            &self.cfg.emulator,
            &log.to_string_lossy(),
        )
    }

    /// Ask libvirt for every domain's state and remember it. Returns whether libvirt answered.
    pub fn poll(&self) -> bool {
        match self.hv.states() {
            Ok(states) => {
                let mut inner = self.lock();
                for (name, state) in &states {
                    let before = inner.states.get(name).copied();
                    if inner.connected
                        && before.is_some_and(|b| b != *state)
                        && inner.records.contains_key(name)
                    {
                        tracing::info!(
                            "VM {name}: {} -> {} (seen by a poll)",
                            before.map(state_name).unwrap_or_default(),
                            state_name(*state)
                        );
                    }
                }
                inner.states = states;
                inner.connected = true;
                true
            }
            Err(e) => {
                let mut inner = self.lock();
                if inner.connected {
                    tracing::warn!("libvirt does not answer: {}", chain(&e));
                }
                inner.connected = false;
                false
            }
        }
    }

    /// Once libvirt answers: define every stored VM libvirt lacks (our records are the truth).
    /// Returns the autostart VMs that are off: what [`Vms::autostart_ready`] should start.
    pub fn reconcile(&self) -> Vec<String> {
        let records: Vec<VmRecord> = self.lock().records.values().cloned().collect();
        let states = self.lock().states.clone();
        let mut pending = Vec::new();
        for r in records {
            if !states.contains_key(&r.name) {
                if let Err(e) = self.hv.define(&self.xml(&r)) {
                    tracing::error!("cannot define VM {}: {}", r.name, chain(&e));
                    continue;
                }
            }
            let state = states.get(&r.name).copied().unwrap_or(RunState::ShutOff);
            if r.autostart && !state.is_active() {
                pending.push(r.name.clone());
            }
        }
        self.poll();
        pending
    }

    /// Start those of `pending` whose disks exist now (pools are assembled at boot alongside
    /// us); returns the names started and removes them, and those that failed, from `pending`.
    pub fn autostart_ready(&self, pending: &mut Vec<String>) -> Vec<String> {
        let mut started = Vec::new();
        let mut keep = Vec::new();
        for name in pending.drain(..) {
            let Ok(r) = self.record(&name) else { continue };
            // Pools are assembled by storage at boot, alongside us: wait until every pool
            // the VM uses is there (then missing devices are activated by start).
            let pools: std::collections::BTreeSet<String> = match self.volumes.pools() {
                Ok(p) => p.into_iter().collect(),
                Err(_) => Default::default(),
            };
            let ready = r.disks.iter().all(|d| {
                self.host.exists(Path::new(&d.path))
                    || (d.kind == DiskKind::Disk
                        && pools.contains(&d.pool)
                        && self
                            .volumes
                            .usage(&d.pool)
                            .is_ok_and(|u| u.iter().any(|v| v.name == d.volume)))
            });
            if !ready {
                keep.push(name);
                continue;
            }
            match self.start(&name) {
                Ok(()) => {
                    tracing::info!("autostart: started VM {name}");
                    started.push(name);
                }
                Err(e) => tracing::error!("autostart of VM {name} failed: {}", chain(&e)),
            }
        }
        *pending = keep;
        started
    }

    /// Apply one domain event to the known states at once: the state the event implies, or
    /// a fresh read of every state when the event does not say (`Shutdown`, unknown events).
    pub fn apply_event(&self, name: &str, event: Lifecycle) {
        let before = self.lock().states.get(name).copied();
        match (event, event.state()) {
            (Lifecycle::Undefined, _) => {
                self.lock().states.remove(name);
            }
            // A new definition is shut off; a redefinition (every start does one) keeps the
            // state.
            (Lifecycle::Defined, _) => {
                self.lock()
                    .states
                    .entry(name.to_string())
                    .or_insert(RunState::ShutOff);
            }
            (_, Some(state)) => {
                self.lock().states.insert(name.to_string(), state);
            }
            (_, None) => {
                self.poll();
            }
        }
        let inner = self.lock();
        let after = inner.states.get(name).copied();
        if !inner.records.contains_key(name) {
            return;
        }
        let shown = |s: Option<RunState>| s.map(state_name).unwrap_or_else(|| "unknown".into());
        if after != before {
            tracing::info!(
                "VM {name}: {} -> {} (libvirt event {event:?})",
                shown(before),
                shown(after),
            );
        } else {
            // A poll (the safety net, or one after a resubscription) got there first.
            tracing::info!(
                "VM {name}: libvirt event {event:?} (state already {})",
                shown(after)
            );
        }
    }

    /// The monitor loop (run on its own thread, for ever): subscribes to libvirt's domain
    /// events and applies each at once, reads every state right after each (re)subscription
    /// and every [`SAFETY_POLL_INTERVAL`] after that (every [`POLL_INTERVAL`] while it has no
    /// subscription, resubscribing with a backoff), and starts the autostart VMs once, as soon
    /// as libvirt first answers and their disks exist, for up to [`AUTOSTART_WAIT`].
    /// Also starts the `vm-stats` thread ([`Vms::stats_loop`]).
    pub fn monitor(self: Arc<Self>) {
        let stats = self.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("vm-stats".into())
            .spawn(move || stats.stats_loop())
        {
            tracing::error!("cannot start the VM statistics thread: {e}");
        }
        self.monitor_until(&|| false);
    }

    /// Read the running VMs' counters every [`STATS_INTERVAL`] and their disks' pool
    /// space every [`DISK_USAGE_INTERVAL`], for ever (on its own thread, so a slow `lvs`
    /// or libvirt call never delays state events).
    pub fn stats_loop(&self) {
        let mut next_usage = Instant::now();
        loop {
            let now = Instant::now();
            self.sample_stats(now, unix_ms());
            if now >= next_usage {
                self.refresh_disk_usage();
                next_usage = now + DISK_USAGE_INTERVAL;
            }
            std::thread::sleep(STATS_INTERVAL.saturating_sub(now.elapsed()));
        }
    }

    /// Read the counters of every running VM now (`now` and `now_unix_ms` are the time of
    /// the reading): CPU use is computed against its previous reading. VMs that are not
    /// running lose their statistics.
    pub fn sample_stats(&self, now: Instant, now_unix_ms: u64) {
        let running: Vec<(String, Vec<String>)> = {
            let inner = self.lock();
            if !inner.connected {
                Vec::new()
            } else {
                inner
                    .records
                    .values()
                    .filter(|r| inner.states.get(&r.name).is_some_and(|s| s.is_active()))
                    .map(|r| {
                        let paths = r.disks.iter().map(|d| d.path.clone()).collect();
                        (r.name.clone(), paths)
                    })
                    .collect()
            }
        };
        let mut fresh = BTreeMap::new();
        for (name, paths) in running {
            let raw = match self.hv.sample(&name, &paths) {
                Ok(Some(raw)) => raw,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!("cannot read the statistics of VM {name}: {}", chain(&e));
                    continue;
                }
            };
            let cpu = {
                let cache = self.lock_stats();
                // Only counters of the same run compare (it may have restarted in between).
                let same_run = |prev: &&Sampled| prev.raw.run_id == raw.run_id;
                cache.running.get(&name).filter(same_run).and_then(|prev| {
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
        self.lock_stats().running = fresh;
    }

    /// Read the pool space of every VM's disk volumes now (one `usage` per pool in use).
    pub fn refresh_disk_usage(&self) {
        let records: Vec<VmRecord> = self.lock().records.values().cloned().collect();
        let mut pools: BTreeMap<String, Option<BTreeMap<String, u64>>> = BTreeMap::new();
        for d in records.iter().flat_map(|r| &r.disks) {
            if d.kind != DiskKind::Disk || pools.contains_key(&d.pool) {
                continue;
            }
            let used = match self.volumes.usage(&d.pool) {
                Ok(list) => Some(list.into_iter().map(|v| (v.name, v.used_bytes)).collect()),
                Err(e) => {
                    tracing::debug!("cannot read the volumes of pool {}: {e}", d.pool);
                    None
                }
            };
            pools.insert(d.pool.clone(), used);
        }
        let allocated = records
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
            .collect();
        self.lock_stats().disk_allocated = allocated;
    }

    /// [`Vms::monitor`] until `stop` says so (checked at least once a second).
    fn monitor_until(&self, stop: &dyn Fn() -> bool) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut autostart: Option<(Instant, Vec<String>)> = None;
        let mut next_autostart = Instant::now();
        let mut subscribed = false;
        let mut down_since = Instant::now();
        let mut next_try = Instant::now();
        let mut backoff = RESUBSCRIBE_MIN;
        let mut warned = false;
        let mut next_poll = Instant::now();
        while !stop() {
            let now = Instant::now();
            if !subscribed && now >= next_try {
                match self.hv.subscribe(tx.clone()) {
                    Ok(()) => {
                        tracing::info!(
                            "libvirt domain events subscribed{}",
                            if warned {
                                format!(" after {} s", down_since.elapsed().as_secs())
                            } else {
                                String::new()
                            }
                        );
                        subscribed = true;
                        backoff = RESUBSCRIBE_MIN;
                        warned = false;
                        // Whatever happened while there were no events: read it all now.
                        next_poll = now;
                    }
                    Err(e) => {
                        if !warned && down_since.elapsed() >= RESUBSCRIBE_DEADLINE {
                            tracing::error!(
                                "no libvirt domain events for {} s (polling every {} s meanwhile): {}",
                                down_since.elapsed().as_secs(),
                                POLL_INTERVAL.as_secs(),
                                chain(&e)
                            );
                            warned = true;
                        }
                        next_try = now + backoff;
                        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
                    }
                }
            }
            if now >= next_poll {
                let answered = self.poll();
                if answered && autostart.is_none() {
                    let list = self.reconcile();
                    tracing::info!("libvirt is up; {} VM(s) to autostart", list.len());
                    autostart = Some((Instant::now(), list));
                }
                if !answered && subscribed {
                    // libvirtd does not answer calls: the event connection is likely gone too.
                    tracing::warn!("libvirt does not answer; subscribing to its events again");
                    subscribed = false;
                    down_since = now;
                    next_try = now;
                }
                next_poll = now
                    + if subscribed {
                        SAFETY_POLL_INTERVAL
                    } else {
                        POLL_INTERVAL
                    };
            }
            if let Some((since, list)) = autostart.as_mut() {
                if !list.is_empty() && Instant::now() >= next_autostart {
                    self.autostart_ready(list);
                    if !list.is_empty() && since.elapsed() > AUTOSTART_WAIT {
                        tracing::error!(
                            "autostart: gave up on {list:?}: their disks did not appear within {} s",
                            AUTOSTART_WAIT.as_secs()
                        );
                        list.clear();
                    }
                    next_autostart = Instant::now() + POLL_INTERVAL;
                }
            }
            let mut wake = next_poll.min(Instant::now() + Duration::from_secs(1));
            if !subscribed {
                wake = wake.min(next_try);
            }
            if autostart.as_ref().is_some_and(|(_, l)| !l.is_empty()) {
                wake = wake.min(next_autostart);
            }
            match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(HvEvent::Domain { name, event }) => self.apply_event(&name, event),
                Ok(HvEvent::Lost) => {
                    tracing::warn!("libvirt closed the event connection; subscribing again");
                    subscribed = false;
                    down_since = Instant::now();
                    next_try = Instant::now();
                    // Marks libvirt disconnected now if it is down.
                    next_poll = Instant::now();
                }
                // `tx` is ours, so the channel cannot disconnect; a timeout is the next turn.
                Err(_) => {}
            }
        }
    }

    fn status_of(&self, inner: &Inner, stats: &StatsCache, r: &VmRecord) -> VmStatus {
        let state = inner
            .states
            .get(&r.name)
            .copied()
            .unwrap_or(RunState::Unknown);
        VmStatus {
            record: r.clone(),
            state,
            // A VM that stopped since the last sample has none.
            stats: stats
                .running
                .get(&r.name)
                .filter(|_| state.is_active())
                .map(|s| s.stats.clone()),
            disk_allocated_bytes: stats.disk_allocated.get(&r.name).copied().flatten(),
        }
    }

    /// Every VM with its last known state and statistics.
    pub fn list(&self) -> Vec<VmStatus> {
        let inner = self.lock();
        let stats = self.lock_stats();
        inner
            .records
            .values()
            .map(|r| self.status_of(&inner, &stats, r))
            .collect()
    }

    /// One VM.
    pub fn get(&self, name: &str) -> Result<VmStatus, VmError> {
        let inner = self.lock();
        let stats = self.lock_stats();
        let r = inner
            .records
            .get(name)
            .ok_or_else(|| VmError::NotFound(name.to_string()))?;
        Ok(self.status_of(&inner, &stats, r))
    }

    fn record(&self, name: &str) -> Result<VmRecord, VmError> {
        self.lock()
            .records
            .get(name)
            .cloned()
            .ok_or_else(|| VmError::NotFound(name.to_string()))
    }

    /// The state right now (asks libvirt).
    fn state_now(&self, name: &str) -> Result<RunState, VmError> {
        let states = self.hv.states()?;
        let s = states.get(name).copied().unwrap_or(RunState::ShutOff);
        let mut inner = self.lock();
        inner.states = states;
        inner.connected = true;
        Ok(s)
    }

    /// CPUs and memory of the node and what VMs commit.
    pub fn resources(&self) -> Resources {
        let cap = self.hv.capacity().ok();
        let inner = self.lock();
        let (mut vr, mut mr, mut vd, mut md) = (0u32, 0u64, 0u32, 0u64);
        for r in inner.records.values() {
            vd += r.vcpus;
            md += r.memory_mib;
            if inner.states.get(&r.name).is_some_and(|s| s.is_active()) {
                vr += r.vcpus;
                mr += r.memory_mib;
            }
        }
        let memory_mib = cap.map(|c| c.memory_mib).unwrap_or(0);
        Resources {
            accelerator: self.accelerator(),
            libvirt_connected: inner.connected,
            cpus: cap.map(|c| c.cpus).unwrap_or(0),
            memory_mib,
            vcpus_running: vr,
            memory_running_mib: mr,
            vcpus_defined: vd,
            memory_defined_mib: md,
            memory_free_mib: memory_mib.saturating_sub(HOST_RESERVE_MIB + mr),
        }
    }

    fn facts(&self) -> Result<NodeFacts, VmError> {
        let cap = self.hv.capacity()?;
        let pools = self.volumes.pools().map_err(vol_err("list pools".into()))?;
        Ok(NodeFacts {
            cpus: cap.cpus,
            memory_mib: cap.memory_mib,
            bridges: self.host.bridges(),
            pools: pools.into_iter().collect(),
            vms: self.lock().records.keys().cloned().collect(),
        })
    }

    /// Validate a spec against the node without changing anything.
    pub fn check(&self, spec: &VmSpec) -> Result<(), VmError> {
        spec::validate(spec, &self.facts()?)?;
        Ok(())
    }

    /// Check that `source` exists and `name` is a free, valid name for a clone of it.
    pub fn check_new_name(&self, source: &str, name: &str) -> Result<(), VmError> {
        self.record(source)?;
        spec::check_name("name", name)?;
        if self.lock().records.contains_key(name) {
            return Err(spec::invalid("name", format!("a VM named {name} exists already")).into());
        }
        Ok(())
    }

    /// Create a VM: validate, make its volumes, store it, define it in libvirt. On any
    /// failure everything made so far is removed again.
    pub fn create(&self, spec: &VmSpec, progress: &dyn Progress) -> Result<VmStatus, VmError> {
        let _g = self.lock_change();
        let facts = self.facts()?;
        spec::validate(spec, &facts)?;
        let mut made: Vec<(String, String)> = Vec::new();
        let result = self.create_inner(spec, progress, &mut made);
        if result.is_err() {
            self.remove_volumes(&made);
        }
        result
    }

    fn create_inner(
        &self,
        spec: &VmSpec,
        progress: &dyn Progress,
        made: &mut Vec<(String, String)>,
    ) -> Result<VmStatus, VmError> {
        let n = spec.disks.len().max(1);
        let mut disks = Vec::new();
        for (i, d) in spec.disks.iter().enumerate() {
            progress.progress((i * 80 / n) as u8, &format!("disk {i}"));
            let vol = disk_volume(&spec.name, i);
            let disk = match &d.source {
                DiskSource::New { pool, size_bytes } => {
                    let path = self
                        .volumes
                        .create(pool, &vol, *size_bytes)
                        .map_err(vol_err(format!("create volume {vol} on pool {pool}")))?;
                    made.push((pool.clone(), vol.clone()));
                    Disk {
                        kind: DiskKind::Disk,
                        bus: d.bus,
                        pool: pool.clone(),
                        volume: vol,
                        path: path.to_string_lossy().into_owned(),
                        origin: None,
                    }
                }
                DiskSource::Clone { vm, disk, snapshot } => {
                    let src = self.record(vm)?;
                    let field = format!("disks[{i}].disk");
                    let sd = src
                        .disks
                        .get(*disk)
                        .filter(|x| x.kind == DiskKind::Disk)
                        .ok_or_else(|| {
                            spec::invalid(&field, format!("VM {vm} has no disk number {disk}"))
                        })?;
                    let source_vol = match snapshot {
                        None => sd.volume.clone(),
                        Some(s) => src
                            .snapshots
                            .get(s)
                            .and_then(|v| v.get(*disk).cloned().flatten())
                            .ok_or_else(|| VmError::NoSnapshot {
                                vm: vm.clone(),
                                snapshot: s.clone(),
                            })?,
                    };
                    let path = self
                        .volumes
                        .clone_volume(&sd.pool, &source_vol, &vol)
                        .map_err(vol_err(format!("clone volume {source_vol} as {vol}")))?;
                    made.push((sd.pool.clone(), vol.clone()));
                    Disk {
                        kind: DiskKind::Disk,
                        bus: d.bus,
                        pool: sd.pool.clone(),
                        volume: vol,
                        path: path.to_string_lossy().into_owned(),
                        origin: Some(source_vol),
                    }
                }
                DiskSource::Iso { pool, share, file } => {
                    let path = self.volumes.share_path(pool, share).join(file);
                    if !self.host.is_file(&path) {
                        return Err(spec::invalid(
                            format!("disks[{i}].file"),
                            format!("{file} is not in share {share} of pool {pool}"),
                        )
                        .into());
                    }
                    Disk {
                        kind: DiskKind::Cdrom,
                        bus: d.bus,
                        pool: pool.clone(),
                        volume: format!("{share}/{file}"),
                        path: path.to_string_lossy().into_owned(),
                        origin: None,
                    }
                }
            };
            disks.push(disk);
        }
        let record = new_record(spec, disks);
        progress.progress(85, "defining the VM in libvirt");
        self.hv.define(&self.xml(&record))?;
        {
            let mut inner = self.lock();
            let mut next = inner.records.clone();
            next.insert(record.name.clone(), record.clone());
            if let Err(e) = self.store.save(&next) {
                drop(inner);
                let _ = self.hv.undefine(&record.name);
                return Err(e.into());
            }
            inner.records = next;
            inner.states.insert(record.name.clone(), RunState::ShutOff);
        }
        progress.progress(100, "created");
        self.get(&record.name)
    }

    /// Start a VM, if the node has the memory for it.
    pub fn start(&self, name: &str) -> Result<(), VmError> {
        let r = self.record(name)?;
        let state = self.state_now(name)?;
        if state.is_active() {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: state_name(state),
                need: "it is running already",
            });
        }
        let res = self.resources();
        if r.memory_mib > res.memory_free_mib {
            return Err(VmError::NoMemory {
                vm: name.into(),
                need_mib: r.memory_mib,
                free_mib: res.memory_free_mib,
            });
        }
        self.activate_disks(&r)?;
        // Redefine from our record so libvirt's definition cannot drift from it.
        self.hv.define(&self.xml(&r))?;
        self.hv.start(name)?;
        self.state_now(name)?;
        Ok(())
    }

    /// Activate the disk volumes whose block devices are missing (clones after a reboot).
    fn activate_disks(&self, r: &VmRecord) -> Result<(), VmError> {
        for d in r.disks.iter().filter(|d| d.kind == DiskKind::Disk) {
            if !self.host.exists(Path::new(&d.path)) {
                self.volumes
                    .activate(&d.pool, &d.volume)
                    .map_err(vol_err(format!("activate volume {}", d.volume)))?;
            }
        }
        Ok(())
    }

    /// ACPI shutdown; if the guest is still running after `timeout`, power it off.
    pub fn shutdown(
        &self,
        name: &str,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<ShutdownOutcome, VmError> {
        self.record(name)?;
        if !self.state_now(name)?.is_active() {
            return Ok(ShutdownOutcome::AlreadyOff);
        }
        progress.progress(0, "ACPI power button pressed");
        self.hv.shutdown(name)?;
        let start = Instant::now();
        while start.elapsed() < timeout {
            if !self.state_now(name)?.is_active() {
                progress.progress(100, "the guest powered off");
                return Ok(ShutdownOutcome::Graceful);
            }
            let pct = (start.elapsed().as_millis() * 90 / timeout.as_millis().max(1)) as u8;
            progress.progress(
                pct,
                &format!(
                    "waiting for the guest to power off ({} of {} s)",
                    start.elapsed().as_secs(),
                    timeout.as_secs()
                ),
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        progress.progress(95, "the guest ignored the request; powering off");
        if self.state_now(name)?.is_active() {
            self.hv.destroy(name)?;
        }
        self.state_now(name)?;
        Ok(ShutdownOutcome::Forced)
    }

    /// The node is shutting down: send every running VM an ACPI shutdown at once, wait
    /// until all are off or `timeout` has passed, then power off the rest, all at once (a
    /// thread each). Every step is logged as it happens; the report keeps the VMs' order.
    /// Meant for the daemon's stop, while libvirtd still runs.
    pub fn shutdown_all(&self, timeout: Duration) -> NodeStopReport {
        let mut report = NodeStopReport::default();
        let managed: Vec<String> = self.lock().records.keys().cloned().collect();
        let running = match self.hv.states() {
            Ok(states) => managed
                .into_iter()
                .filter(|n| states.get(n).is_some_and(|s| s.is_active()))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::error!("node stop: cannot list the VMs' states: {e}");
                return report;
            }
        };
        if running.is_empty() {
            tracing::info!("node stop: no VM is running");
            return report;
        }
        tracing::info!(
            "node stop: ACPI shutdown requested for {} VM(s): {}; waiting up to {} s",
            running.len(),
            running.join(", "),
            timeout.as_secs()
        );
        for n in &running {
            if let Err(e) = self.hv.shutdown(n) {
                tracing::warn!("node stop: ACPI shutdown of {n} failed: {e}");
            }
        }
        let start = Instant::now();
        let mut left = running;
        loop {
            let states = self.hv.states().unwrap_or_default();
            let (on, off): (Vec<String>, Vec<String>) = left
                .into_iter()
                .partition(|n| states.get(n).is_some_and(|s| s.is_active()));
            for n in off {
                tracing::info!("node stop: VM {n} powered off by itself");
                report.graceful.push(n);
            }
            left = on;
            if left.is_empty() || start.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(
                Duration::from_millis(250).min(timeout.saturating_sub(start.elapsed())),
            );
        }
        if !left.is_empty() {
            tracing::warn!(
                "node stop: timeout after {} s; powering off {}",
                timeout.as_secs(),
                left.join(", ")
            );
        }
        // All at once: each power-off waits for its QEMU process to go (~0.3 s under TCG).
        // Each is logged as it finishes; the report keeps the VMs' order.
        std::thread::scope(|scope| {
            let offs: Vec<_> = left
                .iter()
                .map(|n| {
                    let hv = &self.hv;
                    let off = move || match hv.destroy(n) {
                        Ok(()) => tracing::info!("node stop: VM {n} powered off"),
                        Err(e) => tracing::error!("node stop: cannot power off {n}: {e}"),
                    };
                    (n, std::thread::Builder::new().spawn_scoped(scope, off))
                })
                .collect();
            for (n, off) in offs {
                match off.map(|h| h.join()) {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => {
                        tracing::error!("node stop: the power-off of {n} panicked")
                    }
                    // No thread for it: power it off here.
                    Err(e) => {
                        tracing::warn!("node stop: no thread to power off {n} ({e}); doing it now");
                        match self.hv.destroy(n) {
                            Ok(()) => tracing::info!("node stop: VM {n} powered off"),
                            Err(e) => tracing::error!("node stop: cannot power off {n}: {e}"),
                        }
                    }
                }
            }
        });
        report.forced = left;
        let _ = self.poll();
        report
    }

    /// Power off at once.
    pub fn force_off(&self, name: &str) -> Result<(), VmError> {
        self.record(name)?;
        let state = self.state_now(name)?;
        if !state.is_active() {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: state_name(state),
                need: "it is not running",
            });
        }
        self.hv.destroy(name)?;
        self.state_now(name)?;
        Ok(())
    }

    /// Reboot: an ACPI request, or a hard reset with `force`.
    pub fn reboot(&self, name: &str, force: bool) -> Result<(), VmError> {
        self.record(name)?;
        let state = self.state_now(name)?;
        if !state.is_active() {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: state_name(state),
                need: "start it instead",
            });
        }
        if force {
            self.hv.reset(name)?;
        } else {
            self.hv.reboot(name)?;
        }
        Ok(())
    }

    /// Turn autostart on or off.
    pub fn set_autostart(&self, name: &str, on: bool) -> Result<VmStatus, VmError> {
        let _g = self.lock_change();
        self.update(name, |r| r.autostart = on)?;
        self.get(name)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut VmRecord)) -> Result<(), VmError> {
        let mut inner = self.lock();
        let mut next = inner.records.clone();
        let r = next
            .get_mut(name)
            .ok_or_else(|| VmError::NotFound(name.to_string()))?;
        f(r);
        self.store.save(&next)?;
        inner.records = next;
        Ok(())
    }

    fn require_off(&self, name: &str, need: &'static str) -> Result<(), VmError> {
        let state = self.state_now(name)?;
        if state.is_active() {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: state_name(state),
                need,
            });
        }
        Ok(())
    }

    /// Delete a shut-off VM; with `delete_disks`, its volumes and snapshots too (else they
    /// stay on the pool under their names).
    pub fn delete(&self, name: &str, delete_disks: bool) -> Result<(), VmError> {
        let _g = self.lock_change();
        let r = self.record(name)?;
        self.require_off(name, "shut it down first")?;
        match self.hv.undefine(name) {
            Ok(()) | Err(crate::hypervisor::HvError::NotDefined(_)) => {}
            Err(e) => return Err(e.into()),
        }
        {
            let mut inner = self.lock();
            let mut next = inner.records.clone();
            next.remove(name);
            self.store.save(&next)?;
            inner.records = next;
            inner.states.remove(name);
        }
        if delete_disks {
            for (i, d) in r.disks.iter().enumerate() {
                if d.kind != DiskKind::Disk {
                    continue;
                }
                for snap in r.snapshots.values() {
                    if let Some(Some(s)) = snap.get(i) {
                        self.volumes
                            .delete(&d.pool, s)
                            .map_err(vol_err(format!("delete snapshot volume {s}")))?;
                    }
                }
                self.volumes
                    .delete(&d.pool, &d.volume)
                    .map_err(vol_err(format!("delete volume {}", d.volume)))?;
            }
        }
        let _ = std::fs::remove_file(console::console_path(&self.cfg.console_dir, name));
        Ok(())
    }

    /// A new VM `new_name` whose disks are copy-on-write clones of `source`'s (or of its
    /// snapshot `snapshot`), with new MACs on the same bridges. A running source gives a
    /// crash-consistent copy.
    pub fn clone_vm(
        &self,
        source: &str,
        new_name: &str,
        snapshot: Option<&str>,
        autostart: Option<bool>,
        progress: &dyn Progress,
    ) -> Result<VmStatus, VmError> {
        let clone = NewClone {
            name: new_name.to_string(),
            autostart,
        };
        let mut made = self.clone_vms(source, &[clone], snapshot, progress)?;
        Ok(made.vms.remove(0))
    }

    /// Many clones of `source` (see [`Vms::clone_vm`]) in one go: every disk volume of every
    /// clone in one storage batch per pool while, at the same time, each clone is defined in
    /// libvirt (its disks' device paths are known beforehand), then one store write. All or
    /// nothing: on a failure whatever was made is removed (and undefined) again and the error
    /// names the clone (or its volume) that failed. Each clone's `autostart` defaults to the
    /// source's.
    pub fn clone_vms(
        &self,
        source: &str,
        clones: &[NewClone],
        snapshot: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<ClonedVms, VmError> {
        let _g = self.lock_change();
        let src = self.record(source)?;
        if let Some(s) = snapshot {
            if !src.snapshots.contains_key(s) {
                return Err(VmError::NoSnapshot {
                    vm: source.into(),
                    snapshot: s.into(),
                });
            }
        }
        if clones.is_empty() {
            return Err(spec::invalid("clones", "name at least one clone").into());
        }
        let facts = self.facts()?;
        let mut specs = Vec::new();
        for (i, c) in clones.iter().enumerate() {
            let field = if clones.len() == 1 {
                "name".to_string()
            } else {
                format!("clones[{i}].name")
            };
            spec::check_name(&field, &c.name)?;
            if facts.vms.contains(&c.name) || clones[..i].iter().any(|o| o.name == c.name) {
                return Err(
                    spec::invalid(&field, format!("a VM named {} exists already", c.name)).into(),
                );
            }
            let spec = clone_spec(&src, &c.name, snapshot, c.autostart);
            spec::validate(&spec, &facts)?;
            specs.push(spec);
        }
        // Every disk of every clone, grouped by pool: (disk index, source volume, new volume).
        let mut by_pool: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (i, d) in src.disks.iter().enumerate() {
            if d.kind != DiskKind::Disk {
                continue;
            }
            let source_vol = match snapshot {
                None => d.volume.clone(),
                Some(s) => src.snapshots[s].get(i).cloned().flatten().ok_or_else(|| {
                    VmError::NoSnapshot {
                        vm: source.into(),
                        snapshot: s.into(),
                    }
                })?,
            };
            for c in clones {
                by_pool
                    .entry(d.pool.clone())
                    .or_default()
                    .push((source_vol.clone(), disk_volume(&c.name, i)));
            }
        }
        for d in src.disks.iter().filter(|d| d.kind == DiskKind::Cdrom) {
            if !self.host.is_file(Path::new(&d.path)) {
                return Err(spec::invalid(
                    "disks",
                    format!("the CD-ROM image {} of VM {source} is gone", d.path),
                )
                .into());
            }
        }
        let total = by_pool.values().map(Vec::len).sum::<usize>();
        progress.progress(
            5,
            &format!(
                "cloning {total} disk volume(s) for {} VM(s) in one storage batch",
                clones.len()
            ),
        );
        // The records first: storage names a volume's device path before making it, so
        // libvirt defines the clones while storage makes their volumes.
        let records: Vec<VmRecord> = specs
            .iter()
            .map(|spec| {
                let disks = src
                    .disks
                    .iter()
                    .enumerate()
                    .map(|(i, d)| match d.kind {
                        DiskKind::Disk => {
                            let vol = disk_volume(&spec.name, i);
                            Disk {
                                kind: DiskKind::Disk,
                                bus: d.bus,
                                pool: d.pool.clone(),
                                path: self
                                    .volumes
                                    .path(&d.pool, &vol)
                                    .to_string_lossy()
                                    .into_owned(),
                                origin: Some(match snapshot {
                                    None => d.volume.clone(),
                                    Some(s) => src.snapshots[s]
                                        .get(i)
                                        .cloned()
                                        .flatten()
                                        .unwrap_or_default(),
                                }),
                                volume: vol,
                            }
                        }
                        DiskKind::Cdrom => d.clone(),
                    })
                    .collect();
                new_record(spec, disks)
            })
            .collect();
        let ((volumes, volumes_took), (defined, define_failed, defines_took)) =
            std::thread::scope(|s| {
                let storage = s.spawn(|| {
                    let t0 = Instant::now();
                    (
                        self.clone_volumes(source, &by_pool, clones.len()),
                        t0.elapsed(),
                    )
                });
                let defines = self.define_clones(&records, progress);
                match storage.join() {
                    Ok(v) => (v, defines),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            });
        let t_define = Instant::now();
        let made = match volumes {
            Ok(made) => made,
            Err(e) => {
                // Storage removed what it made; the definitions go too.
                self.undo_clones(&defined, &[]);
                return Err(e);
            }
        };
        let made_pairs: Vec<(String, String)> = made
            .iter()
            .map(|(p, v, _)| (p.clone(), v.clone()))
            .collect();
        if let Some((vm, e)) = define_failed {
            self.undo_clones(&defined, &made_pairs);
            return Err(VmError::DefineClone { vm, source: e });
        }
        // Storage made the volumes where it said it would; were it to differ, the record and
        // the domain follow storage.
        let mut records = records;
        for r in &mut records {
            let mut moved = false;
            for d in r.disks.iter_mut().filter(|d| d.kind == DiskKind::Disk) {
                if let Some((_, _, path)) =
                    made.iter().find(|(p, v, _)| *p == d.pool && *v == d.volume)
                {
                    let path = path.to_string_lossy().into_owned();
                    if d.path != path {
                        tracing::warn!(
                            "clone {}: {} is at {path}, not {}",
                            r.name,
                            d.volume,
                            d.path
                        );
                        d.path = path;
                        moved = true;
                    }
                }
            }
            if moved {
                if let Err(e) = self.hv.define(&self.xml(r)) {
                    self.undo_clones(&defined, &made_pairs);
                    return Err(VmError::DefineClone {
                        vm: r.name.clone(),
                        source: e,
                    });
                }
            }
        }
        let made = made_pairs;
        {
            let mut inner = self.lock();
            let mut next = inner.records.clone();
            for r in &records {
                next.insert(r.name.clone(), r.clone());
            }
            if let Err(e) = self.store.save(&next) {
                drop(inner);
                self.undo_clones(&defined, &made);
                return Err(e.into());
            }
            inner.records = next;
            for r in &records {
                inner.states.insert(r.name.clone(), RunState::ShutOff);
            }
        }
        let define_took = defines_took + t_define.elapsed();
        tracing::info!(
            "cloned {source} as {} VM(s): disk volumes {:.2} s, libvirt definitions (meanwhile) {:.2} s, then records {:.2} s",
            records.len(),
            volumes_took.as_secs_f64(),
            defines_took.as_secs_f64(),
            t_define.elapsed().as_secs_f64()
        );
        progress.progress(100, &format!("created {} VM(s)", records.len()));
        Ok(ClonedVms {
            vms: records
                .iter()
                .map(|r| self.get(&r.name))
                .collect::<Result<_, _>>()?,
            volumes_took,
            define_took,
        })
    }

    /// A batch clone's volumes, one storage batch per pool: `(pool, volume, device path)`
    /// of each made. On a failure the ones made in earlier pools are removed again (storage
    /// removes those of the failed batch itself).
    fn clone_volumes(
        &self,
        source: &str,
        by_pool: &BTreeMap<String, Vec<(String, String)>>,
        vms: usize,
    ) -> Result<Vec<(String, String, PathBuf)>, VmError> {
        let mut made = Vec::new();
        for (pool, pairs) in by_pool {
            match self.volumes.clone_many(pool, pairs) {
                Ok(paths) => {
                    for ((_, vol), path) in pairs.iter().zip(paths) {
                        made.push((pool.clone(), vol.clone(), path));
                    }
                }
                Err(e) => {
                    let made: Vec<(String, String)> =
                        made.into_iter().map(|(p, v, _)| (p, v)).collect();
                    self.remove_volumes(&made);
                    return Err(vol_err(format!(
                        "clone the disks of {vms} VM(s) from {source} on pool {pool}"
                    ))(e));
                }
            }
        }
        Ok(made)
    }

    /// Define every clone in libvirt, in order, until one fails: the names defined, the
    /// failure, and how long it took.
    fn define_clones(
        &self,
        records: &[VmRecord],
        progress: &dyn Progress,
    ) -> (Vec<String>, Option<(String, HvError)>, Duration) {
        let t0 = Instant::now();
        let mut defined = Vec::new();
        for (k, r) in records.iter().enumerate() {
            progress.progress(
                (5 + k * 85 / records.len()) as u8,
                &format!("defining VM {} in libvirt", r.name),
            );
            if let Err(e) = self.hv.define(&self.xml(r)) {
                return (defined, Some((r.name.clone(), e)), t0.elapsed());
            }
            defined.push(r.name.clone());
        }
        (defined, None, t0.elapsed())
    }

    /// Remove volumes made by a failed operation (logged, not returned: the operation's own
    /// error is what the caller needs).
    fn remove_volumes(&self, made: &[(String, String)]) {
        for (pool, vol) in made.iter().rev() {
            if let Err(e) = self.volumes.delete(pool, vol) {
                tracing::error!("cleanup: cannot delete volume {vol} of pool {pool}: {e}");
            }
        }
    }

    /// Undo a failed batch clone: undefine the domains defined, remove the volumes made.
    fn undo_clones(&self, defined: &[String], made: &[(String, String)]) {
        for name in defined {
            if let Err(e) = self.hv.undefine(name) {
                tracing::error!("cleanup: cannot undefine VM {name}: {e}");
            }
        }
        self.remove_volumes(made);
    }

    /// Snapshot every disk of a VM (thin snapshots; a running VM gives a crash-consistent one).
    pub fn snapshot(&self, name: &str, snap: &str) -> Result<VmStatus, VmError> {
        let _g = self.lock_change();
        spec::check_snapshot_name("name", snap)?;
        let r = self.record(name)?;
        if r.snapshots.contains_key(snap) {
            return Err(
                spec::invalid("name", format!("VM {name} has a snapshot {snap} already")).into(),
            );
        }
        let mut vols = Vec::new();
        let mut made: Vec<(String, String)> = Vec::new();
        for (i, d) in r.disks.iter().enumerate() {
            if d.kind != DiskKind::Disk {
                vols.push(None);
                continue;
            }
            let v = snapshot_volume(name, i, snap);
            if let Err(e) = self.volumes.snapshot(&d.pool, &d.volume, &v) {
                for (p, m) in &made {
                    let _ = self.volumes.delete(p, m);
                }
                return Err(vol_err(format!("snapshot {} as {v}", d.volume))(e));
            }
            made.push((d.pool.clone(), v.clone()));
            vols.push(Some(v));
        }
        self.update(name, |r| {
            r.snapshots.insert(snap.to_string(), vols);
        })?;
        self.get(name)
    }

    /// Delete a snapshot's volumes.
    pub fn delete_snapshot(&self, name: &str, snap: &str) -> Result<(), VmError> {
        let _g = self.lock_change();
        let r = self.record(name)?;
        let vols = r
            .snapshots
            .get(snap)
            .cloned()
            .ok_or_else(|| VmError::NoSnapshot {
                vm: name.into(),
                snapshot: snap.into(),
            })?;
        for (i, v) in vols.iter().enumerate() {
            if let (Some(v), Some(d)) = (v, r.disks.get(i)) {
                self.volumes
                    .delete(&d.pool, v)
                    .map_err(vol_err(format!("delete snapshot volume {v}")))?;
            }
        }
        self.update(name, |r| {
            r.snapshots.remove(snap);
        })
    }

    /// Write a small raw image at the start of a shut-off VM's disk and flush it (a boot
    /// loader, or the lab's test guest). Large images belong on a share.
    pub fn write_image(&self, name: &str, disk: usize, image: &[u8]) -> Result<(), VmError> {
        let r = self.record(name)?;
        self.require_off(name, "shut it down before writing its disk")?;
        let d = r
            .disks
            .get(disk)
            .filter(|d| d.kind == DiskKind::Disk)
            .ok_or_else(|| spec::invalid("disk", format!("VM {name} has no disk number {disk}")))?;
        // A clone is made inactive (its block device appears on activation).
        if !self.host.exists(Path::new(&d.path)) {
            self.volumes
                .activate(&d.pool, &d.volume)
                .map_err(vol_err(format!("activate volume {}", d.volume)))?;
        }
        write_at_start(Path::new(&d.path), image).map_err(|source| VmError::Image {
            path: d.path.clone(),
            source,
        })
    }

    /// Console output after `cursor` (or its recent tail).
    pub fn console(
        &self,
        name: &str,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<u8>, Cursor), VmError> {
        self.record(name)?;
        console::read_from(
            &console::console_path(&self.cfg.console_dir, name),
            cursor,
            1 << 20,
        )
        .map_err(|source| VmError::Console {
            vm: name.into(),
            source,
        })
    }
}

/// What [`Vms::shutdown_all`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeStopReport {
    /// VMs that powered off by themselves after the ACPI request.
    pub graceful: Vec<String>,
    /// VMs still running at the timeout, then powered off.
    pub forced: Vec<String>,
}

/// The VMs a batch clone made, and where its time went.
#[derive(Debug, Clone)]
pub struct ClonedVms {
    pub vms: Vec<VmStatus>,
    /// Making every disk volume (the storage batches).
    pub volumes_took: Duration,
    /// Defining the VMs in libvirt (while storage made the volumes) and then storing their
    /// records.
    pub define_took: Duration,
}

/// One clone of a batch ([`Vms::clone_vms`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClone {
    pub name: String,
    /// Autostart of the new VM; the source's when absent.
    #[serde(default)]
    pub autostart: Option<bool>,
}

/// The spec of a clone `new_name` of VM `src` (of its snapshot `snapshot`): the same shape,
/// disks cloned, CD-ROMs kept, new MACs.
fn clone_spec(
    src: &VmRecord,
    new_name: &str,
    snapshot: Option<&str>,
    autostart: Option<bool>,
) -> VmSpec {
    VmSpec {
        name: new_name.to_string(),
        vcpus: src.vcpus,
        memory_mib: src.memory_mib,
        disks: src
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| spec::DiskSpec {
                bus: d.bus,
                source: match d.kind {
                    DiskKind::Disk => DiskSource::Clone {
                        vm: src.name.clone(),
                        disk: i,
                        snapshot: snapshot.map(str::to_string),
                    },
                    DiskKind::Cdrom => {
                        let (share, file) =
                            d.volume.split_once('/').unwrap_or((d.volume.as_str(), ""));
                        DiskSource::Iso {
                            pool: d.pool.clone(),
                            share: share.to_string(),
                            file: file.to_string(),
                        }
                    }
                },
            })
            .collect(),
        nics: src
            .nics
            .iter()
            .map(|n| spec::NicSpec {
                bridge: n.bridge.clone(),
                mac: None,
            })
            .collect(),
        boot: src.boot.clone(),
        cpu_model: Some(src.cpu_model.clone()),
        machine: src.machine,
        autostart: autostart.unwrap_or(src.autostart),
    }
}

/// The record of a new VM from its validated spec and the disks made for it (new UUID, MACs
/// for NICs without one, default boot order and CPU model).
fn new_record(spec: &VmSpec, disks: Vec<Disk>) -> VmRecord {
    VmRecord {
        name: spec.name.clone(),
        uuid: crate::ids::new_uuid(),
        vcpus: spec.vcpus,
        memory_mib: spec.memory_mib,
        disks,
        nics: spec
            .nics
            .iter()
            .map(|n| Nic {
                bridge: n.bridge.clone(),
                mac: n
                    .mac
                    .clone()
                    .map(|m| m.to_ascii_lowercase())
                    .unwrap_or_else(crate::ids::new_mac),
            })
            .collect(),
        boot: if spec.boot.is_empty() {
            vec![BootDevice::Disk, BootDevice::Cdrom]
        } else {
            spec.boot.clone()
        },
        cpu_model: spec
            .cpu_model
            .clone()
            .unwrap_or_else(|| DEFAULT_CPU_MODEL.to_string()),
        machine: spec.machine,
        autostart: spec.autostart,
        snapshots: BTreeMap::new(),
    }
}

fn write_at_start(path: &Path, image: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(image)?;
    f.sync_all()
}

/// Milliseconds since the Unix epoch now.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A state's API name.
pub fn state_name(s: RunState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}

/// An error and its sources on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{HvError, NodeCapacity};
    use crate::volumes::double::RecordingVolumes;
    use cairn_core::alert::NoProgress;
    use std::collections::BTreeSet;

    /// A hypervisor double: domains in a map; `ignores_acpi` keeps guests running on
    /// shutdown, like the lab's test guest.
    #[derive(Default)]
    struct FakeHv {
        domains: Mutex<BTreeMap<String, (String, RunState)>>,
        calls: Mutex<Vec<String>>,
        ignores_acpi: bool,
        /// Refuse to define this domain.
        fail_define: Mutex<Option<String>>,
        /// The event subscriber, if subscribed.
        events: Mutex<Option<std::sync::mpsc::Sender<HvEvent>>>,
        /// Refuse this many subscriptions (libvirtd restarting).
        refuse_subscribe: Mutex<u32>,
        /// CPU time (ns) each domain reports in a sample.
        cpu_ns: Mutex<BTreeMap<String, u64>>,
        /// libvirt's id of each running domain (a new one every start).
        run_id: Mutex<BTreeMap<String, u32>>,
        /// How long a power-off takes, and how many run at once now / at most.
        destroy_takes: Mutex<Duration>,
        destroying: std::sync::atomic::AtomicUsize,
        most_destroying: std::sync::atomic::AtomicUsize,
    }

    impl FakeHv {
        fn set(&self, name: &str, s: RunState) -> Result<(), HvError> {
            let mut d = self.domains.lock().unwrap();
            let e = d
                .get_mut(name)
                .ok_or_else(|| HvError::NotDefined(name.into()))?;
            e.1 = s;
            Ok(())
        }
        fn log(&self, l: String) {
            self.calls.lock().unwrap().push(l);
        }
        /// Change a domain's state behind the service's back (like `virsh destroy`) and
        /// send the event libvirt would.
        fn out_of_band(&self, name: &str, s: RunState, event: Lifecycle) {
            self.set(name, s).unwrap();
            self.send(HvEvent::Domain {
                name: name.into(),
                event,
            });
        }
        fn send(&self, ev: HvEvent) {
            let tx = self.events.lock().unwrap().clone();
            tx.expect("not subscribed").send(ev).unwrap();
        }
        fn count(&self, call: &str) -> usize {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| *c == call)
                .count()
        }
    }

    impl Hypervisor for FakeHv {
        fn capacity(&self) -> Result<NodeCapacity, HvError> {
            Ok(NodeCapacity {
                cpus: 2,
                memory_mib: 2048,
            })
        }
        fn define(&self, xml: &str) -> Result<(), HvError> {
            let name = xml
                .split("<name>")
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_string();
            self.log(format!("define {name}"));
            if self.fail_define.lock().unwrap().as_deref() == Some(name.as_str()) {
                return Err(HvError::NotDefined(name));
            }
            let mut d = self.domains.lock().unwrap();
            let state = d.get(&name).map(|e| e.1).unwrap_or(RunState::ShutOff);
            d.insert(name, (xml.to_string(), state));
            Ok(())
        }
        fn undefine(&self, name: &str) -> Result<(), HvError> {
            self.log(format!("undefine {name}"));
            self.domains
                .lock()
                .unwrap()
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| HvError::NotDefined(name.into()))
        }
        fn start(&self, name: &str) -> Result<(), HvError> {
            self.log(format!("start {name}"));
            *self.run_id.lock().unwrap().entry(name.into()).or_insert(0) += 1;
            self.set(name, RunState::Running)
        }
        fn shutdown(&self, name: &str) -> Result<(), HvError> {
            self.log(format!("shutdown {name}"));
            if self.ignores_acpi {
                Ok(())
            } else {
                self.set(name, RunState::ShutOff)
            }
        }
        fn destroy(&self, name: &str) -> Result<(), HvError> {
            use std::sync::atomic::Ordering::SeqCst;
            self.log(format!("destroy {name}"));
            let now = self.destroying.fetch_add(1, SeqCst) + 1;
            self.most_destroying.fetch_max(now, SeqCst);
            let takes = *self.destroy_takes.lock().unwrap();
            std::thread::sleep(takes);
            self.destroying.fetch_sub(1, SeqCst);
            self.set(name, RunState::ShutOff)
        }
        fn sample(
            &self,
            name: &str,
            disk_paths: &[String],
        ) -> Result<Option<DomainSample>, HvError> {
            let d = self.domains.lock().unwrap();
            let (_, state) = d
                .get(name)
                .ok_or_else(|| HvError::NotDefined(name.into()))?;
            if !state.is_active() {
                return Ok(None);
            }
            let disks = disk_paths
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let io = crate::hypervisor::DiskIo {
                        read_bytes: 512 * (i as u64 + 1),
                        written_bytes: 4096,
                    };
                    (p.clone(), io)
                })
                .collect();
            Ok(Some(DomainSample {
                run_id: self.run_id.lock().unwrap().get(name).copied(),
                cpu_time_ns: self.cpu_ns.lock().unwrap().get(name).copied().unwrap_or(0),
                vcpus: 2,
                memory_kib: 32 * 1024,
                rss_kib: Some(40 * 1024),
                disks,
            }))
        }
        fn reboot(&self, name: &str) -> Result<(), HvError> {
            self.log(format!("reboot {name}"));
            Ok(())
        }
        fn reset(&self, name: &str) -> Result<(), HvError> {
            self.log(format!("reset {name}"));
            Ok(())
        }
        fn states(&self) -> Result<BTreeMap<String, RunState>, HvError> {
            Ok(self
                .domains
                .lock()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.1))
                .collect())
        }
        fn subscribe(&self, tx: std::sync::mpsc::Sender<HvEvent>) -> Result<(), HvError> {
            let mut refuse = self.refuse_subscribe.lock().unwrap();
            if *refuse > 0 {
                *refuse -= 1;
                self.log("subscribe refused".into());
                return Err(HvError::NotDefined("libvirtd restarting".into()));
            }
            self.log("subscribe".into());
            *self.events.lock().unwrap() = Some(tx);
            Ok(())
        }
    }

    /// Wait up to `within` for `cond`, naming what was awaited on failure.
    fn wait_until(what: &str, within: Duration, cond: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !cond() {
            assert!(t0.elapsed() < within, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[derive(Default)]
    struct FakeHost(Arc<Mutex<bool>>);
    impl Host for FakeHost {
        fn exists(&self, _: &Path) -> bool {
            *self.0.lock().unwrap()
        }
        fn bridges(&self) -> BTreeSet<String> {
            ["br0".to_string()].into()
        }
        fn accelerator(&self) -> Accelerator {
            Accelerator::Tcg
        }
        fn is_file(&self, p: &Path) -> bool {
            p.ends_with("debian.iso")
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        hv: Arc<FakeHv>,
        vols: Arc<RecordingVolumes>,
        present: Arc<Mutex<bool>>,
        vms: Vms,
    }

    fn fixture(ignores_acpi: bool) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let hv = Arc::new(FakeHv {
            ignores_acpi,
            ..Default::default()
        });
        let vols = Arc::new(RecordingVolumes::with_pool("tank"));
        let present = Arc::new(Mutex::new(false));
        let vms = Vms::open(
            VmsConfig {
                state_dir: dir.path().to_path_buf(),
                console_dir: dir.path().join("console"),
                emulator: "/usr/bin/qemu-system-x86_64".into(),
            },
            hv.clone(),
            vols.clone(),
            Arc::new(FakeHost(present.clone())),
        )
        .unwrap();
        Fixture {
            _dir: dir,
            hv,
            vols,
            present,
            vms,
        }
    }

    fn spec(name: &str) -> VmSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "vcpus": 1, "memory_mib": 32, "machine": "pc", "autostart": true,
            "disks": [{"source": "new", "pool": "tank", "size_bytes": 10737418240u64, "bus": "ide"}],
            "nics": [{"bridge": "br0"}],
        }))
        .unwrap()
    }

    #[test]
    fn create_makes_a_volume_stores_and_defines() {
        let f = fixture(false);
        let vm = f.vms.create(&spec("g"), &NoProgress).unwrap();
        assert_eq!(vm.state, RunState::ShutOff);
        assert_eq!(vm.record.disks[0].path, "/dev/cairn-tank/vol-g-disk0");
        assert_eq!(
            *f.vols.calls.lock().unwrap(),
            ["create tank g-disk0 10737418240"]
        );
        let xml = f.hv.domains.lock().unwrap()["g"].0.clone();
        assert!(
            xml.contains("<source dev='/dev/cairn-tank/vol-g-disk0'/>"),
            "{xml}"
        );
        // Stored: a new service on the same state dir sees it, with the same MAC.
        let again = Vms::open(
            f.vms.cfg.clone(),
            f.hv.clone(),
            f.vols.clone(),
            Arc::new(FakeHost::default()),
        )
        .unwrap();
        assert_eq!(again.get("g").unwrap().record.nics, vm.record.nics);
        // A second VM of the same name is refused, naming the field, and changes nothing.
        let e = f.vms.create(&spec("g"), &NoProgress).unwrap_err();
        assert!(
            matches!(e, VmError::Invalid(ref i) if i.field == "name"),
            "{e:?}"
        );
        assert_eq!(f.vols.calls.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_failed_create_removes_what_it_made() {
        let f = fixture(false);
        let mut s = spec("g");
        s.disks.push(s.disks[0].clone());
        *f.vols.fail.lock().unwrap() = Some("create tank g-disk1".into());
        let e = f.vms.create(&s, &NoProgress).unwrap_err();
        assert!(matches!(e, VmError::Volume { .. }), "{e:?}");
        assert!(f.vols.names().is_empty(), "{:?}", f.vols.names());
        assert!(f.vms.list().is_empty());
        assert!(f.hv.domains.lock().unwrap().is_empty());
    }

    #[test]
    fn shutdown_times_out_then_forces_off() {
        let f = fixture(true);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vms.start("g").unwrap();
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Running);
        let out = f
            .vms
            .shutdown("g", Duration::from_millis(600), &NoProgress)
            .unwrap();
        assert_eq!(out, ShutdownOutcome::Forced);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::ShutOff);
        let calls = f.hv.calls.lock().unwrap().clone();
        assert!(
            calls.ends_with(&["shutdown g".to_string(), "destroy g".to_string()]),
            "{calls:?}"
        );
        assert_eq!(
            f.vms
                .shutdown("g", Duration::from_secs(1), &NoProgress)
                .unwrap(),
            ShutdownOutcome::AlreadyOff
        );
    }

    #[test]
    fn node_stop_asks_every_running_vm_then_powers_off_the_rest() {
        let f = fixture(true);
        for n in ["a", "b", "c"] {
            f.vms.create(&spec(n), &NoProgress).unwrap();
        }
        f.vms.start("a").unwrap();
        f.vms.start("b").unwrap();
        f.hv.calls.lock().unwrap().clear();
        let t0 = Instant::now();
        let r = f.vms.shutdown_all(Duration::from_millis(700));
        assert!(t0.elapsed() >= Duration::from_millis(700));
        assert_eq!(r.forced, ["a", "b"]);
        assert!(r.graceful.is_empty());
        // The power-offs run at once, so they come in any order.
        let mut calls = f.hv.calls.lock().unwrap().clone();
        calls[2..].sort();
        assert_eq!(
            calls,
            ["shutdown a", "shutdown b", "destroy a", "destroy b"]
        );
        assert_eq!(f.vms.get("a").unwrap().state, RunState::ShutOff);
        // Nothing running: nothing to do, no waiting.
        f.hv.calls.lock().unwrap().clear();
        let r = f.vms.shutdown_all(Duration::from_secs(60));
        assert_eq!(r, NodeStopReport::default());
        assert!(f.hv.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn node_stop_powers_off_the_vms_left_all_at_once() {
        use std::sync::atomic::Ordering::SeqCst;
        let f = fixture(true);
        let names = ["a", "b", "c", "d", "e"];
        for n in names {
            f.vms.create(&spec(n), &NoProgress).unwrap();
            f.vms.start(n).unwrap();
        }
        *f.hv.destroy_takes.lock().unwrap() = Duration::from_millis(300);
        let t0 = Instant::now();
        let r = f.vms.shutdown_all(Duration::from_millis(100));
        let took = t0.elapsed();
        // One at a time would take 5 × 0.3 s after the 0.1 s timeout.
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert_eq!(f.hv.most_destroying.load(SeqCst), names.len());
        assert_eq!(r.forced, names);
        assert!(r.graceful.is_empty());
        for n in names {
            assert_eq!(f.hv.count(&format!("destroy {n}")), 1);
            assert_eq!(f.vms.get(n).unwrap().state, RunState::ShutOff);
        }
    }

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

    #[test]
    fn stats_are_sampled_for_running_vms_only() {
        let f = fixture(false);
        f.vms.create(&spec("a"), &NoProgress).unwrap();
        f.vms.create(&spec("b"), &NoProgress).unwrap();
        f.vms.start("a").unwrap();
        assert!(f.vms.poll());
        let t0 = Instant::now();
        f.hv.cpu_ns
            .lock()
            .unwrap()
            .insert("a".into(), 1_000_000_000);
        f.vms.sample_stats(t0, 1_000);
        let st = f.vms.get("a").unwrap().stats.expect("a runs");
        // The first sample has nothing to compare with.
        assert_eq!(st.cpu_percent, None);
        assert_eq!((st.vcpus, st.memory_bytes), (2, 32 << 20));
        assert_eq!(st.memory_rss_bytes, Some(40 << 20));
        assert_eq!(
            st.disks,
            [DiskStats {
                index: 0,
                read_bytes: 512,
                written_bytes: 4096
            }]
        );
        assert_eq!(st.sampled_at_unix_ms, 1_000);
        // 1 s of CPU over 2 s of wall time on 2 vCPUs: 25 %.
        f.hv.cpu_ns
            .lock()
            .unwrap()
            .insert("a".into(), 2_000_000_000);
        f.vms.sample_stats(t0 + Duration::from_secs(2), 3_000);
        let list = f.vms.list();
        let a = list.iter().find(|v| v.record.name == "a").unwrap();
        assert_eq!(a.stats.as_ref().and_then(|s| s.cpu_percent), Some(25.0));
        let b = list.iter().find(|v| v.record.name == "b").unwrap();
        assert_eq!(b.stats, None, "shut off: no live stats");
        // It stops: no stats at once (before the next sample), and none after it.
        f.vms.force_off("a").unwrap();
        assert_eq!(f.vms.get("a").unwrap().stats, None);
        f.vms.sample_stats(t0 + Duration::from_secs(4), 5_000);
        f.vms.start("a").unwrap();
        // Started again: the old run's counters are not compared with the new run's.
        f.hv.cpu_ns
            .lock()
            .unwrap()
            .insert("a".into(), 3_000_000_000);
        f.vms.sample_stats(t0 + Duration::from_secs(6), 7_000);
        let st = f.vms.get("a").unwrap().stats.expect("a runs again");
        assert_eq!(st.cpu_percent, None);
        // Restarted between two samples (no sample saw it off): its CPU time is the new
        // run's, so it is not compared either.
        f.vms.force_off("a").unwrap();
        f.vms.start("a").unwrap();
        f.hv.cpu_ns
            .lock()
            .unwrap()
            .insert("a".into(), 3_500_000_000);
        f.vms.sample_stats(t0 + Duration::from_secs(8), 9_000);
        assert_eq!(f.vms.get("a").unwrap().stats.unwrap().cpu_percent, None);
        f.hv.cpu_ns
            .lock()
            .unwrap()
            .insert("a".into(), 3_700_000_000);
        f.vms.sample_stats(t0 + Duration::from_secs(10), 11_000);
        assert_eq!(
            f.vms.get("a").unwrap().stats.unwrap().cpu_percent,
            Some(5.0)
        );
        // In the API's JSON.
        let v = serde_json::to_value(f.vms.get("b").unwrap()).unwrap();
        assert!(
            v["stats"].is_null() && v.get("disk_allocated_bytes").is_some(),
            "{v}"
        );
    }

    #[test]
    fn disk_allocation_sums_the_vms_volumes() {
        let f = fixture(false);
        let mut s = spec("a");
        s.disks.push(s.disks[0].clone());
        f.vms.create(&s, &NoProgress).unwrap();
        f.vms.create(&spec("b"), &NoProgress).unwrap();
        assert_eq!(
            f.vms.get("a").unwrap().disk_allocated_bytes,
            None,
            "not read yet"
        );
        // The double reports no data in use; give the volumes some.
        struct Used(Arc<RecordingVolumes>);
        impl Volumes for Used {
            fn pools(&self) -> Result<Vec<String>, VolumeError> {
                self.0.pools()
            }
            fn create(&self, p: &str, n: &str, s: u64) -> Result<PathBuf, VolumeError> {
                self.0.create(p, n, s)
            }
            fn clone_volume(&self, p: &str, s: &str, n: &str) -> Result<PathBuf, VolumeError> {
                self.0.clone_volume(p, s, n)
            }
            fn clone_many(
                &self,
                p: &str,
                c: &[(String, String)],
            ) -> Result<Vec<PathBuf>, VolumeError> {
                self.0.clone_many(p, c)
            }
            fn path(&self, p: &str, n: &str) -> PathBuf {
                self.0.path(p, n)
            }
            fn snapshot(&self, p: &str, s: &str, n: &str) -> Result<(), VolumeError> {
                self.0.snapshot(p, s, n)
            }
            fn activate(&self, p: &str, n: &str) -> Result<(), VolumeError> {
                self.0.activate(p, n)
            }
            fn delete(&self, p: &str, n: &str) -> Result<(), VolumeError> {
                self.0.delete(p, n)
            }
            fn usage(&self, p: &str) -> Result<Vec<crate::VolumeUse>, VolumeError> {
                if self.0.fail.lock().unwrap().as_deref() == Some("usage") {
                    return Err(VolumeError("injected: usage".into()));
                }
                Ok(self
                    .0
                    .usage(p)?
                    .into_iter()
                    .map(|v| crate::VolumeUse {
                        used_bytes: if v.name.ends_with("disk1") { 7 } else { 100 },
                        ..v
                    })
                    .collect())
            }
            fn share_path(&self, p: &str, s: &str) -> PathBuf {
                self.0.share_path(p, s)
            }
        }
        let vms = Vms::open(
            f.vms.cfg.clone(),
            f.hv.clone(),
            Arc::new(Used(f.vols.clone())),
            Arc::new(FakeHost::default()),
        )
        .unwrap();
        vms.refresh_disk_usage();
        assert_eq!(vms.get("a").unwrap().disk_allocated_bytes, Some(107));
        assert_eq!(vms.get("b").unwrap().disk_allocated_bytes, Some(100));
        // The pool cannot be read: unknown, not 0.
        *f.vols.fail.lock().unwrap() = Some("usage".into());
        vms.refresh_disk_usage();
        assert_eq!(vms.get("a").unwrap().disk_allocated_bytes, None);
    }

    #[test]
    fn node_stop_of_cooperative_guests_does_not_wait_for_the_timeout() {
        let f = fixture(false);
        f.vms.create(&spec("a"), &NoProgress).unwrap();
        f.vms.start("a").unwrap();
        let t0 = Instant::now();
        let r = f.vms.shutdown_all(Duration::from_secs(30));
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!((r.graceful, r.forced), (vec!["a".to_string()], vec![]));
    }

    #[test]
    fn shutdown_of_a_cooperative_guest_is_graceful() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vms.start("g").unwrap();
        let out = f
            .vms
            .shutdown("g", Duration::from_secs(5), &NoProgress)
            .unwrap();
        assert_eq!(out, ShutdownOutcome::Graceful);
        assert!(!f
            .hv
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("destroy")));
    }

    #[test]
    fn clones_are_cow_clones_with_new_macs() {
        let f = fixture(false);
        let g = f.vms.create(&spec("g"), &NoProgress).unwrap();
        let c = f.vms.clone_vm("g", "g1", None, None, &NoProgress).unwrap();
        assert!(f
            .vols
            .calls
            .lock()
            .unwrap()
            .contains(&"clone_many tank g-disk0>g1-disk0".to_string()));
        assert_eq!(c.record.disks[0].origin.as_deref(), Some("g-disk0"));
        assert_ne!(c.record.nics[0].mac, g.record.nics[0].mac);
        assert_eq!(c.record.nics[0].bridge, "br0");
        assert!(c.record.autostart);
        // Snapshot, then restore it as a new VM.
        f.vms.snapshot("g", "s1").unwrap();
        assert!(f.vols.names().contains(&"g-disk0-snap-s1".to_string()));
        let r = f
            .vms
            .clone_vm("g", "r1", Some("s1"), Some(false), &NoProgress)
            .unwrap();
        assert_eq!(r.record.disks[0].origin.as_deref(), Some("g-disk0-snap-s1"));
        assert!(!r.record.autostart);
        let e = f
            .vms
            .clone_vm("g", "r2", Some("nope"), None, &NoProgress)
            .unwrap_err();
        assert!(matches!(e, VmError::NoSnapshot { .. }), "{e:?}");
    }

    fn batch(names: &[&str]) -> Vec<NewClone> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| NewClone {
                name: n.to_string(),
                autostart: (i == 0).then_some(false),
            })
            .collect()
    }

    #[test]
    fn a_batch_clone_is_one_storage_batch_and_one_store_write() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vols.calls.lock().unwrap().clear();
        let made = f
            .vms
            .clone_vms("g", &batch(&["c1", "c2", "c3"]), None, &NoProgress)
            .unwrap();
        let made = made.vms;
        assert_eq!(made.len(), 3);
        assert_eq!(
            *f.vols.calls.lock().unwrap(),
            ["clone_many tank g-disk0>c1-disk0 g-disk0>c2-disk0 g-disk0>c3-disk0"]
        );
        // Autostart per clone, the source's by default.
        assert!(!made[0].record.autostart && made[1].record.autostart);
        let macs: BTreeSet<_> = made.iter().map(|v| v.record.nics[0].mac.clone()).collect();
        assert_eq!(macs.len(), 3);
        for c in ["c1", "c2", "c3"] {
            assert!(f.hv.domains.lock().unwrap().contains_key(c), "{c}");
        }
        // All three are in the store: a reopened service lists them.
        let again = Vms::open(
            f.vms.cfg.clone(),
            f.hv.clone(),
            f.vols.clone(),
            Arc::new(FakeHost::default()),
        )
        .unwrap();
        assert_eq!(again.list().len(), 4);
    }

    #[test]
    fn a_batch_with_a_bad_or_taken_name_changes_nothing() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vols.calls.lock().unwrap().clear();
        let field = |e: VmError| match e {
            VmError::Invalid(i) => i.field,
            e => panic!("{e:?}"),
        };
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "c1"]), None, &NoProgress)
            .unwrap_err();
        assert_eq!(field(e), "clones[1].name");
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "g"]), None, &NoProgress)
            .unwrap_err();
        assert_eq!(field(e), "clones[1].name");
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "Bad!"]), None, &NoProgress)
            .unwrap_err();
        assert_eq!(field(e), "clones[1].name");
        let e = f.vms.clone_vms("g", &[], None, &NoProgress).unwrap_err();
        assert_eq!(field(e), "clones");
        assert!(f.vols.calls.lock().unwrap().is_empty());
        assert_eq!(f.vms.list().len(), 1);
    }

    #[test]
    fn a_failed_batch_clone_names_the_clone_and_leaves_nothing() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        *f.hv.fail_define.lock().unwrap() = Some("c2".into());
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "c2", "c3"]), None, &NoProgress)
            .unwrap_err();
        assert!(chain(&e).contains("clone c2"), "{}", chain(&e));
        assert_eq!(f.vols.names(), ["g-disk0"]);
        assert_eq!(
            f.hv.domains.lock().unwrap().keys().collect::<Vec<_>>(),
            ["g"]
        );
        assert_eq!(f.vms.list().len(), 1);
        // A storage failure: the batch is refused as a whole and no VM is made.
        *f.hv.fail_define.lock().unwrap() = None;
        *f.vols.fail.lock().unwrap() = Some("clone_many".into());
        let e = f
            .vms
            .clone_vms("g", &batch(&["c1", "c2"]), None, &NoProgress)
            .unwrap_err();
        assert!(matches!(e, VmError::Volume { .. }), "{e:?}");
        assert_eq!(f.vms.list().len(), 1);
        assert_eq!(f.vols.names(), ["g-disk0"]);
        // The clones were defined while storage worked, and undefined again.
        let calls = f.hv.calls.lock().unwrap().clone();
        assert!(
            calls.ends_with(&[
                "define c1".to_string(),
                "define c2".to_string(),
                "undefine c1".to_string(),
                "undefine c2".to_string()
            ]),
            "{calls:?}"
        );
        assert_eq!(
            f.hv.domains.lock().unwrap().keys().collect::<Vec<_>>(),
            ["g"]
        );
    }

    #[test]
    fn memory_is_admitted_against_the_node() {
        let f = fixture(false);
        let mut s = spec("big");
        s.memory_mib = 1600;
        f.vms.create(&s, &NoProgress).unwrap();
        let mut s2 = spec("big2");
        s2.memory_mib = 1600;
        f.vms.create(&s2, &NoProgress).unwrap();
        f.vms.start("big").unwrap();
        let e = f.vms.start("big2").unwrap_err();
        assert!(
            matches!(
                e,
                VmError::NoMemory {
                    need_mib: 1600,
                    free_mib: 192,
                    ..
                }
            ),
            "{e:?}"
        );
        let r = f.vms.resources();
        assert_eq!(
            (r.memory_running_mib, r.memory_defined_mib, r.vcpus_running),
            (1600, 3200, 1)
        );
        assert_eq!(r.accelerator, Accelerator::Tcg);
    }

    #[test]
    fn delete_needs_off_and_removes_disks_on_request() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vms.snapshot("g", "s1").unwrap();
        f.vms.create(&spec("k"), &NoProgress).unwrap();
        f.vms.start("g").unwrap();
        assert!(matches!(
            f.vms.delete("g", true),
            Err(VmError::WrongState { .. })
        ));
        f.vms.force_off("g").unwrap();
        f.vms.delete("g", true).unwrap();
        f.vms.delete("k", false).unwrap();
        assert_eq!(f.vols.names(), ["k-disk0"]);
        assert!(f.vms.list().is_empty());
        assert!(matches!(f.vms.get("g"), Err(VmError::NotFound(_))));
    }

    #[test]
    fn autostart_defines_missing_domains_and_starts_them() {
        let f = fixture(false);
        f.vms.create(&spec("a"), &NoProgress).unwrap();
        let mut s = spec("b");
        s.autostart = false;
        f.vms.create(&s, &NoProgress).unwrap();
        // libvirt lost its definitions (e.g. a fresh /var/lib/libvirt), and the node just
        // booted: storage has not assembled the pool yet.
        f.hv.domains.lock().unwrap().clear();
        f.vols.pools.lock().unwrap().clear();
        f.vms.poll();
        let mut pending = f.vms.reconcile();
        assert_eq!(pending, ["a"]);
        // Its pool is not there yet: it waits.
        assert!(f.vms.autostart_ready(&mut pending).is_empty());
        assert_eq!(pending, ["a"]);
        // The pool is assembled, the clone's device is not active: start activates it.
        f.vols.pools.lock().unwrap().push("tank".into());
        assert_eq!(f.vms.autostart_ready(&mut pending), ["a"]);
        assert!(pending.is_empty());
        assert!(f
            .vols
            .calls
            .lock()
            .unwrap()
            .contains(&"activate tank a-disk0".to_string()));
        let states = f.hv.states().unwrap();
        assert_eq!(states.get("a"), Some(&RunState::Running));
        assert_eq!(states.get("b"), Some(&RunState::ShutOff));
        // A device that exists is not activated again.
        *f.present.lock().unwrap() = true;
        f.vms.start("b").unwrap();
        let calls = f.vols.calls.lock().unwrap().clone();
        assert!(
            !calls.iter().any(|c| c.starts_with("activate tank b")),
            "{calls:?}"
        );
    }

    #[test]
    fn iso_must_exist_on_the_share() {
        let f = fixture(false);
        let mut s = spec("g");
        s.disks.push(serde_json::from_value(serde_json::json!(
            {"source": "iso", "pool": "tank", "share": "isos", "file": "missing.iso", "bus": "ide"}
        )).unwrap());
        let e = f.vms.create(&s, &NoProgress).unwrap_err();
        assert!(
            matches!(e, VmError::Invalid(ref i) if i.field == "disks[1].file"),
            "{e:?}"
        );
        assert!(f.vols.names().is_empty());
        s.disks[1] = serde_json::from_value(serde_json::json!(
            {"source": "iso", "pool": "tank", "share": "isos", "file": "debian.iso", "bus": "ide"}
        ))
        .unwrap();
        let vm = f.vms.create(&s, &NoProgress).unwrap();
        assert_eq!(
            vm.record.disks[1].path,
            "/var/lib/cairn/shares/tank/isos/debian.iso"
        );
    }

    #[test]
    fn images_are_written_to_the_disk_start() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        let dev = f._dir.path().join("dev");
        std::fs::write(&dev, vec![0u8; 4096]).unwrap();
        f.vms
            .update("g", |r| r.disks[0].path = dev.to_string_lossy().into())
            .unwrap();
        f.vms.write_image("g", 0, b"BOOT").unwrap();
        // The (fake) host reports the device missing, so it was activated first.
        assert!(f
            .vols
            .calls
            .lock()
            .unwrap()
            .contains(&"activate tank g-disk0".to_string()));
        let got = std::fs::read(&dev).unwrap();
        assert_eq!((&got[..4], got.len()), (&b"BOOT"[..], 4096));
        assert!(matches!(
            f.vms.write_image("g", 3, b"x"),
            Err(VmError::Invalid(_))
        ));
        f.vms.start("g").unwrap();
        assert!(matches!(
            f.vms.write_image("g", 0, b"x"),
            Err(VmError::WrongState { .. })
        ));
    }

    #[test]
    fn events_update_the_state_at_once() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        f.vms.apply_event("g", Lifecycle::Started);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Running);
        f.vms.apply_event("g", Lifecycle::Suspended);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Paused);
        // A redefinition (every start does one) keeps the state.
        f.vms.apply_event("g", Lifecycle::Defined);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Paused);
        f.vms.apply_event("g", Lifecycle::Stopped);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::ShutOff);
        let r = f.vms.resources();
        assert_eq!(r.memory_running_mib, 0);
        f.vms.apply_event("g", Lifecycle::Crashed);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Crashed);
        // An event that does not say the state: it is read from libvirt.
        f.hv.set("g", RunState::Running).unwrap();
        f.vms.apply_event("g", Lifecycle::Other(42));
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Running);
        assert_eq!(f.vms.resources().memory_running_mib, 32);
        // A domain undefined behind our back: its state is unknown until redefined.
        f.vms.apply_event("g", Lifecycle::Undefined);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::Unknown);
        f.vms.apply_event("g", Lifecycle::Defined);
        assert_eq!(f.vms.get("g").unwrap().state, RunState::ShutOff);
        // Events of domains we do not manage are kept out of the API (not listed).
        f.vms.apply_event("virsh-made", Lifecycle::Started);
        assert_eq!(f.vms.list().len(), 1);
    }

    #[test]
    fn the_monitor_follows_events_and_resubscribes_after_libvirtd_restarts() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let fast = Duration::from_secs(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                f.vms
                    .monitor_until(&|| stop.load(std::sync::atomic::Ordering::SeqCst))
            });
            wait_until("first subscription", fast, || f.hv.count("subscribe") == 1);
            // The full read after subscribing, then autostart of `g` (its pool is there).
            wait_until("autostart of g", fast, || {
                f.vms.get("g").unwrap().state == RunState::Running
            });
            // Powered off behind our back: the event alone updates the state, long before
            // the safety-net poll.
            let t0 = Instant::now();
            f.hv.out_of_band("g", RunState::ShutOff, Lifecycle::Stopped);
            wait_until("shut_off from the event", fast, || {
                f.vms.get("g").unwrap().state == RunState::ShutOff
            });
            assert!(t0.elapsed() < SAFETY_POLL_INTERVAL / 10);
            f.hv.out_of_band("g", RunState::Running, Lifecycle::Started);
            wait_until("running from the event", fast, || {
                f.vms.get("g").unwrap().state == RunState::Running
            });
            // libvirtd restarts: the connection is lost, the next two subscriptions are
            // refused, and a change made meanwhile (no event) shows after the full read that
            // follows the resubscription.
            *f.hv.refuse_subscribe.lock().unwrap() = 2;
            f.hv.set("g", RunState::Paused).unwrap();
            f.hv.send(HvEvent::Lost);
            wait_until("resubscribed after two refusals", fast * 2, || {
                f.hv.count("subscribe") == 2
            });
            assert_eq!(f.hv.count("subscribe refused"), 2);
            wait_until("state read after resubscribing", fast, || {
                f.vms.get("g").unwrap().state == RunState::Paused
            });
            // Events flow again on the new subscription.
            f.hv.out_of_band("g", RunState::ShutOff, Lifecycle::Stopped);
            wait_until("shut_off after the restart", fast, || {
                f.vms.get("g").unwrap().state == RunState::ShutOff
            });
            // Autostart ran once only, not again after the reconnection.
            assert_eq!(f.hv.count("start g"), 1);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    }
}
