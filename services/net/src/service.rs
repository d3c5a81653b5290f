//! The network service: the confirmed spec on STATE, safe apply (try mode with automatic
//! rollback unless confirmed), boot apply, reset to DHCP, status and the alert monitor.

use crate::dhcp::{self, DhcpOutcome, DhcpPaths};
use crate::monitor::AlertTracker;
use crate::netlink::{NetSystem, NetlinkError};
use crate::observed::Observed;
use crate::plan::{self, PlanError};
use crate::spec::{Kind, NetworkSpec};
use crate::status::{self, LinkStatus, RouteStatus};
use crate::validate::{validate, FieldError};
use cairn_core::alert::{AlertLevel, AlertSink};
use cairn_core::command::CommandRunner;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The confirmed spec, under the domain's state directory.
pub const SPEC_FILE: &str = "spec.json";
/// The spec a reset replaced.
pub const BEFORE_RESET_FILE: &str = "spec.before-reset.json";
/// Default time to confirm a change before it is rolled back.
pub const DEFAULT_TRY_TIMEOUT: Duration = Duration::from_secs(60);
/// Shortest and longest try timeout a caller may ask for.
pub const TRY_TIMEOUT_RANGE: (u64, u64) = (5, 3600);
/// Alert key of an automatic rollback (info; cleared by the next confirmed change).
pub const ROLLBACK_ALERT: &str = "net/rollback";

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct NetworkOptions {
    /// `<state>/network`.
    pub state_dir: PathBuf,
    pub try_timeout: Duration,
    /// dhcpcd and resolv.conf handling; `None` leaves them alone (tests, development).
    pub dhcp: Option<DhcpPaths>,
    /// `/sys/class/net`.
    pub sys_net: PathBuf,
    /// How often the alert monitor looks at the links.
    pub monitor_interval: Duration,
    /// udev's database (`/run/udev/data`): at boot the apply also waits until udev has
    /// processed every physical link (its `n<ifindex>` file exists), since udev renames
    /// NICs (eth2 → enp0s4) while cairnd starts. `None`: no such wait (tests, development).
    pub udev_data: Option<PathBuf>,
}

impl NetworkOptions {
    pub fn new(state_dir: PathBuf) -> NetworkOptions {
        NetworkOptions {
            state_dir,
            try_timeout: DEFAULT_TRY_TIMEOUT,
            dhcp: None,
            sys_net: "/sys/class/net".into(),
            monitor_interval: Duration::from_millis(500),
            udev_data: None,
        }
    }
}

/// Failures of the service.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid network spec")]
    Invalid(#[source] FieldError),
    #[error("cannot read the network state")]
    Observe(#[source] NetlinkError),
    #[error("cannot plan the change")]
    Plan(#[source] PlanError),
    #[error("applying {op:?} failed after {done} of {total} operations")]
    Apply {
        op: String,
        done: usize,
        total: usize,
        #[source]
        source: NetlinkError,
    },
    #[error("configuring DHCP or DNS failed")]
    Dhcp(#[source] dhcp::DhcpError),
    #[error("cannot create {path}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot save {path}")]
    Save {
        path: PathBuf,
        #[source]
        source: cairn_core::AtomicWriteError,
    },
    #[error("cannot read {path}")]
    Load {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid network spec")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no change is pending")]
    NothingPending,
    #[error("the try timeout must be between {} and {} s", TRY_TIMEOUT_RANGE.0, TRY_TIMEOUT_RANGE.1)]
    Timeout,
    #[error("the change failed and so did restoring the previous config ({0})")]
    RollbackFailed(String, #[source] Box<NetError>),
}

/// What one apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// The planned operations, in order (all applied).
    pub ops: Vec<String>,
    /// Time spent applying the netlink operations, ms.
    pub netlink_ms: u64,
    /// The whole apply including dhcpcd and resolv.conf, ms.
    pub total_ms: u64,
    pub dhcp: DhcpOutcome,
}

/// A change applied in try mode, waiting for confirmation.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    pub spec: NetworkSpec,
    /// Unix time (ms) at which it is rolled back.
    pub deadline_unix_ms: u64,
    /// Seconds left until the rollback.
    pub remaining_s: u64,
    pub timeout_s: u64,
    pub apply: ApplyReport,
}

/// One operation of a [`PlanPreview`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedOp {
    /// The operation as an `ip`-like line.
    pub op: String,
    /// `create`, `change` or `remove`.
    pub change: &'static str,
    /// The link it acts on (kernel name); `None` for routes.
    pub link: Option<String>,
}

/// What applying a spec would do, computed without changing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanPreview {
    /// The operations, in the order an apply runs them.
    pub ops: Vec<PlannedOp>,
    /// Links the apply creates.
    pub created: Vec<String>,
    /// Links it changes (including links deleted and created again with another kind).
    pub changed: Vec<String>,
    /// Links it deletes.
    pub removed: Vec<String>,
    /// Whether it adds or deletes routes.
    pub routes_changed: bool,
}

