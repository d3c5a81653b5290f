//! The VM service: creates, starts, stops, snapshots and deletes VMs and keeps their records
//! and last known states (the `monitor` module follows libvirt's events, `clones` makes
//! clones, `stats` keeps the live statistics).

use crate::console::{self, Cursor};
pub use crate::error::chain;
use crate::error::VmError;
use crate::host::Host;
use crate::hypervisor::{Hypervisor, RunState};
use crate::spec::{
    self, BootDevice, Disk, DiskKind, DiskReplication, DiskSource, Nic, NodeFacts, VmRecord,
    VmSpec, DEFAULT_CPU_MODEL,
};
use crate::stats::{self, StatsCache, VmStats};
use crate::store::Store;
use crate::volumes::{disk_volume, snapshot_volume, VolumeError, Volumes};
use crate::xml::{domain_xml, Accelerator};
use cairn_core::alert::Progress;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Memory kept for the node itself (cairnd, libvirtd, QEMU overhead) when admitting VMs.
pub const HOST_RESERVE_MIB: u64 = 256;
/// Default time a guest gets to act on an ACPI shutdown before it is powered off.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

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

/// The records and last known states, under one lock.
pub(crate) struct Inner {
    pub(crate) records: BTreeMap<String, VmRecord>,
    pub(crate) states: BTreeMap<String, RunState>,
    /// Whether libvirt answered the last call that read the states.
    pub(crate) connected: bool,
}

/// The VM service of a node.
pub struct Vms {
    pub(crate) cfg: VmsConfig,
    pub(crate) hv: Arc<dyn Hypervisor>,
    pub(crate) volumes: Arc<dyn Volumes>,
    pub(crate) host: Arc<dyn Host>,
    pub(crate) store: Store,
    inner: Mutex<Inner>,
    /// Serializes changes (create, clone, delete…) so names and volumes cannot race.
    change: Mutex<()>,
    /// VMs whose replication is being turned on: they may not start meanwhile (their disk
    /// is being put under DRBD).
    replicating: Mutex<BTreeSet<String>>,
    /// Live statistics (a lock of their own: sampling never blocks the states).
    stats: Mutex<StatsCache>,
    /// The pools' image libraries (their shares `images`).
    images: Arc<crate::images::Library>,
}

