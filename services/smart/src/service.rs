//! The SMART service: polls every disk with smartctl, keeps per-disk history, raises one
//! alert per change, runs on-demand and scheduled self-tests, and stores per-disk settings.

use crate::endurance::Endurance;
use crate::error::SmartError;
use crate::history::{History, Sample};
use crate::model::SmartctlOutput;
use crate::rules::{self, Context, DriveClass, Evaluation, Outcome, TempLimits};
use crate::schedule::{self, Candidate, TestKind, TestRecord};
use crate::settings::DiskSettings;
use crate::verdict::{Reason, Severity, Verdict};
use crate::views::{self, AttributeView, DeviceInfo, NvmeView, ScsiView, SelfTestView};
use crate::{packed, smartctl, store};
use cairn_core::alert::{AlertLevel, AlertSink};
use cairn_core::command::CommandRunner;
use cairn_core::disk::{DiskBus, DiskRef};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The daemon's state directory; the service keeps its files in `<state_dir>/smart/`.
    pub state_dir: PathBuf,
    /// Time between polls of every disk (default 30 minutes).
    pub interval: Duration,
    /// How often the self-test schedule is checked (default 10 minutes).
    pub schedule_check: Duration,
    /// How often a running self-test's progress is read (default 15 s).
    pub test_poll: Duration,
    /// The smartctl program.
    pub smartctl: String,
}

impl Config {
    /// Defaults under `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Config {
        Config {
            state_dir: state_dir.into(),
            interval: Duration::from_secs(30 * 60),
            schedule_check: Duration::from_secs(10 * 60),
            test_poll: Duration::from_secs(15),
            smartctl: "smartctl".into(),
        }
    }
}

/// Seconds since the Unix epoch (injected so tests control time).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    })
}

/// What other domains and the disk list see of a disk (decision 0002).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartSummary {
    pub verdict: Verdict,
    /// `None`: not read yet, or the drive has no temperature sensor (it reports 0 °C).
    pub temperature_c: Option<i64>,
    /// Percent of an SSD's rated endurance used (NVMe, SCSI and SATA alike); `None` for
    /// hard disks and SSDs that do not say.
    #[serde(default)]
    pub endurance_used_pct: Option<u64>,
    /// Why the verdict is what it is (warning and failing findings; for `unavailable`, why).
    pub reasons: Vec<String>,
    /// When the data was read (seconds since the Unix epoch); `None`: not yet.
    pub checked_at: Option<u64>,
    /// The disk was asleep at the last poll (not read, not woken); the verdict and the data
    /// are from the last poll that read it, at `checked_at`.
    pub standby: bool,
    /// smartctl's name for the power mode it found the disk in (`STANDBY`, `STANDBY_Y`,
    /// `SLEEP`, `STANDBY BY TIMER`, `STANDBY (OS)`…), while `standby`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_mode: Option<String>,
    /// Percent of a running self-test still to do.
    pub self_test_remaining: Option<u8>,
}

/// One line of the disk list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSummary {
    pub id: String,
    pub dev: PathBuf,
    pub bus: DiskBus,
    pub model: Option<String>,
    pub serial: Option<String>,
    #[serde(flatten)]
    pub smart: SmartSummary,
}

/// Everything about one disk's SMART state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SmartDetail {
    pub id: String,
    pub dev: PathBuf,
    pub bus: DiskBus,
    #[serde(flatten)]
    pub smart: SmartSummary,
    /// Every finding, with its severity (including informational notes).
    pub findings: Vec<Reason>,
    pub device: DeviceInfo,
    pub class: Option<DriveClass>,
    pub temperature_limits: Option<TempLimits>,
    /// SSD wear and where the figure comes from.
    pub endurance: Option<Endurance>,
    pub attributes: Vec<AttributeView>,
    pub nvme: Option<NvmeView>,
    pub scsi: Option<ScsiView>,
    pub self_tests: Vec<SelfTestView>,
    pub history: History,
    pub settings: DiskSettings,
    pub last_short_test: Option<u64>,
    pub last_long_test: Option<u64>,
    pub next_short_test: Option<u64>,
    pub next_long_test: Option<u64>,
    /// smartctl's own messages from the last poll.
    pub messages: Vec<String>,
}

#[derive(Clone)]
struct Polled {
    checked_at: u64,
    status: u8,
    eval: Evaluation,
    output: Option<Arc<SmartctlOutput>>,
}

/// What the service knows of one disk.
pub(crate) struct DiskState {
    pub(crate) disk: DiskRef,
    polled: Option<Polled>,
    /// The power mode the disk was asleep in at the last poll.
    standby: Option<String>,
    history: History,
    /// A self-test of ours runs on it.
    pub(crate) testing: bool,
}

/// The disks, their settings and self-test records, under one lock.
#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) disks: BTreeMap<String, DiskState>,
    settings: BTreeMap<String, DiskSettings>,
    pub(crate) tests: BTreeMap<String, TestRecord>,
}

/// The SMART service. Blocking methods run smartctl: call them from `spawn_blocking`.
pub struct SmartService {
    pub(crate) cfg: Config,
    pub(crate) dir: PathBuf,
    pub(crate) runner: Arc<dyn CommandRunner>,
    alerts: Arc<dyn AlertSink>,
    pub(crate) clock: Clock,
    inner: Mutex<Inner>,
}

fn alert_key(id: &str) -> String {
    format!("disk/{id}/smart")
}

