//! Virtual machines: spec, lifecycle, console, clones and snapshots (backed by cairn-vm).

mod console;
mod replication;

use crate::error::ApiError;
use crate::executor::{self, Domain};
use crate::request::Ctx;
use crate::response::{json, no_content, Body};
use crate::routes::{Access, Route};
use cairn_core::shown::clip;
use cairn_vm::action::VmTask;
use cairn_vm::error::VmError;
use cairn_vm::hypervisor::HvError;
use cairn_vm::{VmSpec, Vms};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmOp {
    List,
    Create,
    Get,
    Delete,
    Start,
    Shutdown,
    Off,
    Reboot,
    Clone,
    Autostart,
    Snapshot,
    DeleteSnapshot,
    Restore,
    WriteImage,
    Console,
    ConsoleStream,
    Targets,
    Replication,
    Replicate,
    Unreplicate,
    MoveReplica,
}

impl VmOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

/// The routes of this group (the OpenAPI fragment `openapi/vms.json` lists the same).
pub const ROUTES: &[Route<VmOp>] = &[
    Route {
        path: "/api/v1/vms",
        methods: &[("GET", VmOp::List), ("POST", VmOp::Create)],
        allowed: &["GET", "POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}",
        methods: &[("GET", VmOp::Get), ("DELETE", VmOp::Delete)],
        allowed: &["GET", "DELETE"],
    },
    Route {
        path: "/api/v1/vms/{vm}/start",
        methods: &[("POST", VmOp::Start)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/shutdown",
        methods: &[("POST", VmOp::Shutdown)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/off",
        methods: &[("POST", VmOp::Off)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/reboot",
        methods: &[("POST", VmOp::Reboot)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/clone",
        methods: &[("POST", VmOp::Clone)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/autostart",
        methods: &[("PUT", VmOp::Autostart)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/vms/{vm}/snapshots",
        methods: &[("POST", VmOp::Snapshot)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/snapshots/{snapshot}",
        methods: &[("DELETE", VmOp::DeleteSnapshot)],
        allowed: &["DELETE"],
    },
    Route {
        path: "/api/v1/vms/{vm}/snapshots/{snapshot}/restore",
        methods: &[("POST", VmOp::Restore)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/vms/{vm}/disks/{disk}/image",
        methods: &[("PUT", VmOp::WriteImage)],
        allowed: &["PUT"],
    },
    Route {
        path: "/api/v1/vms/{vm}/console",
        methods: &[("GET", VmOp::Console)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/vms/{vm}/console/stream",
        methods: &[("GET", VmOp::ConsoleStream)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/vms/{vm}/targets",
        methods: &[("GET", VmOp::Targets)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/vms/{vm}/replication",
        methods: &[
            ("GET", VmOp::Replication),
            ("POST", VmOp::Replicate),
            ("DELETE", VmOp::Unreplicate),
        ],
        allowed: &["GET", "POST", "DELETE"],
    },
    Route {
        path: "/api/v1/vms/{vm}/replication/move",
        methods: &[("POST", VmOp::MoveReplica)],
        allowed: &["POST"],
    },
];

/// The API error for a VM service error.
pub fn api_error(e: VmError) -> ApiError {
    let detail = cairn_vm::service::chain(&e);
    match e {
        VmError::Invalid(i) => ApiError::invalid(&i.field, i.reason),
        VmError::NotFound(_) | VmError::NoSnapshot { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
        }
        VmError::WrongState { .. } => ApiError::conflict("wrong_state", detail),
        VmError::NoMemory { .. } => ApiError::conflict("insufficient_memory", detail),
        VmError::Replica { .. } => ApiError::conflict("replica_unavailable", detail),
        VmError::Hypervisor(HvError::Connect { .. }) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "libvirt_unavailable",
            detail,
        ),
        VmError::Hypervisor(HvError::NotDefined(_)) => ApiError::conflict("not_defined", detail),
        VmError::Volume { .. } => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_failed", detail)
        }
        VmError::Hypervisor(_) | VmError::DefineClone { .. } => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "hypervisor_failed",
            detail,
        ),
        VmError::Store(_) | VmError::Image { .. } | VmError::Console { .. } => {
            ApiError::internal(detail)
        }
    }
}

/// How the API reaches the VM service.
pub const VMS: Domain<Vms, VmError> = Domain {
    name: "VM",
    slot: |d| &d.vms,
    api_error,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteReq {
    /// The VM's name again, to confirm.
    confirm_name: String,
    #[serde(default)]
    delete_disks: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ShutdownReq {
    #[serde(default)]
    timeout_s: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RebootReq {
    #[serde(default)]
    force: bool,
}

/// One clone (`name`) or a batch of them (`clones`), exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloneReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    clones: Option<Vec<cairn_vm::NewClone>>,
    #[serde(default)]
    snapshot: Option<String>,
    /// The default autostart of the clones (each clone's own wins).
    #[serde(default)]
    autostart: Option<bool>,
}

/// Most clones one request may make.
const MAX_CLONES: usize = 64;

impl CloneReq {
    /// The clones asked for, with the request's autostart as their default.
    fn clones(&self) -> Result<Vec<cairn_vm::NewClone>, ApiError> {
        let list = match (&self.name, &self.clones) {
            (Some(name), None) => vec![cairn_vm::NewClone {
                name: name.clone(),
                autostart: None,
            }],
            (None, Some(list)) if list.is_empty() => {
                return Err(ApiError::invalid("clones", "name at least one clone"))
            }
            (None, Some(list)) if list.len() > MAX_CLONES => {
                return Err(ApiError::invalid(
                    "clones",
                    format!("at most {MAX_CLONES} clones per request"),
                ))
            }
            (None, Some(list)) => list.clone(),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "clones",
                    "give either name (one clone) or clones (a batch), not both",
                ))
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "name",
                    "name the clone (or list a batch in clones)",
                ))
            }
        };
        Ok(list
            .into_iter()
            .map(|c| cairn_vm::NewClone {
                autostart: c.autostart.or(self.autostart),
                ..c
            })
            .collect())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreReq {
    name: String,
    #[serde(default)]
    autostart: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutostartReq {
    autostart: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotReq {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageReq {
    /// The raw image, base64 (the request body limit makes this for small images only).
    data_base64: String,
}

/// Longest ACPI shutdown wait a request may ask for.
const MAX_SHUTDOWN_TIMEOUT_S: u64 = 3600;

/// An optional JSON body: empty means the defaults.
fn optional_json<T: serde::de::DeserializeOwned + Default>(ctx: &Ctx<'_>) -> Result<T, ApiError> {
    if ctx.body.is_empty() {
        Ok(T::default())
    } else {
        ctx.json()
    }
}

/// Check `task`, then run it as a task (202); a refusal answers 4xx and starts nothing.
async fn run_task(ctx: &Ctx<'_>, vms: Arc<Vms>, task: VmTask) -> Result<Response<Body>, ApiError> {
    executor::check_then_run(&VMS, ctx, vms, move |v| task.check(v).map(|()| task)).await
}

/// Run one operation.
pub async fn handle(ctx: &Ctx<'_>, op: VmOp) -> Result<Response<Body>, ApiError> {
    let vms = VMS.service(ctx)?;
    let name = ctx.param_at(0).to_string();
    match op {
        VmOp::List => {
            let (list, res) = VMS.blocking(vms, |v| Ok((v.list(), v.resources()))).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"vms": list, "resources": res}),
            ))
        }
        VmOp::Create => {
            let spec: VmSpec = ctx.json()?;
            run_task(ctx, vms, VmTask::Create(spec)).await
        }
        VmOp::Get => {
            let vm = VMS.blocking(vms, move |v| v.get(&name)).await?;
            Ok(json(StatusCode::OK, &vm))
        }
        VmOp::Delete => {
            let req: DeleteReq = ctx.json()?;
            if req.confirm_name != name {
                return Err(ApiError::invalid(
                    "confirm_name",
                    format!("type the VM's name ({}) to confirm", clip(&name)),
                ));
            }
            VMS.blocking(vms, move |v| v.delete(&name, req.delete_disks))
                .await?;
            Ok(no_content())
        }
        VmOp::Start => run_task(ctx, vms, VmTask::Start { vm: name }).await,
        VmOp::Shutdown => {
            let req: ShutdownReq = optional_json(ctx)?;
            let timeout = req
                .timeout_s
                .map(Duration::from_secs)
                .unwrap_or(cairn_vm::service::DEFAULT_SHUTDOWN_TIMEOUT);
            if timeout.as_secs() == 0 || timeout.as_secs() > MAX_SHUTDOWN_TIMEOUT_S {
                return Err(ApiError::invalid(
                    "timeout_s",
                    format!("between 1 and {MAX_SHUTDOWN_TIMEOUT_S} seconds"),
                ));
            }
            run_task(ctx, vms, VmTask::Shutdown { vm: name, timeout }).await
        }
        VmOp::Off => {
            let vm = VMS
                .blocking(vms, move |v| v.force_off(&name).and_then(|()| v.get(&name)))
                .await?;
            Ok(json(StatusCode::OK, &vm))
        }
        VmOp::Reboot => {
            let req: RebootReq = optional_json(ctx)?;
            let vm = VMS
                .blocking(vms, move |v| {
                    v.reboot(&name, req.force).and_then(|()| v.get(&name))
                })
                .await?;
            Ok(json(StatusCode::OK, &vm))
        }
        VmOp::Clone => {
            let req: CloneReq = ctx.json()?;
            let clones = req.clones()?;
            let task = VmTask::Clone {
                vm: name,
                clones,
                snapshot: req.snapshot,
                batch: req.clones.is_some(),
            };
            run_task(ctx, vms, task).await
        }
        VmOp::Restore => {
            let req: RestoreReq = ctx.json()?;
            let task = VmTask::Restore {
                vm: name,
                snapshot: ctx.param_at(1).to_string(),
                name: req.name,
                autostart: req.autostart,
            };
            run_task(ctx, vms, task).await
        }
        VmOp::Autostart => {
            let req: AutostartReq = ctx.json()?;
            let vm = VMS
                .blocking(vms, move |v| v.set_autostart(&name, req.autostart))
                .await?;
            Ok(json(StatusCode::OK, &vm))
        }
        VmOp::Snapshot => {
            let req: SnapshotReq = ctx.json()?;
            let vm = VMS
                .blocking(vms, move |v| v.snapshot(&name, &req.name))
                .await?;
            Ok(json(StatusCode::CREATED, &vm))
        }
        VmOp::DeleteSnapshot => {
            let snap = ctx.param_at(1).to_string();
            VMS.blocking(vms, move |v| v.delete_snapshot(&name, &snap))
                .await?;
            Ok(no_content())
        }
        VmOp::WriteImage => {
            use base64::Engine as _;
            let req: ImageReq = ctx.json()?;
            let disk: usize = ctx
                .param_at(1)
                .parse()
                .map_err(|_| ApiError::invalid("disk", "the disk number (0, 1, …) in the path"))?;
            let image = base64::engine::general_purpose::STANDARD
                .decode(req.data_base64.as_bytes())
                .map_err(|e| ApiError::invalid("data_base64", format!("not base64: {e}")))?;
            if image.is_empty() {
                return Err(ApiError::invalid("data_base64", "the image is empty"));
            }
            VMS.blocking(vms, move |v| v.write_image(&name, disk, &image))
                .await?;
            Ok(no_content())
        }
        VmOp::Console => {
            let (bytes, _) = VMS.blocking(vms, move |v| v.console(&name, None)).await?;
            Ok(crate::response::build(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                crate::response::full(bytes),
            ))
        }
        VmOp::ConsoleStream => console::stream(&VMS, vms, name).await,
        VmOp::Replication => replication::get(ctx, &VMS, vms, name).await,
        VmOp::Replicate => {
            let body: replication::ReplicateBody = optional_json(ctx)?;
            replication::post(ctx, &VMS, vms, name, body).await
        }
        VmOp::MoveReplica => {
            let body: replication::MoveBody = ctx.json()?;
            replication::move_replica(ctx, &VMS, vms, name, body).await
        }
        VmOp::Unreplicate => {
            let body: replication::UnreplicateBody = ctx.json()?;
            replication::delete(ctx, &VMS, vms, name, body).await
        }
        VmOp::Targets => {
            // The VM's bridges, then the cluster's view of every other node.
            let vm = VMS.blocking(vms, move |v| v.get(&name)).await?;
            let mut bridges: Vec<String> =
                vm.record.nics.iter().map(|n| n.bridge.clone()).collect();
            bridges.sort();
            bridges.dedup();
            let cluster = crate::cluster::CLUSTER.service(ctx)?;
            let wanted = bridges.clone();
            let targets = crate::cluster::CLUSTER
                .blocking(cluster, move |c| c.targets(&wanted))
                .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"vm": vm.record.name, "bridges": bridges, "targets": targets}),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_request_is_one_name_or_a_batch() {
        let req = |v: serde_json::Value| serde_json::from_value::<CloneReq>(v).unwrap();
        let one = req(serde_json::json!({"name": "c1", "autostart": true}))
            .clones()
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].name.as_str(), one[0].autostart), ("c1", Some(true)));
        let many = req(
            serde_json::json!({"clones": [{"name": "c1", "autostart": true}, {"name": "c2"}],
                                          "autostart": false}),
        )
        .clones()
        .unwrap();
        assert_eq!(
            many.iter().map(|c| c.autostart).collect::<Vec<_>>(),
            [Some(true), Some(false)]
        );
        let field = |v| req(v).clones().unwrap_err().field;
        assert_eq!(
            field(serde_json::json!({"name": "a", "clones": [{"name": "b"}]})).as_deref(),
            Some("clones")
        );
        assert_eq!(field(serde_json::json!({})).as_deref(), Some("name"));
        assert_eq!(
            field(serde_json::json!({"clones": []})).as_deref(),
            Some("clones")
        );
        let many: Vec<_> = (0..65)
            .map(|i| serde_json::json!({"name": format!("c{i}")}))
            .collect();
        assert_eq!(
            field(serde_json::json!({"clones": many})).as_deref(),
            Some("clones")
        );
    }

    /// Check `v` against OpenAPI 3.0 schema `schema` of `spec` (the subset the VM schemas
    /// use: `$ref`, `allOf`, `nullable`, `type`, `required`, `properties`, `items`,
    /// `minimum`/`maximum`, `enum`); `at` names the place for the failure.
    fn conforms(
        spec: &serde_json::Value,
        schema: &serde_json::Value,
        v: &serde_json::Value,
        at: &str,
    ) {
        if let Some(r) = schema.get("$ref").and_then(|r| r.as_str()) {
            let target = spec
                .pointer(r.trim_start_matches('#'))
                .expect("ref resolves");
            return conforms(spec, target, v, at);
        }
        if v.is_null() {
            assert_eq!(schema["nullable"], true, "{at} is null but not nullable");
            return;
        }
        for sub in schema["allOf"].as_array().into_iter().flatten() {
            conforms(spec, sub, v, at);
        }
        let ty = schema["type"].as_str().unwrap_or("");
        let ok = match ty {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => true,
        };
        assert!(ok, "{at} = {v} is not of type {ty}");
        if let Some(min) = schema["minimum"].as_f64() {
            assert!(v.as_f64().unwrap() >= min, "{at} = {v} < {min}");
        }
        if let Some(max) = schema["maximum"].as_f64() {
            assert!(v.as_f64().unwrap() <= max, "{at} = {v} > {max}");
        }
        if let Some(list) = schema["enum"].as_array() {
            assert!(list.contains(v), "{at} = {v} not in {list:?}");
        }
        for req in schema["required"].as_array().into_iter().flatten() {
            let req = req.as_str().unwrap();
            assert!(v.get(req).is_some(), "{at}.{req} is required but missing");
        }
        if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
            for (k, val) in obj {
                let sub = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}.{k} is not in the schema"));
                conforms(spec, sub, val, &format!("{at}.{k}"));
            }
        }
        if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
            for (i, item) in list.iter().enumerate() {
                conforms(spec, items, item, &format!("{at}[{i}]"));
            }
        }
    }

    #[test]
    fn vms_with_and_without_stats_match_the_spec() {
        let spec = crate::openapi::merge(crate::openapi::CORE, crate::openapi::FRAGMENTS).unwrap();
        let record: cairn_vm::spec::VmRecord = serde_json::from_value(serde_json::json!({
            "name": "web", "uuid": "0b7c4b4e-0000-4000-8000-000000000001", "vcpus": 2,
            "memory_mib": 512, "machine": "pc", "cpu_model": "qemu64", "autostart": false,
            "boot": ["disk"], "nics": [],
            "disks": [{"kind": "disk", "bus": "ide", "pool": "tank", "volume": "web-disk0",
                       "path": "/dev/cairn-tank/vol-web-disk0", "origin": null}],
        }))
        .unwrap();
        let running = cairn_vm::VmStatus {
            record: record.clone(),
            state: cairn_vm::RunState::Running,
            stats: Some(cairn_vm::VmStats {
                sampled_at_unix_ms: 1_700_000_000_000,
                cpu_percent: Some(12.5),
                vcpus: 2,
                memory_bytes: 512 << 20,
                memory_rss_bytes: Some(300 << 20),
                disks: vec![cairn_vm::DiskStats {
                    index: 0,
                    read_bytes: 1024,
                    written_bytes: 0,
                }],
            }),
            disk_allocated_bytes: Some(4096),
        };
        let first_sample = cairn_vm::VmStatus {
            stats: running.stats.clone().map(|s| cairn_vm::VmStats {
                cpu_percent: None,
                memory_rss_bytes: None,
                ..s
            }),
            ..running.clone()
        };
        let off = cairn_vm::VmStatus {
            record,
            state: cairn_vm::RunState::ShutOff,
            stats: None,
            disk_allocated_bytes: None,
        };
        let schema = serde_json::json!({"$ref": "#/components/schemas/Vm"});
        for vm in [&running, &first_sample, &off] {
            let v = serde_json::to_value(vm).unwrap();
            conforms(&spec, &schema, &v, "vm");
        }
        let list = serde_json::json!({"vms": [running, off], "resources": {}});
        let schema = serde_json::json!({"$ref": "#/components/schemas/VmList"});
        conforms(&spec, &schema, &list, "list");
    }

    #[test]
    fn vm_errors_map_to_statuses_and_fields() {
        let e = api_error(VmError::Invalid(cairn_vm::spec::invalid(
            "disks[0].pool",
            "no pool named x",
        )));
        assert_eq!(
            (e.status.as_u16(), e.field.as_deref()),
            (422, Some("disks[0].pool"))
        );
        let e = api_error(VmError::NotFound("web".into()));
        assert_eq!((e.status.as_u16(), e.code), (404, "not_found"));
        let e = api_error(VmError::WrongState {
            vm: "web".into(),
            state: "running".into(),
            need: "shut it down first",
        });
        assert_eq!((e.status.as_u16(), e.code), (409, "wrong_state"));
        assert!(e.message.contains("shut it down first"), "{}", e.message);
        let e = api_error(VmError::NoMemory {
            vm: "web".into(),
            need_mib: 4096,
            free_mib: 100,
        });
        assert_eq!((e.status.as_u16(), e.code), (409, "insufficient_memory"));
        let e = api_error(VmError::Volume {
            op: "clone volume a as b".into(),
            source: cairn_vm::VolumeError("lvcreate failed".into()),
        });
        assert_eq!(e.code, "storage_failed");
        assert!(e.message.contains("lvcreate failed"), "{}", e.message);
    }
}
