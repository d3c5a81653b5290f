//! Node shutdown: when cairn-init stops the whole node, cairnd shuts the VMs down before it exits.
//!
//! cairn-init writes its node-stopping marker before any service gets SIGTERM
//! (docs/decisions/0012). On SIGTERM cairnd looks for it: present → every running managed VM
//! gets the ACPI power button, up to [`DEFAULT_VM_STOP_TIMEOUT`] (or
//! `cairn.vm.stop_timeout_s=` on the kernel command line) to power off, then what is left
//! is powered off. Absent (`cairn-init svc restart cairnd`, a crash) → the VMs keep running.

use cairn_init::node_stop::NodeStop;
use cairn_init::shutdown::Kind;
use cairn_vm::service::NodeStopReport;
use cairn_vm::Vms;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the guests get to power off after the ACPI request when the node stops.
pub const DEFAULT_VM_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest guest timeout the kernel command line may ask for: cairnd's own
/// `stop_timeout_s` (90 s in cairnd.toml) must still cover it, the forced power-offs and the
/// API's drain, or cairn-init kills cairnd halfway.
pub const MAX_VM_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Kernel command line option for the guest timeout, in seconds (the lab uses a short one).
pub const VM_STOP_TIMEOUT_OPTION: &str = "cairn.vm.stop_timeout_s";

/// What cairnd does with the VMs as it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The node stops: shut the VMs down, waiting up to `timeout` for the guests.
    ShutDownVms { timeout: Duration, stop: NodeStop },
    /// Leave the VMs running (the reason is logged).
    LeaveVms(String),
}

/// The guest timeout from the kernel command line text, and a warning if the option was
/// there but unusable.
pub fn vm_stop_timeout(cmdline: &str) -> (Duration, Option<String>) {
    let parsed = cairn_core::cmdline::KernelCmdline::parse(cmdline);
    let Some(value) = parsed.get(VM_STOP_TIMEOUT_OPTION) else {
        return (DEFAULT_VM_STOP_TIMEOUT, None);
    };
    match value.parse::<u64>() {
        Ok(s) if s >= 1 && Duration::from_secs(s) <= MAX_VM_STOP_TIMEOUT => {
            (Duration::from_secs(s), None)
        }
        Ok(s) if s >= 1 => (
            MAX_VM_STOP_TIMEOUT,
            Some(format!(
                "{VM_STOP_TIMEOUT_OPTION}={s} is above the {} s cairnd's stop timeout leaves room for; using {} s",
                MAX_VM_STOP_TIMEOUT.as_secs(),
                MAX_VM_STOP_TIMEOUT.as_secs()
            )),
        ),
        _ => (
            DEFAULT_VM_STOP_TIMEOUT,
            Some(format!(
                "ignoring {VM_STOP_TIMEOUT_OPTION}={value:?} (want whole seconds, 1 to {}); using {} s",
                MAX_VM_STOP_TIMEOUT.as_secs(),
                DEFAULT_VM_STOP_TIMEOUT.as_secs()
            )),
        ),
    }
}

/// Decides from the marker (as read), whether the VM service runs, and the guest timeout.
pub fn plan(
    marker: Result<Option<NodeStop>, String>,
    vms_running: bool,
    timeout: Duration,
) -> Plan {
    if !vms_running {
        return Plan::LeaveVms("no VM to shut down: the VM service is not running".into());
    }
    match marker {
        Ok(Some(stop)) => Plan::ShutDownVms { timeout, stop },
        Ok(None) => Plan::LeaveVms(
            "only cairnd is stopping (no node-stopping marker): the VMs keep running".into(),
        ),
        // Unreadable but present: the node most likely stops; a clean guest shutdown is the
        // safe side (a wrongly stopped VM restarts, a killed one may lose data).
        Err(e) => Plan::ShutDownVms {
            timeout,
            stop: NodeStop {
                kind: None,
                why: format!("marker unreadable: {e}"),
            },
        },
    }
}

