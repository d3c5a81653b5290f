//! The hypervisor over libvirt (the `virt` crate): one connection for calls, reopened when
//! it drops, and one for domain events ([`crate::events`]).

use crate::events::{self, Subscription};
use crate::hypervisor::{
    DiskIo, DomainSample, HvError, HvEvent, Hypervisor, NodeCapacity, RunState,
};
use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::Mutex;
use virt::connect::Connect;
use virt::domain::Domain;
use virt::sys;

pub use crate::hv_types::SYSTEM_URI;

/// A libvirt connection (blocking; call from `spawn_blocking` or a thread).
pub struct Libvirt {
    uri: String,
    conn: Mutex<Option<Connect>>,
    /// The domain-event subscription, if any.
    events: Mutex<Option<Subscription>>,
}

impl Libvirt {
    /// A connection to `uri` made on first use (and remade after libvirtd restarts), so the
    /// service can exist before libvirtd is up.
    pub fn new(uri: &str) -> Libvirt {
        quiet();
        event_loop();
        Libvirt {
            uri: uri.to_string(),
            conn: Mutex::new(None),
            events: Mutex::new(None),
        }
    }

    /// Connect to `uri` now (e.g. `qemu:///system`, or `test:///default` in tests).
    pub fn open(uri: &str) -> Result<Libvirt, HvError> {
        quiet();
        event_loop();
        let conn = Connect::open(Some(uri)).map_err(|source| HvError::Connect {
            uri: uri.to_string(),
            source: source.into(),
        })?;
        Ok(Libvirt {
            uri: uri.to_string(),
            conn: Mutex::new(Some(conn)),
            events: Mutex::new(None),
        })
    }

    /// Run `f` with a live connection, reconnecting once if libvirtd was restarted. The
    /// lock is held only to get the connection: `f` runs on a reference of its own
    /// (`virConnectRef`; libvirt connections are thread-safe), so calls from several threads
    /// (e.g. the node stop's parallel power-offs) run concurrently.
    fn with<T>(&self, f: impl Fn(&Connect) -> Result<T, HvError>) -> Result<T, HvError> {
        let mut conn = {
            let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            let alive = guard
                .as_ref()
                .is_some_and(|c| c.is_alive().unwrap_or(false));
            if !alive {
                if let Some(mut old) = guard.take() {
                    let _ = old.close();
                }
                let conn = Connect::open(Some(&self.uri)).map_err(|source| HvError::Connect {
                    uri: self.uri.clone(),
                    source: source.into(),
                })?;
                *guard = Some(conn);
            }
            match guard.as_ref() {
                Some(c) => c.clone(),
                None => return Err(HvError::NotDefined(String::new())),
            }
        };
        let out = f(&conn);
        // Drops this call's reference; the connection stays open while the stored one is.
        let _ = conn.close();
        out
    }

    fn domain(&self, c: &Connect, name: &str) -> Result<Domain, HvError> {
        Domain::lookup_by_name(c, name).map_err(|_| HvError::NotDefined(name.to_string()))
    }

    fn call(
        &self,
        op: &'static str,
        name: &str,
        f: impl Fn(&Domain) -> Result<(), virt::error::Error>,
    ) -> Result<(), HvError> {
        self.with(|c| {
            let d = self.domain(c, name)?;
            f(&d).map_err(|source| HvError::Call {
                op: op.into(),
                name: name.to_string(),
                source: source.into(),
            })
        })
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = guard.take() {
            let _ = c.close();
        }
    }
}

/// Stop libvirt printing every error to stderr itself: our errors carry its message.
fn quiet() {
    virt::error::clear_error_callback();
}

/// libvirt's event loop runs before the first connection is opened (see
/// [`events::start_event_loop`]); if it cannot, calls still work and `subscribe` reports why.
fn event_loop() {
    if let Err(e) = events::start_event_loop() {
        tracing::warn!("libvirt domain events unavailable: {e}");
    }
}

