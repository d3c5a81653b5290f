//! A VM's replicated disks (issue 18): `GET /api/v1/vms/{vm}/replication` (each disk's DRBD
//! state on this node, read without etcd) and `POST` (turn replication on: a task).

use crate::cluster::CLUSTER;
use crate::error::ApiError;
use crate::executor::{Domain, TaskText};
use crate::request::Ctx;
use crate::response::{json, Body};
use cairn_cluster::drbd::enable::{DiskToReplicate, ReplicateRequest};
use cairn_cluster::error::ClusterError;
use cairn_vm::error::VmError;
use cairn_vm::spec::DiskReplication;
use cairn_vm::Vms;
use hyper::{Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

/// The VM domain as the API reaches it.
type VmDomain = Domain<Vms, VmError>;

/// The body of `POST /api/v1/vms/{vm}/replication` (empty: the replica node is chosen).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateBody {
    /// The node to hold the other copy.
    #[serde(default)]
    pub replica: Option<String>,
}

/// The body of `DELETE /api/v1/vms/{vm}/replication`: whose copy stays.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnreplicateBody {
    /// The node whose copy is kept (this node, for now).
    pub keep: String,
}

/// Check, then turn replication off as a task (202), keeping `body.keep`'s copy.
pub async fn delete(
    ctx: &Ctx<'_>,
    domain: &VmDomain,
    vms: Arc<Vms>,
    name: String,
    body: UnreplicateBody,
) -> Result<Response<Body>, ApiError> {
    if body.keep.is_empty() {
        return Err(ApiError::invalid(
            "keep",
            "the node whose copy stays (this node)",
        ));
    }
    let cluster = CLUSTER.service(ctx)?;
    let vm_name = name.clone();
    domain
        .blocking(vms.clone(), move |v| v.begin_unreplicating(&vm_name))
        .await?;
    // Held until the task ends: this node's controller leaves the records to it.
    let held = cairn_cluster::drbd::enable::InProgress::new(&name);
    let (vm_name, keep) = (name.clone(), body.keep.clone());
    let begun = CLUSTER
        .blocking(cluster.clone(), move |c| {
            c.begin_unreplicate(&vm_name, &keep)
        })
        .await;
    let disks = match begun {
        Ok(d) => d,
        Err(e) => {
            vms.end_replicating(&name);
            return Err(e);
        }
    };
    let message = format!(
        "turn replication off for VM {name}, keeping {}'s copy",
        body.keep
    );
    Ok(CLUSTER.task(
        ctx,
        cluster,
        TaskText {
            kind: "vm.unreplicate",
            message: &message,
        },
        move |c, progress| {
            let _held = held;
            let result = vms
                .set_unreplicated(&name, &disks)
                .map_err(|e| {
                    ClusterError::Conflict(format!(
                        "the VM's record was not switched back to its volumes: {}",
                        cairn_core::boot::error_chain(&e)
                    ))
                })
                .and_then(|_| {
                    progress.progress(30, "the VM opens its volumes again");
                    c.finish_unreplicate(&name, progress)
                });
            vms.end_replicating(&name);
            result
        },
    ))
}

/// The body of `POST /api/v1/vms/{vm}/replication/move`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// The node to hold the other copy from now on.
    pub to: String,
}

/// Check, then move the VM's replicas to `body.to` as a task (202). The VM may run.
pub async fn move_replica(
    ctx: &Ctx<'_>,
    domain: &VmDomain,
    vms: Arc<Vms>,
    name: String,
    body: MoveBody,
) -> Result<Response<Body>, ApiError> {
    if body.to.is_empty() {
        return Err(ApiError::invalid(
            "to",
            "the node to move the other copy to",
        ));
    }
    let cluster = CLUSTER.service(ctx)?;
    let vm_name = name.clone();
    let bridges = domain
        .blocking(vms.clone(), move |v| {
            let vm = v.get(&vm_name)?;
            let mut b: Vec<String> = vm.record.nics.iter().map(|n| n.bridge.clone()).collect();
            b.sort();
            b.dedup();
            Ok(b)
        })
        .await?;
    let (vm_name, to, b2) = (name.clone(), body.to.clone(), bridges.clone());
    CLUSTER
        .blocking(cluster.clone(), move |c| c.check_move(&vm_name, &to, &b2))
        .await?;
    let message = format!("move VM {name}'s replica to {}", body.to);
    Ok(CLUSTER.task(
        ctx,
        cluster,
        TaskText {
            kind: "vm.replica.move",
            message: &message,
        },
        move |c, progress| {
            let moved = c.move_replica(&name, &body.to, &bridges, progress);
            // Success or not, the VM's record follows the cluster's (a move that failed
            // after its records changed has its new replica node already).
            let now = match &moved {
                Ok(_) => Some(body.to.clone()),
                Err(_) => c.replica_of(&name).ok().flatten(),
            };
            if let Some(node) = now {
                vms.set_replica_node(&name, &node).map_err(|e| {
                    ClusterError::Conflict(format!(
                        "the VM's record was not updated with its replica node {node}: {}",
                        cairn_core::boot::error_chain(&e)
                    ))
                })?;
            }
            moved
        },
    ))
}