/// What the node stop is, for the log.
fn describe(stop: &NodeStop) -> String {
    let what = match stop.kind {
        Some(Kind::Reboot) => "reboots",
        Some(Kind::Poweroff) => "powers off",
        None => "stops",
    };
    if stop.why.is_empty() {
        format!("the node {what}")
    } else {
        format!("the node {what} ({})", stop.why)
    }
}

/// The one-line summary of a node stop's VM shutdown.
pub fn summary(report: &NodeStopReport, timeout: Duration, took: Duration) -> String {
    let total = report.graceful.len() + report.forced.len();
    if total == 0 {
        return format!("node stop: no VM was running ({:.1} s)", took.as_secs_f64());
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" ({})", v.join(", "))
        }
    };
    format!(
        "node stop: {total} VM(s) stopped in {:.1} s: {} shut down by ACPI{}, {} powered off after the {} s timeout{}",
        took.as_secs_f64(),
        report.graceful.len(),
        list(&report.graceful),
        report.forced.len(),
        timeout.as_secs(),
        list(&report.forced),
    )
}

/// Logs `line` and shows it on the console as `cairnd: line`: the admin watching a reboot
/// sees why it waits, and the line survives in the lab's serial log (the journal of a
/// stopping node may not reach the disk).
fn announce(console: &Path, line: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    tracing::info!("{line}");
    let written = std::fs::OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOCTTY)
        .open(console)
        .and_then(|mut f| f.write_all(format!("cairnd: {line}\n").as_bytes()));
    if let Err(e) = written {
        tracing::warn!("cannot write to the console {}: {e}", console.display());
    }
}