impl SmartService {
    /// Open the service's state under `cfg.state_dir/smart` (settings, schedule, history).
    pub fn open(
        cfg: Config,
        runner: Arc<dyn CommandRunner>,
        alerts: Arc<dyn AlertSink>,
        clock: Clock,
    ) -> Result<SmartService, SmartError> {
        let dir = store::ensure_dir(&cfg.state_dir.join("smart"))?;
        store::ensure_dir(&dir.join("history"))?;
        let settings = store::load(&dir.join("settings.json"))?.unwrap_or_default();
        let tests = store::load(&dir.join("schedule.json"))?.unwrap_or_default();
        Ok(SmartService {
            cfg,
            dir,
            runner,
            alerts,
            clock,
            inner: Mutex::new(Inner {
                disks: BTreeMap::new(),
                settings,
                tests,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn history_path(&self, id: &str) -> PathBuf {
        self.dir
            .join("history")
            .join(format!("{}.json", store::file_name(id)))
    }

    /// Take the current disk list; returns the ids that are new (to be polled).
    pub fn set_disks(&self, disks: Vec<DiskRef>) -> Vec<String> {
        let now = (self.clock)();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        {
            let mut inner = self.lock();
            let ids: Vec<&str> = disks.iter().map(|d| d.id.as_str()).collect();
            inner.disks.retain(|id, _| {
                let keep = ids.contains(&id.as_str());
                if !keep {
                    removed.push(id.clone());
                }
                keep
            });
            for d in disks {
                if let Some(state) = inner.disks.get_mut(&d.id) {
                    state.disk = d;
                    continue;
                }
                let history = match store::load(&self.history_path(&d.id)) {
                    Ok(h) => h.unwrap_or_default(),
                    Err(e) => {
                        tracing::warn!("starting a new SMART history for {}: {e}", d.id);
                        History::default()
                    }
                };
                inner.tests.entry(d.id.clone()).or_insert(TestRecord {
                    first_seen: now,
                    ..TestRecord::default()
                });
                added.push(d.id.clone());
                inner.disks.insert(
                    d.id.clone(),
                    DiskState {
                        disk: d,
                        polled: None,
                        standby: None,
                        history,
                        testing: false,
                    },
                );
            }
            if !added.is_empty() {
                if let Err(e) = store::save(&self.dir.join("schedule.json"), &inner.tests) {
                    tracing::warn!("{e}");
                }
            }
        }
        for id in removed {
            self.alerts
                .clear(&alert_key(&id), &format!("disk {id} is no longer present"));
        }
        added
    }

    /// Poll every disk once (sequentially).
    pub fn poll_all(&self) {
        let ids: Vec<String> = self.lock().disks.keys().cloned().collect();
        for id in ids {
            self.poll_logged(&id);
        }
    }

    /// Poll one disk, logging what it cost (the benchmark reads these lines) or why it failed.
    pub fn poll_logged(&self, id: &str) {
        match self.poll_disk(id) {
            Ok((ran, evaluated)) if !ran.is_zero() => tracing::info!(
                "SMART poll of {id}: smartctl {} µs, parse+evaluate {} µs",
                ran.as_micros(),
                evaluated.as_micros()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("SMART poll of {id}: {e}"),
        }
    }

    /// Poll one disk now: run smartctl, evaluate, record history, update its alert.
    /// Returns how long smartctl took and how long parsing and evaluation took.
    pub fn poll_disk(&self, id: &str) -> Result<(Duration, Duration), SmartError> {
        let (disk, settings) = {
            let inner = self.lock();
            let state = inner
                .disks
                .get(id)
                .ok_or_else(|| SmartError::UnknownDisk(id.to_string()))?;
            (
                state.disk.clone(),
                inner.settings.get(id).cloned().unwrap_or_default(),
            )
        };
        let now = (self.clock)();
        if disk.bus == DiskBus::Virtio {
            let eval = Evaluation::unavailable(
                "virtual_disk",
                "virtio disks are virtual and have no SMART data",
            );
            self.store_result(id, now, 0, eval, None, false);
            return Ok((Duration::ZERO, Duration::ZERO));
        }
        if !settings.polling {
            let eval =
                Evaluation::unavailable("polling_off", "SMART polling is turned off for this disk");
            self.store_result(id, now, 0, eval, None, false);
            return Ok((Duration::ZERO, Duration::ZERO));
        }
        let inv = smartctl::poll(&self.cfg.smartctl, &disk.dev);
        let started = Instant::now();
        let out = self.runner.run(&inv).map_err(|source| SmartError::Run {
            disk: id.to_string(),
            source,
        })?;
        let ran = started.elapsed();
        let started = Instant::now();
        let baseline = self
            .lock()
            .disks
            .get(id)
            .and_then(|s| s.history.baseline.clone());
        let ctx = Context {
            rotational_hint: disk.rotational,
            baseline: baseline.as_ref(),
            warning_c: settings.temperature_warning_c,
            critical_c: settings.temperature_critical_c,
        };
        let outcome = rules::interpret(&out.stdout, &out.stderr_text(), out.code, &ctx);
        let evaluated = started.elapsed();
        match outcome {
            Outcome::Standby { mode } => {
                if let Some(state) = self.lock().disks.get_mut(id) {
                    state.standby = Some(mode);
                }
            }
            Outcome::Unavailable(eval) => self.store_result(id, now, 0, eval, None, false),
            Outcome::Evaluated(doc, mut eval) => {
                let status = doc
                    .exit_status()
                    .or_else(|| out.code.and_then(|c| u8::try_from(c).ok()))
                    .unwrap_or(0);
                // Counters stored before packed raw values were read as counts (issue 14)
                // become the counts they stand for; the sample is judged against those.
                let migrated = self.lock().disks.get_mut(id).and_then(|s| {
                    s.history
                        .migrate(|c| packed::migrate(c, &doc))
                        .then(|| s.history.baseline.clone())
                });
                if let Some(baseline) = migrated {
                    tracing::info!("SMART history of {id}: packed counter values migrated");
                    let ctx = Context {
                        baseline: baseline.as_ref(),
                        ..ctx
                    };
                    eval = rules::evaluate(&doc, status, &ctx);
                }
                self.store_result(id, now, status, eval, Some(Arc::new(*doc)), true);
            }
        }
        Ok((ran, evaluated))
    }

    fn store_result(
        &self,
        id: &str,
        now: u64,
        status: u8,
        eval: Evaluation,
        output: Option<Arc<SmartctlOutput>>,
        record: bool,
    ) {
        let (alert, saved) = {
            let mut inner = self.lock();
            let Some(state) = inner.disks.get_mut(id) else {
                return;
            };
            // A disk known only by its kernel name (udev has not named it yet) keeps its
            // history in memory only: the name may belong to another disk after a reboot.
            let stable = state.disk.dev.file_name() != Some(std::ffi::OsStr::new(id));
            state.standby = None;
            if record {
                state.history.record(Sample {
                    time: now,
                    verdict: eval.verdict,
                    temperature_c: eval.temperature_c,
                    power_on_hours: eval.power_on_hours,
                    counters: eval.counters.clone(),
                });
            }
            let label = disk_label(id, &state.disk, output.as_deref());
            state.polled = Some(Polled {
                checked_at: now,
                status,
                eval: eval.clone(),
                output,
            });
            (
                (label, eval),
                (record && stable).then(|| state.history.clone()),
            )
        };
        if let Some(history) = saved {
            if let Err(e) = store::save(&self.history_path(id), &history) {
                tracing::warn!("{e}");
            }
        }
        self.update_alert(id, &alert.0, &alert.1);
    }

    fn update_alert(&self, id: &str, label: &str, eval: &Evaluation) {
        let key = alert_key(id);
        let hard: Vec<&str> = eval
            .reasons
            .iter()
            .filter(|r| r.severity >= Severity::Warning)
            .map(|r| r.text.as_str())
            .collect();
        match eval.verdict {
            Verdict::Failing => {
                self.alerts.raise(
                    &key,
                    AlertLevel::Critical,
                    &format!("{label} is failing: {}", hard.join("; ")),
                );
            }
            Verdict::Warning => {
                self.alerts.raise(
                    &key,
                    AlertLevel::Warning,
                    &format!("{label} needs attention: {}", hard.join("; ")),
                );
            }
            Verdict::Healthy => {
                self.alerts
                    .clear(&key, &format!("{label} is healthy again"));
            }
            Verdict::Unavailable => {
                if eval.reasons.iter().any(|r| r.code == "polling_off") {
                    self.alerts
                        .clear(&key, &format!("SMART polling of {label} was turned off"));
                }
                // Otherwise keep whatever the last real data said: losing the data does
                // not make a failing disk healthy.
            }
        }
    }

    /// Every disk's summary, in id order.
    pub fn list(&self) -> Vec<DiskSummary> {
        let inner = self.lock();
        inner
            .disks
            .iter()
            .map(|(id, s)| {
                let out = s.polled.as_ref().and_then(|p| p.output.clone());
                let (model, serial) = identity(&s.disk, out.as_deref());
                DiskSummary {
                    id: id.clone(),
                    dev: s.disk.dev.clone(),
                    bus: s.disk.bus,
                    model,
                    serial,
                    smart: summary_of(s),
                }
            })
            .collect()
    }

    /// One disk's summary (decision 0002: storage shows it in its disk list).
    pub fn summary(&self, id: &str) -> Option<SmartSummary> {
        self.lock().disks.get(id).map(summary_of)
    }

    /// Everything about one disk.
    pub fn detail(&self, id: &str) -> Option<SmartDetail> {
        let inner = self.lock();
        let s = inner.disks.get(id)?;
        let settings = inner.settings.get(id).cloned().unwrap_or_default();
        let record = inner.tests.get(id).cloned().unwrap_or_default();
        let cands = candidates(&inner);
        let out = s.polled.as_ref().and_then(|p| p.output.clone());
        let eval = s.polled.as_ref().map(|p| &p.eval);
        Some(SmartDetail {
            id: id.to_string(),
            dev: s.disk.dev.clone(),
            bus: s.disk.bus,
            smart: summary_of(s),
            findings: eval.map(|e| e.reasons.clone()).unwrap_or_default(),
            device: device_info(&s.disk, out.as_deref()),
            class: eval.and_then(|e| e.class),
            temperature_limits: eval.and_then(|e| e.limits),
            endurance: eval.and_then(|e| e.endurance.clone()),
            attributes: out.as_deref().map(views::attributes).unwrap_or_default(),
            nvme: out.as_deref().and_then(views::nvme),
            scsi: out.as_deref().and_then(views::scsi),
            self_tests: out.as_deref().map(views::self_tests).unwrap_or_default(),
            history: s.history.clone(),
            settings,
            last_short_test: record.last_short,
            last_long_test: record.last_long,
            next_short_test: schedule::next_due(&cands, id, TestKind::Short),
            next_long_test: schedule::next_due(&cands, id, TestKind::Long),
            messages: out.as_deref().map(|o| o.messages()).unwrap_or_default(),
        })
    }

    /// A disk's settings.
    pub fn settings(&self, id: &str) -> Result<DiskSettings, SmartError> {
        let inner = self.lock();
        if !inner.disks.contains_key(id) {
            return Err(SmartError::UnknownDisk(id.to_string()));
        }
        Ok(inner.settings.get(id).cloned().unwrap_or_default())
    }

    /// Replace a disk's settings (validated first: a bad value changes nothing). With
    /// `acknowledge`, the current counter values become the accepted baseline. The last
    /// data is evaluated again under the new settings at once.
    pub fn set_settings(
        &self,
        id: &str,
        new: DiskSettings,
        acknowledge: bool,
    ) -> Result<DiskSettings, SmartError> {
        new.validate()?;
        let (history, polling_turned_on) = {
            let mut inner = self.lock();
            if !inner.disks.contains_key(id) {
                return Err(SmartError::UnknownDisk(id.to_string()));
            }
            let mut all = inner.settings.clone();
            let was_polling = all.get(id).is_none_or(|s| s.polling);
            if new == DiskSettings::default() {
                all.remove(id);
            } else {
                all.insert(id.to_string(), new.clone());
            }
            store::save(&self.dir.join("settings.json"), &all)?;
            inner.settings = all;
            let state = inner
                .disks
                .get_mut(id)
                .ok_or_else(|| SmartError::UnknownDisk(id.into()))?;
            let mut history = None;
            if acknowledge {
                if let Some(p) = &state.polled {
                    state.history.acknowledge(&p.eval.counters);
                    history = Some(state.history.clone());
                }
            }
            (history, new.polling && !was_polling)
        };
        if let Some(h) = history {
            store::save(&self.history_path(id), &h)?;
        }
        if polling_turned_on || !new.polling {
            self.poll_disk(id)?;
        } else {
            self.reevaluate(id);
        }
        Ok(new)
    }

    /// Evaluate the last data again (after a settings change), without running smartctl.
    fn reevaluate(&self, id: &str) {
        let (polled, disk, settings, baseline) = {
            let inner = self.lock();
            let Some(s) = inner.disks.get(id) else { return };
            let Some(p) = s.polled.clone() else { return };
            (
                p,
                s.disk.clone(),
                inner.settings.get(id).cloned().unwrap_or_default(),
                s.history.baseline.clone(),
            )
        };
        let Some(out) = polled.output.clone() else {
            return;
        };
        let ctx = Context {
            rotational_hint: disk.rotational,
            baseline: baseline.as_ref(),
            warning_c: settings.temperature_warning_c,
            critical_c: settings.temperature_critical_c,
        };
        let eval = rules::evaluate(&out, polled.status, &ctx);
        self.store_result(id, polled.checked_at, polled.status, eval, Some(out), false);
    }

    /// Start the poll loop: an initial poll of every disk, then one every `interval`, the
    /// schedule every `schedule_check`, and a poll of each disk that appears in `disks`.
    pub fn spawn(
        self: &Arc<Self>,
        mut disks: tokio::sync::watch::Receiver<Vec<DiskRef>>,
    ) -> tokio::task::JoinHandle<()> {
        let svc = self.clone();
        tokio::spawn(async move {
            let mut poll = tokio::time::interval(svc.cfg.interval);
            let mut sched = tokio::time::interval(svc.cfg.schedule_check);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            sched.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let first = disks.borrow_and_update().clone();
            svc.set_disks(first);
            loop {
                let job: Box<dyn FnOnce(&SmartService) + Send> = tokio::select! {
                    _ = poll.tick() => Box::new(|s: &SmartService| s.poll_all()),
                    _ = sched.tick() => Box::new(|s: &SmartService| s.run_schedule()),
                    changed = disks.changed() => {
                        if changed.is_err() {
                            tracing::info!("the disk list is gone; SMART polling stops");
                            return;
                        }
                        let list = disks.borrow_and_update().clone();
                        Box::new(move |s: &SmartService| {
                            for id in s.set_disks(list) {
                                s.poll_logged(&id);
                            }
                        })
                    }
                };
                let s = svc.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || job(&s)).await {
                    tracing::error!("a SMART poll panicked: {e}");
                }
            }
        })
    }
}

/// Each disk as the self-test schedule sees it.
pub(crate) fn candidates(inner: &Inner) -> Vec<Candidate<'_>> {
    static EMPTY: std::sync::OnceLock<TestRecord> = std::sync::OnceLock::new();
    inner
        .disks
        .iter()
        .map(|(id, s)| {
            let set = inner.settings.get(id);
            let available = s
                .polled
                .as_ref()
                .is_some_and(|p| p.eval.verdict != Verdict::Unavailable);
            Candidate {
                id,
                enabled: available
                    && s.disk.bus != DiskBus::Virtio
                    && set.is_none_or(|x| x.polling && x.self_tests),
                short_days: set.map_or(7, |x| x.short_test_days),
                long_days: set.map_or(30, |x| x.long_test_days),
                record: inner
                    .tests
                    .get(id)
                    .unwrap_or_else(|| EMPTY.get_or_init(TestRecord::default)),
            }
        })
        .collect()
}

fn summary_of(s: &DiskState) -> SmartSummary {
    match &s.polled {
        None => SmartSummary {
            verdict: Verdict::Unavailable,
            temperature_c: None,
            endurance_used_pct: None,
            reasons: vec![match &s.standby {
                Some(mode) => format!(
                    "the disk is asleep ({mode}) and has not been read yet: polling does not wake it"
                ),
                None => "not checked yet".into(),
            }],
            checked_at: None,
            standby: s.standby.is_some(),
            standby_mode: s.standby.clone(),
            self_test_remaining: None,
        },
        Some(p) => {
            let reasons = if p.eval.verdict == Verdict::Unavailable {
                p.eval.reasons.iter().map(|r| r.text.clone()).collect()
            } else {
                p.eval
                    .reasons
                    .iter()
                    .filter(|r| r.severity >= Severity::Warning)
                    .map(|r| r.text.clone())
                    .collect()
            };
            SmartSummary {
                verdict: p.eval.verdict,
                temperature_c: p.eval.temperature_c,
                endurance_used_pct: p.eval.endurance.as_ref().map(|e| e.used_pct),
                reasons,
                checked_at: Some(p.checked_at),
                standby: s.standby.is_some(),
                standby_mode: s.standby.clone(),
                self_test_remaining: p.eval.self_test_remaining,
            }
        }
    }
}

/// A disk's model and serial: smartctl's when it reports them (read from the drive itself,
/// also behind a USB bridge whose own serial udev sees), else the inventory's (sysfs/udev:
/// a virtio disk has no SMART, so smartctl never names it).
fn identity(disk: &DiskRef, out: Option<&SmartctlOutput>) -> (Option<String>, Option<String>) {
    let model = out
        .and_then(|o| o.model().map(str::to_string))
        .or_else(|| disk.model.clone());
    let serial = out
        .and_then(|o| o.serial_number.clone())
        .or_else(|| disk.serial.clone());
    (model, serial)
}

/// The detail's device facts: smartctl's, with the model and serial filled in from the
/// inventory where smartctl has none ([`identity`]).
fn device_info(disk: &DiskRef, out: Option<&SmartctlOutput>) -> DeviceInfo {
    let mut info = out.map(views::device).unwrap_or_default();
    (info.model, info.serial) = identity(disk, out);
    info
}

fn disk_label(id: &str, disk: &DiskRef, out: Option<&SmartctlOutput>) -> String {
    match identity(disk, out) {
        (Some(model), Some(serial)) => format!("disk {model} {serial} ({id})"),
        _ => format!("disk {id}"),
    }
}

/// A service on a recording command runner and alert sink, with a clock the test sets, for
/// the tests of the SMART service's modules.
#[cfg(test)]
pub(crate) mod double {
    use super::*;
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::sync::atomic::{AtomicU64, Ordering};

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    pub(crate) fn answer(name: &str, code: i32) -> CommandOutput {
        CommandOutput {
            code: Some(code),
            stdout: fixture(name),
            stderr: vec![],
        }
    }

    pub(crate) struct Rig {
        pub(crate) _dir: tempfile::TempDir,
        pub(crate) runner: Arc<RecordingRunner>,
        pub(crate) alerts: Arc<RecordingAlerts>,
        pub(crate) now: Arc<AtomicU64>,
        pub(crate) svc: SmartService,
    }

    pub(crate) fn rig_in(dir: tempfile::TempDir) -> Rig {
        let runner = Arc::new(RecordingRunner::strict());
        let alerts = Arc::new(RecordingAlerts::default());
        let now = Arc::new(AtomicU64::new(1_700_000_000));
        let n = now.clone();
        let mut cfg = Config::new(dir.path());
        cfg.test_poll = Duration::from_millis(1);
        let svc = SmartService::open(
            cfg,
            runner.clone(),
            alerts.clone(),
            Arc::new(move || n.load(Ordering::SeqCst)),
        )
        .unwrap();
        Rig {
            _dir: dir,
            runner,
            alerts,
            now,
            svc,
        }
    }

    pub(crate) fn rig() -> Rig {
        rig_in(tempfile::tempdir().unwrap())
    }

    pub(crate) fn disk(id: &str, dev: &str, bus: DiskBus) -> DiskRef {
        DiskRef {
            id: id.into(),
            dev: dev.into(),
            bus,
            rotational: true,
            model: None,
            serial: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::double::{answer, disk, fixture, rig, rig_in};
    use super::*;
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::CommandOutput;
    use std::sync::atomic::Ordering;

    /// `disk` with the inventory's model and serial.
    fn named(id: &str, dev: &str, bus: DiskBus, model: Option<&str>, serial: &str) -> DiskRef {
        DiskRef {
            model: model.map(str::to_string),
            serial: Some(serial.to_string()),
            ..disk(id, dev, bus)
        }
    }

    fn changes(a: &RecordingAlerts) -> Vec<(String, Option<AlertLevel>)> {
        a.changes
            .lock()
            .unwrap()
            .iter()
            .map(|(k, l, _)| (k.clone(), *l))
            .collect()
    }

    #[test]
    fn one_alert_per_change_and_cleared_on_recovery() {
        let r = rig();
        r.svc
            .set_disks(vec![disk("ata-X", "/dev/sda", DiskBus::Sata)]);
        let bad = "ata-hdd-reallocated-seagate-st3500418as.json";
        let good = "ata-hdd-healthy-wd-red-wd20efrx.json";
        let failing = "ata-hdd-failing-now-selftest-failed-usbjmicron-hitachi-hds721050dle630.json";
        for (f, code) in [
            (bad, 0),
            (bad, 0),
            (failing, 216),
            (failing, 216),
            (good, 0),
            (good, 0),
        ] {
            r.runner.expect(
                "smartctl",
                &["--json", "-x", "-n", "standby", "/dev/sda"],
                answer(f, code),
            );
            r.svc.poll_disk("ata-X").unwrap();
        }
        let key = "disk/ata-X/smart".to_string();
        assert_eq!(
            changes(&r.alerts),
            vec![
                (key.clone(), Some(AlertLevel::Warning)),
                (key.clone(), Some(AlertLevel::Critical)),
                (key, None),
            ]
        );
        let msg = r.alerts.changes.lock().unwrap()[0].2.clone();
        assert!(
            msg.contains("ST3500418AS") && msg.contains("304 reallocated sectors"),
            "{msg}"
        );
        assert_eq!(r.svc.detail("ata-X").unwrap().history.polls.len(), 6);
    }

    #[test]
    fn standby_keeps_the_last_sample_and_says_so() {
        let r = rig();
        r.svc
            .set_disks(vec![disk("ata-X", "/dev/sda", DiskBus::Sata)]);
        r.runner.expect(
            "smartctl",
            &["--json", "-x"],
            answer("ata-hdd-healthy-wd-red-wd20efrx.json", 0),
        );
        r.runner.expect(
            "smartctl",
            &["--json", "-x"],
            CommandOutput {
                code: Some(2),
                stdout: br#"{"smartctl":{"exit_status":2,"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"information"}]}}"#.to_vec(),
                stderr: vec![],
            },
        );
        r.svc.poll_disk("ata-X").unwrap();
        r.now.fetch_add(1800, Ordering::SeqCst);
        r.svc.poll_disk("ata-X").unwrap();
        let s = r.svc.summary("ata-X").unwrap();
        assert!(s.standby);
        assert_eq!(s.standby_mode.as_deref(), Some("STANDBY"));
        assert_eq!(s.verdict, Verdict::Healthy);
        assert_eq!(s.temperature_c, Some(34));
        assert_eq!(s.checked_at, Some(1_700_000_000));
        assert_eq!(r.svc.detail("ata-X").unwrap().history.polls.len(), 1);
        assert!(changes(&r.alerts).is_empty(), "asleep is not an alert");
    }

    #[test]
    fn a_disk_asleep_in_any_mode_keeps_its_verdict_and_says_when_it_was_read() {
        let r = rig();
        r.svc.set_disks(vec![
            disk("ata-F", "/dev/sda", DiskBus::Sata),
            disk("scsi-N", "/dev/sdb", DiskBus::Sas),
        ]);
        // A failing disk read once, then asleep in a SCSI power mode: still failing, and
        // the alert is not touched.
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sda"],
            answer(
                "ata-hdd-failing-now-selftest-failed-usbjmicron-hitachi-hds721050dle630.json",
                216,
            ),
        );
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sda"],
            answer("standby-scsi-standby-by-timer-smartctl74-built.json", 2),
        );
        // Never read: asleep since the first poll (smartctl 7.5's "STANDBY (OS)").
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sdb"],
            answer("standby-ata-os-smartctl75-built.json", 2),
        );
        r.svc.poll_disk("ata-F").unwrap();
        r.now.fetch_add(1800, Ordering::SeqCst);
        r.svc.poll_disk("ata-F").unwrap();
        r.svc.poll_disk("scsi-N").unwrap();
        let f = r.svc.summary("ata-F").unwrap();
        assert_eq!(f.verdict, Verdict::Failing);
        assert_eq!(
            (f.standby, f.standby_mode.as_deref(), f.checked_at),
            (true, Some("STANDBY BY TIMER"), Some(1_700_000_000))
        );
        assert_eq!(changes(&r.alerts).len(), 1, "raised once, not cleared");
        let n = r.svc.summary("scsi-N").unwrap();
        assert_eq!(n.verdict, Verdict::Unavailable);
        assert!(n.standby && n.checked_at.is_none());
        assert!(
            n.reasons[0].contains("asleep (STANDBY (OS))") && !n.reasons[0].contains("could not"),
            "{:?}",
            n.reasons
        );
    }

    #[test]
    fn a_baseline_stored_with_a_packed_188_is_migrated_and_growth_warns() {
        let r = rig();
        // Acknowledged before issue 14: the packed 12/12/12 as "51540393996 timeouts".
        let path = r.svc.history_path("ata-S");
        std::fs::write(
            &path,
            r#"{"polls":[],"daily":[],"baseline":{"command_timeouts":51540393996}}"#,
        )
        .unwrap();
        r.svc
            .set_disks(vec![disk("ata-S", "/dev/sdc", DiskBus::Sata)]);
        // One more timeout: 12/12/13. Against the stored number it would hide; against the
        // migrated count of 12 it warns.
        let name = "ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json";
        let grown = String::from_utf8(fixture(name))
            .unwrap()
            .replace("51540393996", "51540393997");
        r.runner
            .expect("smartctl", &["--json", "-x"], CommandOutput::ok(grown));
        r.svc.poll_disk("ata-S").unwrap();
        let s = r.svc.summary("ata-S").unwrap();
        assert_eq!(s.verdict, Verdict::Warning);
        assert_eq!(
            s.reasons,
            ["13 command timeouts (attribute 188) (up from 12 accepted)"]
        );
        let saved: History = store::load(&path).unwrap().unwrap();
        assert_eq!(saved.baseline.unwrap().command_timeouts, Some(12));
        assert_eq!(saved.polls[0].counters.command_timeouts, Some(13));
    }

    #[test]
    fn the_summary_shows_ssd_wear_and_no_temperature_for_a_sensorless_drive() {
        let r = rig();
        r.svc.set_disks(vec![
            disk("ata-I", "/dev/sda", DiskBus::Sata),
            disk("ata-T", "/dev/sdb", DiskBus::Sata),
        ]);
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sda"],
            answer(
                "ata-ssd-wear-92pct-intel-s3500-ssdsc2bb016t4-edited.json",
                0,
            ),
        );
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sdb"],
            answer(
                "ata-ssd-no-temperature-sensor-transcend-ts32gmts400-edited.json",
                0,
            ),
        );
        r.svc.poll_all();
        let i = r.svc.summary("ata-I").unwrap();
        assert_eq!(
            (i.verdict, i.endurance_used_pct),
            (Verdict::Warning, Some(92))
        );
        let d = r.svc.detail("ata-I").unwrap();
        assert_eq!(
            d.endurance.unwrap().source,
            "attribute 233 Media_Wearout_Indicator"
        );
        let t = r.svc.summary("ata-T").unwrap();
        assert_eq!(
            (t.verdict, t.temperature_c, t.endurance_used_pct),
            (Verdict::Healthy, None, Some(4))
        );
        let v = serde_json::to_value(&t).unwrap();
        assert!(v["temperature_c"].is_null(), "{v}");
        assert!(r.svc.detail("ata-T").unwrap().history.polls[0]
            .temperature_c
            .is_none());
    }

    #[test]
    fn history_of_a_disk_known_only_by_kernel_name_is_not_saved() {
        let r = rig();
        r.svc.set_disks(vec![
            disk("sdz", "/dev/sdz", DiskBus::Sata),
            disk("ata-Y", "/dev/sdy", DiskBus::Sata),
        ]);
        for dev in ["/dev/sdz", "/dev/sdy"] {
            r.runner.expect(
                "smartctl",
                &["--json", "-x", "-n", "standby", dev],
                answer("ata-hdd-healthy-wd-red-wd20efrx.json", 0),
            );
        }
        r.svc.poll_all();
        assert_eq!(r.svc.detail("sdz").unwrap().history.polls.len(), 1);
        assert!(!r.svc.history_path("sdz").exists());
        assert!(r.svc.history_path("ata-Y").exists());
    }

    #[test]
    fn virtio_disks_are_unavailable_without_running_smartctl() {
        let r = rig();
        r.svc
            .set_disks(vec![disk("virtio-D0", "/dev/vda", DiskBus::Virtio)]);
        r.svc.poll_all();
        assert!(r.runner.calls().is_empty());
        let s = r.svc.summary("virtio-D0").unwrap();
        assert_eq!(s.verdict, Verdict::Unavailable);
        assert!(s.reasons[0].contains("virtio"));
        assert!(changes(&r.alerts).is_empty());
    }

    #[test]
    fn the_inventory_names_disks_smartctl_does_not() {
        let r = rig();
        r.svc.set_disks(vec![
            // virtio: no SMART, smartctl is not even run; udev knows the serial.
            named(
                "virtio-CAIRNLAB0003",
                "/dev/vdb",
                DiskBus::Virtio,
                None,
                "CAIRNLAB0003",
            ),
            // smartctl could not open it: its document names no drive.
            named(
                "nvme-P",
                "/dev/nvme0n1",
                DiskBus::Nvme,
                Some("Samsung SSD 970 EVO"),
                "S0INVENTORY",
            ),
            // Behind a USB bridge udev sees the bridge's serial; smartctl reads the drive's.
            named(
                "usb-B",
                "/dev/sdc",
                DiskBus::Usb,
                Some("JMicron bridge"),
                "BRIDGE0001",
            ),
        ]);
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/nvme0n1"],
            answer("error-nvme-open-failed-permission-denied.json", 2),
        );
        r.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sdc"],
            answer(
                "ata-hdd-failing-now-selftest-failed-usbjmicron-hitachi-hds721050dle630.json",
                216,
            ),
        );
        r.svc.poll_all();
        let list = r.svc.list();
        let by_id = |id: &str| list.iter().find(|d| d.id == id).unwrap().clone();
        let v = by_id("virtio-CAIRNLAB0003");
        assert_eq!(v.smart.verdict, Verdict::Unavailable);
        assert_eq!(v.serial.as_deref(), Some("CAIRNLAB0003"));
        assert_eq!(v.model, None);
        let n = by_id("nvme-P");
        assert_eq!(n.smart.verdict, Verdict::Unavailable);
        assert_eq!(n.serial.as_deref(), Some("S0INVENTORY"));
        assert_eq!(n.model.as_deref(), Some("Samsung SSD 970 EVO"));
        let u = by_id("usb-B");
        assert_eq!(u.serial.as_deref(), Some("MSK423Y20S3HBC"));
        assert_eq!(u.model.as_deref(), Some("Hitachi HDS721050DLE630"));

