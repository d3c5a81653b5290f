//! The cluster service's replicated-disk operations (issue 18): turning replication on for a
//! VM's disks ([`ClusterService::replicate`]) and each disk's state from `/proc/drbd`
//! ([`ClusterService::disk_states`], no etcd needed: a cut-off node still tells).

use crate::drbd::apply::Node;
use crate::drbd::controller::{thin_pool_of, EXTENT_BYTES};
use crate::drbd::enable::{
    choose_replica, record_for, replication_address, room_needed, sync_permille, ReplicateRequest,
    ReplicatedDisk,
};
use crate::drbd::names::Index;
use crate::drbd::proc_status::{self, Device};
use crate::drbd::record::{new_secret, ResourceRecord};
use crate::drbd::{alloc, side};
use crate::error::ClusterError;
use crate::records;
use crate::service::ClusterService;
use cairn_core::alert::Progress;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long the replica's controller may take to bring its side up and connect.
pub const CONNECT_WAIT: Duration = Duration::from_secs(120);
/// The initial sync's deadline: this, plus the data at the lowest resync rate.
pub const SYNC_WAIT_BASE: Duration = Duration::from_secs(120);
/// How often `/proc/drbd` is read while waiting.
const POLL: Duration = Duration::from_millis(500);

/// One replicated disk's state on this node (`GET /api/v1/vms/{vm}/replication`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskState {
    pub disk: String,
    pub resource: String,
    pub replica: String,
    /// Absent: the resource is not up on this node.
    pub role: Option<String>,
    pub peer_role: Option<String>,
    /// `Connected`, `SyncSource`, `WFConnection`, `StandAlone`, …
    pub connection: Option<String>,
    /// `UpToDate`, `Inconsistent`, `Outdated`, `DUnknown`, …
    pub disk_state: Option<String>,
    pub peer_disk_state: Option<String>,
    /// While a sync runs.
    pub sync_percent: Option<f64>,
    pub out_of_sync_bytes: u64,
    pub io_frozen: bool,
    /// Both copies are UpToDate and connected.
    pub healthy: bool,
}

/// A disk's state from its `/proc/drbd` entry.
pub fn disk_state(disk: &str, resource: &str, replica: &str, dev: Option<&Device>) -> DiskState {
    DiskState {
        disk: disk.to_string(),
        resource: resource.to_string(),
        replica: replica.to_string(),
        role: dev.map(|d| d.role.clone()),
        peer_role: dev.map(|d| d.peer_role.clone()),
        connection: dev.map(|d| d.connection.clone()),
        disk_state: dev.map(|d| d.disk.clone()),
        peer_disk_state: dev.map(|d| d.peer_disk.clone()),
        sync_percent: dev
            .and_then(|d| d.sync.as_ref())
            .map(|s| f64::from(s.permille) / 10.0),
        out_of_sync_bytes: dev.map_or(0, |d| d.out_of_sync_kib * 1024),
        io_frozen: dev.is_some_and(|d| d.io_frozen),
        healthy: dev.is_some_and(|d| {
            d.connection == "Connected" && d.disk == "UpToDate" && d.peer_disk == "UpToDate"
        }),
    }
}

fn drbd_err(resource: &str) -> impl FnOnce(crate::drbd::apply::ApplyError) -> ClusterError + '_ {
    move |source| ClusterError::Drbd {
        resource: resource.to_string(),
        source: Box::new(source),
    }
}