impl PlanPreview {
    fn of(ops: &[plan::Op]) -> PlanPreview {
        let mut p = PlanPreview {
            ops: ops
                .iter()
                .map(|o| PlannedOp {
                    op: o.to_string(),
                    change: o.change(),
                    link: o.link().map(str::to_string),
                })
                .collect(),
            created: vec![],
            changed: vec![],
            removed: vec![],
            routes_changed: false,
        };
        let push = |v: &mut Vec<String>, n: &str| {
            if !v.iter().any(|x| x == n) {
                v.push(n.to_string());
            }
        };
        for o in ops {
            match (o.link(), o) {
                (None, _) => p.routes_changed = true,
                (Some(n), plan::Op::DeleteLink { .. }) => push(&mut p.removed, n),
                (Some(n), plan::Op::CreateBond { .. })
                | (Some(n), plan::Op::CreateBridge { .. })
                | (Some(n), plan::Op::CreateVlan { .. }) => {
                    // Deleted and created again (kind or VLAN id changed): a change.
                    if let Some(i) = p.removed.iter().position(|x| x == n) {
                        p.removed.remove(i);
                        push(&mut p.changed, n);
                    } else {
                        push(&mut p.created, n);
                    }
                }
                (Some(n), _) => {
                    if !p.created.iter().any(|x| x == n) && !p.removed.iter().any(|x| x == n) {
                        push(&mut p.changed, n);
                    }
                }
            }
        }
        p
    }
}

/// The last automatic rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackRecord {
    pub at_unix_ms: u64,
    pub reason: String,
}

/// `GET /network`.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkView {
    /// The confirmed spec (what the node boots with), or the factory default when none was
    /// ever confirmed.
    pub spec: NetworkSpec,
    pub configured: bool,
    pub pending: Option<PendingView>,
    pub try_timeout_s: u64,
    pub last_rollback: Option<RollbackRecord>,
}

/// `GET /network/status`.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkStatus {
    pub links: Vec<LinkStatus>,
    pub routes: Vec<RouteStatus>,
    /// Netlink operations applied since cairnd started (a second apply of the same spec
    /// adds none).
    pub applied_ops_total: u64,
    pub last_apply: Option<ApplyReport>,
    pub pending: bool,
}

struct Pending {
    spec: NetworkSpec,
    previous: NetworkSpec,
    deadline: SystemTime,
    timeout: Duration,
    generation: u64,
    report: ApplyReport,
}

#[derive(Default)]
struct Inner {
    confirmed: Option<NetworkSpec>,
    pending: Option<Pending>,
    generation: u64,
    ops_total: u64,
    last_apply: Option<ApplyReport>,
    last_rollback: Option<RollbackRecord>,
}

/// The network domain's service.
pub struct Network {
    sys: Arc<dyn NetSystem>,
    runner: Arc<dyn CommandRunner>,
    alerts: Arc<dyn AlertSink>,
    opts: NetworkOptions,
    inner: Mutex<Inner>,
    apply_lock: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

/// A duration in whole milliseconds (saturating: no duration here comes near 584 million
/// years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Network {
    /// Load the confirmed spec (if any) from the state directory. Nothing is applied yet.
    pub fn new(
        sys: Arc<dyn NetSystem>,
        runner: Arc<dyn CommandRunner>,
        alerts: Arc<dyn AlertSink>,
        opts: NetworkOptions,
    ) -> Result<Arc<Network>, NetError> {
        std::fs::create_dir_all(&opts.state_dir).map_err(|source| NetError::Mkdir {
            path: opts.state_dir.clone(),
            source,
        })?;
        let confirmed = load(&opts.state_dir.join(SPEC_FILE))?;
        Ok(Arc::new(Network {
            sys,
            runner,
            alerts,
            opts,
            inner: Mutex::new(Inner {
                confirmed,
                ..Inner::default()
            }),
            apply_lock: Mutex::new(()),
        }))
    }

    /// At boot: apply the confirmed spec (or, with `reset`, first replace it by DHCP on the
    /// management link). Returns the report, `None` when the node was never configured.
    pub fn boot(&self, reset: bool) -> Result<Option<ApplyReport>, NetError> {
        if reset {
            return self.reset_to_dhcp().map(Some);
        }
        let spec = lock(&self.inner).confirmed.clone();
        match spec {
            Some(s) => self.apply_now(&s).map(Some),
            None => Ok(None),
        }
    }

    /// [`Network::boot`] once every link the spec names exists and udev has named every
    /// physical link: NIC drivers are loaded and NICs renamed by udev's coldplug, which runs
    /// alongside cairnd. Waits at most `wait`, then applies anyway (the error names the
    /// missing link).
    pub fn boot_when_links_exist(
        &self,
        reset: bool,
        wait: Duration,
    ) -> Result<Option<ApplyReport>, NetError> {
        let deadline = Instant::now() + wait;
        loop {
            let before = self.wait_for_links(reset, deadline, wait)?;
            match self.boot(reset) {
                // udev renamed a NIC between the plan and its apply (eth1 → enp0s3): the
                // plan named a link that is gone. Plan again from what is there now.
                Err(e @ NetError::Apply { .. }) if Instant::now() < deadline => {
                    let now = self.sys.observe().map_err(NetError::Observe)?;
                    if physical_names(&now) == before {
                        return Err(e);
                    }
                    tracing::warn!(
                        "network: a link was renamed while the boot config was applied ({}); planning again",
                        cairn_core::boot::error_chain(&e)
                    );
                }
                other => return other,
            }
        }
    }