        // The detail says the same, and keeps smartctl's other facts.
        let d = r.svc.detail("virtio-CAIRNLAB0003").unwrap().device;
        assert_eq!(d.serial.as_deref(), Some("CAIRNLAB0003"));
        assert_eq!(d.protocol, None);
        let d = r.svc.detail("usb-B").unwrap().device;
        assert_eq!(d.serial.as_deref(), Some("MSK423Y20S3HBC"));
        assert_eq!(d.device_type.as_deref(), Some("usbjmicron"));
        // And so does the failing drive's alert.
        let alerts = r.alerts.changes.lock().unwrap().clone();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(
            alerts[0]
                .2
                .starts_with("disk Hitachi HDS721050DLE630 MSK423Y20S3HBC (usb-B)"),
            "{}",
            alerts[0].2
        );
    }

    #[test]
    fn settings_are_validated_saved_and_applied_at_once() {
        let r = rig();
        r.svc
            .set_disks(vec![disk("ata-G", "/dev/sdb", DiskBus::Sata)]);
        r.runner.expect(
            "smartctl",
            &["--json", "-x"],
            answer("ata-hdd-healthy-wd-gold-wd181kryz.json", 0),
        );
        r.svc.poll_disk("ata-G").unwrap();
        assert_eq!(r.svc.summary("ata-G").unwrap().verdict, Verdict::Warning); // 49 °C
        let path = r.svc.dir.join("settings.json");
        let bad = DiskSettings {
            temperature_warning_c: Some(60),
            temperature_critical_c: Some(55),
            ..DiskSettings::default()
        };
        let e = r.svc.set_settings("ata-G", bad, false).unwrap_err();
        assert_eq!(e.field(), Some("temperature_critical_c"));
        assert!(!path.exists(), "a refused change wrote the settings file");
        let good = DiskSettings {
            temperature_warning_c: Some(52),
            temperature_critical_c: Some(60),
            ..DiskSettings::default()
        };
        r.svc.set_settings("ata-G", good.clone(), false).unwrap();
        assert_eq!(r.svc.summary("ata-G").unwrap().verdict, Verdict::Healthy);
        assert_eq!(r.svc.settings("ata-G").unwrap(), good);
        assert!(
            changes(&r.alerts).last().unwrap().1.is_none(),
            "alert not cleared"
        );
        assert!(matches!(
            r.svc.set_settings("nope", DiskSettings::default(), false),
            Err(SmartError::UnknownDisk(_))
        ));
        // Survives a restart.
        let dir = r._dir;
        let r2 = rig_in(dir);
        r2.svc
            .set_disks(vec![disk("ata-G", "/dev/sdb", DiskBus::Sata)]);
        assert_eq!(r2.svc.settings("ata-G").unwrap(), good);
        assert_eq!(r2.svc.detail("ata-G").unwrap().history.polls.len(), 1);
    }

    #[test]
    fn acknowledging_counts_clears_the_warning_until_they_grow() {
        let r = rig();
        r.svc
            .set_disks(vec![disk("ata-S", "/dev/sdc", DiskBus::Sata)]);
        r.runner.expect(
            "smartctl",
            &["--json", "-x"],
            answer("ata-hdd-reallocated-seagate-st3500418as.json", 0),
        );
        r.svc.poll_disk("ata-S").unwrap();
        assert_eq!(r.svc.summary("ata-S").unwrap().verdict, Verdict::Warning);
        r.svc
            .set_settings("ata-S", DiskSettings::default(), true)
            .unwrap();
        assert_eq!(r.svc.summary("ata-S").unwrap().verdict, Verdict::Healthy);
        // 304 → 310: warns again.
        let grown = String::from_utf8(fixture("ata-hdd-reallocated-seagate-st3500418as.json"))
            .unwrap()
            .replacen("\"value\": 304", "\"value\": 310", 1);
        assert!(grown.contains("\"value\": 310"), "fixture layout changed");
        r.runner
            .expect("smartctl", &["--json", "-x"], CommandOutput::ok(grown));
        r.svc.poll_disk("ata-S").unwrap();
        let s = r.svc.summary("ata-S").unwrap();
        assert_eq!(s.verdict, Verdict::Warning);
        assert!(
            s.reasons[0].contains("310") && s.reasons[0].contains("304"),
            "{:?}",
            s.reasons
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_loop_polls_new_disks_from_the_watch() {
        let r = rig();
        let (tx, rx) = tokio::sync::watch::channel(vec![]);
        // The first interval tick and the list change may both poll the new disk.
        for _ in 0..2 {
            r.runner.expect(
                "smartctl",
                &["--json", "-x", "-n", "standby", "/dev/nvme0n1"],
                answer("nvme-media-errors-samsung-970-evo.json", 0),
            );
        }
        let svc = Arc::new(r.svc);
        let task = svc.spawn(rx);
        tx.send(vec![disk("nvme-X", "/dev/nvme0n1", DiskBus::Nvme)])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if svc
                .summary("nvme-X")
                .is_some_and(|s| s.checked_at.is_some())
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the new disk was not polled within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(svc.summary("nvme-X").unwrap().verdict, Verdict::Warning);
        drop(tx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the loop did not stop when the disk list went away")
            .unwrap();
    }
}
