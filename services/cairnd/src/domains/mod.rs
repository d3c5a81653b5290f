//! Starts each domain's service (storage, SMART, network, VMs, cluster) in parallel, after the API serves, into its slot.

mod cluster;
mod network;
mod shared;
mod smart;
mod storage;
mod vms;
mod witness;

use crate::cli::Config;
use cairn_api::domains::Slot;
pub use shared::{Shared, Start};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use witness::{is_witness, set_witness};

/// Start every domain, each on a thread of its own so one slow start (storage's inventory
/// under a slow CPU) never delays another; returns at once. The API already serves: a
/// request to a domain still starting answers 503 `starting`. A domain that cannot start is
/// logged and marked failed (its routes answer 503 with the reason); the others still come up.
///
/// On a witness (its marker on STATE, see [`is_witness`]) only the network and cluster
/// domains start: storage, SMART and VMs are absent, "not on a witness".
pub fn start(shared: &Shared, cfg: &Config) {
    let d = &shared.domains;
    if is_witness(cfg) {
        tracing::info!("this node is a cluster witness: no storage, SMART or VM domains");
        set_witness(d);
    } else {
        let (s, c) = (shared.clone(), cfg.clone());
        spawn("storage", d.storage.clone(), move || storage::start(&s, &c));
        let (s, c) = (shared.clone(), cfg.clone());
        spawn("smart", d.smart.clone(), move || smart::start(&s, &c));
        let (s, c) = (shared.clone(), cfg.clone());
        spawn("vms", d.vms.clone(), move || vms::start(&s, &c));
    }
    // The network runs on a witness too: it configures the cluster address.
    let (s, c) = (shared.clone(), cfg.clone());
    spawn("network", d.network.clone(), move || network::start(&s, &c));
    let (s, c) = (shared.clone(), cfg.clone());
    spawn("cluster", d.cluster.clone(), move || cluster::start(&s, &c));
}

/// Run one domain's start on a thread of its own (inside the async runtime, when there is
/// one, so the start may spawn its background tasks) and fill `slot` with the outcome.
pub fn spawn<T, F>(name: &'static str, slot: Slot<T>, start: F) -> Option<JoinHandle<()>>
where
    T: Send + Sync + 'static,
    F: FnOnce() -> anyhow::Result<Start<T>> + Send + 'static,
{
    slot.begin();
    let runtime = tokio::runtime::Handle::try_current().ok();
    let filled = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("start-{name}"))
        .spawn(move || {
            let _entered = runtime.as_ref().map(|r| r.enter());
            fill(name, &filled, start);
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            slot.set_failed(&format!("cannot start a thread for it: {e}"));
            tracing::error!("the {name} service did not start: cannot start a thread: {e}");
            None
        }
    }
}