/// Wraps a volume failure of operation `op`.
pub(crate) fn vol_err(op: String) -> impl FnOnce(VolumeError) -> VmError {
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
        let vols = volumes.clone();
        let images = crate::images::Library::new(Box::new(move |pool| {
            vols.share_path(pool, crate::images::LIBRARY_SHARE)
        }));
        Ok(Vms {
            images,
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
            replicating: Mutex::new(BTreeSet::new()),
            stats: Mutex::new(StatsCache::default()),
        })
    }

    /// The pools' image libraries.
    pub fn images(&self) -> &Arc<crate::images::Library> {
        &self.images
    }

    /// The first VM (by name) whose CD-ROM is image `name` of `pool`'s library.
    pub fn image_user(&self, pool: &str, name: &str) -> Option<String> {
        let volume = format!("{}/{name}", crate::images::LIBRARY_SHARE);
        self.lock()
            .records
            .values()
            .find(|r| {
                r.disks
                    .iter()
                    .any(|d| d.kind == DiskKind::Cdrom && d.pool == pool && d.volume == volume)
            })
            .map(|r| r.name.clone())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_change(&self) -> MutexGuard<'_, ()> {
        self.change.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_stats(&self) -> MutexGuard<'_, StatsCache> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// KVM or TCG on this node.
    pub fn accelerator(&self) -> Accelerator {
        self.host.accelerator()
    }

    pub(crate) fn xml(&self, r: &VmRecord) -> String {
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
            stats: stats.vm_stats(&r.name).filter(|_| state.is_active()),
            disk_allocated_bytes: stats.disk_allocated(&r.name),
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
        stats::sample_running(self.hv.as_ref(), &self.stats, running, now, now_unix_ms);
    }

    /// Read the pool space of every VM's disk volumes now (one `usage` per pool in use).
    pub fn refresh_disk_usage(&self) {
        let records: Vec<VmRecord> = self.lock().records.values().cloned().collect();
        let allocated = stats::disk_allocation(self.volumes.as_ref(), &records);
        self.lock_stats().set_disk_allocated(allocated);
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

    pub(crate) fn record(&self, name: &str) -> Result<VmRecord, VmError> {
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

    pub(crate) fn facts(&self) -> Result<NodeFacts, VmError> {
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
            // i < n: at most 79, so it fits.
            progress.progress(u8::try_from(i * 80 / n).unwrap_or(80), &format!("disk {i}"));
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
                        bus: d.bus_on(spec.machine),
                        pool: pool.clone(),
                        volume: vol,
                        path: path.to_string_lossy().into_owned(),
                        origin: None,
                        replication: None,
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
                        bus: d.bus_on(spec.machine),
                        pool: sd.pool.clone(),
                        volume: vol,
                        path: path.to_string_lossy().into_owned(),
                        origin: Some(source_vol),
                        replication: None,
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
                        bus: d.bus_on(spec.machine),
                        pool: pool.clone(),
                        volume: format!("{share}/{file}"),
                        path: path.to_string_lossy().into_owned(),
                        origin: None,
                        replication: None,
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
        if self.is_replicating(name) {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: "shut off".into(),
                need: "replication is being turned on for it: start it when that task ends",
            });
        }
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
        self.promote_disks(&r)?;
        // Redefine from our record so libvirt's definition cannot drift from it.
        self.hv.define(&self.xml(&r))?;
        self.hv.start(name)?;
        self.state_now(name)?;
        Ok(())
    }

    /// Make this node Primary for the VM's replicated disks (DRBD refuses while the other
    /// copy is Primary: the VM then does not start here).
    fn promote_disks(&self, r: &VmRecord) -> Result<(), VmError> {
        for (i, d) in r.disks.iter().enumerate() {
            if let Some(rep) = &d.replication {
                self.host
                    .promote(&rep.resource)
                    .map_err(|reason| VmError::Replica {
                        vm: r.name.clone(),
                        disk: format!("disk{i}"),
                        resource: rep.resource.clone(),
                        reason,
                    })?;
            }
        }
        Ok(())
    }

    fn is_replicating(&self, name: &str) -> bool {
        self.replicating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    /// Let VM `name` start again after a replication attempt (done or failed).
    pub fn end_replicating(&self, name: &str) {
        self.replicating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The disks to replicate of shut-off VM `name` (each thin-volume disk not yet
    /// replicated, as `disk<i>` and its device); the VM may not start until
    /// [`Self::end_replicating`]. Refused while another replication of it runs.
    pub fn begin_replicating(&self, name: &str) -> Result<Vec<(String, String)>, VmError> {
        let _g = self.lock_change();
        let disks = self.disks_to_replicate(name)?;
        if !self
            .replicating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string())
        {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: "shut off".into(),
                need: "replication is already being turned on for it",
            });
        }
        Ok(disks)
    }

    /// Record that VM `name`'s replicated disks now have their other copy on `node` (a
    /// replica moved; the VM may run).
    pub fn set_replica_node(&self, name: &str, node: &str) -> Result<VmStatus, VmError> {
        let _g = self.lock_change();
        self.update(name, |r| {
            for d in r.disks.iter_mut() {
                if let Some(rep) = d.replication.as_mut() {
                    rep.replica = node.to_string();
                }
            }
        })?;
        self.get(name)
    }

    /// Hold shut-off VM `name` (it may not start) while its replication is turned off; it
    /// must have replicated disks. Refused while another replication change of it runs.
    pub fn begin_unreplicating(&self, name: &str) -> Result<(), VmError> {
        let _g = self.lock_change();
        let r = self.record(name)?;
        self.require_off(name, "shut it down to turn replication off")?;
        if !r.disks.iter().any(|d| d.replication.is_some()) {
            return Err(VmError::Invalid(crate::spec::invalid(
                "vm",
                format!("VM {name} has no replicated disk"),
            )));
        }
        if !self
            .replicating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string())
        {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: "shut off".into(),
                need: "its replication is already being changed",
            });
        }
        Ok(())
    }

    /// Record that replication is off for disks of shut-off VM `name`: each `(disk<i>,
    /// device)` opens its thin LV again.
    pub fn set_unreplicated(
        &self,
        name: &str,
        disks: &[(String, String)],
    ) -> Result<VmStatus, VmError> {
        let _g = self.lock_change();
        self.require_off(
            name,
            "it must stay shut down while replication is turned off",
        )?;
        let mut inner = self.lock();
        let mut next = inner.records.clone();
        let rec = next
            .get_mut(name)
            .ok_or_else(|| VmError::NotFound(name.to_string()))?;
        for (disk, device) in disks {
            let i = disk_index(disk, rec.disks.len())?;
            rec.disks[i].path = device.clone();
            rec.disks[i].replication = None;
        }
        self.store.save(&next)?;
        inner.records = next;
        drop(inner);
        self.get(name)
    }

    /// The disks to replicate of shut-off VM `name`: each thin-volume disk not yet
    /// replicated, as (name `disk<i>`, device).
    pub fn disks_to_replicate(&self, name: &str) -> Result<Vec<(String, String)>, VmError> {
        let r = self.record(name)?;
        let state = self.state_now(name)?;
        if state.is_active() {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: state_name(state),
                need: "shut it down to turn replication on",
            });
        }
        let disks: Vec<(String, String)> = r
            .disks
            .iter()
            .enumerate()
            .filter(|(_, d)| d.kind == DiskKind::Disk && d.replication.is_none())
            .map(|(i, d)| (format!("disk{i}"), d.path.clone()))
            .collect();
        if disks.is_empty() {
            return Err(VmError::Invalid(crate::spec::invalid(
                "disks",
                format!("VM {name} has no disk that is not replicated already"),
            )));
        }
        Ok(disks)
    }

    /// Record that disks of shut-off VM `name` are replicated: each `(disk<i>, device,
    /// replication)` switches the disk to the DRBD device.
    pub fn set_replicated(
        &self,
        name: &str,
        disks: &[(String, String, DiskReplication)],
    ) -> Result<VmStatus, VmError> {
        let _g = self.lock_change();
        self.require_off(
            name,
            "it must stay shut down while replication is turned on",
        )?;
        self.end_replicating(name);
        let mut inner = self.lock();
        let mut next = inner.records.clone();
        let rec = next
            .get_mut(name)
            .ok_or_else(|| VmError::NotFound(name.to_string()))?;
        for (disk, device, rep) in disks {
            let i = disk_index(disk, rec.disks.len())?;
            rec.disks[i].path = device.clone();
            rec.disks[i].replication = Some(rep.clone());
        }
        self.store.save(&next)?;
        inner.records = next;
        drop(inner);
        self.get(name)
    }

    /// Activate the disk volumes whose block devices are missing (clones after a reboot).
    fn activate_disks(&self, r: &VmRecord) -> Result<(), VmError> {
        for d in r
            .disks
            .iter()
            .filter(|d| d.kind == DiskKind::Disk && d.replication.is_none())
        {
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
            // Below 90 while the loop runs (elapsed < timeout).
            let pct = u8::try_from(start.elapsed().as_millis() * 90 / timeout.as_millis().max(1))
                .unwrap_or(90);
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
        if r.disks.iter().any(|d| d.replication.is_some()) {
            return Err(VmError::WrongState {
                vm: name.into(),
                state: "replicated".into(),
                need: "its disks have a copy on another node: turn replication off first",
            });
        }
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

    /// Remove volumes made by a failed operation (logged, not returned: the operation's own
    /// error is what the caller needs).
    pub(crate) fn remove_volumes(&self, made: &[(String, String)]) {
        for (pool, vol) in made.iter().rev() {
            if let Err(e) = self.volumes.delete(pool, vol) {
                tracing::error!("cleanup: cannot delete volume {vol} of pool {pool}: {e}");
            }
        }
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

/// The record of a new VM from its validated spec and the disks made for it (new UUID, MACs
/// for NICs without one, default boot order and CPU model).
pub(crate) fn new_record(spec: &VmSpec, disks: Vec<Disk>) -> VmRecord {
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

/// The index of disk `disk<i>` of a VM with `count` disks (refused naming `disks`).
fn disk_index(disk: &str, count: usize) -> Result<usize, VmError> {
    disk.strip_prefix("disk")
        .and_then(|n| n.parse().ok())
        .filter(|i| *i < count)
        .ok_or_else(|| VmError::Invalid(spec::invalid("disks", format!("no disk {disk}"))))
}

fn write_at_start(path: &Path, image: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(image)?;
    f.sync_all()
}

/// A state's API name.
pub fn state_name(s: RunState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{s:?}"))
}

/// A hypervisor and host double, and a service on them, for the tests of the VM service's
/// modules.
#[cfg(test)]
pub(crate) mod double {
    use super::*;
    use crate::hypervisor::{DomainSample, HvError, HvEvent, Lifecycle, NodeCapacity};
    use crate::volumes::double::RecordingVolumes;
    use std::collections::BTreeSet;

    /// A hypervisor double: domains in a map; `ignores_acpi` keeps guests running on
    /// shutdown, like the lab's test guest.
    #[derive(Default)]
    pub(crate) struct FakeHv {
        pub(crate) domains: Mutex<BTreeMap<String, (String, RunState)>>,
        pub(crate) calls: Mutex<Vec<String>>,
        pub(crate) ignores_acpi: bool,
        /// Refuse to define this domain.
        pub(crate) fail_define: Mutex<Option<String>>,
        /// The event subscriber, if subscribed.
        pub(crate) events: Mutex<Option<std::sync::mpsc::Sender<HvEvent>>>,
        /// Refuse this many subscriptions (libvirtd restarting).
        pub(crate) refuse_subscribe: Mutex<u32>,
        /// CPU time (ns) each domain reports in a sample.
        pub(crate) cpu_ns: Mutex<BTreeMap<String, u64>>,
        /// libvirt's id of each running domain (a new one every start).
        pub(crate) run_id: Mutex<BTreeMap<String, u32>>,
        /// How long a power-off takes, and how many run at once now / at most.
        pub(crate) destroy_takes: Mutex<Duration>,
        pub(crate) destroying: std::sync::atomic::AtomicUsize,
        pub(crate) most_destroying: std::sync::atomic::AtomicUsize,
    }

    impl FakeHv {
        pub(crate) fn set(&self, name: &str, s: RunState) -> Result<(), HvError> {
            let mut d = self.domains.lock().unwrap();
            let e = d
                .get_mut(name)
                .ok_or_else(|| HvError::NotDefined(name.into()))?;
            e.1 = s;
            Ok(())
        }
        pub(crate) fn log(&self, l: String) {
            self.calls.lock().unwrap().push(l);
        }
        /// Change a domain's state behind the service's back (like `virsh destroy`) and
        /// send the event libvirt would.
        pub(crate) fn out_of_band(&self, name: &str, s: RunState, event: Lifecycle) {
            self.set(name, s).unwrap();
            self.send(HvEvent::Domain {
                name: name.into(),
                event,
            });
        }
        pub(crate) fn send(&self, ev: HvEvent) {
            let tx = self.events.lock().unwrap().clone();
            tx.expect("not subscribed").send(ev).unwrap();
        }
        pub(crate) fn count(&self, call: &str) -> usize {
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
    pub(crate) fn wait_until(what: &str, within: Duration, cond: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !cond() {
            assert!(t0.elapsed() < within, "{what}: not within {within:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[derive(Default)]
    pub(crate) struct FakeHost(pub(crate) Arc<Mutex<bool>>);

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
        fn promote(&self, resource: &str) -> Result<(), String> {
            // cairn99's other copy is Primary (as DRBD would answer).
            match resource {
                "cairn99" => Err("State change failed: (-1) Multiple primaries not allowed".into()),
                _ => Ok(()),
            }
        }
    }

    pub(crate) struct Fixture {
        pub(crate) _dir: tempfile::TempDir,
        pub(crate) hv: Arc<FakeHv>,
        pub(crate) vols: Arc<RecordingVolumes>,
        pub(crate) present: Arc<Mutex<bool>>,
        pub(crate) vms: Vms,
    }

    pub(crate) fn fixture(ignores_acpi: bool) -> Fixture {
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

    pub(crate) fn spec(name: &str) -> VmSpec {
        serde_json::from_value(serde_json::json!({
            "name": name, "vcpus": 1, "memory_mib": 32, "machine": "pc", "autostart": true,
            "disks": [{"source": "new", "pool": "tank", "size_bytes": 10737418240u64, "bus": "ide"}],
            "nics": [{"bridge": "br0"}],
        }))
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::double::{fixture, spec, FakeHost};
    use super::*;
    use crate::stats::DiskStats;
    use crate::volumes::double::RecordingVolumes;
    use cairn_core::alert::NoProgress;

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
    fn a_replicated_disk_switches_to_drbd_and_is_promoted_at_start() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        assert_eq!(
            f.vms.disks_to_replicate("g").unwrap(),
            [(
                "disk0".to_string(),
                "/dev/cairn-tank/vol-g-disk0".to_string()
            )]
        );
        let rep = DiskReplication {
            resource: "cairn0".into(),
            replica: "node2".into(),
        };
        // While replication is being turned on the VM does not start, and a second attempt
        // is refused.
        f.vms.begin_replicating("g").unwrap();
        assert!(f.vms.begin_replicating("g").is_err());
        let e = f.vms.start("g").unwrap_err();
        assert!(e.to_string().contains("being turned on"), "{e}");
        let bad = f
            .vms
            .set_replicated("g", &[("disk7".into(), "/dev/drbd0".into(), rep.clone())])
            .unwrap_err();
        assert!(
            matches!(bad, VmError::Invalid(ref i) if i.field == "disks"),
            "{bad:?}"
        );
        let vm = f
            .vms
            .set_replicated("g", &[("disk0".into(), "/dev/drbd0".into(), rep.clone())])
            .unwrap();
        assert_eq!(vm.record.disks[0].path, "/dev/drbd0");
        assert_eq!(vm.record.disks[0].replication, Some(rep.clone()));
        assert!(
            f.vms.disks_to_replicate("g").is_err(),
            "nothing left to replicate"
        );
        assert!(f.vms.start("g").is_ok() && f.vms.force_off("g").is_ok());
        // Kept across a restart of the service.
        let again = Vms::open(
            f.vms.cfg.clone(),
            f.hv.clone(),
            f.vols.clone(),
            Arc::new(FakeHost::default()),
        )
        .unwrap();
        assert_eq!(again.get("g").unwrap().record.disks[0].path, "/dev/drbd0");
        f.vms.start("g").unwrap();
        let xml = f.hv.domains.lock().unwrap()["g"].0.clone();
        assert!(xml.contains("<source dev='/dev/drbd0'/>"), "{xml}");
        // Deleting a replicated VM is refused until replication is off.
        f.vms.force_off("g").unwrap();
        let e = f.vms.delete("g", true).unwrap_err();
        assert!(e.to_string().contains("turn replication off first"), "{e}");
        // Off again: held meanwhile, the disk back on its thin volume, then deletable.
        f.vms.begin_unreplicating("g").unwrap();
        assert!(f.vms.start("g").is_err());
        let vm = f
            .vms
            .set_unreplicated(
                "g",
                &[("disk0".into(), "/dev/cairn-tank/vol-g-disk0".into())],
            )
            .unwrap();
        f.vms.end_replicating("g");
        assert_eq!(vm.record.disks[0].path, "/dev/cairn-tank/vol-g-disk0");
        assert_eq!(vm.record.disks[0].replication, None);
        assert!(
            f.vms.begin_unreplicating("g").is_err(),
            "nothing replicated now"
        );
        f.vms.delete("g", true).unwrap();
    }

    #[test]
    fn a_disk_whose_other_copy_is_primary_does_not_start() {
        let f = fixture(false);
        f.vms.create(&spec("g"), &NoProgress).unwrap();
        let rep = DiskReplication {
            resource: "cairn99".into(),
            replica: "node2".into(),
        };
        f.vms
            .set_replicated("g", &[("disk0".into(), "/dev/drbd99".into(), rep)])
            .unwrap();
        let e = f.vms.start("g").unwrap_err();
        assert!(matches!(e, VmError::Replica { .. }), "{e:?}");
        assert!(e.to_string().contains("Multiple primaries"), "{e}");
        assert_eq!(f.vms.get("g").unwrap().state, RunState::ShutOff);
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
            fn usage(&self, p: &str) -> Result<Vec<crate::volumes::VolumeUse>, VolumeError> {
                if self.0.fail.lock().unwrap().as_deref() == Some("usage") {
                    return Err(VolumeError("injected: usage".into()));
                }
                Ok(self
                    .0
                    .usage(p)?
                    .into_iter()
                    .map(|v| crate::volumes::VolumeUse {
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
}
