//! Turning replication on for a VM's disks (issue 18 item 1): the replica node and pool
//! chosen ([`choose_replica`], pure), one resource record per disk allocated in etcd, this
//! node's side brought up, the replica's side made by its controller, the initial sync from
//! this node (which holds the data) with progress, and the record marked synced.

use super::record::{ResourceRecord, Side};
use crate::placement::TargetView;
use crate::records::{NodeRecord, PoolSpace};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One disk to replicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskToReplicate {
    /// Its name in the VM (`disk0`, …).
    pub disk: String,
    /// Its thin LV here, `/dev/<vg>/<lv>`.
    pub device: String,
    pub size_bytes: u64,
}

/// What the caller asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicateRequest {
    pub vm: String,
    /// The bridges the VM's NICs use (the replica node must have them: it is where the VM
    /// fails over to).
    pub bridges: Vec<String>,
    pub disks: Vec<DiskToReplicate>,
    /// The node the admin picked, if any (else the eligible node with the most free space).
    pub replica: Option<String>,
}

/// A disk now replicated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedDisk {
    pub disk: String,
    /// `cairn<i>`.
    pub resource: String,
    /// `/dev/drbd<i>`: what the VM opens from now on.
    pub device: String,
    pub replica: String,
}

/// Where the replicas go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    /// Its replication address (its cluster address when it names no replication network).
    pub address: IpAddr,
    pub pool: PoolSpace,
}

/// Room the replicas need on one pool: the disks plus one metadata LV each.
pub fn room_needed(disks: &[DiskToReplicate], extent_bytes: u64) -> u64 {
    disks
        .iter()
        .map(|d| d.size_bytes + super::names::metadata_bytes(d.size_bytes, extent_bytes))
        .sum()
}

/// A node's replication address: the one its record publishes, else its cluster address.
pub fn replication_address(n: &NodeRecord) -> IpAddr {
    n.networks.replication_address.unwrap_or(n.address)
}

/// Choose the replica node and its pool: the named node (refused with the reason when it is
/// not an eligible target or has no pool with room), else the eligible node whose roomiest
/// pool has the most free space. Thin replicas may be over-provisioned, but never onto a
/// pool whose free space is below what the disks can grow to.
pub fn choose_replica(
    targets: &[TargetView],
    nodes: &[NodeRecord],
    wanted: Option<&str>,
    need_bytes: u64,
) -> Result<Placement, String> {
    let best_pool = |n: &NodeRecord| -> Option<PoolSpace> {
        n.pools
            .iter()
            .filter(|p| p.free_bytes >= need_bytes)
            .max_by_key(|p| p.free_bytes)
            .cloned()
    };
    let place = |n: &NodeRecord, pool: PoolSpace| Placement {
        node: n.name.clone(),
        address: replication_address(n),
        pool,
    };
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
    if let Some(name) = wanted {
        let t = targets
            .iter()
            .find(|t| t.node == name)
            .ok_or_else(|| format!("{name} is not another node of this cluster"))?;
        if !t.eligible {
            return Err(t
                .reason
                .clone()
                .unwrap_or_else(|| format!("{name} cannot take the VM")));
        }
        let n = nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| format!("{name} has no node record"))?;
        let pool = best_pool(n).ok_or_else(|| {
            format!(
                "{name} has no pool with {} free (its pools: {})",
                gib(need_bytes),
                if n.pools.is_empty() {
                    "none".to_string()
                } else {
                    n.pools
                        .iter()
                        .map(|p| format!("{} {} free", p.name, gib(p.free_bytes)))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        })?;
        return Ok(place(n, pool));
    }
    let mut best: Option<Placement> = None;
    let mut refused = Vec::new();
    for t in targets {
        if !t.eligible {
            refused.push(t.reason.clone().unwrap_or_else(|| t.node.clone()));
            continue;
        }
        let Some(n) = nodes.iter().find(|n| n.name == t.node) else {
            continue;
        };
        match best_pool(n) {
            Some(pool) => {
                if best
                    .as_ref()
                    .is_none_or(|b| pool.free_bytes > b.pool.free_bytes)
                {
                    best = Some(place(n, pool));
                }
            }
            None => refused.push(format!(
                "{} has no pool with {} free",
                n.name,
                gib(need_bytes)
            )),
        }
    }
    best.ok_or_else(|| {
        if refused.is_empty() {
            "there is no other node in the cluster to hold a replica".to_string()
        } else {
            format!("no node can hold the replicas: {}", refused.join("; "))
        }
    })
}

/// VMs whose replication is being turned on by this process: the controller leaves their
/// records to the task (which brings this node's side up itself).
static IN_PROGRESS: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Whether VM `vm`'s replication is being turned on here.
pub fn in_progress(vm: &str) -> bool {
    IN_PROGRESS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(vm)
}

/// Marks VM `vm` in progress until dropped.
pub struct InProgress(String);

impl InProgress {
    pub fn new(vm: &str) -> InProgress {
        IN_PROGRESS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(vm.to_string());
        InProgress(vm.to_string())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        IN_PROGRESS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.0);
    }
}