/// libvirt's state number as ours.
pub fn run_state(state: sys::virDomainState) -> RunState {
    match state {
        sys::VIR_DOMAIN_RUNNING | sys::VIR_DOMAIN_BLOCKED => RunState::Running,
        sys::VIR_DOMAIN_PAUSED => RunState::Paused,
        sys::VIR_DOMAIN_SHUTDOWN => RunState::ShuttingDown,
        sys::VIR_DOMAIN_SHUTOFF => RunState::ShutOff,
        sys::VIR_DOMAIN_CRASHED => RunState::Crashed,
        sys::VIR_DOMAIN_PMSUSPENDED => RunState::Suspended,
        _ => RunState::Unknown,
    }
}

impl Hypervisor for Libvirt {
    fn capacity(&self) -> Result<NodeCapacity, HvError> {
        self.with(|c| {
            let info = c.get_node_info().map_err(|source| HvError::Call {
                op: "node info".into(),
                name: String::new(),
                source: source.into(),
            })?;
            Ok(NodeCapacity {
                cpus: info.cpus,
                memory_mib: info.memory / 1024,
            })
        })
    }

    fn define(&self, xml: &str) -> Result<(), HvError> {
        self.with(|c| {
            Domain::define_xml(c, xml)
                .map(|_| ())
                .map_err(|source| HvError::Call {
                    op: "define".into(),
                    name: String::new(),
                    source: source.into(),
                })
        })
    }

    fn undefine(&self, name: &str) -> Result<(), HvError> {
        self.call("undefine", name, |d| d.undefine())
    }

    fn start(&self, name: &str) -> Result<(), HvError> {
        self.call("start", name, |d| d.create().map(|_| ()))
    }

    fn shutdown(&self, name: &str) -> Result<(), HvError> {
        // Default method: our domains have no guest agent, so QEMU's driver presses the ACPI
        // power button.
        self.call("shutdown", name, |d| d.shutdown().map(|_| ()))
    }

    fn destroy(&self, name: &str) -> Result<(), HvError> {
        self.call("destroy", name, |d| d.destroy())
    }

    fn reboot(&self, name: &str) -> Result<(), HvError> {
        self.call("reboot", name, |d| d.reboot(0))
    }

    fn reset(&self, name: &str) -> Result<(), HvError> {
        self.call("reset", name, |d| d.reset().map(|_| ()))
    }