/// Runs as cairnd exits after SIGTERM (the API has stopped serving): if cairn-init's marker
/// says the node stops, shuts every running VM down on a thread of its own (libvirt calls
/// block) and logs the report (also on `console`). Returns once the VMs are down or at once
/// when nothing is to be done; cairn-init's stop timeout for cairnd bounds it.
pub async fn before_exit(vms: Option<Arc<Vms>>, marker: &Path, cmdline: &Path, console: &Path) {
    let read = cairn_init::node_stop::read(marker).map_err(|e| cairn_core::boot::error_chain(&e));
    let (timeout, warning) = vm_stop_timeout(&std::fs::read_to_string(cmdline).unwrap_or_default());
    let (timeout, stop) = match plan(read, vms.is_some(), timeout) {
        Plan::LeaveVms(why) => {
            tracing::info!("{why}");
            return;
        }
        Plan::ShutDownVms { timeout, stop } => (timeout, stop),
    };
    let Some(vms) = vms else { return };
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    announce(
        console,
        &format!(
            "{}: shutting the VMs down (ACPI, then power off after {} s)",
            describe(&stop),
            timeout.as_secs()
        ),
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    let started = Instant::now();
    // A thread of its own, not the blocking pool: a stuck API task there must not keep the
    // guests from their shutdown.
    let spawned = std::thread::Builder::new()
        .name("node-stop".into())
        .spawn(move || {
            let _ = tx.send(vms.shutdown_all(timeout));
        });
    if let Err(e) = spawned {
        tracing::error!(
            "node stop: cannot start the VM shutdown thread: {e}; the VMs are left running"
        );
        return;
    }
    match rx.await {
        Ok(report) => announce(console, &summary(&report, timeout, started.elapsed())),
        Err(_) => tracing::error!("node stop: the VM shutdown thread ended without a report"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stop(kind: Kind) -> NodeStop {
        NodeStop {
            kind: Some(kind),
            why: "power button".into(),
        }
    }

    #[test]
    fn timeout_from_the_command_line() {
        assert_eq!(vm_stop_timeout("quiet"), (DEFAULT_VM_STOP_TIMEOUT, None));
        assert_eq!(
            vm_stop_timeout("cairn.slot=a cairn.vm.stop_timeout_s=10"),
            (Duration::from_secs(10), None)
        );
        let (t, w) = vm_stop_timeout("cairn.vm.stop_timeout_s=600");
        assert_eq!(t, MAX_VM_STOP_TIMEOUT);
        assert!(w.unwrap().contains("cairn.vm.stop_timeout_s=600 is above"));
        for bad in ["0", "-3", "ten", "1.5", ""] {
            let (t, w) = vm_stop_timeout(&format!("cairn.vm.stop_timeout_s={bad}"));
            assert_eq!(t, DEFAULT_VM_STOP_TIMEOUT, "{bad}");
            assert!(
                w.unwrap().contains("ignoring cairn.vm.stop_timeout_s"),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_a_node_stop_shuts_the_vms_down() {
        let t = Duration::from_secs(60);
        assert_eq!(
            plan(Ok(Some(stop(Kind::Reboot))), true, t),
            Plan::ShutDownVms {
                timeout: t,
                stop: stop(Kind::Reboot)
            }
        );
        // `cairn-init svc restart cairnd`: no marker.
        assert!(matches!(plan(Ok(None), true, t), Plan::LeaveVms(w) if w.contains("only cairnd")));
        assert!(matches!(
            plan(Ok(Some(stop(Kind::Poweroff))), false, t),
            Plan::LeaveVms(w) if w.contains("VM service is not running")
        ));
        assert!(matches!(plan(Ok(None), false, t), Plan::LeaveVms(w) if w.contains("not running")));
        // Present but unreadable: shut down (the safe side).
        assert!(matches!(
            plan(Err("EACCES".into()), true, t),
            Plan::ShutDownVms {
                stop: NodeStop { kind: None, .. },
                ..
            }
        ));
        assert!(matches!(
            plan(Err("EACCES".into()), false, t),
            Plan::LeaveVms(_)
        ));
    }

    #[test]
    fn summary_counts_graceful_and_forced() {
        let r = NodeStopReport {
            graceful: vec!["c1".into()],
            forced: vec!["guest".into(), "c2".into()],
        };
        assert_eq!(
            summary(&r, Duration::from_secs(10), Duration::from_millis(12_340)),
            "node stop: 3 VM(s) stopped in 12.3 s: 1 shut down by ACPI (c1), 2 powered off after the 10 s timeout (guest, c2)"
        );
        assert_eq!(
            summary(
                &NodeStopReport::default(),
                Duration::from_secs(60),
                Duration::ZERO
            ),
            "node stop: no VM was running (0.0 s)"
        );
        let r = NodeStopReport {
            graceful: vec!["a".into()],
            forced: vec![],
        };
        assert!(summary(&r, Duration::from_secs(60), Duration::from_secs(2))
            .ends_with("1 shut down by ACPI (a), 0 powered off after the 60 s timeout"));
    }

    #[test]
    fn describes_the_stop() {
        assert_eq!(
            describe(&stop(Kind::Reboot)),
            "the node reboots (power button)"
        );
        assert_eq!(
            describe(&NodeStop {
                kind: None,
                why: String::new()
            }),
            "the node stops"
        );
    }

    #[tokio::test]
    async fn without_marker_or_vms_returns_at_once() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("node-stopping");
        let cmdline = d.path().join("cmdline");
        let console = d.path().join("console");
        std::fs::write(&cmdline, "cairn.vm.stop_timeout_s=1").unwrap();
        let t0 = Instant::now();
        before_exit(None, &marker, &cmdline, &console).await;
        cairn_init::node_stop::write(&marker, Kind::Poweroff, "SIGTERM").unwrap();
        before_exit(None, &marker, &cmdline, &console).await;
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(!console.exists(), "nothing to announce without VMs");
    }

    #[test]
    fn announce_appends_to_the_console() {
        let d = tempfile::tempdir().unwrap();
        let console = d.path().join("console");
        std::fs::write(&console, "before\n").unwrap();
        announce(&console, "node stop: no VM was running (0.0 s)");
        assert_eq!(
            std::fs::read_to_string(&console).unwrap(),
            "before\ncairnd: node stop: no VM was running (0.0 s)\n"
        );
        // A missing console is only a warning.
        announce(&d.path().join("none/console"), "x");
    }
}
