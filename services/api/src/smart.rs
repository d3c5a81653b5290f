//! SMART detail, history, self-tests and per-disk settings (backed by cairn-smart).

use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::router::{Access, Route};
use cairn_smart::{DiskSettings, SmartError, SmartService, TestKind};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Operations of this resource group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmartOp {
    List,
    Get,
    SelfTest,
    GetSettings,
    PutSettings,
}

impl SmartOp {
    /// Who may call the operation.
    pub fn access(self) -> Access {
        Access::User
    }
}

use crate::router::Op::Smart as M;
use SmartOp::*;

/// The routes of this group (the OpenAPI fragment `openapi/smart.json` lists the same).
pub const ROUTES: &[Route] = &[
    Route {
        path: "/api/v1/smart",
        methods: &[("GET", M(List))],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/smart/{disk}",
        methods: &[("GET", M(Get))],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/smart/{disk}/selftest",
        methods: &[("POST", M(SelfTest))],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/smart/{disk}/settings",
        methods: &[("GET", M(GetSettings)), ("PUT", M(PutSettings))],
        allowed: &["GET", "PUT"],
    },
];

/// The API error for a SMART error: field errors are 422 naming the field.
pub fn api_error(e: &SmartError) -> ApiError {
    match e {
        SmartError::Invalid { field, reason } => ApiError::invalid(field, reason.clone()),
        SmartError::UnknownDisk(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
        }
        SmartError::TestRunning(_) => ApiError::conflict("busy", e.to_string()),
        SmartError::Unavailable { .. } | SmartError::TestRefused { .. } => {
            ApiError::conflict("smart_unavailable", e.to_string())
        }
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "smart_failed",
            cairn_core::boot::error_chain(e),
        ),
    }
}

fn service(ctx: &Ctx<'_>) -> Result<Arc<SmartService>, ApiError> {
    ctx.state
        .domains
        .smart
        .clone()
        .ok_or_else(|| crate::domains::unavailable("smart"))
}

/// Run a blocking SMART call off the async threads.
async fn blocking<T: Send + 'static>(
    svc: Arc<SmartService>,
    f: impl FnOnce(&SmartService) -> Result<T, SmartError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("SMART call panicked: {e}"),
            )
        })?
        .map_err(|e| api_error(&e))
}

fn not_found(id: &str) -> ApiError {
    api_error(&SmartError::UnknownDisk(id.to_string()))
}

/// The self-test kind from `{"kind": "short"|"long"}`.
fn parse_kind(body: &Value) -> Result<TestKind, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| *k != "kind") {
        return Err(ApiError::invalid(
            k,
            "unknown field; only `kind` is accepted",
        ));
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some("short") => Ok(TestKind::Short),
        Some("long") => Ok(TestKind::Long),
        Some(other) => Err(ApiError::invalid(
            "kind",
            format!("`{other}` is not a self-test kind; use `short` or `long`"),
        )),
        None => Err(ApiError::invalid("kind", "required: `short` or `long`")),
    }
}

/// Settings from a PUT body: every field is checked by name and type, so an error always
/// names the field. Missing fields take their defaults (PUT replaces the settings).
fn parse_settings(body: &Value) -> Result<(DiskSettings, bool), ApiError> {
    let obj: &Map<String, Value> = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let mut s = DiskSettings::default();
    let mut acknowledge = false;
    for (k, v) in obj {
        let want_bool = || {
            v.as_bool()
                .ok_or_else(|| ApiError::invalid(k, "must be true or false"))
        };
        let want_temp = || -> Result<Option<i64>, ApiError> {
            match v {
                Value::Null => Ok(None),
                _ => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ApiError::invalid(k, "must be a whole number of °C or null")),
            }
        };
        let want_days = || -> Result<u32, ApiError> {
            v.as_u64()
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| ApiError::invalid(k, "must be a whole number of days"))
        };
        match k.as_str() {
            "polling" => s.polling = want_bool()?,
            "self_tests" => s.self_tests = want_bool()?,
            "temperature_warning_c" => s.temperature_warning_c = want_temp()?,
            "temperature_critical_c" => s.temperature_critical_c = want_temp()?,
            "short_test_days" => s.short_test_days = want_days()?,
            "long_test_days" => s.long_test_days = want_days()?,
            "acknowledge_counters" => acknowledge = want_bool()?,
            _ => return Err(ApiError::invalid(k, "unknown setting")),
        }
    }
    s.validate().map_err(|e| api_error(&e))?;
    Ok((s, acknowledge))
}