    fn sample(&self, name: &str, disk_paths: &[String]) -> Result<Option<DomainSample>, HvError> {
        self.with(|c| {
            let d = self.domain(c, name)?;
            let call = |op: &'static str| {
                move |source: virt::error::Error| HvError::Call {
                    op: op.into(),
                    name: name.to_string(),
                    source: source.into(),
                }
            };
            let info = d
                .get_info()
                .map_err(call("read CPU and memory counters of"))?;
            if !run_state(info.state).is_active() {
                return Ok(None);
            }
            // RSS comes from the QEMU process itself, so it is there without a balloon
            // device; a driver without memory statistics just has none.
            let rss_kib = d.memory_stats(0).ok().and_then(|stats| {
                stats
                    .iter()
                    .find(|m| m.tag == sys::VIR_DOMAIN_MEMORY_STAT_RSS)
                    .map(|m| m.val)
            });
            let mut disks = BTreeMap::new();
            for path in disk_paths {
                match d.get_block_stats(path) {
                    Ok(b) => {
                        disks.insert(
                            path.clone(),
                            DiskIo {
                                // libvirt reports -1 for a counter it does not have.
                                read_bytes: u64::try_from(b.rd_bytes).unwrap_or(0),
                                written_bytes: u64::try_from(b.wr_bytes).unwrap_or(0),
                            },
                        );
                    }
                    Err(e) => tracing::debug!("no I/O counters for disk {path} of {name}: {e}"),
                }
            }
            Ok(Some(DomainSample {
                run_id: d.get_id(),
                cpu_time_ns: info.cpu_time,
                vcpus: info.nr_virt_cpu,
                memory_kib: info.memory,
                rss_kib,
                disks,
            }))
        })
    }

    fn states(&self) -> Result<BTreeMap<String, RunState>, HvError> {
        self.with(|c| {
            let domains = c
                .list_all_domains(sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT)
                .map_err(|source| HvError::Call {
                    op: "list domains".into(),
                    name: String::new(),
                    source: source.into(),
                })?;
            let mut out = BTreeMap::new();
            for d in domains {
                let (Ok(name), Ok((state, _))) = (d.get_name(), d.get_state()) else {
                    continue;
                };
                out.insert(name, run_state(state));
            }
            Ok(out)
        })
    }

    fn subscribe(&self, tx: Sender<HvEvent>) -> Result<(), HvError> {
        let mut guard = self.events.lock().unwrap_or_else(|p| p.into_inner());
        // The old subscription's callbacks go before the new one's come.
        guard.take();
        *guard = Some(Subscription::open(&self.uri, tx)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Real libvirt calls against libvirt's built-in `test:///default` driver.
    use super::*;
    use crate::hypervisor::Lifecycle;
    use crate::spec::{BootDevice, Disk, DiskBus, DiskKind, Machine, VmRecord};
    use crate::xml::{domain_xml, Accelerator};
    use std::sync::mpsc::{channel, Receiver};
    use std::time::{Duration, Instant};

    fn record(name: &str) -> VmRecord {
        VmRecord {
            name: name.into(),
            uuid: crate::ids::new_uuid(),
            vcpus: 1,
            memory_mib: 64,
            disks: vec![Disk {
                kind: DiskKind::Disk,
                bus: DiskBus::Ide,
                pool: "tank".into(),
                volume: format!("{name}-disk0"),
                path: format!("/dev/cairn-tank/vol-{name}-disk0"),
                origin: None,
                replication: None,
            }],
            nics: vec![],
            boot: vec![BootDevice::Disk],
            cpu_model: "qemu64".into(),
            machine: Machine::Pc,
            autostart: false,
            snapshots: Default::default(),
        }
    }

    #[test]
    fn lifecycle_against_the_test_driver() {
        let lv = Libvirt::open("test:///default").unwrap();
        let cap = lv.capacity().unwrap();
        assert!(cap.cpus > 0 && cap.memory_mib > 0, "{cap:?}");
        let xml = domain_xml(
            &record("t1"),
            Accelerator::Tcg,
            "/usr/bin/qemu-system-x86_64",
            "/tmp/t1.log",
        );
        lv.define(&xml).unwrap();
        assert_eq!(lv.states().unwrap().get("t1"), Some(&RunState::ShutOff));
        lv.start("t1").unwrap();
        assert_eq!(lv.states().unwrap().get("t1"), Some(&RunState::Running));
        lv.reboot("t1").unwrap();
        lv.reset("t1").unwrap();
        // The test driver powers off at once on a shutdown request.
        lv.shutdown("t1").unwrap();
        assert_eq!(lv.states().unwrap().get("t1"), Some(&RunState::ShutOff));
        lv.start("t1").unwrap();
        lv.destroy("t1").unwrap();
        assert_eq!(lv.states().unwrap().get("t1"), Some(&RunState::ShutOff));
        lv.undefine("t1").unwrap();
        assert!(!lv.states().unwrap().contains_key("t1"));
        assert!(matches!(lv.start("t1"), Err(HvError::NotDefined(n)) if n == "t1"));
    }

    #[test]
    fn samples_of_a_running_domain_against_the_test_driver() {
        let lv = Libvirt::open("test:///default").unwrap();
        let r = record("t3");
        let xml = domain_xml(&r, Accelerator::Tcg, "/q", "/tmp/t3.log");
        lv.define(&xml).unwrap();
        let disks = vec![r.disks[0].path.clone(), "/dev/not-a-disk-of-t3".to_string()];
        // Shut off: no counters.
        assert_eq!(lv.sample("t3", &disks).unwrap(), None);
        lv.start("t3").unwrap();
        let s = lv.sample("t3", &disks).unwrap().expect("running");
        assert_eq!(s.vcpus, 1);
        assert_eq!(s.memory_kib, 64 * 1024);
        assert!(s.run_id.is_some(), "{s:?}");
        // The test driver counts block I/O for the VM's disk (by its device path); the
        // unknown one is left out rather than failing the sample.
        assert_eq!(
            s.disks.keys().collect::<Vec<_>>(),
            [&r.disks[0].path],
            "{s:?}"
        );
        lv.destroy("t3").unwrap();
        assert_eq!(lv.sample("t3", &disks).unwrap(), None);
        lv.undefine("t3").unwrap();
        assert!(matches!(lv.sample("t3", &disks), Err(HvError::NotDefined(n)) if n == "t3"));
    }

    #[test]
    fn errors_carry_libvirts_reason() {
        let lv = Libvirt::open("test:///default").unwrap();
        let xml = domain_xml(&record("t2"), Accelerator::Tcg, "/q", "/tmp/t2.log");
        lv.define(&xml).unwrap();
        // Destroying a domain that is not running is an error in libvirt.
        let e = lv.destroy("t2").unwrap_err();
        let chain = format!(
            "{e}: {}",
            std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default()
        );
        assert!(
            chain.contains("destroy t2") && chain.contains("not running"),
            "{chain}"
        );
        lv.undefine("t2").unwrap();
    }

    fn diskless_record(name: &str) -> VmRecord {
        serde_json::from_value(serde_json::json!({
            "name": name, "uuid": crate::ids::new_uuid(), "vcpus": 1, "memory_mib": 64,
            "disks": [], "nics": [], "boot": ["disk"], "cpu_model": "qemu64",
            "machine": "pc", "autostart": false,
        }))
        .unwrap()
    }

    /// The next event for domain `name`, waiting up to `within`.
    fn next_for(rx: &Receiver<HvEvent>, name: &str, within: Duration) -> Lifecycle {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(HvEvent::Domain { name: n, event }) if n == name => return event,
                Ok(_) => continue,
                Err(e) => panic!("no event for domain {name} within {within:?}: {e}"),
            }
        }
    }

    // Domain lifecycle events through `Libvirt::subscribe` (the FFI of `crate::events`).

    #[test]
    fn lifecycle_events_arrive_from_the_test_driver() {
        let lv = Libvirt::open("test:///default").unwrap();
        let (tx, rx) = channel();
        lv.subscribe(tx).unwrap();
        let xml = domain_xml(
            &diskless_record("ev1"),
            Accelerator::Tcg,
            "/q",
            "/tmp/ev1.log",
        );
        let within = Duration::from_secs(5);
        lv.define(&xml).unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Defined);
        let t0 = Instant::now();
        lv.start("ev1").unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Started);
        eprintln!("start -> event: {:?}", t0.elapsed());
        lv.destroy("ev1").unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Stopped);
        assert_eq!(Lifecycle::Stopped.state(), Some(RunState::ShutOff));
        lv.undefine("ev1").unwrap();
        assert_eq!(next_for(&rx, "ev1", within), Lifecycle::Undefined);
    }

    #[test]
    fn a_new_subscription_replaces_the_old_one() {
        let lv = Libvirt::open("test:///default").unwrap();
        let (tx1, rx1) = channel();
        lv.subscribe(tx1).unwrap();
        let (tx2, rx2) = channel();
        lv.subscribe(tx2).unwrap();
        let xml = domain_xml(
            &diskless_record("ev2"),
            Accelerator::Tcg,
            "/q",
            "/tmp/ev2.log",
        );
        lv.define(&xml).unwrap();
        assert_eq!(
            next_for(&rx2, "ev2", Duration::from_secs(5)),
            Lifecycle::Defined
        );
        // The first subscription was dropped: its lifecycle callback is gone. (The test
        // driver keeps no close callback, so the close callback's sender stays leaked and
        // the channel open.)
        let got = rx1.recv_timeout(Duration::from_millis(300));
        assert!(got.is_err(), "the old subscription still delivers: {got:?}");
        lv.undefine("ev2").unwrap();
    }
}