/// Each disk of `vm` and its replication: `{vm, disks: [{disk, replicated, …state}]}`.
pub async fn get(
    ctx: &Ctx<'_>,
    domain: &VmDomain,
    vms: Arc<Vms>,
    name: String,
) -> Result<Response<Body>, ApiError> {
    let vm = domain.blocking(vms, move |v| v.get(&name)).await?;
    let replicated: Vec<(String, String, String)> = vm
        .record
        .disks
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            d.replication
                .as_ref()
                .map(|r| (format!("disk{i}"), r.resource.clone(), r.replica.clone()))
        })
        .collect();
    let states = if replicated.is_empty() {
        Vec::new()
    } else {
        let cluster = CLUSTER.service(ctx)?;
        CLUSTER
            .blocking(cluster, move |c| Ok(c.disk_states(&replicated)))
            .await?
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"vm": vm.record.name, "disks": states}),
    ))
}

/// Check, then turn replication on as a task (202).
pub async fn post(
    ctx: &Ctx<'_>,
    domain: &VmDomain,
    vms: Arc<Vms>,
    name: String,
    body: ReplicateBody,
) -> Result<Response<Body>, ApiError> {
    if let Some(r) = &body.replica {
        if r.is_empty() {
            return Err(ApiError::invalid("replica", "a node name, or leave it out"));
        }
    }
    let cluster = CLUSTER.service(ctx)?;
    // A standalone node or one without quorum is told so before anything is read.
    CLUSTER
        .blocking(cluster.clone(), |c| c.check_change())
        .await?;
    let vm_name = name.clone();
    let v2 = vms.clone();
    let (disks, bridges) = domain
        .blocking(vms.clone(), move |v| {
            let vm = v.get(&vm_name)?;
            let disks = v.disks_to_replicate(&vm_name)?;
            let mut bridges: Vec<String> =
                vm.record.nics.iter().map(|n| n.bridge.clone()).collect();
            bridges.sort();
            bridges.dedup();
            Ok((disks, bridges))
        })
        .await?;
    let vm_name = name.clone();
    let req = CLUSTER
        .blocking(cluster.clone(), move |c| {
            let mut list = Vec::new();
            for (disk, device) in disks {
                let size_bytes = c.device_size(&device)?;
                list.push(DiskToReplicate {
                    disk,
                    device,
                    size_bytes,
                });
            }
            let req = ReplicateRequest {
                vm: vm_name,
                bridges,
                disks: list,
                replica: body.replica,
            };
            c.check_replicate(&req)?;
            Ok(req)
        })
        .await?;
    // Held from here: the VM may not start while its disks go under DRBD.
    let vm_name = name.clone();
    domain
        .blocking(vms, move |v| v.begin_replicating(&vm_name).map(|_| ()))
        .await?;
    let message = format!("turn replication on for VM {name}");
    Ok(CLUSTER.task(
        ctx,
        cluster,
        TaskText {
            kind: "vm.replicate",
            message: &message,
        },
        move |c, progress| {
            let result = c.replicate(&req, progress).and_then(|done| {
                let disks: Vec<(String, String, DiskReplication)> = done
                    .iter()
                    .map(|d| {
                        (
                            d.disk.clone(),
                            d.device.clone(),
                            DiskReplication {
                                resource: d.resource.clone(),
                                replica: d.replica.clone(),
                            },
                        )
                    })
                    .collect();
                v2.set_replicated(&req.vm, &disks).map_err(|e| {
                    ClusterError::Conflict(format!(
                        "the disks are replicated but the VM's record was not updated: {}",
                        cairn_core::boot::error_chain(&e)
                    ))
                })?;
                Ok(format!(
                    "VM {}: {} replicated on {}",
                    req.vm,
                    done.iter()
                        .map(|d| format!("{} ({})", d.disk, d.resource))
                        .collect::<Vec<_>>()
                        .join(", "),
                    done.first().map(|d| d.replica.as_str()).unwrap_or("?")
                ))
            });
            v2.end_replicating(&req.vm);
            result
        },
    ))
}
