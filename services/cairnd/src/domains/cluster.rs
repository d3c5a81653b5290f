//! Starts the cluster domain (its state on STATE; etcd's lease loop when a member) and its
//! cluster port once the node has a node certificate.

use super::shared::{Shared, Start};
use crate::addrs::{AddressSource, SystemAddresses};
use crate::cli::Config;
use anyhow::Context;
use cairn_api::cluster_port::{self, ClusterPeer, RunningPort};
use cairn_api::domains::Slot;
use cairn_cluster::networks::NodeNetworks;
use cairn_cluster::records::{PoolSpace, POOL_SPACE_STEP};
use cairn_cluster::service::{ClusterPaths, LocalNames};
use cairn_cluster::types::NameInventory;
use cairn_cluster::types::CLUSTER_PORT;
use cairn_cluster::ClusterService;
use cairn_storage::Storage;
use cairn_vm::Vms;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long the cluster port lets in-flight requests finish when it stops.
const PORT_GRACE: Duration = Duration::from_secs(5);

/// etcd's data directory on the appliance (STATE).
const ETCD_DATA: &str = "/var/lib/cairn/etcd";

/// The names this node uses, read from the storage and VM slots at the time of asking.
struct SlotNames {
    storage: Slot<Storage>,
    vms: Slot<Vms>,
    network: Slot<cairn_net::Network>,
}

impl LocalNames for SlotNames {
    fn names(&self) -> NameInventory {
        let pools = self
            .storage
            .get()
            .and_then(|s| s.pools().ok())
            .map(|p| p.into_iter().map(|p| p.name).collect())
            .unwrap_or_default();
        let vms = self
            .vms
            .get()
            .map(|v| v.list().into_iter().map(|s| s.record.name).collect())
            .unwrap_or_default();
        // Admin accounts become cluster-wide settings (issue 17): a joining node takes the
        // cluster's, so they are not a clash.
        NameInventory {
            pools,
            vms,
            users: Vec::new(),
        }
    }

    fn addresses(&self) -> Vec<IpAddr> {
        SystemAddresses.addresses().unwrap_or_default()
    }

    fn node_name(&self) -> Option<String> {
        Some(crate::node::hostname())
    }

    /// The bridges and network roles of the confirmed network spec (published in the node
    /// record; nothing while the network domain is not up).
    fn networks(&self) -> NodeNetworks {
        let Some(spec) = self
            .network
            .get()
            .and_then(|n| n.view().ok())
            .map(|v| v.spec)
        else {
            return NodeNetworks::default();
        };
        let mut bridges: Vec<String> = spec.bridges.iter().map(|b| b.name.clone()).collect();
        bridges.sort();
        let replication_address = spec
            .roles
            .replication
            .as_deref()
            .and_then(|i| crate::addrs::of_interface(i).into_iter().next());
        NodeNetworks {
            bridges,
            cluster_interface: spec.roles.cluster,
            replication_interface: spec.roles.replication,
            replication_address,
        }
    }

    /// Each usable pool's thin pool free space (a pool whose usage cannot be read is left
    /// out: no replica is placed on it).
    fn pools(&self) -> Vec<PoolSpace> {
        let Some(storage) = self.storage.get() else {
            return Vec::new();
        };
        let Ok(pools) = storage.pools() else {
            return Vec::new();
        };
        pools
            .into_iter()
            .filter_map(|p| {
                let free = storage.thin_free_bytes(&p.name).ok()?;
                Some(PoolSpace {
                    name: p.name,
                    volume_group: p.volume_group,
                    thin_pool: cairn_storage::names::THIN_POOL_LV.to_string(),
                    free_bytes: free / POOL_SPACE_STEP * POOL_SPACE_STEP,
                })
            })
            .collect()
    }
}

/// Open the cluster state; a member's lease loop starts with it.
pub fn start(shared: &Shared, cfg: &Config) -> anyhow::Result<Start<ClusterService>> {
    let etcd_data = if cfg.on_appliance() {
        PathBuf::from(ETCD_DATA)
    } else {
        cfg.state_dir.join("etcd")
    };
    let names = Arc::new(SlotNames {
        storage: shared.domains.storage.clone(),
        vms: shared.domains.vms.clone(),
        network: shared.domains.network.clone(),
    });
    let service = ClusterService::open(
        ClusterPaths {
            dir: cfg.state_dir.join("cluster"),
            etcd_data,
        },
        &crate::node::hostname(),
        names,
    )
    .context("cannot open the cluster state")?;
    // The quorum alert (`cluster-quorum`) goes where the other domains' alerts go.
    service.set_alerts(Arc::new(shared.alerts.clone()));
    let service = Arc::new(service);
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(cluster_port(service.clone()));
            rt.spawn(become_witness(
                service.clone(),
                shared.domains.clone(),
                cfg.on_appliance(),
            ));
        }
        Err(_) => tracing::warn!("cluster: no runtime, so no cluster port"),
    }
    Ok(Start::Ready(service))
}

/// Serve the cluster port while this node is a member: started at boot when it is one, when
/// a create or join succeeds, stopped when it leaves.
async fn cluster_port(service: Arc<ClusterService>) {
    let mut member = service.membership();
    let bind = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), CLUSTER_PORT);
    let mut running: Option<RunningPort> = None;
    loop {
        let is_member = *member.borrow_and_update();
        match (is_member, running.is_some()) {
            (true, false) => {
                let peer: Arc<dyn ClusterPeer> = service.clone();
                match cluster_port::start(peer, bind, PORT_GRACE).await {
                    Ok(port) => running = port,
                    Err(e) => tracing::error!(
                        "cluster: the cluster port did not start: {}",
                        cairn_core::boot::error_chain(&e)
                    ),
                }
            }
            (false, true) => {
                if let Some(port) = running.take() {
                    port.stop().await;
                    tracing::info!("cluster port stopped: this node left its cluster");
                }
            }
            _ => {}
        }
        if member.changed().await.is_err() {
            return;
        }
    }
}

/// When a join makes this node a witness while its domains run: storage, SMART and VMs
/// become absent ("not on a witness") and libvirtd and virtlogd are stopped (at the next boot
/// neither starts: the marker). Ends once done, or when the node is already a witness.
async fn become_witness(
    service: Arc<ClusterService>,
    domains: cairn_api::domains::Domains,
    on_appliance: bool,
) {
    if service.is_witness() {
        return; // a witness at boot: the domains never started
    }
    let mut member = service.membership();
    loop {
        if member.changed().await.is_err() {
            return;
        }
        let is_member = *member.borrow_and_update();
        if is_member && service.is_witness() {
            break;
        }
    }
    super::witness::set_witness(&domains);
    tracing::info!("this node joined as a witness: storage, SMART and VMs no longer run here");
    if !on_appliance {
        return;
    }
    let stopped = tokio::task::spawn_blocking(|| {
        cairn_cluster::process::stop_witness_excluded(&cairn_core::command::SystemRunner)
    })
    .await;
    match stopped {
        Ok(Ok(())) => tracing::info!("witness: libvirtd and virtlogd stopped"),
        Ok(Err(e)) => tracing::warn!(
            "witness: cannot stop libvirtd and virtlogd: {}",
            cairn_core::boot::error_chain(&e)
        ),
        Err(e) => tracing::warn!("witness: stopping libvirtd and virtlogd did not finish: {e}"),
    }
}