    /// Waits (until `deadline`) for the links the boot apply needs and for udev to have named
    /// every physical link; returns the physical links' names it saw last.
    fn wait_for_links(
        &self,
        reset: bool,
        deadline: Instant,
        wait: Duration,
    ) -> Result<Vec<String>, NetError> {
        let spec = lock(&self.inner).confirmed.clone();
        // Also before a reset: it finds the management link through the old spec's names,
        // and udev may not have renamed the NICs yet (eth0 → enp0s2).
        loop {
            let obs = self.sys.observe().map_err(NetError::Observe)?;
            let waiting_for = match &spec {
                Some(spec) => plan::kernel_names(spec, &obs).err().map(|e| e.to_string()),
                // A reset needs some physical link.
                None if reset && first_physical(&obs).is_none() => {
                    Some("a physical link".to_string())
                }
                None if reset => None,
                None => return Ok(physical_names(&obs)),
            }
            .or_else(|| self.unnamed_by_udev(&obs));
            match waiting_for {
                None => return Ok(physical_names(&obs)),
                Some(what) if Instant::now() >= deadline => {
                    tracing::warn!("network: still waiting after {wait:?}: {what}");
                    return Ok(physical_names(&obs));
                }
                // poll while udev's coldplug loads drivers and names NICs; bounded above
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The physical links udev has not processed yet (their names may still change), as a
    /// reason to wait; `None` when all are done or there is no udev database to look at.
    fn unnamed_by_udev(&self, obs: &Observed) -> Option<String> {
        let dir = self.opts.udev_data.as_ref()?;
        let pending: Vec<&str> = physical(obs)
            .filter(|l| !dir.join(format!("n{}", l.index)).exists())
            .map(|l| l.name.as_str())
            .collect();
        (!pending.is_empty()).then(|| format!("udev has not named {}", pending.join(", ")))
    }

    /// The view for the API.
    pub fn view(&self) -> Result<NetworkView, NetError> {
        let (confirmed, pending, last_rollback) = {
            let inner = lock(&self.inner);
            (
                inner.confirmed.clone(),
                inner.pending.as_ref().map(pending_view),
                inner.last_rollback.clone(),
            )
        };
        let configured = confirmed.is_some();
        let spec = match confirmed {
            Some(s) => s,
            None => factory_default(&self.sys.observe().map_err(NetError::Observe)?),
        };
        Ok(NetworkView {
            spec,
            configured,
            pending,
            try_timeout_s: self.opts.try_timeout.as_secs(),
            last_rollback,
        })
    }

    /// Links, routes and apply counters.
    pub fn status(&self) -> Result<NetworkStatus, NetError> {
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        let managed = self.managed_names(&obs);
        let inner = lock(&self.inner);
        Ok(NetworkStatus {
            links: status::link_status(&obs, &self.opts.sys_net, &managed),
            routes: status::route_status(&obs),
            applied_ops_total: inner.ops_total,
            last_apply: inner.last_apply.clone(),
            pending: inner.pending.is_some(),
        })
    }

    fn current_spec(&self) -> Option<NetworkSpec> {
        let inner = lock(&self.inner);
        inner
            .pending
            .as_ref()
            .map(|p| p.spec.clone())
            .or_else(|| inner.confirmed.clone())
    }

    fn managed_names(&self, obs: &Observed) -> Vec<String> {
        match self.current_spec() {
            Some(s) => plan::kernel_names(&s, obs)
                .map(|m| m.into_values().collect())
                .unwrap_or_default(),
            None => vec![],
        }
    }

    /// Check a spec against this node without changing anything.
    pub fn validate(&self, spec: &NetworkSpec) -> Result<(), NetError> {
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        validate(spec, &obs).map_err(NetError::Invalid)
    }

    /// Validate `spec` and plan it against the links as they are now, changing nothing: what
    /// an apply would create, change and remove.
    pub fn preview(&self, spec: &NetworkSpec) -> Result<PlanPreview, NetError> {
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        validate(spec, &obs).map_err(NetError::Invalid)?;
        let ops = plan::plan(spec, &obs).map_err(NetError::Plan)?;
        Ok(PlanPreview::of(&ops))
    }

    /// Observe, plan and apply `spec`, then dhcpcd and resolv.conf.
    fn apply_now(&self, spec: &NetworkSpec) -> Result<ApplyReport, NetError> {
        let _g = lock(&self.apply_lock);
        let start = Instant::now();
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        let ops = plan::plan(spec, &obs).map_err(NetError::Plan)?;
        // dhcpcd first: a dhcpcd that no longer serves a link cannot add addresses to it
        // after the netlink changes (a new DHCP interface is picked up when it appears).
        let dhcp = match &self.opts.dhcp {
            Some(paths) => {
                let names = plan::kernel_names(spec, &obs).map_err(NetError::Plan)?;
                let dhcp_names: Vec<String> = spec
                    .dhcp_interfaces()
                    .iter()
                    .map(|n| names.get(n).cloned().unwrap_or_else(|| n.clone()))
                    .collect();
                dhcp::configure(paths, self.runner.as_ref(), spec, &dhcp_names)
                    .map_err(NetError::Dhcp)?
            }
            None => DhcpOutcome::default(),
        };
        let netlink_start = Instant::now();
        let took = match self.sys.apply_all(&ops) {
            Ok(took) => took,
            Err((i, source)) => {
                lock(&self.inner).ops_total += i as u64;
                return Err(NetError::Apply {
                    op: ops.get(i).map(|o| o.to_string()).unwrap_or_default(),
                    done: i,
                    total: ops.len(),
                    source,
                });
            }
        };
        let netlink_ms = millis(netlink_start.elapsed());
        let report = ApplyReport {
            ops: ops.iter().map(|o| o.to_string()).collect(),
            netlink_ms,
            total_ms: millis(start.elapsed()),
            dhcp,
        };
        let mut inner = lock(&self.inner);
        inner.ops_total += ops.len() as u64;
        inner.last_apply = Some(report.clone());
        // Each op with its time, for profiling slow applies from the journal.
        let timed: Vec<String> = report
            .ops
            .iter()
            .zip(&took)
            .map(|(o, t)| format!("{o} ({:.1} ms)", t.as_secs_f64() * 1000.0))
            .collect();
        tracing::info!(
            "network: applied {} operations in {} ms (netlink {} ms){}",
            report.ops.len(),
            report.total_ms,
            report.netlink_ms,
            if timed.is_empty() {
                String::new()
            } else {
                format!(": {}", timed.join("; "))
            }
        );
        Ok(report)
    }

    /// Apply `spec` in try mode: it stays only if [`Network::confirm`] is called before the
    /// timeout (default [`NetworkOptions::try_timeout`]); otherwise the previous config comes
    /// back by itself. A spec that does not validate changes nothing.
    pub fn try_apply(
        self: &Arc<Self>,
        spec: NetworkSpec,
        timeout: Option<Duration>,
    ) -> Result<PendingView, NetError> {
        let timeout = timeout.unwrap_or(self.opts.try_timeout);
        if timeout.as_secs() < TRY_TIMEOUT_RANGE.0 || timeout.as_secs() > TRY_TIMEOUT_RANGE.1 {
            return Err(NetError::Timeout);
        }
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        validate(&spec, &obs).map_err(NetError::Invalid)?;
        let previous = {
            let inner = lock(&self.inner);
            match (&inner.pending, &inner.confirmed) {
                (Some(p), _) => p.previous.clone(),
                (None, Some(c)) => c.clone(),
                (None, None) => factory_default(&obs),
            }
        };
        let report = match self.apply_now(&spec) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("network: the change failed ({e}); restoring the previous config");
                return match self.apply_now(&previous) {
                    Ok(_) => {
                        lock(&self.inner).pending = None;
                        Err(e)
                    }
                    Err(r) => Err(NetError::RollbackFailed(e.to_string(), Box::new(r))),
                };
            }
        };
        let view = {
            let mut inner = lock(&self.inner);
            inner.generation += 1;
            let p = Pending {
                spec,
                previous,
                deadline: SystemTime::now() + timeout,
                timeout,
                generation: inner.generation,
                report,
            };
            let v = pending_view(&p);
            inner.pending = Some(p);
            v
        };
        let me = Arc::clone(self);
        let generation = lock(&self.inner).generation;
        std::thread::Builder::new()
            .name("net-try-timer".into())
            .spawn(move || {
                // A timer, not a readiness wait: the rollback happens at the deadline
                // unless the change was confirmed (or replaced) meanwhile.
                std::thread::sleep(timeout);
                me.expire(generation);
            })
            .map_err(|source| NetError::Load {
                path: "net-try-timer thread".into(),
                source,
            })?;
        Ok(view)
    }

    fn expire(&self, generation: u64) {
        let previous = {
            let inner = lock(&self.inner);
            match &inner.pending {
                Some(p) if p.generation == generation => p.previous.clone(),
                _ => return,
            }
        };
        let secs = lock(&self.inner)
            .pending
            .as_ref()
            .map(|p| p.timeout.as_secs())
            .unwrap_or(0);
        let reason = format!("the change was not confirmed within {secs} s");
        tracing::warn!("network: {reason}; restoring the previous config");
        match self.apply_now(&previous) {
            Ok(_) => {
                let mut inner = lock(&self.inner);
                inner.pending = None;
                inner.last_rollback = Some(RollbackRecord {
                    at_unix_ms: unix_ms(SystemTime::now()),
                    reason: reason.clone(),
                });
                self.alerts.raise(
                    ROLLBACK_ALERT,
                    AlertLevel::Info,
                    &format!("network change rolled back: {reason}"),
                );
            }
            Err(e) => {
                tracing::error!("network: rollback failed: {e}");
                self.alerts.raise(
                    ROLLBACK_ALERT,
                    AlertLevel::Critical,
                    &format!("network rollback failed: {e}"),
                );
            }
        }
    }

    /// Keep the pending change: it becomes the confirmed spec the node boots with.
    pub fn confirm(&self) -> Result<NetworkSpec, NetError> {
        let mut inner = lock(&self.inner);
        let Some(p) = inner.pending.take() else {
            return Err(NetError::NothingPending);
        };
        if let Err(e) = save(&self.opts.state_dir.join(SPEC_FILE), &p.spec) {
            inner.pending = Some(p);
            return Err(e);
        }
        inner.confirmed = Some(p.spec.clone());
        drop(inner);
        self.alerts
            .clear(ROLLBACK_ALERT, "a network change was confirmed");
        Ok(p.spec)
    }

    /// Drop the pending change now and restore the previous config.
    pub fn rollback(&self) -> Result<ApplyReport, NetError> {
        let previous = match &lock(&self.inner).pending {
            Some(p) => p.previous.clone(),
            None => return Err(NetError::NothingPending),
        };
        let report = self.apply_now(&previous)?;
        lock(&self.inner).pending = None;
        Ok(report)
    }

    /// Apply and confirm at once (the first-boot wizard: the admin reaches the node at the
    /// address they just chose).
    pub fn apply_confirmed(&self, spec: &NetworkSpec) -> Result<ApplyReport, NetError> {
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        validate(spec, &obs).map_err(NetError::Invalid)?;
        let report = self.apply_now(spec)?;
        save(&self.opts.state_dir.join(SPEC_FILE), spec)?;
        let mut inner = lock(&self.inner);
        inner.confirmed = Some(spec.clone());
        inner.pending = None;
        Ok(report)
    }

    /// Replace the config by DHCP on the management interface's physical link (the one
    /// under the management bond, bridge or VLAN), keeping the old spec beside it.
    pub fn reset_to_dhcp(&self) -> Result<ApplyReport, NetError> {
        let obs = self.sys.observe().map_err(NetError::Observe)?;
        let old = lock(&self.inner).confirmed.clone();
        let link = old
            .as_ref()
            .and_then(|s| management_link(s, &obs))
            .or_else(|| default_route_link(&obs))
            .or_else(|| first_physical(&obs));
        let Some(link) = link else {
            return Err(NetError::Plan(PlanError::MissingLink(
                "any physical link".into(),
            )));
        };
        let spec = NetworkSpec::dhcp_on(&link);
        if let Some(o) = &old {
            save(&self.opts.state_dir.join(BEFORE_RESET_FILE), o)?;
        }
        tracing::warn!("network: reset: DHCP on {link}");
        let report = self.apply_now(&spec)?;
        save(&self.opts.state_dir.join(SPEC_FILE), &spec)?;
        let mut inner = lock(&self.inner);
        inner.confirmed = Some(spec);
        inner.pending = None;
        Ok(report)
    }

    /// Watch the links and raise or clear alerts, on a thread of its own.
    pub fn start_monitor(self: &Arc<Self>) {
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("net-monitor".into())
            .spawn(move || {
                let mut tracker = AlertTracker::default();
                loop {
                    match me.status() {
                        Ok(st) => tracker.update(&st.links, Instant::now(), me.alerts.as_ref()),
                        Err(e) => tracing::warn!("network monitor: {e}"),
                    }
                    std::thread::sleep(me.opts.monitor_interval);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("network monitor did not start: {e}");
        }
    }
}

fn pending_view(p: &Pending) -> PendingView {
    let remaining = p
        .deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    PendingView {
        spec: p.spec.clone(),
        deadline_unix_ms: unix_ms(p.deadline),
        remaining_s: remaining.as_secs() + u64::from(remaining.subsec_millis() > 0),
        timeout_s: p.timeout.as_secs(),
        apply: p.report.clone(),
    }
}

fn load(path: &Path) -> Result<Option<NetworkSpec>, NetError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| NetError::Parse {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NetError::Load {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn save(path: &Path, spec: &NetworkSpec) -> Result<(), NetError> {
    let mut text = serde_json::to_vec_pretty(spec).expect("a spec serializes");
    text.push(b'\n');
    cairn_core::write_atomic(path, &text, 0o600).map_err(|source| NetError::Save {
        path: path.to_path_buf(),
        source,
    })
}

fn physical(obs: &Observed) -> impl Iterator<Item = &crate::observed::ObservedLink> {
    obs.links
        .iter()
        .filter(|l| l.kind.is_none() && l.name != "lo")
}

fn default_route_link(obs: &Observed) -> Option<String> {
    obs.routes
        .iter()
        .filter(|r| r.destination.prefix == 0 && r.destination.addr.is_ipv4())
        .filter_map(|r| r.oif)
        .map(|i| obs.name_of(i))
        .find(|n| physical(obs).any(|l| &l.name == n))
}

fn physical_names(obs: &Observed) -> Vec<String> {
    physical(obs).map(|l| l.name.clone()).collect()
}

fn first_physical(obs: &Observed) -> Option<String> {
    physical(obs).next().map(|l| l.name.clone())
}

/// What a node that was never configured runs: DHCP on every physical link, the one with
/// the default route (else the first) carrying the management address.
pub fn factory_default(obs: &Observed) -> NetworkSpec {
    let mgmt = default_route_link(obs).or_else(|| first_physical(obs));
    let mut spec = NetworkSpec::default();
    for l in physical(obs) {
        spec.links.push(crate::spec::LinkSpec {
            name: l.name.clone(),
            mac: None,
            mtu: None,
            ip: crate::spec::IpSpec {
                dhcp: true,
                addresses: vec![],
                management: mgmt.as_deref() == Some(l.name.as_str()),
            },
        });
    }
    spec
}

/// The kernel name of the physical link under the spec's management interface.
pub fn management_link(spec: &NetworkSpec, obs: &Observed) -> Option<String> {
    let names = plan::kernel_names(spec, obs).ok()?;
    let mut cur = spec
        .ifaces()
        .into_iter()
        .find(|i| i.ip.management)?
        .name
        .to_string();
    for _ in 0..8 {
        let i = spec.iface(&cur)?;
        cur = match i.kind {
            Kind::Link => return names.get(&cur).cloned(),
            Kind::Bond => spec
                .bonds
                .iter()
                .find(|b| b.name == cur)?
                .members
                .first()?
                .clone(),
            Kind::Bridge => spec
                .bridges
                .iter()
                .find(|b| b.name == cur)?
                .ports
                .first()?
                .clone(),
            Kind::Vlan => spec.vlans.iter().find(|v| v.name == cur)?.parent.clone(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::RecordingSystem;
    use crate::observed::{ObservedLink, ObservedRoute};
    use cairn_core::alert::RecordingAlerts;
    use cairn_core::command::RecordingRunner;
    use serde_json::json;

    fn obs() -> Observed {
        let l = |i: u32, n: &str| ObservedLink {
            index: i,
            name: n.into(),
            mtu: 1500,
            up: true,
            carrier: true,
            ..Default::default()
        };
        Observed {
            links: vec![l(1, "lo"), l(2, "ens3"), l(3, "ens4"), l(4, "ens5")],
            routes: vec![ObservedRoute {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("10.0.2.2".parse().unwrap()),
                oif: Some(2),
                protocol: 16,
                metric: None,
            }],
        }
    }

    fn setup(
        timeout: Duration,
    ) -> (
        Arc<Network>,
        Arc<RecordingSystem>,
        Arc<RecordingAlerts>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let sys = Arc::new(RecordingSystem::default());
        *sys.observed.lock().unwrap() = obs();
        let alerts = Arc::new(RecordingAlerts::default());
        let mut opts = NetworkOptions::new(dir.path().join("network"));
        opts.try_timeout = timeout;
        let net = Network::new(
            sys.clone(),
            Arc::new(RecordingRunner::new()),
            alerts.clone(),
            opts,
        )
        .unwrap();
        (net, sys, alerts, dir)
    }

    fn spec_static() -> NetworkSpec {
        serde_json::from_value(json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "ens4", "addresses": ["10.9.0.2/24"]}]
        }))
        .unwrap()
    }

    #[test]
    fn preview_says_what_an_apply_would_create_change_and_remove_without_applying() {
        let (net, sys, _, _dir) = setup(Duration::from_secs(60));
        let bond: NetworkSpec = serde_json::from_value(json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "ens4"}, {"name": "ens5"}],
            "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["ens4", "ens5"],
                       "addresses": ["10.9.0.2/24"]}],
            "routes": [{"destination": "10.99.0.0/16", "gateway": "10.9.0.1"}]
        }))
        .unwrap();
        let p = net.preview(&bond).unwrap();
        assert!(
            sys.applied.lock().unwrap().is_empty(),
            "a preview applies nothing"
        );
        assert_eq!(p.created, vec!["bond0".to_string()]);
        assert!(p.changed.contains(&"ens4".to_string()), "{p:?}");
        assert!(p.removed.is_empty());
        assert!(p.routes_changed);
        assert!(p
            .ops
            .iter()
            .any(|o| o.change == "create" && o.op.starts_with("create bond bond0")));
        // A bridge Cairn made, which the spec no longer names: removed.
        sys.observed.lock().unwrap().links.push(ObservedLink {
            index: 9,
            name: "br9".into(),
            kind: Some("bridge".into()),
            alias: Some(crate::observed::OWNED_ALIAS.into()),
            mtu: 1500,
            ..Default::default()
        });
        let p = net.preview(&spec_static()).unwrap();
        assert_eq!(p.removed, vec!["br9".to_string()], "{p:?}");
        // An invalid spec is refused with its field, as an apply would be.
        let bad: NetworkSpec = serde_json::from_value(json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "ens4", "addresses": ["10.9.0.2/24"]}],
            "routes": [{"destination": "10.99.0.0/16", "gateway": "192.0.2.1", "interface": "ens4"}]
        }))
        .unwrap();
        match net.preview(&bad) {
            Err(NetError::Invalid(f)) => assert!(f.field.starts_with("routes[0]"), "{f:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn boot_waits_until_udev_has_named_every_physical_link() {
        let (net, sys, _, dir) = setup(Duration::from_secs(60));
        net.try_apply(spec_static(), None).unwrap();
        net.confirm().unwrap();
        let udev = dir.path().join("udev");
        std::fs::create_dir(&udev).unwrap();
        let mut opts = NetworkOptions::new(dir.path().join("network"));
        opts.udev_data = Some(udev.clone());
        let boot = Network::new(
            sys.clone(),
            Arc::new(RecordingRunner::new()),
            Arc::new(RecordingAlerts::default()),
            opts,
        )
        .unwrap();
        // ens3 and ens4 processed, ens5 (index 4) not: the apply waits for the deadline.
        std::fs::write(udev.join("n2"), "").unwrap();
        std::fs::write(udev.join("n3"), "").unwrap();
        let t = Instant::now();
        boot.boot_when_links_exist(false, Duration::from_millis(300))
            .unwrap()
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(sys.applied.lock().unwrap().len(), 2);
        // udev finishes ens5 after 200 ms: the apply follows, well before the deadline.
        let n4 = udev.join("n4");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::write(n4, "").unwrap();
        });
        let t = Instant::now();
        boot.boot_when_links_exist(false, Duration::from_secs(20))
            .unwrap()
            .unwrap();
        writer.join().unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(10),
            "{took:?}"
        );
        assert_eq!(sys.applied.lock().unwrap().len(), 3);
        // Everything named: no wait at all.
        let t = Instant::now();
        boot.boot_when_links_exist(false, Duration::from_secs(20))
            .unwrap()
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// The system of a boot where udev renames `ens5` to `enp0s5` right as the first op
    /// on it is applied (the op fails: no such link).
    struct RenamedDuringApply {
        inner: RecordingSystem,
        renamed: std::sync::atomic::AtomicBool,
    }

    impl NetSystem for RenamedDuringApply {
        fn observe(&self) -> Result<Observed, NetlinkError> {
            self.inner.observe()
        }
        fn apply(&self, op: &crate::plan::Op) -> Result<(), NetlinkError> {
            use std::sync::atomic::Ordering;
            if op.to_string().contains("ens5") && !self.renamed.swap(true, Ordering::SeqCst) {
                let mut obs = self.inner.observed.lock().unwrap();
                for l in obs.links.iter_mut().filter(|l| l.name == "ens5") {
                    l.name = "enp0s5".into();
                }
                return Err(NetlinkError::NoSuchLink {
                    what: op.to_string(),
                    name: "ens5".into(),
                });
            }
            self.inner.apply(op)
        }
    }

    #[test]
    fn boot_plans_again_when_a_link_is_renamed_during_the_apply() {
        let (net, sys, _, dir) = setup(Duration::from_secs(60));
        // A confirmed spec on disk, as after setup.
        net.try_apply(spec_static(), None).unwrap();
        net.confirm().unwrap();
        let renaming = Arc::new(RenamedDuringApply {
            inner: RecordingSystem::default(),
            renamed: false.into(),
        });
        // ens5 is the NIC with this MAC; the spec names it by MAC, as the page does.
        let mut observed = sys.observed.lock().unwrap().clone();
        for l in observed.links.iter_mut().filter(|l| l.name == "ens5") {
            l.mac = Some("52:54:00:00:00:05".into());
        }
        *renaming.inner.observed.lock().unwrap() = observed;
        let boot = Network::new(
            renaming.clone(),
            Arc::new(RecordingRunner::new()),
            Arc::new(RecordingAlerts::default()),
            NetworkOptions::new(dir.path().join("network")),
        )
        .unwrap();
        let mut spec = spec_static();
        spec.links.push(
            serde_json::from_value(json!({"name": "lan5", "mac": "52:54:00:00:00:05",
                                          "addresses": ["10.8.0.2/24"]}))
            .unwrap(),
        );
        lock(&boot.inner).confirmed = Some(spec);
        // The first plan maps lan5 to ens5, which udev renames during the apply; the boot
        // plans again and applies lan5's config to enp0s5.
        boot.boot_when_links_exist(false, Duration::from_secs(20))
            .unwrap()
            .unwrap();
        assert!(renaming.renamed.load(std::sync::atomic::Ordering::SeqCst));
        let applied = renaming.inner.applied.lock().unwrap();
        assert!(
            applied.iter().any(|o| o.to_string().contains("enp0s5")),
            "{applied:?}"
        );
    }

    #[test]
    fn boot_does_not_retry_a_failure_that_is_not_a_rename() {
        let (net, sys, _, _dir) = setup(Duration::from_secs(60));
        net.try_apply(spec_static(), None).unwrap();
        net.confirm().unwrap();
        *sys.fail_on.lock().unwrap() = Some("ens4".into());
        let t = Instant::now();
        let e = net
            .boot_when_links_exist(false, Duration::from_secs(20))
            .unwrap_err();
        assert!(matches!(e, NetError::Apply { .. }), "{e:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn factory_default_is_dhcp_everywhere_with_management_on_the_default_route() {
        let s = factory_default(&obs());
        assert_eq!(s.dhcp_interfaces(), vec!["ens3", "ens4", "ens5"]);
        assert!(s.links[0].ip.management && !s.links[1].ip.management);
    }

    #[test]
    fn an_invalid_spec_changes_nothing() {
        let (net, sys, _, dir) = setup(Duration::from_secs(60));
        let mut bad = spec_static();
        bad.links[0].ip.management = false;
        let e = net.try_apply(bad, None).unwrap_err();
        assert!(
            matches!(e, NetError::Invalid(ref f) if f.reason.contains("management")),
            "{e:?}"
        );
        assert!(sys.applied.lock().unwrap().is_empty());
        assert!(!dir.path().join("network").join(SPEC_FILE).exists());
        assert!(matches!(
            net.try_apply(spec_static(), Some(Duration::from_secs(1))),
            Err(NetError::Timeout)
        ));
    }

    #[test]
    fn confirm_persists_and_a_new_service_loads_it() {
        let (net, sys, _, dir) = setup(Duration::from_secs(60));
        let p = net.try_apply(spec_static(), None).unwrap();
        assert_eq!(p.timeout_s, 60);
        assert!(p.remaining_s <= 60 && p.remaining_s >= 59);
        assert_eq!(p.apply.ops, vec!["add address 10.9.0.2/24 dev ens4"]);
        assert_eq!(sys.applied.lock().unwrap().len(), 1);
        assert!(net.view().unwrap().pending.is_some());
        assert!(!net.view().unwrap().configured);
        net.confirm().unwrap();
        assert!(matches!(net.confirm(), Err(NetError::NothingPending)));
        let again = Network::new(
            sys.clone(),
            Arc::new(RecordingRunner::new()),
            Arc::new(RecordingAlerts::default()),
            NetworkOptions::new(dir.path().join("network")),
        )
        .unwrap();
        let v = again.view().unwrap();
        assert!(v.configured && v.pending.is_none());
        assert_eq!(v.spec, spec_static());
    }

    #[test]
    fn an_unconfirmed_change_is_rolled_back_at_the_deadline() {
        let (net, sys, alerts, _dir) = setup(Duration::from_secs(5));
        net.try_apply(spec_static(), None).unwrap();
        // The recording system does not change its observed state, so the rollback plan
        // (to the factory default) is computed against the same state: what matters is that
        // it ran and the pending change is gone.
        let deadline = Instant::now() + Duration::from_secs(15);
        while net.view().unwrap().pending.is_some() {
            assert!(
                Instant::now() < deadline,
                "no rollback within 15 s of a 5 s try"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let v = net.view().unwrap();
        assert!(v
            .last_rollback
            .unwrap()
            .reason
            .contains("not confirmed within 5 s"));
        assert_eq!(alerts.level(ROLLBACK_ALERT), Some(AlertLevel::Info));
        assert!(!sys.applied.lock().unwrap().is_empty());
    }

    #[test]
    fn a_failing_change_restores_the_previous_config() {
        let (net, sys, _, _dir) = setup(Duration::from_secs(60));
        *sys.fail_on.lock().unwrap() = Some("10.9.0.2".into());
        let e = net.try_apply(spec_static(), None).unwrap_err();
        assert!(matches!(e, NetError::Apply { done: 0, .. }), "{e:?}");
        assert!(net.view().unwrap().pending.is_none());
        assert!(matches!(net.rollback(), Err(NetError::NothingPending)));
    }

    #[test]
    fn reset_goes_to_dhcp_on_the_link_under_the_management_bond() {
        let (net, _sys, _, dir) = setup(Duration::from_secs(60));
        let s: NetworkSpec = serde_json::from_value(json!({
            "links": [{"name": "ens3"}, {"name": "ens4"}, {"name": "ens5"}],
            "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["ens4", "ens5"],
                       "addresses": ["10.9.0.2/24"], "management": true}]
        }))
        .unwrap();
        assert_eq!(management_link(&s, &obs()).as_deref(), Some("ens4"));
        net.apply_confirmed(&s).unwrap();
        net.reset_to_dhcp().unwrap();
        let v = net.view().unwrap();
        assert_eq!(v.spec, NetworkSpec::dhcp_on("ens4"));
        assert!(dir.path().join("network").join(BEFORE_RESET_FILE).exists());
    }
}