/// Run one operation.
pub async fn handle(ctx: &Ctx<'_>, op: SmartOp) -> Result<Response<Body>, ApiError> {
    let svc = service(ctx)?;
    let id = ctx.param().to_string();
    match op {
        List => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "disks": svc.list() }),
        )),
        Get => {
            let d = svc.detail(&id).ok_or_else(|| not_found(&id))?;
            Ok(json(StatusCode::OK, &d))
        }
        GetSettings => {
            let s = svc.settings(&id).map_err(|e| api_error(&e))?;
            Ok(json(StatusCode::OK, &s))
        }
        PutSettings => {
            let body: Value = ctx.json()?;
            let (settings, acknowledge) = parse_settings(&body)?;
            let s = blocking(svc, move |s| s.set_settings(&id, settings, acknowledge)).await?;
            Ok(json(StatusCode::OK, &s))
        }
        SelfTest => {
            let body: Value = ctx.json()?;
            let kind = parse_kind(&body)?;
            svc.check_self_test(&id).map_err(|e| api_error(&e))?;
            let handle = ctx.state.tasks.start(
                "smart.selftest",
                &format!("{} self-test of {id}", kind.as_str()),
            );
            let task_id = handle.id();
            tokio::task::spawn_blocking(move || match svc.run_self_test(&id, kind, &handle) {
                Ok(done) => handle.succeed(&done),
                Err(e) => handle.fail(&cairn_core::boot::error_chain(&e)),
            });
            let body = ctx
                .state
                .tasks
                .get(task_id)
                .map(|t| serde_json::to_value(t).unwrap_or_default())
                .unwrap_or_else(|| serde_json::json!({ "id": task_id }));
            Ok(json(StatusCode::ACCEPTED, &body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, ClientRequest};
    use crate::test_server::{claimed_state, serve, TestServer, T};
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use cairn_core::disk::{DiskBus, DiskRef};
    use hyper::Method;
    use serde_json::json;
    use std::time::Duration;

    /// The served API plus the SMART service's recording runner.
    struct Api {
        server: TestServer,
        runner: Arc<RecordingRunner>,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for Api {
        type Target = TestServer;
        fn deref(&self) -> &TestServer {
            &self.server
        }
    }

    fn fixture(name: &str) -> CommandOutput {
        let path = format!(
            "{}/../smart/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        CommandOutput {
            code: Some(0),
            stdout: std::fs::read(&path).unwrap(),
            stderr: vec![],
        }
    }

    /// A claimed node whose SMART service knows an AHCI disk (WD Red fixture), an NVMe disk
    /// (Samsung 970 EVO with media errors) and a virtio disk, polled once.
    async fn start(with_smart: bool) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut state = claimed_state(dir.path());
        let runner = Arc::new(RecordingRunner::strict());
        if with_smart {
            let mut cfg = cairn_smart::Config::new(dir.path());
            cfg.test_poll = Duration::from_millis(5);
            let svc = SmartService::open(
                cfg,
                runner.clone(),
                Arc::new(state.alerts.clone()),
                cairn_smart::service::system_clock(),
            )
            .unwrap();
            svc.set_disks(vec![
                DiskRef {
                    id: "ata-WDC_WD20EFRX".into(),
                    dev: "/dev/sda".into(),
                    bus: DiskBus::Sata,
                    rotational: true,
                    model: None,
                    serial: Some("UDEV-SERIAL".into()),
                },
                DiskRef {
                    id: "nvme-Samsung_970".into(),
                    dev: "/dev/nvme0n1".into(),
                    bus: DiskBus::Nvme,
                    rotational: false,
                    model: None,
                    serial: None,
                },
                DiskRef {
                    id: "virtio-D1".into(),
                    dev: "/dev/vdb".into(),
                    bus: DiskBus::Virtio,
                    rotational: true,
                    model: None,
                    serial: Some("CAIRNLAB0003".into()),
                },
            ]);
            runner.expect(
                "smartctl",
                &["--json", "-x", "-n", "standby", "/dev/sda"],
                fixture("ata-hdd-healthy-wd-red-wd20efrx.json"),
            );
            runner.expect(
                "smartctl",
                &["--json", "-x", "-n", "standby", "/dev/nvme0n1"],
                fixture("nvme-media-errors-samsung-970-evo.json"),
            );
            svc.poll_all();
            state.domains.smart = Some(Arc::new(svc));
        }
        Api {
            server: serve(state).await,
            runner,
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn list_and_detail_show_verdicts_attributes_and_the_nvme_log() {
        let api = start(true).await;
        let r = api.call(Method::GET, "/api/v1/smart", None).await;
        assert_eq!(r.status, 200);
        let disks = r.json()["disks"].as_array().unwrap().clone();
        assert_eq!(disks.len(), 3);
        assert_eq!(disks[0]["id"], "ata-WDC_WD20EFRX");
        assert_eq!(disks[0]["verdict"], "healthy");
        assert_eq!(disks[0]["model"], "WDC WD20EFRX-68EUZN0");
        assert_eq!(disks[0]["temperature_c"], 34);
        assert_eq!(disks[1]["verdict"], "warning");
        assert_eq!(
            disks[1]["reasons"][0],
            "7 NVMe media and data integrity errors"
        );
        assert_eq!(disks[2]["verdict"], "unavailable");
        // smartctl has nothing to say about a virtio disk: the inventory's serial shows.
        assert_eq!(disks[2]["serial"], "CAIRNLAB0003");
        assert_eq!(
            disks[0]["serial"], "REDACTED",
            "smartctl's serial comes first"
        );
        let v = api.call(Method::GET, "/api/v1/smart/virtio-D1", None).await;
        assert_eq!(v.status, 200);
        assert_eq!(v.json()["device"]["serial"], "CAIRNLAB0003");

        let r = api
            .call(Method::GET, "/api/v1/smart/ata-WDC_WD20EFRX", None)
            .await;
        assert_eq!(r.status, 200);
        let d = r.json();
        let attrs = d["attributes"].as_array().unwrap();
        let a5 = attrs.iter().find(|a| a["id"] == 5).unwrap();
        assert_eq!(a5["name"], "Reallocated_Sector_Ct");
        assert_eq!(a5["raw_value"], "0", "raw values are strings");
        assert_eq!(d["history"]["polls"].as_array().unwrap().len(), 1);
        assert_eq!(d["settings"]["short_test_days"], 7);
        assert_eq!(d["temperature_limits"]["source"], "default");

        let d = api
            .call(Method::GET, "/api/v1/smart/nvme-Samsung_970", None)
            .await
            .json();
        assert_eq!(d["nvme"]["media_errors"], "7");
        assert_eq!(d["nvme"]["percentage_used"], 3);
        assert_eq!(d["device"]["protocol"], "NVMe");
        assert_eq!(
            api.call(Method::GET, "/api/v1/smart/nope", None)
                .await
                .status,
            404
        );
        let anon = client::send(
            api.addr,
            ClientRequest::new(Method::GET, "/api/v1/smart"),
            api.pin,
            T,
        )
        .await
        .unwrap();
        assert_eq!(anon.status, 401);
        // The NVMe warning raised one alert.
        let alerts = api.call(Method::GET, "/api/v1/alerts", None).await.json();
        let text = alerts.to_string();
        assert!(text.contains("disk/nvme-Samsung_970/smart"), "{text}");
    }

    #[tokio::test]
    async fn settings_are_validated_by_field_and_applied() {
        let api = start(true).await;
        let path = "/api/v1/smart/nvme-Samsung_970/settings";
        for (body, field) in [
            (
                json!({"temperature_warning_c": "hot"}),
                "temperature_warning_c",
            ),
            (json!({"temperature_warning_c": 5}), "temperature_warning_c"),
            (
                json!({"temperature_warning_c": 60, "temperature_critical_c": 50}),
                "temperature_critical_c",
            ),
            (json!({"short_test_days": 0}), "short_test_days"),
            (json!({"polling": "yes"}), "polling"),
            (json!({"colour": 1}), "colour"),
        ] {
            let r = api.call(Method::PUT, path, Some(body.clone())).await;
            assert_eq!(r.status, 422, "{body}");
            assert_eq!(r.json()["field"], field, "{body}");
        }
        assert_eq!(
            api.call(Method::GET, path, None).await.json(),
            serde_json::to_value(DiskSettings::default()).unwrap(),
            "a refused change changed something"
        );
        // Accepting the 7 media errors turns the warning off at once.
        let r = api
            .call(
                Method::PUT,
                path,
                Some(json!({"acknowledge_counters": true, "long_test_days": 60})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["long_test_days"], 60);
        let s = api
            .call(Method::GET, "/api/v1/smart/nvme-Samsung_970", None)
            .await
            .json();
        assert_eq!(s["verdict"], "healthy");
        assert_eq!(s["settings"]["long_test_days"], 60);
        let r = api
            .call(Method::PUT, "/api/v1/smart/nope/settings", Some(json!({})))
            .await;
        assert_eq!(r.status, 404);
    }

    #[tokio::test]
    async fn a_self_test_is_a_task_that_follows_the_drive() {
        let api = start(true).await;
        let st = ["--json", "-c", "-l", "selftest", "/dev/sda"];
        let log = |n: usize| {
            let e = r#"{"type":{"string":"Short offline"},"status":{"value":0,"string":"Completed without error","passed":true},"lifetime_hours":9}"#;
            vec![e; n].join(",")
        };
        let doc = |status: &str, n: usize| {
            CommandOutput::ok(format!(
                r#"{{"ata_smart_data":{{"self_test":{{"status":{status},"polling_minutes":{{"short":1}}}}}},"ata_smart_self_test_log":{{"standard":{{"table":[{}]}}}}}}"#,
                log(n)
            ))
        };
        api.runner.expect("smartctl", &st, doc(r#"{"value":0}"#, 1));
        api.runner.expect(
            "smartctl",
            &["--json", "-t", "short", "/dev/sda"],
            CommandOutput::ok("{}"),
        );
        api.runner.expect(
            "smartctl",
            &st,
            doc(r#"{"value":249,"remaining_percent":90}"#, 1),
        );
        api.runner.expect("smartctl", &st, doc(r#"{"value":0}"#, 2));
        api.runner.expect(
            "smartctl",
            &["--json", "-x", "-n", "standby", "/dev/sda"],
            fixture("ata-hdd-healthy-wd-red-wd20efrx.json"),
        );
        let r = api
            .call(
                Method::POST,
                "/api/v1/smart/ata-WDC_WD20EFRX/selftest",
                Some(json!({"kind": "short"})),
            )
            .await;
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        let id = r.json()["id"].as_u64().unwrap();
        let t = api.finished(id).await;
        assert_eq!(t.state, crate::tasks::TaskState::Succeeded, "{t:?}");
        assert!(t.message.contains("passed"), "{}", t.message);
        assert!(api
            .runner
            .command_lines()
            .contains(&"smartctl --json -t short /dev/sda".to_string()));

        for (path, body, status, field) in [
            (
                "/api/v1/smart/ata-WDC_WD20EFRX/selftest",
                json!({"kind": "quick"}),
                422,
                Some("kind"),
            ),
            (
                "/api/v1/smart/ata-WDC_WD20EFRX/selftest",
                json!({}),
                422,
                Some("kind"),
            ),
            (
                "/api/v1/smart/virtio-D1/selftest",
                json!({"kind": "short"}),
                409,
                None,
            ),
            (
                "/api/v1/smart/nope/selftest",
                json!({"kind": "short"}),
                404,
                None,
            ),
        ] {
            let r = api.call(Method::POST, path, Some(body.clone())).await;
            assert_eq!(
                r.status,
                status,
                "{path} {body}: {}",
                String::from_utf8_lossy(&r.body)
            );
            if let Some(f) = field {
                assert_eq!(r.json()["field"], f);
            }
        }
    }

    #[tokio::test]
    async fn without_the_service_the_routes_answer_503() {
        let api = start(false).await;
        let r = api.call(Method::GET, "/api/v1/smart", None).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["code"], "unavailable");
    }
}
