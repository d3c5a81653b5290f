//! The VM monitor: follows libvirt's domain events (resubscribing after libvirtd restarts,
//! with a slow safety-net poll), defines the stored VMs libvirt lacks, starts the autostart
//! VMs once their disks exist, and runs the `vm-stats` thread.

use crate::error::chain;
use crate::hypervisor::{HvEvent, Lifecycle, RunState};
use crate::service::{state_name, Vms};
use crate::spec::{DiskKind, VmRecord};
use crate::stats::{DISK_USAGE_INTERVAL, STATS_INTERVAL};
use std::path::Path;
use std::sync::Arc;
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

/// How long autostart waits for a VM's disks to appear after libvirt is up.
pub const AUTOSTART_WAIT: Duration = Duration::from_secs(300);

impl Vms {
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
}

/// Milliseconds since the Unix epoch now.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::Hypervisor;
    use crate::service::double::{fixture, spec, wait_until};
    use cairn_core::alert::NoProgress;

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