/// The record of one disk for index `i`. The replica's LVs are named after the resource
/// (`drbd-cairn<i>`, `drbd-cairn<i>_drbdmd`): no name of the replica node's own volumes can
/// be taken by mistake.
pub fn record_for(
    vm: &str,
    disk: &DiskToReplicate,
    me: (&str, IpAddr),
    replica: &Placement,
    secret: String,
    i: super::names::Index,
) -> ResourceRecord {
    let lv = format!("drbd-{}", i.name());
    ResourceRecord {
        name: i.name(),
        index: i.get(),
        vm: vm.to_string(),
        vm_disk: disk.disk.clone(),
        size_bytes: disk.size_bytes,
        secret,
        sides: [
            Side {
                node: me.0.to_string(),
                address: me.1,
                disk: disk.device.clone(),
                meta_disk: format!("{}_drbdmd", disk.device),
            },
            Side {
                node: replica.node.clone(),
                address: replica.address,
                disk: format!("/dev/{}/{lv}", replica.pool.volume_group),
                meta_disk: format!("/dev/{}/{lv}_drbdmd", replica.pool.volume_group),
            },
        ],
        primary: me.0.to_string(),
        generation: 1,
        initial_sync_done: false,
        lone_writer: None,
        fenced: Vec::new(),
        retire: None,
        former: Vec::new(),
    }
}

