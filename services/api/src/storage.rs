//! Disks and pools (backed by cairn-storage): inventory, wipe, create with a plan, status, replace, add with a plan, destroy.

use crate::error::ApiError;
use crate::executor::{self, Domain};
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::routes::{Access, Route};
use cairn_storage::{Storage, StorageError, StorageRequest};
use hyper::{Response, StatusCode};
use std::sync::Arc;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageOp {
    ListDisks,
    GetDisk,
    WipeDisk,
    ListPools,
    CreatePool,
    PlanPool,
    GetPool,
    DestroyPool,
    ReplaceDisk,
    AddDisk,
    PlanAdd,
}

impl StorageOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

use StorageOp::*;

/// The routes of this group (the OpenAPI fragment `openapi/storage.json` lists the same).
/// `/api/v1/pools/plan` comes before `/api/v1/pools/{pool}` (and `plan` is not a valid pool name).
pub const ROUTES: &[Route<StorageOp>] = &[
    Route {
        path: "/api/v1/disks",
        methods: &[("GET", ListDisks)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/disks/{disk}",
        methods: &[("GET", GetDisk)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/disks/{disk}/wipe",
        methods: &[("POST", WipeDisk)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools",
        methods: &[("GET", ListPools), ("POST", CreatePool)],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/pools/plan",
        methods: &[("POST", PlanPool)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}",
        methods: &[("GET", GetPool), ("DELETE", DestroyPool)],
        allowed: &["GET", "DELETE"],
    },
    Route {
        path: "/api/v1/pools/{pool}/replace",
        methods: &[("POST", ReplaceDisk)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/add",
        methods: &[("POST", AddDisk)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/pools/{pool}/add/plan",
        methods: &[("POST", PlanAdd)],
        allowed: &["POST"],
    },
];

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WipeBody {
    confirm_serial: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DestroyBody {
    confirm_name: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceBody {
    old: String,
    new: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    disk: String,
}

/// The API error for a storage error: field errors are 422 naming the field.
pub fn api_error(e: &StorageError) -> ApiError {
    match e {
        StorageError::Invalid { field, reason } => ApiError::invalid(field, reason.clone()),
        StorageError::NoSuchDisk(_) | StorageError::NoSuchPool(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        StorageError::PoolUnusable { .. } => ApiError::conflict("pool_unusable", e.to_string()),
        StorageError::Busy(_) => ApiError::conflict("busy", e.to_string()),
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_failed",
            cairn_core::boot::error_chain(e),
        ),
    }
}

/// How the API reaches the storage service (disks and pools).
pub const STORAGE: Domain<Storage, StorageError> = Domain {
    name: "storage",
    slot: |d| &d.storage,
    api_error: |e| api_error(&e),
};

/// Check `request`, then run it as a task (202); a refusal answers 4xx and runs nothing.
async fn check_then_run(
    ctx: &Ctx<'_>,
    storage: Arc<Storage>,
    request: StorageRequest,
) -> Result<Response<Body>, ApiError> {
    executor::check_then_run(&STORAGE, ctx, storage, move |s| request.check(s)).await
}

/// A disk as the API shows it: the inventory plus the SMART summary when the SMART
/// service runs.
fn disk_json(ctx: &Ctx<'_>, d: &cairn_storage::DiskView) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    v["smart"] = smart_summary(ctx, &d.disk.id);
    v
}

/// The SMART service's summary of disk `id` (`null` when it is not running or knows nothing).
fn smart_summary(ctx: &Ctx<'_>, id: &str) -> serde_json::Value {
    ctx.state
        .domains
        .smart
        .get()
        .and_then(|s| s.summary(id))
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Run one operation.
pub async fn handle(ctx: &Ctx<'_>, op: StorageOp) -> Result<Response<Body>, ApiError> {
    let storage = STORAGE.service(ctx)?;
    match op {
        ListDisks => {
            let disks = STORAGE.blocking(storage, |s| s.disks()).await?;
            let list: Vec<_> = disks.iter().map(|d| disk_json(ctx, d)).collect();
            Ok(json(StatusCode::OK, &serde_json::json!({ "disks": list })))
        }
        GetDisk => {
            let id = ctx.param().to_string();
            let d = STORAGE.blocking(storage, move |s| s.disk(&id)).await?;
            Ok(json(StatusCode::OK, &disk_json(ctx, &d)))
        }
        WipeDisk => {
            let body: WipeBody = ctx.json()?;
            let request = StorageRequest::WipeDisk {
                disk: ctx.param().to_string(),
                confirm_serial: body.confirm_serial,
            };
            check_then_run(ctx, storage, request).await
        }
        ListPools => {
            let pools = STORAGE.blocking(storage, |s| s.pools()).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "pools": pools })))
        }
        PlanPool => {
            let req: cairn_storage::CreatePool = ctx.json()?;
            let plan = STORAGE
                .blocking(storage, move |s| s.plan_pool(&req))
                .await?;
            Ok(json(StatusCode::OK, &plan))
        }
        CreatePool => {
            let req: cairn_storage::CreatePool = ctx.json()?;
            check_then_run(ctx, storage, StorageRequest::CreatePool(req)).await
        }
        GetPool => {
            let name = ctx.param().to_string();
            let st = STORAGE
                .blocking(storage, move |s| s.pool_status(&name))
                .await?;
            Ok(json(StatusCode::OK, &st))
        }
        DestroyPool => {
            let body: DestroyBody = ctx.json()?;
            let request = StorageRequest::DestroyPool {
                pool: ctx.param().to_string(),
                confirm_name: body.confirm_name,
            };
            check_then_run(ctx, storage, request).await
        }
        ReplaceDisk => {
            let body: ReplaceBody = ctx.json()?;
            let request = StorageRequest::ReplaceDisk {
                pool: ctx.param().to_string(),
                old: body.old,
                new: body.new,
            };
            check_then_run(ctx, storage, request).await
        }
        AddDisk => {
            let body: AddBody = ctx.json()?;
            let request = StorageRequest::AddDisk {
                pool: ctx.param().to_string(),
                disk: body.disk,
            };
            check_then_run(ctx, storage, request).await
        }
        PlanAdd => {
            let body: AddBody = ctx.json()?;
            let name = ctx.param().to_string();
            let plan = STORAGE
                .blocking(storage, move |s| s.plan_add(&name, &body.disk))
                .await?;
            Ok(json(StatusCode::OK, &plan))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::test_server::{claimed_state, serve, TestServer, T};
    use cairn_client::{self as client, ClientRequest};
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use cairn_storage::inventory::fake::{add_disk, virtio, FakeDisk};
    use cairn_storage::md::fake::add_array;
    use cairn_storage::{Storage, SystemPaths};
    use hyper::Method;
    use serde_json::json;
    use std::sync::Arc;

    /// The served API plus the storage service's recording runner and sysfs/udev tree.
    struct Api {
        server: TestServer,
        runner: Arc<RecordingRunner>,
        tree: tempfile::TempDir,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for Api {
        type Target = TestServer;
        fn deref(&self) -> &TestServer {
            &self.server
        }
    }

    /// A claimed node with an API token, whose storage service reads a recorded tree with
    /// four blank virtio disks and one holding ext4, and runs tools through a recording runner.
    async fn start(with_storage: bool) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        for (n, mm, ser) in [
            ("vdb", "254:16", "B"),
            ("vdc", "254:32", "C"),
            ("vdd", "254:48", "D"),
            ("vde", "254:64", "E"),
        ] {
            let udev = format!("E:ID_SERIAL={ser}\nS:disk/by-id/virtio-{ser}\n");
            add_disk(
                tree.path(),
                &virtio(n, mm, Box::leak(udev.into_boxed_str())),
            );
        }
        add_disk(
            tree.path(),
            &FakeDisk {
                udev: "E:ID_SERIAL=X\nE:ID_FS_TYPE=ext4\nS:disk/by-id/virtio-X\n",
                ..virtio("vdf", "254:80", "")
            },
        );
        let mut state = claimed_state(dir.path());
        let runner = Arc::new(RecordingRunner::new());
        if with_storage {
            state.domains.storage = crate::domains::Slot::ready(Arc::new(
                Storage::open(
                    runner.clone(),
                    &dir.path().join("state"),
                    Arc::new(state.alerts.clone()),
                    SystemPaths::under(tree.path()),
                )
                .unwrap(),
            ));
        }
        Api {
            server: serve(state).await,
            runner,
            tree,
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn disks_are_listed_with_usage_and_need_a_login() {
        let api = start(true).await;
        let r = api.call(Method::GET, "/api/v1/disks", None).await;
        assert_eq!(r.status, 200);
        let disks = r.json()["disks"].as_array().unwrap().clone();
        assert_eq!(disks.len(), 5);
        assert_eq!(disks[0]["id"], "virtio-B");
        assert_eq!(disks[0]["usage"], "free");
        assert_eq!(disks[0]["serial"], "B");
        assert_eq!(disks[4]["usage"], "has_data");
        assert_eq!(disks[4]["signatures"], json!(["ext4"]));
        let r = api.call(Method::GET, "/api/v1/disks/vdc", None).await;
        assert_eq!(r.json()["id"], "virtio-C");
        assert_eq!(
            api.call(Method::GET, "/api/v1/disks/nope", None)
                .await
                .status,
            404
        );
        let anon = client::send(
            api.addr,
            ClientRequest::new(Method::GET, "/api/v1/disks"),
            api.pin,
            T,
        )
        .await
        .unwrap();
        assert_eq!(anon.status, 401);
    }

    #[tokio::test]
    async fn without_the_service_routes_answer_503() {
        let api = start(false).await;
        let r = api.call(Method::GET, "/api/v1/pools", None).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (503, json!("unavailable"))
        );
    }

    #[tokio::test]
    async fn plan_checks_counts_and_disks_and_shows_capacity() {
        let api = start(true).await;
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/plan",
                Some(json!({"name": "tank", "level": "raid5", "disks": ["vdb", "vdc"]})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("disks"))
        );
        assert!(r.json()["message"].as_str().unwrap().contains("at least 3"));
        api.runner.expect(
            "wipefs",
            &["--json", "/dev/vdf"],
            CommandOutput::ok(r#"{"signatures":[{"type":"ext4"}]}"#),
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/plan",
                Some(json!({"name": "tank", "level": "raid5", "disks": ["vdb", "vdc", "vdf"]})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("disks[2]"))
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/plan",
                Some(json!({"name": "tank", "level": "raid5", "disks": ["vdb", "vdc", "vdd"]})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["usable_bytes"], json!(2u64 * (128 << 20)));
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/plan",
                Some(json!({"name": "Tank!", "level": "raid5", "disks": []})),
            )
            .await;
        assert_eq!(r.json()["field"], "name");
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/plan",
                Some(json!({"name": "t", "level": "raid5", "disks": [], "extra": 1})),
            )
            .await;
        assert_eq!(r.status, 400);
        assert!(
            api.runner
                .command_lines()
                .iter()
                .all(|l| l.starts_with("wipefs --json")),
            "only probes ran"
        );
    }

    #[tokio::test]
    async fn create_runs_as_a_task_then_the_pool_is_shown_and_destroy_needs_its_name() {
        let api = start(true).await;
        add_array(
            api.tree.path(),
            "tank",
            "md127",
            3,
            0,
            ("resync", "5 / 10"),
            &[
                ("vdb", "0", "in_sync"),
                ("vdc", "1", "in_sync"),
                ("vdd", "2", "in_sync"),
            ],
        );
        api.runner.expect(
            "mdadm",
            &["--detail", "--export"],
            CommandOutput::ok("MD_UUID=aa:bb:cc:dd\n"),
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools",
                Some(json!({"name": "tank", "level": "raid5", "disks": ["vdb", "vdc", "vdd"]})),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.json());
        assert_eq!(r.json()["kind"], "pool.create");
        let t = api.finished(r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(t.state, crate::tasks::TaskState::Succeeded, "{}", t.message);
        assert!(api
            .runner
            .command_lines()
            .iter()
            .any(|l| l.starts_with("mdadm --create /dev/md/tank")));

        let r = api.call(Method::GET, "/api/v1/pools/tank", None).await;
        assert_eq!(r.status, 200);
        let p = r.json();
        assert_eq!(
            (p["state"].clone(), p["level"].clone()),
            (json!("healthy"), json!("raid5"))
        );
        assert_eq!(p["sync"]["percent"], 50);
        assert_eq!(p["members"][0]["state"], "in_sync");
        let r = api.call(Method::GET, "/api/v1/pools", None).await;
        assert_eq!(r.json()["pools"][0]["md_uuid"], "aa:bb:cc:dd");
        // A member is now refused for another pool.
        let r = api.call(Method::GET, "/api/v1/disks/vdb", None).await;
        assert_eq!(
            (r.json()["usage"].clone(), r.json()["pool"].clone()),
            (json!("pool"), json!("tank"))
        );

        let before = api.runner.calls().len();
        let r = api
            .call(
                Method::DELETE,
                "/api/v1/pools/tank",
                Some(json!({"confirm_name": "tan"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("confirm_name"))
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/tank/replace",
                Some(json!({"old": "virtio-E", "new": "vde"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("old"))
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/tank/add",
                Some(json!({"disk": "vdc"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("disk"))
        );
        assert_eq!(
            api.runner.calls().len(),
            before,
            "refused requests ran nothing"
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools/tank/add/plan",
                Some(json!({"disk": "vde"})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let member = 262144u64 * 512;
        assert_eq!(
            (
                r.json()["disk"].clone(),
                r.json()["members"].clone(),
                r.json()["usable_bytes_before"].clone(),
                r.json()["usable_bytes"].clone()
            ),
            (
                json!("virtio-E"),
                json!(4),
                json!(2 * member),
                json!(3 * member)
            )
        );
        assert_eq!(
            api.call(Method::GET, "/api/v1/pools/tank", None)
                .await
                .json()["members"]
                .as_array()
                .map(Vec::len),
            Some(3),
            "the plan changed nothing"
        );
        let r = api
            .call(
                Method::DELETE,
                "/api/v1/pools/tank",
                Some(json!({"confirm_name": "tank"})),
            )
            .await;
        assert_eq!(r.status, 202);
        let t = api.finished(r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(t.state, crate::tasks::TaskState::Succeeded, "{}", t.message);
        assert_eq!(
            api.call(Method::GET, "/api/v1/pools/tank", None)
                .await
                .status,
            404
        );
    }

    #[tokio::test]
    async fn create_probes_each_disk_once_and_runs_the_checked_plan() {
        let api = start(true).await;
        add_array(
            api.tree.path(),
            "tank",
            "md127",
            3,
            0,
            ("resync", "5 / 10"),
            &[
                ("vdb", "0", "in_sync"),
                ("vdc", "1", "in_sync"),
                ("vdd", "2", "in_sync"),
            ],
        );
        api.runner.expect(
            "mdadm",
            &["--detail", "--export"],
            CommandOutput::ok("MD_UUID=aa:bb:cc:dd\n"),
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/pools",
                Some(json!({"name": "tank", "level": "raid5", "disks": ["vdb", "vdc", "vdd"]})),
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.json());
        let t = api.finished(r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(t.state, crate::tasks::TaskState::Succeeded, "{}", t.message);
        let lines = api.runner.command_lines();
        for dev in ["/dev/vdb", "/dev/vdc", "/dev/vdd"] {
            let probes = lines
                .iter()
                .filter(|l| l.starts_with("wipefs") && l.ends_with(dev))
                .count();
            assert_eq!(probes, 1, "wipefs on {dev}: {lines:?}");
        }
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("wipefs")).count(),
            3,
            "{lines:?}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("mdadm --create /dev/md/tank")));
    }

    #[tokio::test]
    async fn wipe_needs_the_serial() {
        let api = start(true).await;
        let r = api
            .call(
                Method::POST,
                "/api/v1/disks/vdf/wipe",
                Some(json!({"confirm_serial": "Y"})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("confirm_serial"))
        );
        assert!(api.runner.calls().is_empty());
        let r = api
            .call(
                Method::POST,
                "/api/v1/disks/vdf/wipe",
                Some(json!({"confirm_serial": "X"})),
            )
            .await;
        assert_eq!(r.status, 202);
        let t = api.finished(r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(t.state, crate::tasks::TaskState::Succeeded, "{}", t.message);
        assert!(api
            .runner
            .command_lines()
            .contains(&"sgdisk --zap-all /dev/vdf".to_string()));
    }
}