/// Run `start` and record its outcome (a panic counts as a failure).
fn fill<T>(name: &str, slot: &Slot<T>, start: impl FnOnce() -> anyhow::Result<Start<T>>) {
    match catch_unwind(AssertUnwindSafe(start)) {
        Ok(Ok(Start::Ready(service))) => {
            let took = slot.set_ready(service);
            tracing::info!("the {name} service started in {} ms", took.as_millis());
        }
        Ok(Ok(Start::Absent(reason))) => {
            tracing::info!("the {name} service does not run on this node: {reason}");
            slot.set_absent(&reason);
        }
        Ok(Err(e)) => {
            let took = slot.set_failed(&format!("{e:#}"));
            tracing::error!(
                "the {name} service did not start ({} ms): {e:#}",
                took.as_millis()
            );
        }
        Err(_) => {
            let took = slot.set_failed("its start panicked");
            tracing::error!(
                "the {name} service did not start ({} ms): its start panicked",
                took.as_millis()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::needed;
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::time::Duration;
    use std::time::Instant;
    use witness::NOT_ON_A_WITNESS;

    const DEADLINE: Duration = Duration::from_secs(10);

    fn wait_for<T>(what: &str, slot: &Slot<T>, state: &str) {
        slot.wait_settled(DEADLINE);
        assert_eq!(slot.health().state, state, "{what}");
    }

    /// A blocked start (storage) holds back neither the caller (the daemon serves and sends
    /// READY before) nor another domain; the one that needs it waits and then starts.
    #[test]
    fn a_slow_start_delays_neither_the_caller_nor_another_domain() {
        let storage: Slot<u32> = Slot::starting();
        let network: Slot<u32> = Slot::starting();
        let smart: Slot<u32> = Slot::starting();
        let (release, blocked) = mpsc::channel::<()>();
        let started = Instant::now();
        let s = spawn("storage", storage.clone(), move || {
            blocked.recv_timeout(DEADLINE).unwrap();
            Ok(Start::Ready(Arc::new(1)))
        })
        .unwrap();
        let needed_slot = storage.clone();
        let m = spawn("smart", smart.clone(), move || {
            let disks = needed("storage", &needed_slot, DEADLINE)?;
            Ok(Start::Ready(Arc::new(*disks.unwrap() + 1)))
        })
        .unwrap();
        let n = spawn("network", network.clone(), || Ok(Start::Ready(Arc::new(3)))).unwrap();
        // The caller got control back while storage is blocked.
        assert!(started.elapsed() < DEADLINE);
        assert_eq!(storage.health().state, "starting");
        wait_for("network", &network, "ready");
        assert_eq!(storage.health().state, "starting");
        assert_eq!(smart.health().state, "starting");
        release.send(()).unwrap();
        wait_for("smart", &smart, "ready");
        assert_eq!(*smart.get().unwrap(), 2);
        for h in [s, m, n] {
            h.join().unwrap();
        }
    }

    #[test]
    fn failures_panics_and_absence_are_recorded() {
        let failed: Slot<u32> = Slot::starting();
        spawn("network", failed.clone(), || {
            Err(anyhow::anyhow!("permission denied").context("cannot open netlink"))
        })
        .unwrap()
        .join()
        .unwrap();
        let h = failed.health();
        assert_eq!(h.state, "failed");
        assert_eq!(
            h.reason.as_deref(),
            Some("cannot open netlink: permission denied")
        );
        assert!(h.took_ms.is_some());

        let panicked: Slot<u32> = Slot::starting();
        spawn("vms", panicked.clone(), || panic!("boom"))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(
            panicked.health().reason.as_deref(),
            Some("its start panicked")
        );

        let absent: Slot<u32> = Slot::starting();
        spawn("vms", absent.clone(), || {
            Ok(Start::Absent(
                "libvirtd is not installed on this node".into(),
            ))
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(absent.health().state, "absent");
    }

    #[test]
    fn a_witness_runs_the_network_and_cluster_only() {
        let dir = tempfile::tempdir().unwrap();
        let Ok(crate::cli::Command::Run(cfg)) = crate::cli::parse(&[]) else {
            panic!("no flags: run with the defaults");
        };
        let mut cfg = *cfg;
        cfg.state_dir = dir.path().to_path_buf();
        let cfg = &cfg;
        assert!(!is_witness(cfg));
        std::fs::create_dir_all(dir.path().join("cluster")).unwrap();
        std::fs::write(dir.path().join("cluster/witness"), "witness\n").unwrap();
        assert!(is_witness(cfg));
        let d = cairn_api::domains::Domains::starting();
        set_witness(&d);
        let h = d.health();
        for dh in [&h.storage, &h.smart, &h.vms] {
            assert_eq!(dh.state, "absent");
            assert_eq!(dh.reason.as_deref(), Some(NOT_ON_A_WITNESS));
        }
        assert_eq!(h.network.state, "starting");
    }

    #[test]
    fn a_needed_domain_that_failed_or_is_absent_says_so() {
        let failed: Slot<u32> = Slot::starting();
        failed.set_failed("lsblk failed");
        let e = needed("storage", &failed, DEADLINE).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the storage service failed to start (lsblk failed)"
        );
        let absent: Slot<u32> = Slot::absent("not a booted Cairn node");
        assert_eq!(
            needed("storage", &absent, DEADLINE).unwrap().unwrap_err(),
            "the storage service does not run on this node (not a booted Cairn node)"
        );
        let slow: Slot<u32> = Slot::starting();
        let e = needed("storage", &slow, Duration::from_millis(1)).unwrap_err();
        assert!(e.to_string().contains("still starting"), "{e}");
    }
}