/// The sync progress of several devices in permille (each counts by its size).
pub fn sync_permille(done: &[(u64, u32)]) -> u32 {
    let total: u64 = done.iter().map(|(size, _)| *size).sum();
    if total == 0 {
        return 1000;
    }
    let weighted: u128 = done
        .iter()
        .map(|(size, pm)| u128::from(*size) * u128::from(*pm))
        .sum();
    u32::try_from(weighted / u128::from(total)).unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networks::NodeNetworks;
    use crate::types::{NameInventory, Role};

    const GIB: u64 = 1 << 30;

    fn node(name: &str, pools: &[(&str, u64)], repl: Option<&str>) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            address: format!("10.77.0.{}", name.len()).parse().unwrap(),
            role: Role::Voter,
            joined_at: 1,
            names: NameInventory::default(),
            cert_serial: "1".into(),
            previous_serials: Vec::new(),
            networks: NodeNetworks {
                replication_address: repl.map(|a| a.parse().unwrap()),
                ..Default::default()
            },
            pools: pools
                .iter()
                .map(|(p, free)| PoolSpace {
                    name: (*p).into(),
                    volume_group: format!("cairn-{p}"),
                    thin_pool: "thin".into(),
                    free_bytes: *free,
                })
                .collect(),
        }
    }

    fn t(node: &str, why: Option<&str>) -> TargetView {
        TargetView {
            node: node.into(),
            eligible: why.is_none(),
            reason: why.map(str::to_string),
        }
    }

    #[test]
    fn the_roomiest_eligible_node_and_pool_is_chosen() {
        let nodes = [
            node(
                "node2",
                &[("tank", 3 * GIB), ("big", 9 * GIB)],
                Some("10.78.0.12"),
            ),
            node("node3", &[("tank", 5 * GIB)], None),
            node("node4", &[("huge", 90 * GIB)], None),
        ];
        let targets = [
            t("node2", None),
            t("node3", None),
            t("node4", Some("node4 is offline: it cannot take a VM now")),
        ];
        let p = choose_replica(&targets, &nodes, None, GIB).unwrap();
        assert_eq!(p.node, "node2");
        assert_eq!(p.pool.name, "big");
        assert_eq!(p.address.to_string(), "10.78.0.12");
        // Without a replication address the cluster address carries replication.
        let p = choose_replica(&targets, &nodes, Some("node3"), GIB).unwrap();
        assert_eq!(p.address, nodes[1].address);
    }

    #[test]
    fn a_named_node_is_refused_with_the_reason() {
        let nodes = [
            node("node2", &[("tank", GIB)], None),
            node("node4", &[], None),
        ];
        let targets = [
            t("node2", None),
            t("node4", Some("node4 lacks the bridge br-vm")),
        ];
        assert_eq!(
            choose_replica(&targets, &nodes, Some("node4"), GIB).unwrap_err(),
            "node4 lacks the bridge br-vm"
        );
        assert_eq!(
            choose_replica(&targets, &nodes, Some("node9"), GIB).unwrap_err(),
            "node9 is not another node of this cluster"
        );
        let e = choose_replica(&targets, &nodes, Some("node2"), 2 * GIB).unwrap_err();
        assert_eq!(
            e,
            "node2 has no pool with 2.0 GiB free (its pools: tank 1.0 GiB free)"
        );
    }

    #[test]
    fn no_room_anywhere_names_every_reason() {
        let nodes = [node("node2", &[("tank", GIB)], None)];
        let targets = [
            t("node2", None),
            t("node3", Some("node3 is a witness: it runs no VMs")),
        ];
        let e = choose_replica(&targets, &nodes, None, 2 * GIB).unwrap_err();
        assert!(e.contains("node2 has no pool with 2.0 GiB free"), "{e}");
        assert!(e.contains("node3 is a witness"), "{e}");
        assert_eq!(
            choose_replica(&[], &nodes, None, GIB).unwrap_err(),
            "there is no other node in the cluster to hold a replica"
        );
    }

    #[test]
    fn the_record_mirrors_the_disk_on_the_replicas_pool() {
        let nodes = [node("node2", &[("big", 9 * GIB)], Some("10.78.0.12"))];
        let p = choose_replica(&[t("node2", None)], &nodes, None, GIB).unwrap();
        let d = DiskToReplicate {
            disk: "disk0".into(),
            device: "/dev/cairn-tank/vol-web-disk0".into(),
            size_bytes: 256 << 20,
        };
        let r = record_for(
            "web",
            &d,
            ("node1", "10.78.0.11".parse().unwrap()),
            &p,
            "s".into(),
            crate::drbd::names::Index::new(4).unwrap(),
        );
        assert_eq!((r.name.as_str(), r.index), ("cairn4", 4));
        assert_eq!(r.sides[0].meta_disk, "/dev/cairn-tank/vol-web-disk0_drbdmd");
        assert_eq!(r.sides[1].disk, "/dev/cairn-big/drbd-cairn4");
        assert_eq!(r.sides[1].meta_disk, "/dev/cairn-big/drbd-cairn4_drbdmd");
        assert_eq!(r.primary, "node1");
        assert!(!r.initial_sync_done);
        assert_eq!(room_needed(&[d], 4 << 20), (256 << 20) + (4 << 20));
    }

    #[test]
    fn sync_progress_weighs_each_disk_by_its_size() {
        assert_eq!(sync_permille(&[(100, 1000), (300, 0)]), 250);
        assert_eq!(sync_permille(&[]), 1000);
    }
}
