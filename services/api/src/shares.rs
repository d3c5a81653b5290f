//! Shares (btrfs on thin LVs), their snapshots, thin volumes for VMs, scrubs and capacity (backed by cairn-storage).

#[cfg(test)]
mod tests;

use crate::error::ApiError;
use crate::executor::{self, Domain};
use crate::request::Ctx;
use crate::response::{json, no_content, Body};
use crate::routes::{Access, Route};
use cairn_storage::schedule::SnapshotSchedule;
use cairn_storage::{DataError, ShareTask, Storage, StorageError};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharesOp {
    ListShares,
    CreateShare,
    GetShare,
    ResizeShare,
    DeleteShare,
    ListSnapshots,
    CreateSnapshot,
    DeleteSnapshot,
    RestoreSnapshot,
    GetSchedule,
    PutSchedule,
    ListVolumes,
    CreateVolume,
    GetVolume,
    DeleteVolume,
    CloneVolume,
    SnapshotVolume,
    GetScrub,
    StartScrub,
    PutScrubSchedule,
    GetCapacity,
}

impl SharesOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/shares.json` lists the same).
pub const ROUTES: &[Route<SharesOp>] = &[
    Route {
        path: "/api/v1/pools/{pool}/shares",
        methods: &[
            ("GET", SharesOp::ListShares),
            ("POST", SharesOp::CreateShare),
        ],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/shares/{share}",
        methods: &[
            ("GET", SharesOp::GetShare),
            ("PATCH", SharesOp::ResizeShare),
            ("DELETE", SharesOp::DeleteShare),
        ],
        allowed: &["GET", "PATCH", "DELETE"],
    },
    Route {
        path: "/api/v1/pools/{pool}/shares/{share}/snapshots",
        methods: &[
            ("GET", SharesOp::ListSnapshots),
            ("POST", SharesOp::CreateSnapshot),
        ],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/shares/{share}/snapshots/{snapshot}",
        methods: &[("DELETE", SharesOp::DeleteSnapshot)],
        allowed: &["DELETE"],
    },
    Route {
        path: "/api/v1/pools/{pool}/shares/{share}/snapshots/{snapshot}/restore",
        methods: &[("POST", SharesOp::RestoreSnapshot)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/shares/{share}/snapshot-schedule",
        methods: &[
            ("GET", SharesOp::GetSchedule),
            ("PUT", SharesOp::PutSchedule),
        ],
        allowed: &["GET", "PUT"],
    },
    Route {
        path: "/api/v1/pools/{pool}/volumes",
        methods: &[
            ("GET", SharesOp::ListVolumes),
            ("POST", SharesOp::CreateVolume),
        ],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/volumes/{volume}",
        methods: &[
            ("GET", SharesOp::GetVolume),
            ("DELETE", SharesOp::DeleteVolume),
        ],
        allowed: &["GET", "DELETE"],
    },
    Route {
        path: "/api/v1/pools/{pool}/volumes/{volume}/clone",
        methods: &[("POST", SharesOp::CloneVolume)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/volumes/{volume}/snapshot",
        methods: &[("POST", SharesOp::SnapshotVolume)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/scrub",
        methods: &[("GET", SharesOp::GetScrub), ("POST", SharesOp::StartScrub)],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/scrub-schedule",
        methods: &[("PUT", SharesOp::PutScrubSchedule)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/pools/{pool}/capacity",
        methods: &[("GET", SharesOp::GetCapacity)],
        allowed: &["GET"],
    },
];

/// The API error for a storage data error.
pub fn api_error(e: DataError) -> ApiError {
    let detail = cairn_core::boot::error_chain(&e);
    if let DataError::Invalid { field, reason } = &e {
        return ApiError::invalid(field, reason.clone());
    }
    if e.is_not_found() {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", detail);
    }
    match &e {
        DataError::Exists { .. } => ApiError::conflict("exists", detail),
        DataError::Pool {
            source: StorageError::Busy(_),
            ..
        } => ApiError::conflict("busy", detail),
        DataError::Pool { .. } => ApiError::conflict("pool_unusable", detail),
        _ => ApiError::internal(detail),
    }
}

/// How the API reaches the storage service's shares, snapshots, volumes and scrubs.
pub const SHARES: Domain<Storage, DataError> = Domain {
    name: "storage",
    slot: |d| &d.storage,
    api_error,
};

/// Check `task`, then run it as a task (202); a refusal answers 4xx and starts nothing.
async fn run_task(
    ctx: &Ctx<'_>,
    storage: Arc<Storage>,
    task: ShareTask,
) -> Result<Response<Body>, ApiError> {
    executor::check_then_run(&SHARES, ctx, storage, move |s| task.check(s).map(|()| task)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateShareReq {
    name: String,
    size_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeReq {
    size_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmReq {
    confirm: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameReq {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreReq {
    new_share: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVolumeReq {
    name: String,
    size_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrubScheduleReq {
    interval_days: u32,
}

/// Run one operation.
pub async fn handle(ctx: &Ctx<'_>, op: SharesOp) -> Result<Response<Body>, ApiError> {
    let st = SHARES.service(ctx)?;
    let pool = ctx.param_at(0).to_string();
    let second = ctx.param_at(1).to_string();
    let third = ctx.param_at(2).to_string();
    match op {
        SharesOp::ListShares => {
            let v = SHARES.blocking(st, move |s| s.shares(&pool)).await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::CreateShare => {
            let req: CreateShareReq = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| {
                    s.create_share(&pool, &req.name, req.size_bytes)
                })
                .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        SharesOp::GetShare => {
            let v = SHARES
                .blocking(st, move |s| s.share(&pool, &second))
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::ResizeShare => {
            let req: ResizeReq = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| s.resize_share(&pool, &second, req.size_bytes))
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::DeleteShare => {
            let req: ConfirmReq = ctx.json()?;
            SHARES
                .blocking(st, move |s| s.delete_share(&pool, &second, &req.confirm))
                .await?;
            Ok(no_content())
        }
        SharesOp::ListSnapshots => {
            let v = SHARES
                .blocking(st, move |s| s.snapshots(&pool, &second))
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::CreateSnapshot => {
            let req: NameReq = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| s.create_snapshot(&pool, &second, &req.name))
                .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        SharesOp::DeleteSnapshot => {
            SHARES
                .blocking(st, move |s| s.delete_snapshot(&pool, &second, &third))
                .await?;
            Ok(no_content())
        }
        SharesOp::RestoreSnapshot => {
            let req: RestoreReq = ctx.json()?;
            let task = ShareTask::RestoreSnapshot {
                pool,
                share: second,
                snapshot: third,
                new_share: req.new_share,
            };
            run_task(ctx, st, task).await
        }
        SharesOp::GetSchedule => {
            let v = SHARES
                .blocking(st, move |s| Ok(s.share_record(&pool, &second)?.schedule))
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::PutSchedule => {
            let req: SnapshotSchedule = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| s.set_snapshot_schedule(&pool, &second, req))
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::ListVolumes => {
            let v = SHARES.blocking(st, move |s| s.volumes(&pool)).await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::CreateVolume => {
            let req: CreateVolumeReq = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| {
                    s.create_volume(&pool, &req.name, req.size_bytes)
                })
                .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        SharesOp::GetVolume => {
            let v = SHARES
                .blocking(st, move |s| s.volume(&pool, &second))
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::DeleteVolume => {
            SHARES
                .blocking(st, move |s| s.delete_volume(&pool, &second))
                .await?;
            Ok(no_content())
        }
        SharesOp::CloneVolume => {
            let req: NameReq = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| s.clone_volume(&pool, &second, &req.name))
                .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        SharesOp::SnapshotVolume => {
            let req: NameReq = ctx.json()?;
            let v = SHARES
                .blocking(st, move |s| s.snapshot_volume(&pool, &second, &req.name))
                .await?;
            Ok(json(StatusCode::CREATED, &v))
        }
        SharesOp::GetScrub => {
            let v = SHARES
                .blocking(st, move |s| {
                    let state = s.scrub_state()?;
                    Ok(serde_json::json!({
                        "pool": pool,
                        "interval_days": s.scrub_interval(&pool)?,
                        "last_started": state.last_started.get(&pool),
                        "last": state.last.get(&pool),
                    }))
                })
                .await?;
            Ok(json(StatusCode::OK, &v))
        }
        SharesOp::StartScrub => run_task(ctx, st, ShareTask::Scrub { pool }).await,
        SharesOp::PutScrubSchedule => {
            let req: ScrubScheduleReq = ctx.json()?;
            SHARES
                .blocking(st, move |s| s.set_scrub_interval(&pool, req.interval_days))
                .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"interval_days": req.interval_days}),
            ))
        }
        SharesOp::GetCapacity => {
            let v = SHARES.blocking(st, move |s| s.capacity(&pool)).await?;
            Ok(json(StatusCode::OK, &v))
        }
    }
}
