//! The supervisor's decisions: a pure state machine (events in, actions out, injected clock).

use crate::config::{ReadinessKind, RestartPolicy, ServiceConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// How often socket/tcp readiness is probed while a service is starting.
pub const PROBE_INTERVAL_MS: u64 = 50;

/// The injected clock: a monotonic millisecond counter and the wall clock (unix seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub unix_s: u64,
}

/// A service's state as shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Waiting,
    Starting,
    Ready,
    BackingOff,
    Stopping,
    Failed,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Starting => "starting",
            State::Ready => "ready",
            State::BackingOff => "backing-off",
            State::Stopping => "stopping",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// The last exit of a service's process, as reported by `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Unix time, seconds.
    pub at: u64,
}

/// One service's status (the control protocol's `status` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub uptime_s: Option<u64>,
    pub last_exit: Option<LastExit>,
    pub reason: Option<String>,
}

/// Which signal to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    Kill,
    /// Terminal hangup (sent with SIGTERM to services on a tty: interactive shells
    /// ignore SIGTERM).
    Hup,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn the service's process, then report `spawned` or `spawn_failed`.
    Spawn(String),
    /// Send a signal to the service's process.
    Signal { name: String, pid: i32, sig: Sig },
    /// Check the service's socket/tcp readiness once; report `ready` if it accepts.
    Probe(String),
    /// Log a line (the runtime adds the `cairn-init: ` prefix).
    Log(String),
}

/// An admin command on one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Start,
    Stop,
    Restart,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no service named {0:?}")]
    Unknown(String),
    #[error("the system is shutting down")]
    ShuttingDown,
    #[error("{name} cannot start: {reason}")]
    Broken { name: String, reason: String },
}

/// What happens once a stopping service's process is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterStop {
    Stopped,
    Waiting,
    Failure(String),
    Fail(String),
}

#[derive(Debug)]
struct Svc {
    cfg: ServiceConfig,
    enabled: bool,
    /// A definition problem (unknown dependency, cycle): never startable.
    broken: Option<String>,
    state: State,
    pid: Option<i32>,
    restarts: u32,
    since_ms: Option<u64>,
    last_exit: Option<LastExit>,
    reason: Option<String>,
    failed_by_dep: bool,
    deadline: Option<u64>,
    probe_at: Option<u64>,
    after_stop: AfterStop,
    stop_req: Option<AfterStop>,
    failures: u32,
    starts: VecDeque<u64>,
}

/// All services and the decisions about them.
#[derive(Debug)]
pub struct Supervisor {
    svcs: BTreeMap<String, Svc>,
    /// Dependencies before dependents.
    order: Vec<String>,
    shutting_down: bool,
    announced_ready: bool,
    announced_settled: bool,
}

fn backoff_ms(initial: u64, max: u64, failures: u32) -> u64 {
    let shift = failures.saturating_sub(1).min(40);
    initial.saturating_mul(1u64 << shift).min(max)
}