impl ClusterService {
    /// The size in bytes of block device `device` (`blockdev --getsize64`).
    pub fn device_size(&self, device: &str) -> Result<u64, ClusterError> {
        let out = cairn_core::command::run_ok(
            self.ctx.runner.as_ref(),
            &cairn_core::command::Invocation::new("blockdev", ["--getsize64", device]),
        )
        .map_err(|source| ClusterError::Service {
            what: "read the size of a disk (blockdev)",
            source,
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| ClusterError::Invalid {
            field: "disks",
            reason: format!("blockdev printed no size for {device}: {text:?}"),
        })
    }

    /// Check a replication request before its task starts: a member with quorum, a
    /// replica node that can take the VM (422 naming the reason otherwise).
    pub fn check_replicate(&self, req: &ReplicateRequest) -> Result<(), ClusterError> {
        let state = self.member()?;
        let targets = self.targets(&req.bridges)?;
        let client = self.etcd_client(&state)?;
        let nodes = self.block(async move { records::nodes(&client).await })?;
        choose_replica(
            &targets,
            &nodes,
            req.replica.as_deref(),
            room_needed(&req.disks, EXTENT_BYTES),
        )
        .map(|_| ())
        .map_err(|reason| ClusterError::Invalid {
            field: "replica",
            reason,
        })
    }

    /// The state of each `(disk, resource, replica)` on this node, from `/proc/drbd`.
    pub fn disk_states(&self, disks: &[(String, String, String)]) -> Vec<DiskState> {
        let node = Node::system(self.ctx.runner.as_ref());
        let parsed = std::fs::read_to_string(&node.proc_drbd)
            .ok()
            .and_then(|t| proc_status::parse(&t).ok());
        disks
            .iter()
            .map(|(disk, resource, replica)| {
                let dev = Index::from_name(resource)
                    .and_then(|i| parsed.as_ref().and_then(|p| p.device(i.minor())));
                disk_state(disk, resource, replica, dev)
            })
            .collect()
    }

    /// Turn replication on for a shut-off VM's disks: choose the replica, allocate one
    /// resource per disk in etcd, bring this node's sides up, wait for the replica's
    /// controller to connect, sync from here (progress), record the sync, and leave the
    /// resources Secondary (the VM's start promotes them). A failure takes down what this
    /// call made and deletes its records (the replica's controller then takes its side down).
    pub fn replicate(
        &self,
        req: &ReplicateRequest,
        progress: &dyn Progress,
    ) -> Result<Vec<ReplicatedDisk>, ClusterError> {
        let state = self.member()?;
        let me = state.node_name.clone();
        let targets = self.targets(&req.bridges)?;
        let client = self.etcd_client(&state)?;
        let c = client.clone();
        let nodes = self.block(async move { records::nodes(&c).await })?;
        let mine = nodes
            .iter()
            .find(|n| n.name == me)
            .ok_or_else(|| ClusterError::Conflict(format!("no node record of {me}")))?;
        let my_address = replication_address(mine);
        let my_pools = mine.pools.clone();
        let need = room_needed(&req.disks, EXTENT_BYTES);
        let place =
            choose_replica(&targets, &nodes, req.replica.as_deref(), need).map_err(|reason| {
                ClusterError::Invalid {
                    field: "replica",
                    reason,
                }
            })?;
        progress.progress(
            2,
            &format!(
                "replicas on {} (pool {}, {})",
                place.node, place.pool.name, place.address
            ),
        );
        let _held = crate::drbd::enable::InProgress::new(&req.vm);
        let mut made: Vec<ResourceRecord> = Vec::new();
        let result = self.replicate_disks(
            req, &me, my_address, &my_pools, &place, &client, &mut made, progress,
        );
        if result.is_err() {
            self.undo(&client, &made);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn replicate_disks(
        &self,
        req: &ReplicateRequest,
        me: &str,
        my_address: std::net::IpAddr,
        my_pools: &[crate::records::PoolSpace],
        place: &crate::drbd::enable::Placement,
        client: &etcd_client::Client,
        made: &mut Vec<ResourceRecord>,
        progress: &dyn Progress,
    ) -> Result<Vec<ReplicatedDisk>, ClusterError> {
        let node = Node::system(self.ctx.runner.as_ref());
        for d in &req.disks {
            let secret = new_secret().map_err(|e| {
                ClusterError::Conflict(format!("no randomness for the shared secret: {e}"))
            })?;
            let (vm, d2, place2) = (req.vm.clone(), d.clone(), place.clone());
            let me2 = me.to_string();
            let c = client.clone();
            let rec = self.block(async move {
                alloc::allocate(&c, |i| {
                    record_for(&vm, &d2, (&me2, my_address), &place2, secret.clone(), i)
                })
                .await
            })?;
            made.push(rec.clone());
            let thin = thin_pool_of(my_pools, &d.device).ok_or_else(|| ClusterError::Invalid {
                field: "disks",
                reason: format!("{} is not on one of this node's pools", d.device),
            })?;
            side::ensure(&node, &rec, me, &thin, EXTENT_BYTES).map_err(|source| {
                ClusterError::DrbdSide {
                    resource: rec.name.clone(),
                    source: Box::new(source),
                }
            })?;
            progress.progress(
                5,
                &format!(
                    "{} ({}) up here; waiting for {} to bring up its side",
                    rec.name, d.disk, place.node
                ),
            );
        }
        // The replica's controller makes its side within a few ticks; then both connect.
        for rec in made.iter() {
            self.wait_device(&node, rec, CONNECT_WAIT, "to connect to its replica", |d| {
                d.connection == "Connected"
            })?;
        }
        for rec in made.iter() {
            node.primary(&rec.name, true).map_err(drbd_err(&rec.name))?;
        }
        let sync_to = place.node.clone();
        self.wait_synced(
            &node,
            made,
            &format!("the initial sync to {sync_to}"),
            progress,
            |pct, total, rate, left| {
                format!(
                    "initial sync to {sync_to}: {pct:.1} % of {} MiB at {:.1} MiB/s{left}",
                    total >> 20,
                    rate / f64::from(1u32 << 20)
                )
            },
        )?;
        let mut out = Vec::new();
        for rec in made.iter() {
            self.mark_synced(client, &rec.name)?;
            node.secondary(&rec.name).map_err(drbd_err(&rec.name))?;
            let i = rec.index().map(Index::device).unwrap_or_default();
            out.push(ReplicatedDisk {
                disk: rec.vm_disk.clone(),
                resource: rec.name.clone(),
                device: i,
                replica: place.node.clone(),
            });
        }
        progress.progress(100, &format!("replicated on {}", place.node));
        Ok(out)
    }

    /// Turn replication off for VM `vm`'s disks, keeping node `keep`'s copy (checked: a
    /// member with quorum; `keep` is this node, which holds every disk's current data). Marks
    /// each record retired and returns each disk's name and the thin LV it opens again.
    pub fn begin_unreplicate(
        &self,
        vm: &str,
        keep: &str,
    ) -> Result<Vec<(String, String)>, ClusterError> {
        let state = self.member()?;
        self.check_change()?;
        let me = state.node_name.clone();
        let client = self.etcd_client(&state)?;
        let c = client.clone();
        let vm_name = vm.to_string();
        let mine: Vec<ResourceRecord> = self
            .block(async move { alloc::list(&c).await })?
            .into_iter()
            .filter(|r| r.vm == vm_name)
            .collect();
        let Some(first) = mine.first() else {
            return Err(ClusterError::Conflict(format!(
                "the cluster records no replicated disk of VM {vm}"
            )));
        };
        let holders = first
            .sides
            .iter()
            .map(|s| s.node.as_str())
            .collect::<Vec<_>>()
            .join(" and ");
        if first.side(keep).is_none() {
            return Err(ClusterError::Invalid {
                field: "keep",
                reason: format!("{keep} holds no copy of VM {vm}'s disks (they are on {holders})"),
            });
        }
        if keep != me {
            return Err(ClusterError::Invalid {
                field: "keep",
                reason: format!(
                    "keeping {keep}'s copy means moving VM {vm} to {keep}, which Cairn cannot do \
                     yet: keep this node's copy ({me})"
                ),
            });
        }
        let proc = std::fs::read_to_string(Node::system(self.ctx.runner.as_ref()).proc_drbd)
            .ok()
            .and_then(|t| proc_status::parse(&t).ok());
        for r in &mine {
            if r.primary != me {
                return Err(ClusterError::Invalid {
                    field: "keep",
                    reason: format!(
                        "the cluster records {}'s copy of {} as the current one, not {me}'s",
                        r.primary, r.vm_disk
                    ),
                });
            }
            if let Some(d) = proc.as_ref().and_then(|p| p.device(r.index)) {
                if d.disk != "UpToDate" {
                    return Err(ClusterError::Invalid {
                        field: "keep",
                        reason: format!(
                            "this node's copy of {} is {}: keeping it would lose data; wait \
                     for the resync",
                            r.vm_disk, d.disk
                        ),
                    });
                }
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut out = Vec::new();
        for r in &mine {
            let (name, keep, c) = (r.name.clone(), keep.to_string(), client.clone());
            self.block(async move {
                let (mut rec, rev) = alloc::get(&c, &name).await?.ok_or_else(|| {
                    ClusterError::Conflict(format!("the record of {name} disappeared"))
                })?;
                if rec.retire.is_none() {
                    rec.retire = Some(crate::drbd::record::Retire { keep, since: now });
                    if !alloc::update_guarded(&c, &rec, rev).await? {
                        return Err(ClusterError::Conflict(format!(
                            "the record of {name} changed meanwhile: retry"
                        )));
                    }
                }
                Ok(())
            })?;
            let disk = r.side(&me).map(|s| s.disk.clone()).unwrap_or_default();
            out.push((r.vm_disk.clone(), disk));
        }
        Ok(out)
    }

    /// After [`Self::begin_unreplicate`] and the VM's disks switched back: this node's side
    /// of each disk taken down (metadata LV removed), then the other node's controller removes
    /// its copy and the record (waited for up to [`CONNECT_WAIT`]; a node that is away does it
    /// when it is back). Returns the task's closing message.
    pub fn finish_unreplicate(
        &self,
        vm: &str,
        progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        let state = self.member()?;
        let me = state.node_name.clone();
        let client = self.etcd_client(&state)?;
        let node = Node::system(self.ctx.runner.as_ref());
        let list = |client: &etcd_client::Client| {
            let (c, vm) = (client.clone(), vm.to_string());
            self.block(async move {
                Ok::<_, ClusterError>(
                    alloc::list(&c)
                        .await?
                        .into_iter()
                        .filter(|r| r.vm == vm && r.retire.is_some())
                        .collect::<Vec<_>>(),
                )
            })
        };
        let retired = list(&client)?;
        for rec in &retired {
            let steps = crate::drbd::retire::facts(&node, rec, &me)
                .and_then(|f| crate::drbd::retire::plan(rec, &me, f))
                .map_err(|source| ClusterError::DrbdSide {
                    resource: rec.name.clone(),
                    source: Box::new(source),
                })?
                .unwrap_or_default();
            crate::drbd::retire::apply_local(&node, rec, &steps).map_err(drbd_err(&rec.name))?;
        }
        let peer = retired
            .first()
            .and_then(|r| r.peer_of(&me))
            .map_or_else(|| "the other node".to_string(), |s| s.node.clone());
        progress.progress(
            60,
            &format!("this node's side is down; {peer} removes its copy"),
        );
        let start = Instant::now();
        loop {
            if list(&client)?.is_empty() {
                return Ok(format!(
                    "replication of VM {vm} is off: this node's copy kept, {peer}'s removed"
                ));
            }
            if start.elapsed() > CONNECT_WAIT {
                return Ok(format!(
                    "replication of VM {vm} is off: this node's copy kept; {peer} did not remove \
                     its copy within {} s and will when it is back",
                    CONNECT_WAIT.as_secs()
                ));
            }
            std::thread::sleep(POLL * 2);
        }
    }

    /// The records of VM `vm` this node is the current primary of, with their revisions,
    /// checked for a move to `to`: not retired, this node's copy UpToDate, `to` not a side.
    fn movable(
        &self,
        client: &etcd_client::Client,
        vm: &str,
        to: &str,
    ) -> Result<Vec<ResourceRecord>, ClusterError> {
        // The cluster's name of this node (the hostname may have been set after cairnd
        // started: the state's name is the one the records use).
        let me = self.member()?.node_name;
        let (c, name) = (client.clone(), vm.to_string());
        let recs: Vec<ResourceRecord> = self
            .block(async move { alloc::list(&c).await })?
            .into_iter()
            .filter(|r| r.vm == name)
            .collect();
        if recs.is_empty() {
            return Err(ClusterError::Conflict(format!(
                "the cluster records no replicated disk of VM {vm}"
            )));
        }
        let proc = std::fs::read_to_string(Node::system(self.ctx.runner.as_ref()).proc_drbd)
            .ok()
            .and_then(|t| proc_status::parse(&t).ok());
        for r in &recs {
            if r.retire.is_some() {
                return Err(ClusterError::Conflict(format!(
                    "replication of {} is being turned off",
                    r.vm_disk
                )));
            }
            if r.side(to).is_some() {
                return Err(ClusterError::Invalid {
                    field: "to",
                    reason: format!("{to} holds a copy of {} already", r.vm_disk),
                });
            }
            if r.primary != me {
                return Err(ClusterError::Invalid {
                    field: "to",
                    reason: format!(
                        "the cluster records {}'s copy of {} as the current one: move the \
                         replica from there",
                        r.primary, r.vm_disk
                    ),
                });
            }
            let up_to_date = proc
                .as_ref()
                .and_then(|p| p.device(r.index))
                .is_some_and(|d| d.disk == "UpToDate");
            if !up_to_date {
                return Err(ClusterError::Invalid {
                    field: "to",
                    reason: format!(
                        "this node's copy of {} is not UpToDate (or not up): the replica can \
                         move only from a current copy",
                        r.vm_disk
                    ),
                });
            }
        }
        Ok(recs)
    }

    /// The node holding the other copy of VM `vm`'s replicated disks, as the cluster's
    /// records say (after a failed move the VM's own record may lag behind them).
    pub fn replica_of(&self, vm: &str) -> Result<Option<String>, ClusterError> {
        let state = self.member()?;
        let client = self.etcd_client(&state)?;
        let me = state.node_name.clone();
        let vm = vm.to_string();
        let recs = self.block(async move { alloc::list(&client).await })?;
        Ok(recs
            .iter()
            .find(|r| r.vm == vm)
            .and_then(|r| r.peer_of(&me))
            .map(|s| s.node.clone()))
    }

    /// Check a move of VM `vm`'s replicas to node `to` (422 naming `to` with the reason).
    pub fn check_move(&self, vm: &str, to: &str, bridges: &[String]) -> Result<(), ClusterError> {
        let state = self.member()?;
        let targets = self.targets(bridges)?;
        let client = self.etcd_client(&state)?;
        let recs = self.movable(&client, vm, to)?;
        let c = client.clone();
        let nodes = self.block(async move { records::nodes(&c).await })?;
        let need: u64 = recs
            .iter()
            .map(|r| r.size_bytes + crate::drbd::names::metadata_bytes(r.size_bytes, EXTENT_BYTES))
            .sum();
        choose_replica(&targets, &nodes, Some(to), need)
            .map(|_| ())
            .map_err(|reason| ClusterError::Invalid {
                field: "to",
                reason,
            })
    }

    /// Move VM `vm`'s replicas to node `to` (the VM may run): each record's replica side
    /// becomes `to`'s (the old one listed as former, so its node removes its copy), this
    /// node's side adjusts to the new peer, `to`'s controller makes its side, and the full
    /// sync to it is the task's progress. Meanwhile only this node's copy is current.
    pub fn move_replica(
        &self,
        vm: &str,
        to: &str,
        bridges: &[String],
        progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        let state = self.member()?;
        let me = state.node_name.clone();
        let targets = self.targets(bridges)?;
        let client = self.etcd_client(&state)?;
        let _held = crate::drbd::enable::InProgress::new(vm);
        let recs = self.movable(&client, vm, to)?;
        let c = client.clone();
        let nodes = self.block(async move { records::nodes(&c).await })?;
        let mine = nodes
            .iter()
            .find(|n| n.name == me)
            .ok_or_else(|| ClusterError::Conflict(format!("no node record of {me}")))?;
        let my_pools = mine.pools.clone();
        let need: u64 = recs
            .iter()
            .map(|r| r.size_bytes + crate::drbd::names::metadata_bytes(r.size_bytes, EXTENT_BYTES))
            .sum();
        let place = choose_replica(&targets, &nodes, Some(to), need).map_err(|reason| {
            ClusterError::Invalid {
                field: "to",
                reason,
            }
        })?;
        let node = Node::system(self.ctx.runner.as_ref());
        let mut moved = Vec::new();
        for r in &recs {
            let (c, name, me2, place2) =
                (client.clone(), r.name.clone(), me.clone(), place.clone());
            let rec = self.block(async move {
                let (mut rec, rev) = alloc::get(&c, &name).await?.ok_or_else(|| {
                    ClusterError::Conflict(format!("the record of {name} disappeared"))
                })?;
                let i = rec.index().ok_or_else(|| {
                    ClusterError::Conflict(format!("the record of {name} has no valid index"))
                })?;
                let slot = rec
                    .sides
                    .iter()
                    .position(|s| s.node != me2)
                    .ok_or_else(|| {
                        ClusterError::Conflict(format!("the record of {name} has no replica side"))
                    })?;
                let lv = format!("drbd-{}", i.name());
                let old = std::mem::replace(
                    &mut rec.sides[slot],
                    crate::drbd::record::Side {
                        node: place2.node.clone(),
                        address: place2.address,
                        disk: format!("/dev/{}/{lv}", place2.pool.volume_group),
                        meta_disk: format!("/dev/{}/{lv}_drbdmd", place2.pool.volume_group),
                    },
                );
                rec.former.retain(|s| s.node != place2.node);
                rec.former.push(old);
                rec.initial_sync_done = false;
                rec.lone_writer = None;
                if !alloc::update_guarded(&c, &rec, rev).await? {
                    return Err(ClusterError::Conflict(format!(
                        "the record of {name} changed meanwhile: retry"
                    )));
                }
                Ok(rec)
            })?;
            let thin = thin_pool_of(
                &my_pools,
                &rec.side(&me).map(|s| s.disk.clone()).unwrap_or_default(),
            )
            .ok_or_else(|| {
                ClusterError::Conflict(format!("{}: this node's pool is gone", rec.name))
            })?;
            side::ensure(&node, &rec, &me, &thin, EXTENT_BYTES).map_err(|source| {
                ClusterError::DrbdSide {
                    resource: rec.name.clone(),
                    source: Box::new(source),
                }
            })?;
            progress.progress(
                5,
                &format!(
                    "{} now points at {to}; waiting for {to} to bring up its side",
                    rec.name
                ),
            );
            moved.push(rec);
        }
        for rec in &moved {
            self.wait_device(
                &node,
                rec,
                CONNECT_WAIT,
                &format!("to connect to {to}"),
                |d| crate::drbd::follow::is_connected(&d.connection),
            )?;
        }
        self.wait_synced(
            &node,
            &moved,
            &format!("the sync to {to}"),
            progress,
            |pct, total, _, _| {
                format!(
                    "sync to {to}: {pct:.1} % of {} MiB; until it ends only this node's copy is \
                     current",
                    total >> 20
                )
            },
        )?;
        for rec in &moved {
            self.mark_synced(&client, &rec.name)?;
        }
        let from: Vec<String> = recs
            .iter()
            .filter_map(|r| r.peer_of(&me).map(|s| s.node.clone()))
            .collect();
        progress.progress(100, &format!("replica moved to {to}"));
        Ok(format!(
            "VM {vm}: replica moved from {} to {to}; {} removes its old copy",
            from.first().map_or("?", String::as_str),
            from.first().map_or("the old node", String::as_str)
        ))
    }

    /// Wait until every one of `recs` is connected with both copies UpToDate, reporting the
    /// size-weighted progress as `message(percent, total bytes, bytes/s, ", N s left")`; the
    /// deadline allows the slowest rate the resync controller goes (c-min-rate 4 MiB/s).
    fn wait_synced(
        &self,
        node: &Node<'_>,
        recs: &[ResourceRecord],
        what: &str,
        progress: &dyn Progress,
        message: impl Fn(f64, u64, f64, &str) -> String,
    ) -> Result<(), ClusterError> {
        let total: u64 = recs.iter().map(|r| r.size_bytes).sum();
        let wait = SYNC_WAIT_BASE + Duration::from_secs(total / (4 << 20));
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&node.proc_drbd).unwrap_or_default();
            let parsed = proc_status::parse(&text).ok();
            let mut done = Vec::new();
            let mut all = true;
            for rec in recs {
                let dev = parsed.as_ref().and_then(|p| p.device(rec.index));
                let synced = dev.is_some_and(|d| {
                    d.connection == "Connected" && d.disk == "UpToDate" && d.peer_disk == "UpToDate"
                });
                all &= synced;
                let pm = match dev.and_then(|d| d.sync.as_ref()) {
                    _ if synced => 1000,
                    Some(s) => s.permille,
                    None => 0,
                };
                done.push((rec.size_bytes, pm));
            }
            let pm = sync_permille(&done);
            let elapsed = start.elapsed().as_secs_f64().max(0.1);
            let rate = (total as f64 * f64::from(pm) / 1000.0) / elapsed;
            let left = if rate > 0.0 {
                format!(
                    ", {:.0} s left",
                    (total as f64 * f64::from(1000 - pm) / 1000.0) / rate
                )
            } else {
                String::new()
            };
            progress.progress(
                (10 + pm * 85 / 1000).min(95) as u8,
                &message(f64::from(pm) / 10.0, total, rate, &left),
            );
            if all {
                return Ok(());
            }
            if start.elapsed() > wait {
                return Err(ClusterError::Timeout {
                    what: what.to_string(),
                    waited: wait,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Record that resource `name`'s copies finished a full sync (guarded update).
    fn mark_synced(&self, client: &etcd_client::Client, name: &str) -> Result<(), ClusterError> {
        let (c, name) = (client.clone(), name.to_string());
        self.block(async move {
            let (mut r, rev) = alloc::get(&c, &name).await?.ok_or_else(|| {
                ClusterError::Conflict(format!("the record of {name} disappeared"))
            })?;
            r.initial_sync_done = true;
            if alloc::update_guarded(&c, &r, rev).await? {
                Ok(())
            } else {
                Err(ClusterError::Conflict(format!(
                    "the record of {name} changed while it was being marked synced"
                )))
            }
        })
    }

    /// Wait until `rec`'s device satisfies `ok`, reading `/proc/drbd`.
    fn wait_device(
        &self,
        node: &Node<'_>,
        rec: &ResourceRecord,
        within: Duration,
        what: &str,
        ok: impl Fn(&Device) -> bool,
    ) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&node.proc_drbd).unwrap_or_default();
            if proc_status::parse(&text)
                .ok()
                .and_then(|p| p.device(rec.index).cloned())
                .is_some_and(|d| ok(&d))
            {
                return Ok(());
            }
            if start.elapsed() > within {
                return Err(ClusterError::Timeout {
                    what: format!("{} {what}", rec.name),
                    waited: within,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Undo a failed [`Self::replicate`]: this node's sides down, their files and metadata
    /// volumes removed, the records deleted (best effort: each failure is logged).
    fn undo(&self, client: &etcd_client::Client, made: &[ResourceRecord]) {
        let node = Node::system(self.ctx.runner.as_ref());
        let me = self
            .member()
            .map(|s| s.node_name)
            .unwrap_or_else(|_| self.ctx.node_name.clone());
        for rec in made {
            let _ = node.down(&rec.name);
            let _ = std::fs::remove_file(node.drbd_d.join(format!("{}.res", rec.name)));
            if let Some(s) = rec.side(&me) {
                let meta = s.meta_disk.trim_start_matches("/dev/").to_string();
                let _ = cairn_core::command::run_ok(
                    self.ctx.runner.as_ref(),
                    &cairn_core::command::Invocation::new("lvremove", ["-y".to_string(), meta]),
                );
            }
            let c = client.clone();
            let name = rec.name.clone();
            if let Err(e) = self.block(async move { alloc::delete(&c, &name).await }) {
                tracing::warn!(
                    "drbd: the record of {} is left after a failed replication: {}",
                    rec.name,
                    cairn_base::error_chain::error_chain(&e)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_state_reads_its_proc_entry() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/drbd/proc-syncing.txt"),
        )
        .unwrap();
        let p = proc_status::parse(&text).unwrap();
        let s = disk_state("disk0", "cairn0", "node2", p.device(0));
        assert_eq!(s.connection.as_deref(), Some("SyncSource"));
        assert_eq!(s.sync_percent, Some(34.5));
        assert_eq!(s.out_of_sync_bytes, 172032 * 1024);
        assert!(!s.healthy);
        let none = disk_state("disk0", "cairn7", "node2", p.device(7));
        assert_eq!(none.role, None);
        assert!(!none.healthy);
    }
}