impl Supervisor {
    /// Builds the supervisor from validated definitions and the kernel command line
    /// (for `condition_kernel_cmdline`). Unknown dependencies and cycles mark the
    /// services involved as failed.
    pub fn new(configs: Vec<ServiceConfig>, cmdline: &str) -> Self {
        let stop_cycle = crate::config::stop_cycle(&configs);
        let names: BTreeSet<String> = configs.iter().map(|c| c.name.clone()).collect();
        let mut svcs = BTreeMap::new();
        for cfg in configs {
            let unmet = cfg.unmet_condition(cmdline);
            let enabled = unmet.is_none();
            let broken = cfg
                .requires
                .iter()
                .find(|r| !names.contains(*r))
                .map(|r| format!("requires unknown service {r:?}"))
                .or_else(|| {
                    cfg.start_after
                        .iter()
                        .find(|r| !names.contains(*r))
                        .map(|r| format!("start_after names unknown service {r:?}"))
                });
            let (state, reason) = if let Some(b) = &broken {
                (State::Failed, Some(b.clone()))
            } else if let Some(unmet) = unmet {
                (State::Stopped, Some(unmet))
            } else {
                (State::Waiting, None)
            };
            svcs.insert(
                cfg.name.clone(),
                Svc {
                    cfg,
                    enabled,
                    broken,
                    state,
                    pid: None,
                    restarts: 0,
                    since_ms: None,
                    last_exit: None,
                    reason,
                    failed_by_dep: false,
                    deadline: None,
                    probe_at: None,
                    after_stop: AfterStop::Stopped,
                    stop_req: None,
                    failures: 0,
                    starts: VecDeque::new(),
                },
            );
        }
        // Kahn's algorithm, ties broken by name.
        let mut indeg: BTreeMap<String, usize> = svcs
            .iter()
            .map(|(n, s)| {
                // `start_after` orders starts like `requires`: a cycle through it would
                // leave every service in it waiting.
                let known = s
                    .cfg
                    .requires
                    .iter()
                    .chain(&s.cfg.start_after)
                    .filter(|r| svcs.contains_key(*r))
                    .count();
                (n.clone(), known)
            })
            .collect();
        let mut order = Vec::new();
        let mut ready: BTreeSet<String> = indeg
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| n.clone())
            .collect();
        while let Some(n) = ready.pop_first() {
            indeg.remove(&n);
            for (m, s) in &svcs {
                if s.cfg.requires.contains(&n) || s.cfg.start_after.contains(&n) {
                    if let Some(d) = indeg.get_mut(m) {
                        *d -= 1;
                        if *d == 0 {
                            ready.insert(m.clone());
                        }
                    }
                }
            }
            order.push(n);
        }
        for n in indeg.keys() {
            if let Some(s) = svcs.get_mut(n) {
                let reason = "dependency cycle".to_string();
                s.broken = Some(reason.clone());
                s.state = State::Failed;
                s.reason = Some(reason);
            }
            order.push(n.clone());
        }
        // `stop_after` that contradicts the dependencies would stall every shutdown.
        for n in &stop_cycle {
            if let Some(s) = svcs.get_mut(n).filter(|s| s.broken.is_none()) {
                let reason = "stop order cycle (requires and stop_after)".to_string();
                s.broken = Some(reason.clone());
                s.state = State::Failed;
                s.reason = Some(reason);
            }
        }
        Supervisor {
            svcs,
            order,
            shutting_down: false,
            announced_ready: false,
            announced_settled: false,
        }
    }

    /// The definition of a service.
    pub fn config(&self, name: &str) -> Option<&ServiceConfig> {
        self.svcs.get(name).map(|s| &s.cfg)
    }

    /// The current state of a service.
    pub fn state(&self, name: &str) -> Option<State> {
        self.svcs.get(name).map(|s| s.state)
    }

    /// Whether `shutdown` was called.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Starts everything that can start.
    pub fn boot(&mut self, now: Now) -> Vec<Action> {
        let mut acts = Vec::new();
        self.schedule(now, &mut acts);
        acts
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        self.svcs
            .values()
            .flat_map(|s| [s.deadline, s.probe_at])
            .flatten()
            .min()
    }

    /// Handles every timer that is due.
    pub fn tick(&mut self, now: Now) -> Vec<Action> {
        let mut acts = Vec::new();
        for name in self.order.clone() {
            let Some(s) = self.svcs.get_mut(&name) else {
                continue;
            };
            if let Some(d) = s.deadline {
                if d <= now.mono_ms {
                    s.deadline = None;
                    match s.state {
                        State::Starting => {
                            let reason = format!("not ready within {}s", s.cfg.readiness.timeout_s);
                            self.stop_now(&name, AfterStop::Failure(reason), now, &mut acts);
                        }
                        State::Stopping => {
                            if let Some(pid) = s.pid {
                                acts.push(Action::Log(format!(
                                    "{name} did not stop within {}s, sending SIGKILL",
                                    s.cfg.stop_timeout_s
                                )));
                                acts.push(Action::Signal {
                                    name: name.clone(),
                                    pid,
                                    sig: Sig::Kill,
                                });
                            }
                        }
                        State::BackingOff => {
                            s.restarts += 1;
                            self.start_now(&name, now, &mut acts);
                        }
                        _ => {}
                    }
                }
            }
            let Some(s) = self.svcs.get_mut(&name) else {
                continue;
            };
            if s.state == State::Starting && s.pid.is_some() {
                if let Some(p) = s.probe_at {
                    if p <= now.mono_ms {
                        s.probe_at = Some(now.mono_ms + PROBE_INTERVAL_MS);
                        acts.push(Action::Probe(name.clone()));
                    }
                }
            }
        }
        self.schedule(now, &mut acts);
        acts
    }

    /// The runtime spawned the service's process.
    pub fn spawned(&mut self, name: &str, pid: i32, now: Now) -> Vec<Action> {
        let mut acts = Vec::new();
        let Some(s) = self.svcs.get_mut(name) else {
            return acts;
        };
        s.pid = Some(pid);
        s.since_ms = Some(now.mono_ms);
        match s.state {
            State::Starting => match s.cfg.readiness.kind {
                ReadinessKind::Started => self.mark_ready(name, &mut acts),
                ReadinessKind::Socket(_) | ReadinessKind::Tcp(_) => {
                    s.probe_at = Some(now.mono_ms + PROBE_INTERVAL_MS);
                    acts.push(Action::Probe(name.to_string()));
                }
                ReadinessKind::Exited | ReadinessKind::Notify => {}
            },
            State::Stopping => acts.push(Action::Signal {
                name: name.to_string(),
                pid,
                sig: Sig::Term,
            }),
            _ => {}
        }
        self.schedule(now, &mut acts);
        acts
    }

    /// The runtime could not spawn the service's process.
    pub fn spawn_failed(&mut self, name: &str, error: &str, now: Now) -> Vec<Action> {
        let mut acts = Vec::new();
        let Some(s) = self.svcs.get_mut(name) else {
            return acts;
        };
        s.pid = None;
        s.since_ms = Some(now.mono_ms);
        if s.state == State::Stopping {
            let after = std::mem::replace(&mut s.after_stop, AfterStop::Stopped);
            s.deadline = None;
            self.finish_stop(name, after, now, &mut acts);
        } else {
            s.deadline = None;
            self.on_failure(name, format!("cannot start: {error}"), now, &mut acts);
        }
        self.schedule(now, &mut acts);
        acts
    }

    /// A readiness signal arrived (probe succeeded or notify `READY=1`).
    pub fn ready(&mut self, name: &str, now: Now) -> Vec<Action> {
        let mut acts = Vec::new();
        if let Some(s) = self.svcs.get(name) {
            if s.state == State::Starting && s.pid.is_some() {
                self.mark_ready(name, &mut acts);
                self.schedule(now, &mut acts);
            }
        }
        acts
    }

    /// A child exited. `None` if the pid is not a service's (an adopted orphan).
    pub fn exited(&mut self, pid: i32, status: ExitStatus, now: Now) -> Option<Vec<Action>> {
        let name = self
            .svcs
            .iter()
            .find(|(_, s)| s.pid == Some(pid))
            .map(|(n, _)| n.clone())?;
        let mut acts = Vec::new();
        let s = self.svcs.get_mut(&name)?;
        s.pid = None;
        s.probe_at = None;
        s.last_exit = Some(match status {
            ExitStatus::Code(c) => LastExit {
                code: Some(c),
                signal: None,
                at: now.unix_s,
            },
            ExitStatus::Signal(sig) => LastExit {
                code: None,
                signal: Some(sig),
                at: now.unix_s,
            },
        });
        let clean = status == ExitStatus::Code(0);
        match s.state {
            State::Stopping => {
                s.deadline = None;
                acts.push(Action::Log(format!("stopped {name} ({status})")));
                let after = std::mem::replace(&mut s.after_stop, AfterStop::Stopped);
                self.finish_stop(&name, after, now, &mut acts);
            }
            State::Starting if s.cfg.readiness.kind == ReadinessKind::Exited && clean => {
                s.deadline = None;
                acts.push(Action::Log(format!("{name} finished")));
                self.mark_ready(&name, &mut acts);
            }
            State::Starting | State::Ready => {
                s.deadline = None;
                if self.shutting_down {
                    s.state = State::Stopped;
                    acts.push(Action::Log(format!("{name} {status}")));
                } else {
                    match (s.cfg.restart.policy, clean) {
                        (RestartPolicy::Always, _) | (RestartPolicy::OnFailure, false) => {
                            self.on_failure(&name, status.to_string(), now, &mut acts)
                        }
                        (RestartPolicy::Never, false) => {
                            self.fail(&name, status.to_string(), false, &mut acts)
                        }
                        (_, true) => {
                            s.state = State::Stopped;
                            s.reason = Some(status.to_string());
                            acts.push(Action::Log(format!("{name} {status}")));
                        }
                    }
                }
            }
            _ => {}
        }
        self.schedule(now, &mut acts);
        Some(acts)
    }

    /// An admin command (control socket).
    pub fn command(
        &mut self,
        cmd: Command,
        name: &str,
        now: Now,
    ) -> Result<Vec<Action>, CommandError> {
        let Some(s) = self.svcs.get(name) else {
            return Err(CommandError::Unknown(name.to_string()));
        };
        if self.shutting_down {
            return Err(CommandError::ShuttingDown);
        }
        let mut acts = Vec::new();
        match cmd {
            Command::Start => self.start_cmd(name, &mut acts)?,
            Command::Stop => self.request_stop(name, AfterStop::Stopped),
            Command::Restart => {
                let active = s.pid.is_some() || matches!(s.state, State::Starting | State::Ready);
                if active {
                    self.request_stop(name, AfterStop::Waiting);
                } else {
                    self.start_cmd(name, &mut acts)?;
                }
            }
        }
        self.schedule(now, &mut acts);
        Ok(acts)
    }

    /// Begins the orderly shutdown: every service is stopped, dependents first.
    pub fn shutdown(&mut self, now: Now) -> Vec<Action> {
        let mut acts = Vec::new();
        if self.shutting_down {
            return acts;
        }
        self.shutting_down = true;
        acts.push(Action::Log("stopping all services".into()));
        for s in self.svcs.values_mut() {
            match s.state {
                State::Waiting | State::BackingOff => {
                    s.state = State::Stopped;
                    s.deadline = None;
                }
                State::Starting | State::Ready if s.pid.is_some() || s.state == State::Starting => {
                    s.stop_req = Some(AfterStop::Stopped)
                }
                State::Stopping => s.after_stop = AfterStop::Stopped,
                _ => {}
            }
        }
        self.schedule(now, &mut acts);
        acts
    }

    /// True once shutting down and no service process is left.
    pub fn shutdown_complete(&self) -> bool {
        self.shutting_down
            && self
                .svcs
                .values()
                .all(|s| s.pid.is_none() && s.state != State::Stopping)
    }

    /// Services that still have a process.
    pub fn alive(&self) -> Vec<String> {
        self.svcs
            .iter()
            .filter(|(_, s)| s.pid.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every service's status, by name.
    pub fn status(&self, now: Now) -> Vec<ServiceStatus> {
        self.svcs
            .iter()
            .map(|(n, s)| ServiceStatus {
                name: n.clone(),
                state: s.state,
                pid: s.pid,
                restarts: s.restarts,
                uptime_s: match (s.pid, s.since_ms) {
                    (Some(_), Some(t)) => Some(now.mono_ms.saturating_sub(t) / 1000),
                    _ => None,
                },
                last_exit: s.last_exit.clone(),
                reason: s.reason.clone(),
            })
            .collect()
    }

    fn dependents(&self, name: &str) -> Vec<String> {
        self.order
            .iter()
            .filter(|n| self.svcs[*n].cfg.requires.iter().any(|r| r == name))
            .cloned()
            .collect()
    }

    fn mark_ready(&mut self, name: &str, acts: &mut Vec<Action>) {
        if let Some(s) = self.svcs.get_mut(name) {
            s.state = State::Ready;
            s.reason = None;
            s.deadline = None;
            s.probe_at = None;
            acts.push(Action::Log(format!("{name} ready")));
        }
    }

    fn start_now(&mut self, name: &str, now: Now, acts: &mut Vec<Action>) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        s.state = State::Starting;
        s.starts.push_back(now.mono_ms);
        s.probe_at = None;
        s.deadline = match s.cfg.readiness.kind {
            ReadinessKind::Started => None,
            _ => Some(now.mono_ms + s.cfg.readiness.timeout_s * 1000),
        };
        acts.push(Action::Log(format!("starting {name}")));
        acts.push(Action::Spawn(name.to_string()));
    }

    fn stop_now(&mut self, name: &str, after: AfterStop, now: Now, acts: &mut Vec<Action>) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        if s.state == State::Stopping {
            s.after_stop = after;
            return;
        }
        if s.pid.is_some() || s.state == State::Starting {
            s.state = State::Stopping;
            s.after_stop = after;
            s.probe_at = None;
            s.deadline = Some(now.mono_ms + s.cfg.stop_timeout_s * 1000);
            acts.push(Action::Log(format!("stopping {name}")));
            if let Some(pid) = s.pid {
                acts.push(Action::Signal {
                    name: name.to_string(),
                    pid,
                    sig: Sig::Term,
                });
            }
        } else {
            self.finish_stop(name, after, now, acts);
        }
    }

    fn finish_stop(&mut self, name: &str, after: AfterStop, now: Now, acts: &mut Vec<Action>) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        s.deadline = None;
        s.probe_at = None;
        match after {
            AfterStop::Stopped => {
                s.state = State::Stopped;
                s.reason = None;
            }
            AfterStop::Waiting => {
                s.state = State::Waiting;
                s.reason = None;
            }
            AfterStop::Failure(reason) => self.on_failure(name, reason, now, acts),
            AfterStop::Fail(reason) => self.fail(name, reason, true, acts),
        }
    }

    /// An unexpected end: restart with backoff, or fail for good.
    fn on_failure(&mut self, name: &str, reason: String, now: Now, acts: &mut Vec<Action>) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        if self.shutting_down {
            s.state = State::Stopped;
            s.reason = Some(reason);
            return;
        }
        let r = s.cfg.restart.clone();
        if r.policy == RestartPolicy::Never {
            self.fail(name, reason, false, acts);
            return;
        }
        let ran_ms = now
            .mono_ms
            .saturating_sub(s.since_ms.unwrap_or(now.mono_ms));
        if ran_ms >= r.backoff_max_ms {
            s.failures = 0;
        }
        s.failures += 1;
        let window = r.start_limit_interval_s * 1000;
        while s
            .starts
            .front()
            .is_some_and(|t| now.mono_ms.saturating_sub(*t) >= window)
        {
            s.starts.pop_front();
        }
        if s.starts.len() >= r.start_limit_burst as usize {
            let why = format!(
                "start limit hit ({} starts within {}s), last: {reason}",
                s.starts.len(),
                r.start_limit_interval_s
            );
            self.fail(name, why, false, acts);
            return;
        }
        let delay = backoff_ms(r.backoff_initial_ms, r.backoff_max_ms, s.failures);
        s.state = State::BackingOff;
        s.deadline = Some(now.mono_ms + delay);
        acts.push(Action::Log(format!(
            "{name} {reason}; restarting in {delay} ms"
        )));
        s.reason = Some(reason);
    }

    /// Failed for good; dependents fail too.
    fn fail(&mut self, name: &str, reason: String, by_dep: bool, acts: &mut Vec<Action>) {
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        s.state = State::Failed;
        s.deadline = None;
        s.probe_at = None;
        s.stop_req = None;
        s.failed_by_dep = by_dep;
        acts.push(Action::Log(format!("{name} failed: {reason}")));
        s.reason = Some(reason);
        let why = format!("dependency {name} failed");
        for d in self.dependents(name) {
            let ds = &self.svcs[&d];
            match ds.state {
                State::Waiting | State::BackingOff => self.fail(&d, why.clone(), true, acts),
                State::Starting | State::Ready => {
                    if let Some(ds) = self.svcs.get_mut(&d) {
                        ds.stop_req = Some(AfterStop::Fail(why.clone()));
                    }
                }
                State::Stopping => {
                    if let Some(ds) = self.svcs.get_mut(&d) {
                        ds.after_stop = AfterStop::Fail(why.clone());
                    }
                }
                _ => {}
            }
        }
    }

    fn start_cmd(&mut self, name: &str, acts: &mut Vec<Action>) -> Result<(), CommandError> {
        let Some(s) = self.svcs.get_mut(name) else {
            return Err(CommandError::Unknown(name.to_string()));
        };
        if let Some(reason) = &s.broken {
            return Err(CommandError::Broken {
                name: name.to_string(),
                reason: reason.clone(),
            });
        }
        s.stop_req = None;
        s.enabled = true;
        match s.state {
            State::Starting | State::Ready | State::Waiting => {}
            State::Stopping => s.after_stop = AfterStop::Waiting,
            State::BackingOff => {
                s.deadline = None;
                s.state = State::Waiting;
            }
            State::Failed | State::Stopped => {
                s.state = State::Waiting;
                s.reason = None;
                s.failures = 0;
                s.failed_by_dep = false;
                s.starts.clear();
                acts.push(Action::Log(format!("{name} start requested")));
            }
        }
        for dep in s.cfg.requires.clone() {
            if matches!(self.svcs[&dep].state, State::Failed | State::Stopped) {
                self.start_cmd(&dep, acts)?;
            }
        }
        for d in self.dependents(name) {
            let ds = &self.svcs[&d];
            if ds.state == State::Failed && ds.failed_by_dep {
                self.start_cmd(&d, acts)?;
            }
        }
        Ok(())
    }

    /// Marks `name` and everything that (transitively) requires it for stopping.
    fn request_stop(&mut self, name: &str, after: AfterStop) {
        for d in self.dependents(name) {
            self.request_stop(&d, after.clone());
        }
        let Some(s) = self.svcs.get_mut(name) else {
            return;
        };
        match s.state {
            State::Starting | State::Ready => s.stop_req = Some(after),
            State::Stopping => s.after_stop = after,
            State::Waiting | State::BackingOff => {
                if after == AfterStop::Stopped {
                    s.state = State::Stopped;
                    s.deadline = None;
                    s.reason = None;
                } else {
                    s.deadline = None;
                    s.state = State::Waiting;
                }
            }
            State::Failed | State::Stopped => {}
        }
    }

    /// Whether a service named in `name`'s `stop_after` is being stopped and has not
    /// stopped yet. One that is not being stopped does not hold `name` back (a plain
    /// `svc stop libvirtd` does not wait for cairnd).
    fn stop_after_pending(&self, name: &str) -> bool {
        self.svcs[name].cfg.stop_after.iter().any(|a| {
            self.svcs
                .get(a)
                .is_some_and(|s| s.stop_req.is_some() || s.state == State::Stopping)
        })
    }

    fn dependents_alive(&self, name: &str) -> bool {
        self.svcs.values().any(|s| {
            s.cfg.requires.iter().any(|r| r == name)
                && (s.pid.is_some() || matches!(s.state, State::Stopping | State::Starting))
        })
    }

    fn schedule(&mut self, now: Now, acts: &mut Vec<Action>) {
        for _ in 0..=self.order.len() {
            let mut changed = false;
            // Stops: dependents first.
            for name in self.order.clone().iter().rev() {
                if self.svcs[name].stop_req.is_some()
                    && !self.dependents_alive(name)
                    && !self.stop_after_pending(name)
                {
                    let req = self.svcs.get_mut(name).and_then(|s| s.stop_req.take());
                    if let Some(req) = req {
                        self.stop_now(name, req, now, acts);
                        changed = true;
                    }
                }
            }
            // Starts: dependencies first.
            if !self.shutting_down {
                for name in self.order.clone() {
                    let s = &self.svcs[&name];
                    if s.state != State::Waiting || s.stop_req.is_some() {
                        continue;
                    }
                    let mut all_ready = true;
                    let mut failure = None;
                    for dep in &s.cfg.requires {
                        let ds = &self.svcs[dep];
                        match ds.state {
                            // A dependency about to be stopped (restart) is not ready.
                            State::Ready if ds.stop_req.is_none() => {}
                            State::Failed => {
                                failure = Some(format!("dependency {dep} failed"));
                                break;
                            }
                            State::Stopped if !ds.enabled => {
                                failure =
                                    Some(format!("dependency {dep} is disabled by its condition"));
                                break;
                            }
                            _ => all_ready = false,
                        }
                    }
                    // Ordering only: wait while one is on its way up; ready, failed,
                    // stopped or disabled all let this one start.
                    if failure.is_none() && all_ready {
                        all_ready = s.cfg.start_after.iter().all(|dep| {
                            !matches!(
                                self.svcs[dep].state,
                                State::Waiting | State::Starting | State::BackingOff
                            )
                        });
                    }
                    if let Some(why) = failure {
                        self.fail(&name, why, true, acts);
                        changed = true;
                    } else if all_ready {
                        self.start_now(&name, now, acts);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        self.announce(acts);
    }

    fn announce(&mut self, acts: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let enabled: Vec<&Svc> = self.svcs.values().filter(|s| s.enabled).collect();
        if !self.announced_ready && enabled.iter().all(|s| s.state == State::Ready) {
            self.announced_ready = true;
            self.announced_settled = true;
            acts.push(Action::Log("all services ready".into()));
            return;
        }
        let settled = enabled.iter().all(|s| {
            !matches!(
                s.state,
                State::Waiting | State::Starting | State::BackingOff | State::Stopping
            )
        });
        if !self.announced_settled && settled {
            let failed: Vec<&str> = enabled
                .iter()
                .filter(|s| s.state == State::Failed)
                .map(|s| s.cfg.name.as_str())
                .collect();
            if !failed.is_empty() {
                self.announced_settled = true;
                acts.push(Action::Log(format!(
                    "boot settled with failed services: {}",
                    failed.join(", ")
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Readiness, ReadinessKind, RestartPolicy};

    fn svc(name: &str, requires: &[&str]) -> ServiceConfig {
        let mut c = ServiceConfig::new(name, "/bin/true");
        c.requires = requires.iter().map(|s| s.to_string()).collect();
        c
    }

    fn with_ready(mut c: ServiceConfig, kind: ReadinessKind) -> ServiceConfig {
        c.readiness = Readiness { kind, timeout_s: 5 };
        c
    }

    /// Drives the supervisor like the runtime would, with fake pids and a manual clock.
    struct Sim {
        sup: Supervisor,
        now: u64,
        next_pid: i32,
        pids: BTreeMap<String, i32>,
        log: Vec<String>,
        signals: Vec<(String, Sig)>,
        probes: Vec<String>,
        spawns: Vec<String>,
        fail_spawn: BTreeSet<String>,
    }

    impl Sim {
        fn new(cfgs: Vec<ServiceConfig>) -> Self {
            Self::with_cmdline(cfgs, "")
        }
        fn with_cmdline(cfgs: Vec<ServiceConfig>, cmdline: &str) -> Self {
            Sim {
                sup: Supervisor::new(cfgs, cmdline),
                now: 0,
                next_pid: 100,
                pids: BTreeMap::new(),
                log: Vec::new(),
                signals: Vec::new(),
                probes: Vec::new(),
                spawns: Vec::new(),
                fail_spawn: BTreeSet::new(),
            }
        }
        fn t(&self) -> Now {
            Now {
                mono_ms: self.now,
                unix_s: 1_700_000_000 + self.now / 1000,
            }
        }
        fn run(&mut self, acts: Vec<Action>) {
            let mut queue: VecDeque<Action> = acts.into();
            while let Some(a) = queue.pop_front() {
                match a {
                    Action::Spawn(n) => {
                        self.spawns.push(n.clone());
                        let more = if self.fail_spawn.contains(&n) {
                            self.sup.spawn_failed(&n, "no such file", self.t())
                        } else {
                            let pid = self.next_pid;
                            self.next_pid += 1;
                            self.pids.insert(n.clone(), pid);
                            self.sup.spawned(&n, pid, self.t())
                        };
                        queue.extend(more);
                    }
                    Action::Signal { name, sig, .. } => self.signals.push((name, sig)),
                    Action::Probe(n) => self.probes.push(n),
                    Action::Log(l) => self.log.push(l),
                }
            }
        }
        fn boot(&mut self) {
            let a = self.sup.boot(self.t());
            self.run(a);
        }
        fn advance(&mut self, ms: u64) {
            let target = self.now + ms;
            while let Some(d) = self.sup.next_deadline() {
                if d > target {
                    break;
                }
                self.now = self.now.max(d);
                let a = self.sup.tick(self.t());
                self.run(a);
            }
            self.now = target;
        }
        fn exit(&mut self, name: &str, st: ExitStatus) {
            let pid = self.pids[name];
            let a = self.sup.exited(pid, st, self.t()).expect("known pid");
            self.run(a);
        }
        fn ready(&mut self, name: &str) {
            let a = self.sup.ready(name, self.t());
            self.run(a);
        }
        fn cmd(&mut self, c: Command, name: &str) {
            let a = self.sup.command(c, name, self.t()).unwrap();
            self.run(a);
        }
        fn state(&self, name: &str) -> State {
            self.sup.state(name).unwrap()
        }
        fn reason(&self, name: &str) -> Option<String> {
            self.sup
                .status(self.t())
                .into_iter()
                .find(|s| s.name == name)
                .unwrap()
                .reason
        }
        fn pos(&self, line: &str) -> usize {
            self.log
                .iter()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line:?} not in {:?}", self.log))
        }
    }

    fn after(mut c: ServiceConfig, start_after: &[&str]) -> ServiceConfig {
        c.start_after = start_after.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn start_after_orders_the_start_but_a_failure_does_not_hold_it_back() {
        let mut sim = Sim::new(vec![
            with_ready(svc("cairnd", &[]), ReadinessKind::Notify),
            after(svc("libvirtd", &[]), &["cairnd"]),
        ]);
        sim.boot();
        // libvirtd needs nothing, but waits until cairnd is up.
        assert_eq!(sim.spawns, vec!["cairnd"]);
        assert_eq!(sim.state("libvirtd"), State::Waiting);
        sim.ready("cairnd");
        assert_eq!(sim.spawns, vec!["cairnd", "libvirtd"]);
        assert_eq!(sim.state("libvirtd"), State::Ready);
        // cairnd failing for good stops nothing that only starts after it.
        sim.exit("cairnd", ExitStatus::Code(1));
        assert_eq!(sim.state("libvirtd"), State::Ready);

        // A service listed in start_after that fails to start lets the other start anyway.
        let mut sim = Sim::new(vec![
            with_ready(svc("cairnd", &[]), ReadinessKind::Notify),
            after(svc("libvirtd", &[]), &["cairnd"]),
        ]);
        sim.fail_spawn.insert("cairnd".into());
        sim.boot();
        for _ in 0..20 {
            if sim.state("cairnd") == State::Failed {
                break;
            }
            sim.advance(60_000);
        }
        assert_eq!(sim.state("cairnd"), State::Failed);
        assert!(
            sim.spawns.contains(&"libvirtd".to_string()),
            "{:?}",
            sim.spawns
        );
    }

    #[test]
    fn start_after_unknown_or_in_a_cycle_is_reported() {
        let sim = Sim::new(vec![after(svc("a", &[]), &["nope"])]);
        assert_eq!(sim.state("a"), State::Failed);
        assert_eq!(
            sim.reason("a").as_deref(),
            Some("start_after names unknown service \"nope\"")
        );
        let sim = Sim::new(vec![
            after(svc("a", &["b"]), &[]),
            after(svc("b", &[]), &["a"]),
        ]);
        assert_eq!(sim.state("a"), State::Failed);
        assert_eq!(sim.reason("b").as_deref(), Some("dependency cycle"));
    }

    #[test]
    fn dependencies_start_first_and_all_ready_once() {
        let mut sim = Sim::new(vec![
            svc("cairnd", &["journald", "udevd"]),
            with_ready(svc("journald", &[]), ReadinessKind::Notify),
            svc("udevd", &["journald"]),
        ]);
        sim.boot();
        assert_eq!(sim.spawns, vec!["journald"]);
        assert_eq!(sim.state("udevd"), State::Waiting);
        sim.ready("journald");
        assert_eq!(sim.spawns, vec!["journald", "udevd", "cairnd"]);
        assert_eq!(sim.state("cairnd"), State::Ready);
        assert_eq!(
            sim.log
                .iter()
                .filter(|l| *l == "all services ready")
                .count(),
            1
        );
        sim.ready("journald");
        assert_eq!(
            sim.log
                .iter()
                .filter(|l| *l == "all services ready")
                .count(),
            1
        );
    }

    #[test]
    fn socket_readiness_is_probed_until_ready() {
        let mut sim = Sim::new(vec![with_ready(svc("api", &[]), ReadinessKind::Tcp(443))]);
        sim.boot();
        assert_eq!(sim.probes.len(), 1);
        sim.advance(PROBE_INTERVAL_MS * 3);
        assert_eq!(sim.probes.len(), 4);
        assert_eq!(sim.state("api"), State::Starting);
        sim.ready("api");
        assert_eq!(sim.state("api"), State::Ready);
        sim.advance(1000);
        assert_eq!(sim.probes.len(), 4, "no probes once ready");
    }

    #[test]
    fn readiness_timeout_kills_and_backs_off() {
        let mut sim = Sim::new(vec![with_ready(svc("slow", &[]), ReadinessKind::Notify)]);
        sim.boot();
        sim.advance(5000);
        assert_eq!(sim.state("slow"), State::Stopping);
        assert_eq!(sim.signals, vec![("slow".to_string(), Sig::Term)]);
        sim.exit("slow", ExitStatus::Signal(15));
        assert_eq!(sim.state("slow"), State::BackingOff);
        assert_eq!(sim.reason("slow").unwrap(), "not ready within 5s");
    }

    #[test]
    fn oneshot_ready_on_exit_zero_and_fails_on_nonzero() {
        let mut sim = Sim::new(vec![
            with_ready(svc("setup", &[]), ReadinessKind::Exited),
            svc("after", &["setup"]),
        ]);
        sim.boot();
        assert_eq!(sim.state("after"), State::Waiting);
        sim.exit("setup", ExitStatus::Code(0));
        assert_eq!(sim.state("setup"), State::Ready);
        assert_eq!(sim.state("after"), State::Ready);
        assert!(sim.log.contains(&"all services ready".to_string()));

        let mut c = with_ready(svc("setup", &[]), ReadinessKind::Exited);
        c.restart.policy = RestartPolicy::Never;
        let mut sim = Sim::new(vec![c, svc("after", &["setup"])]);
        sim.boot();
        sim.exit("setup", ExitStatus::Code(3));
        assert_eq!(sim.state("setup"), State::Failed);
        assert_eq!(sim.state("after"), State::Failed);
        assert_eq!(sim.reason("after").unwrap(), "dependency setup failed");
        assert!(sim
            .log
            .contains(&"boot settled with failed services: after, setup".to_string()));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut c = svc("crashy", &[]);
        c.restart.backoff_initial_ms = 100;
        c.restart.backoff_max_ms = 500;
        c.restart.start_limit_burst = 100;
        let mut sim = Sim::new(vec![c]);
        sim.boot();
        let mut delays = Vec::new();
        for _ in 0..6 {
            sim.exit("crashy", ExitStatus::Code(1));
            assert_eq!(sim.state("crashy"), State::BackingOff);
            let d = sim.sup.next_deadline().unwrap() - sim.now;
            delays.push(d);
            sim.advance(d - 1);
            assert_eq!(sim.state("crashy"), State::BackingOff);
            sim.advance(1);
            assert_eq!(sim.state("crashy"), State::Ready);
        }
        assert_eq!(delays, vec![100, 200, 400, 500, 500, 500]);
        assert_eq!(sim.sup.status(sim.t())[0].restarts, 6);
    }

    #[test]
    fn backoff_streak_resets_after_long_run() {
        let mut c = svc("x", &[]);
        c.restart.backoff_initial_ms = 100;
        c.restart.backoff_max_ms = 1000;
        let mut sim = Sim::new(vec![c]);
        sim.boot();
        sim.exit("x", ExitStatus::Code(1));
        sim.advance(100);
        sim.exit("x", ExitStatus::Code(1));
        assert_eq!(sim.sup.next_deadline().unwrap() - sim.now, 200);
        sim.advance(200);
        sim.advance(5000);
        sim.exit("x", ExitStatus::Code(1));
        assert_eq!(sim.sup.next_deadline().unwrap() - sim.now, 100);
    }

    #[test]
    fn start_limit_fails_for_good_until_started() {
        let mut c = svc("crashy", &[]);
        c.restart.backoff_initial_ms = 10;
        c.restart.backoff_max_ms = 10;
        c.restart.start_limit_burst = 3;
        c.restart.start_limit_interval_s = 60;
        let mut sim = Sim::new(vec![c, svc("dependent", &["crashy"])]);
        sim.boot();
        for _ in 0..2 {
            sim.exit("crashy", ExitStatus::Signal(11));
            sim.advance(10);
        }
        assert_eq!(sim.spawns.iter().filter(|s| *s == "crashy").count(), 3);
        assert_eq!(sim.signals, vec![]);
        // dependent started while crashy was ready; crashy's final failure stops it
        sim.exit("crashy", ExitStatus::Signal(11));
        assert_eq!(sim.state("crashy"), State::Failed);
        assert!(sim
            .reason("crashy")
            .unwrap()
            .starts_with("start limit hit (3 starts within 60s)"));
        assert_eq!(sim.state("dependent"), State::Stopping);
        sim.exit("dependent", ExitStatus::Signal(15));
        assert_eq!(sim.state("dependent"), State::Failed);
        assert_eq!(sim.reason("dependent").unwrap(), "dependency crashy failed");
        sim.advance(120_000);
        assert_eq!(sim.state("crashy"), State::Failed);
        // an explicit start resets the limit and re-arms the dependent
        sim.cmd(Command::Start, "crashy");
        assert_eq!(sim.state("crashy"), State::Ready);
        assert_eq!(sim.state("dependent"), State::Ready);
    }

    #[test]
    fn start_limit_window_slides() {
        let mut c = svc("x", &[]);
        c.restart.backoff_initial_ms = 1000;
        c.restart.backoff_max_ms = 1000;
        c.restart.start_limit_burst = 2;
        c.restart.start_limit_interval_s = 3;
        let mut sim = Sim::new(vec![c]);
        sim.boot();
        for _ in 0..5 {
            sim.advance(1500);
            sim.exit("x", ExitStatus::Code(1));
            assert_eq!(sim.state("x"), State::BackingOff);
            sim.advance(1000);
        }
    }

    #[test]
    fn policies_on_clean_exit() {
        let mut always = svc("always", &[]);
        always.restart.policy = RestartPolicy::Always;
        let onf = svc("onf", &[]);
        let mut never = svc("never", &[]);
        never.restart.policy = RestartPolicy::Never;
        let mut sim = Sim::new(vec![always, onf, never]);
        sim.boot();
        sim.exit("always", ExitStatus::Code(0));
        sim.exit("onf", ExitStatus::Code(0));
        sim.exit("never", ExitStatus::Code(0));
        assert_eq!(sim.state("always"), State::BackingOff);
        assert_eq!(sim.state("onf"), State::Stopped);
        assert_eq!(sim.state("never"), State::Stopped);
        let st = sim.sup.status(sim.t());
        assert_eq!(st[2].last_exit.as_ref().unwrap().code, Some(0));
    }

    #[test]
    fn spawn_failure_backs_off() {
        let mut sim = Sim::new(vec![svc("missing", &[])]);
        sim.fail_spawn.insert("missing".into());
        sim.boot();
        assert_eq!(sim.state("missing"), State::BackingOff);
        assert_eq!(sim.reason("missing").unwrap(), "cannot start: no such file");
        sim.advance(60_000);
        assert_eq!(sim.state("missing"), State::Failed);
        assert_eq!(sim.spawns.len(), 5);
    }

    #[test]
    fn unknown_dependency_and_cycle_fail() {
        let mut sim = Sim::new(vec![
            svc("a", &["b"]),
            svc("b", &["a"]),
            svc("c", &["nope"]),
            svc("d", &["c"]),
            svc("ok", &[]),
        ]);
        sim.boot();
        assert_eq!(sim.spawns, vec!["ok"]);
        assert_eq!(sim.reason("a").unwrap(), "dependency cycle");
        assert_eq!(
            sim.reason("c").unwrap(),
            "requires unknown service \"nope\""
        );
        assert_eq!(sim.reason("d").unwrap(), "dependency c failed");
        let e = sim.sup.command(Command::Start, "c", sim.t()).unwrap_err();
        assert!(matches!(e, CommandError::Broken { .. }));
        let e = sim.sup.command(Command::Start, "zzz", sim.t()).unwrap_err();
        assert_eq!(e, CommandError::Unknown("zzz".into()));
    }

    #[test]
    fn condition_disables_and_dependents_fail() {
        let mut lab = svc("lab-shell", &[]);
        lab.condition_kernel_cmdline = Some("cairn.lab=1".into());
        let mut sim = Sim::with_cmdline(vec![lab.clone(), svc("x", &[])], "quiet");
        sim.boot();
        assert_eq!(sim.state("lab-shell"), State::Stopped);
        assert!(sim.log.contains(&"all services ready".to_string()));
        let mut sim = Sim::with_cmdline(vec![lab.clone()], "quiet cairn.lab=1");
        sim.boot();
        assert_eq!(sim.state("lab-shell"), State::Ready);
        let mut sim = Sim::with_cmdline(vec![lab, svc("y", &["lab-shell"])], "");
        sim.boot();
        assert_eq!(sim.state("y"), State::Failed);
    }

    #[test]
    fn shutdown_stops_in_reverse_dependency_order_with_kill_after_timeout() {
        let mut j = with_ready(svc("journald", &[]), ReadinessKind::Notify);
        j.stop_timeout_s = 2;
        let mut sim = Sim::new(vec![
            svc("cairnd", &["journald", "udevd"]),
            j,
            svc("udevd", &["journald"]),
            svc("lonely", &[]),
        ]);
        sim.boot();
        sim.ready("journald");
        let a = sim.sup.shutdown(sim.t());
        sim.run(a);
        // cairnd and lonely (no dependents) first, in reverse start order
        assert_eq!(
            sim.signals,
            vec![
                ("cairnd".to_string(), Sig::Term),
                ("lonely".to_string(), Sig::Term)
            ]
        );
        sim.exit("cairnd", ExitStatus::Signal(15));
        assert_eq!(
            sim.signals.last().unwrap(),
            &("udevd".to_string(), Sig::Term)
        );
        sim.exit("udevd", ExitStatus::Code(0));
        assert_eq!(
            sim.signals.last().unwrap(),
            &("journald".to_string(), Sig::Term)
        );
        assert!(!sim.sup.shutdown_complete());
        sim.advance(1999);
        assert_eq!(sim.signals.len(), 4);
        sim.advance(1);
        assert_eq!(
            sim.signals.last().unwrap(),
            &("journald".to_string(), Sig::Kill)
        );
        sim.exit("journald", ExitStatus::Signal(9));
        sim.exit("lonely", ExitStatus::Signal(15));
        assert!(sim.sup.shutdown_complete());
        assert!(sim.pos("stopped cairnd (killed by signal 15)") < sim.pos("stopping udevd"));
        assert!(sim.pos("stopped udevd (exited with code 0)") < sim.pos("stopping journald"));
        assert!(!sim.log.iter().any(|l| l.contains("restarting")));
        assert_eq!(
            sim.sup.command(Command::Start, "cairnd", sim.t()),
            Err(CommandError::ShuttingDown)
        );
    }

    fn stops_after(mut c: ServiceConfig, names: &[&str]) -> ServiceConfig {
        c.stop_after = names.iter().map(|s| s.to_string()).collect();
        c
    }

    /// The shipped shape: cairnd needs only journald but talks to libvirtd, which must
    /// outlive it (cairnd shuts the VMs down through libvirtd when the node stops).
    fn vm_stack() -> Sim {
        let mut sim = Sim::new(vec![
            with_ready(svc("journald", &[]), ReadinessKind::Notify),
            svc("cairnd", &["journald"]),
            stops_after(svc("virtlogd", &["journald"]), &["cairnd"]),
            stops_after(svc("libvirtd", &["virtlogd"]), &["cairnd"]),
            svc("dhcpcd", &["journald"]),
        ]);
        sim.boot();
        sim.ready("journald");
        for n in ["journald", "cairnd", "virtlogd", "libvirtd", "dhcpcd"] {
            assert_eq!(sim.state(n), State::Ready, "{n}");
        }
        sim
    }

    #[test]
    fn shutdown_stops_libvirtd_and_virtlogd_only_after_cairnd() {
        let mut sim = vm_stack();
        let a = sim.sup.shutdown(sim.t());
        sim.run(a);
        // cairnd and dhcpcd at once; libvirtd and virtlogd wait for cairnd.
        assert_eq!(
            sim.signals,
            vec![
                ("dhcpcd".to_string(), Sig::Term),
                ("cairnd".to_string(), Sig::Term)
            ]
        );
        sim.exit("dhcpcd", ExitStatus::Code(0));
        // cairnd takes long (VMs shutting down): nothing else moves meanwhile.
        sim.advance(9_000);
        assert_eq!(sim.signals.len(), 2);
        assert_eq!(sim.state("libvirtd"), State::Ready);
        sim.exit("cairnd", ExitStatus::Code(0));
        assert_eq!(
            sim.signals.last().unwrap(),
            &("libvirtd".to_string(), Sig::Term)
        );
        assert_eq!(sim.signals.len(), 3, "virtlogd waits for libvirtd");
        sim.exit("libvirtd", ExitStatus::Code(0));
        assert_eq!(
            sim.signals.last().unwrap(),
            &("virtlogd".to_string(), Sig::Term)
        );
        sim.exit("virtlogd", ExitStatus::Code(0));
        assert_eq!(
            sim.signals.last().unwrap(),
            &("journald".to_string(), Sig::Term)
        );
        sim.exit("journald", ExitStatus::Code(0));
        assert!(sim.sup.shutdown_complete());
        assert!(sim.pos("stopped cairnd (exited with code 0)") < sim.pos("stopping libvirtd"));
        assert!(sim.pos("stopped libvirtd (exited with code 0)") < sim.pos("stopping virtlogd"));
    }

    #[test]
    fn stop_after_waits_through_a_sigkill_of_the_slow_service() {
        let mut sim = vm_stack();
        let a = sim.sup.shutdown(sim.t());
        sim.run(a);
        sim.exit("dhcpcd", ExitStatus::Code(0));
        // cairnd's stop timeout (the default 10 s) passes: SIGKILL, then libvirtd.
        sim.advance(10_000);
        assert_eq!(
            sim.signals.last().unwrap(),
            &("cairnd".to_string(), Sig::Kill)
        );
        assert_eq!(sim.state("libvirtd"), State::Ready);
        sim.exit("cairnd", ExitStatus::Signal(9));
        assert_eq!(
            sim.signals.last().unwrap(),
            &("libvirtd".to_string(), Sig::Term)
        );
    }

    #[test]
    fn stop_after_orders_nothing_when_only_one_side_stops() {
        // Restarting cairnd leaves libvirtd (and the VMs) alone.
        let mut sim = vm_stack();
        let libvirtd = sim.pids["libvirtd"];
        sim.cmd(Command::Restart, "cairnd");
        assert_eq!(sim.signals, vec![("cairnd".to_string(), Sig::Term)]);
        sim.exit("cairnd", ExitStatus::Code(0));
        assert_eq!(sim.state("cairnd"), State::Ready);
        assert_eq!(sim.signals.len(), 1);
        assert_eq!(sim.pids["libvirtd"], libvirtd);
        // Stopping libvirtd alone does not wait for cairnd, which keeps running.
        sim.cmd(Command::Stop, "libvirtd");
        assert_eq!(
            sim.signals.last().unwrap(),
            &("libvirtd".to_string(), Sig::Term)
        );
        sim.exit("libvirtd", ExitStatus::Code(0));
        assert_eq!(sim.state("libvirtd"), State::Stopped);
        assert_eq!(sim.state("cairnd"), State::Ready);
    }

    #[test]
    fn stop_after_of_an_unknown_service_orders_nothing() {
        let mut sim = Sim::new(vec![stops_after(svc("libvirtd", &[]), &["gone"])]);
        sim.boot();
        let a = sim.sup.shutdown(sim.t());
        sim.run(a);
        assert_eq!(sim.signals, vec![("libvirtd".to_string(), Sig::Term)]);
    }

    #[test]
    fn stop_order_cycle_fails_the_services_involved() {
        let mut sim = Sim::new(vec![
            stops_after(svc("a", &[]), &["b"]),
            stops_after(svc("b", &[]), &["a"]),
            svc("ok", &[]),
        ]);
        sim.boot();
        assert_eq!(sim.spawns, vec!["ok"]);
        assert_eq!(
            sim.reason("a").unwrap(),
            "stop order cycle (requires and stop_after)"
        );
        assert_eq!(sim.state("b"), State::Failed);
        let e = sim.sup.command(Command::Start, "a", sim.t()).unwrap_err();
        assert!(matches!(e, CommandError::Broken { .. }));
    }

    #[test]
    fn shutdown_during_backoff_and_waiting() {
        let mut sim = Sim::new(vec![
            with_ready(svc("dep", &[]), ReadinessKind::Notify),
            svc("w", &["dep"]),
            svc("crashy", &[]),
        ]);
        sim.boot();
        sim.exit("crashy", ExitStatus::Code(1));
        let a = sim.sup.shutdown(sim.t());
        sim.run(a);
        assert_eq!(sim.state("crashy"), State::Stopped);
        assert_eq!(sim.state("w"), State::Stopped);
        assert_eq!(sim.state("dep"), State::Stopping);
        sim.exit("dep", ExitStatus::Code(0));
        assert!(sim.sup.shutdown_complete());
        sim.advance(60_000);
        assert_eq!(sim.spawns.len(), 2);
    }

    #[test]
    fn stop_stops_dependents_first_and_start_brings_back_deps() {
        let mut sim = Sim::new(vec![svc("a", &[]), svc("b", &["a"]), svc("c", &["b"])]);
        sim.boot();
        sim.cmd(Command::Stop, "a");
        assert_eq!(sim.signals, vec![("c".to_string(), Sig::Term)]);
        sim.exit("c", ExitStatus::Signal(15));
        assert_eq!(sim.signals.last().unwrap().0, "b");
        sim.exit("b", ExitStatus::Signal(15));
        sim.exit("a", ExitStatus::Signal(15));
        for n in ["a", "b", "c"] {
            assert_eq!(sim.state(n), State::Stopped);
        }
        sim.cmd(Command::Start, "c");
        for n in ["a", "b", "c"] {
            assert_eq!(sim.state(n), State::Ready);
        }
        assert_eq!(sim.spawns, vec!["a", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn restart_restarts_dependents_after_dependency_ready() {
        let mut sim = Sim::new(vec![
            with_ready(svc("a", &[]), ReadinessKind::Notify),
            svc("b", &["a"]),
            svc("other", &[]),
        ]);
        sim.boot();
        sim.ready("a");
        let old_a = sim.pids["a"];
        sim.cmd(Command::Restart, "a");
        assert_eq!(sim.signals, vec![("b".to_string(), Sig::Term)]);
        sim.exit("b", ExitStatus::Signal(15));
        sim.exit("a", ExitStatus::Signal(15));
        assert_eq!(sim.state("a"), State::Starting);
        assert_eq!(sim.state("b"), State::Waiting);
        assert_ne!(sim.pids["a"], old_a);
        sim.ready("a");
        assert_eq!(sim.state("b"), State::Ready);
        assert_eq!(sim.spawns.iter().filter(|s| *s == "other").count(), 1);
        assert_eq!(sim.sup.status(sim.t())[0].restarts, 0);
    }

    #[test]
    fn restart_waits_for_whole_chain_before_starting_again() {
        let mut sim = Sim::new(vec![
            with_ready(svc("journald", &[]), ReadinessKind::Notify),
            with_ready(svc("udevd", &["journald"]), ReadinessKind::Notify),
            svc("dhcpcd", &["udevd"]),
            with_ready(svc("trigger", &["udevd"]), ReadinessKind::Exited),
        ]);
        sim.boot();
        sim.ready("journald");
        sim.ready("udevd");
        sim.exit("trigger", ExitStatus::Code(0));
        assert!(sim.log.contains(&"all services ready".to_string()));
        let spawns_before = sim.spawns.len();
        sim.cmd(Command::Restart, "journald");
        assert_eq!(sim.signals, vec![("dhcpcd".to_string(), Sig::Term)]);
        assert_eq!(
            sim.spawns.len(),
            spawns_before,
            "nothing restarts while the chain stops"
        );
        sim.exit("dhcpcd", ExitStatus::Code(0));
        assert_eq!(sim.signals.last().unwrap().0, "udevd");
        assert_eq!(sim.spawns.len(), spawns_before);
        sim.exit("udevd", ExitStatus::Code(0));
        assert_eq!(sim.signals.last().unwrap().0, "journald");
        sim.exit("journald", ExitStatus::Code(0));
        assert_eq!(sim.spawns[spawns_before..], ["journald"]);
        sim.ready("journald");
        sim.ready("udevd");
        assert_eq!(
            sim.spawns[spawns_before..],
            ["journald", "udevd", "dhcpcd", "trigger"]
        );
        for n in ["journald", "udevd", "dhcpcd"] {
            assert_eq!(sim.state(n), State::Ready, "{n}");
        }
        assert_eq!(sim.state("trigger"), State::Starting);
    }

    #[test]
    fn restart_of_stopped_service_starts_it() {
        let mut sim = Sim::new(vec![svc("a", &[])]);
        sim.boot();
        sim.cmd(Command::Stop, "a");
        sim.exit("a", ExitStatus::Signal(15));
        sim.cmd(Command::Restart, "a");
        assert_eq!(sim.state("a"), State::Ready);
    }

    #[test]
    fn orphans_are_not_services_and_status_reports_uptime() {
        let mut sim = Sim::new(vec![svc("a", &[])]);
        sim.boot();
        assert!(sim
            .sup
            .exited(99_999, ExitStatus::Code(0), sim.t())
            .is_none());
        sim.advance(3500);
        let st = &sim.sup.status(sim.t())[0];
        assert_eq!(st.uptime_s, Some(3));
        assert_eq!(st.pid, Some(sim.pids["a"]));
        assert_eq!(st.state, State::Ready);
        let json = serde_json::to_value(st).unwrap();
        assert_eq!(json["state"], "ready");
    }

    #[test]
    fn backoff_math() {
        assert_eq!(backoff_ms(100, 10_000, 1), 100);
        assert_eq!(backoff_ms(100, 10_000, 8), 10_000);
        assert_eq!(backoff_ms(100, 10_000, 200), 10_000);
    }
}
