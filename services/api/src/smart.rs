//! SMART detail, history, self-tests and per-disk settings (backed by cairn-smart).

use crate::error::ApiError;
use crate::executor::{self, Domain};
use crate::request::Ctx;
use crate::response::{json, Body};
use crate::routes::{Access, Route};
use cairn_core::shown::clip;
use cairn_smart::action::SmartTask;
use cairn_smart::{DiskSettings, SmartError, SmartService, TestKind};
use hyper::{Response, StatusCode};
use serde_json::{Map, Value};

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

use SmartOp::*;

/// The routes of this group (the OpenAPI fragment `openapi/smart.json` lists the same).
pub const ROUTES: &[Route<SmartOp>] = &[
    Route {
        path: "/api/v1/smart",
        methods: &[("GET", List)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/smart/{disk}",
        methods: &[("GET", Get)],
        allowed: &["GET"],
    },
    Route {
        path: "/api/v1/smart/{disk}/selftest",
        methods: &[("POST", SelfTest)],
        allowed: &["POST"],
    },
    Route {
        path: "/api/v1/smart/{disk}/settings",
        methods: &[("GET", GetSettings), ("PUT", PutSettings)],
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

/// How the API reaches the SMART service.
pub const SMART: Domain<SmartService, SmartError> = Domain {
    name: "SMART",
    slot: |d| &d.smart,
    api_error: |e| api_error(&e),
};

fn not_found(id: &str) -> ApiError {
    api_error(&SmartError::UnknownDisk(clip(id).into_owned()))
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
            format!(
                "`{}` is not a self-test kind; use `short` or `long`",
                clip(other)
            ),
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
    let svc = SMART.service(ctx)?;
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
            let s = SMART.inline(&svc, |s| s.settings(&id))?;
            Ok(json(StatusCode::OK, &s))
        }
        PutSettings => {
            let body: Value = ctx.json()?;
            let (settings, acknowledge) = parse_settings(&body)?;
            let s = SMART
                .blocking(svc, move |s| s.set_settings(&id, settings, acknowledge))
                .await?;
            Ok(json(StatusCode::OK, &s))
        }
        SelfTest => {
            let body: Value = ctx.json()?;
            let kind = parse_kind(&body)?;
            let task = SmartTask::SelfTest { disk: id, kind };
            executor::check_then_run(&SMART, ctx, svc, move |s| task.check(s).map(|()| task)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{claimed_state, serve, TestServer, T};
    use cairn_client::{self as client, ClientRequest};
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use cairn_core::disk::{DiskBus, DiskRef};
    use hyper::Method;
    use serde_json::json;
    use std::sync::Arc;
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

    fn disk(id: &str, dev: &str, bus: DiskBus, rotational: bool) -> DiskRef {
        DiskRef {
            id: id.into(),
            dev: dev.into(),
            bus,
            rotational,
            model: None,
            serial: None,
        }
    }

    /// A claimed node whose SMART service knows `disks`; `poll` scripts smartctl's answers
    /// and polls (without `disks`, the node runs no SMART service).
    async fn serve_smart(
        disks: Option<Vec<DiskRef>>,
        poll: impl FnOnce(&RecordingRunner, &SmartService),
    ) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let mut state = claimed_state(dir.path());
        let runner = Arc::new(RecordingRunner::strict());
        if let Some(disks) = disks {
            let mut cfg = cairn_smart::Config::new(dir.path());
            cfg.test_poll = Duration::from_millis(5);
            let svc = SmartService::open(
                cfg,
                runner.clone(),
                Arc::new(state.alerts.clone()),
                cairn_smart::service::system_clock(),
            )
            .unwrap();
            svc.set_disks(disks);
            poll(&runner, &svc);
            state.domains.smart = crate::domains::Slot::ready(Arc::new(svc));
        }
        Api {
            server: serve(state).await,
            runner,
            _dir: dir,
        }
    }

    /// A claimed node whose SMART service knows an AHCI disk (WD Red fixture), an NVMe disk
    /// (Samsung 970 EVO with media errors) and a virtio disk, polled once.
    async fn start(with_smart: bool) -> Api {
        let disks = vec![
            DiskRef {
                serial: Some("UDEV-SERIAL".into()),
                ..disk("ata-WDC_WD20EFRX", "/dev/sda", DiskBus::Sata, true)
            },
            disk("nvme-Samsung_970", "/dev/nvme0n1", DiskBus::Nvme, false),
            DiskRef {
                serial: Some("CAIRNLAB0003".into()),
                ..disk("virtio-D1", "/dev/vdb", DiskBus::Virtio, true)
            },
        ];
        serve_smart(with_smart.then_some(disks), |runner, svc| {
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
        })
        .await
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

    /// The declared properties seen in answers: (nearest named schema, property).
    type Seen = std::collections::BTreeSet<(String, String)>;

    /// Check `v` against `schema` of the merged `spec`, in the dialect of the SMART fragment:
    /// `$ref`, `oneOf`, `type` as a name or a list of names (`"null"` among them), `nullable`,
    /// `enum`, `minimum`/`maximum`, `required`, `properties` (every property present must be
    /// declared, unless `additionalProperties` is a schema for them), `items` (a `oneOf` is
    /// the whole of its schema, as in the fragment). `name` is the
    /// nearest `$ref`'d schema, for `seen`; `at` names the place in a failure.
    fn conforms(
        spec: &Value,
        schema: &Value,
        v: &Value,
        at: &str,
        name: &str,
        seen: &mut Seen,
    ) -> Result<(), String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = spec
                .pointer(r.trim_start_matches('#'))
                .ok_or_else(|| format!("{at}: unresolved {r}"))?;
            let name = r.rsplit('/').next().unwrap_or(name);
            return conforms(spec, target, v, at, name, seen);
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            let mut matched = Vec::new();
            let mut errors = Vec::new();
            for b in branches {
                let mut mine = Seen::new();
                match conforms(spec, b, v, at, name, &mut mine) {
                    Ok(()) => matched.push(mine),
                    Err(e) => errors.push(e),
                }
            }
            if matched.len() != 1 {
                return Err(format!(
                    "{at} = {v} matches {} branches of oneOf: {errors:?}",
                    matched.len()
                ));
            }
            seen.extend(matched.pop().unwrap_or_default());
            return Ok(());
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if let Some(list) = schema.get("enum").and_then(Value::as_array) {
            if !list.contains(v) {
                return Err(format!("{at} = {v} is not one of {list:?}"));
            }
        }
        if v.is_null() {
            return if types.is_empty() || types.contains(&"null") || schema["nullable"] == true {
                Ok(())
            } else {
                Err(format!("{at} is null, but the schema does not allow null"))
            };
        }
        let of_type = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            _ => false,
        };
        if !types.is_empty() && !types.iter().any(|t| of_type(t)) {
            return Err(format!("{at} = {v} is not of type {types:?}"));
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
            if n < min {
                return Err(format!("{at} = {v} is below the minimum {min}"));
            }
        }
        if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64()) {
            if n > max {
                return Err(format!("{at} = {v} is above the maximum {max}"));
            }
        }
        if let Some(obj) = v.as_object() {
            for req in schema["required"].as_array().into_iter().flatten() {
                let req = req.as_str().unwrap_or_default();
                if !obj.contains_key(req) {
                    return Err(format!("{at}.{req} is required but missing"));
                }
            }
            let props = schema["properties"].as_object();
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, val) in obj {
                let at = format!("{at}.{k}");
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(sub), _) => {
                        seen.insert((name.to_string(), k.clone()));
                        conforms(spec, sub, val, &at, name, seen)?;
                    }
                    (None, Some(sub)) => conforms(spec, sub, val, &at, name, seen)?,
                    (None, None) => {
                        return Err(format!("{at} is sent but not declared in the spec"))
                    }
                }
            }
        }
        if let (Some(items), Some(list)) = (schema.get("items"), v.as_array()) {
            for (i, item) in list.iter().enumerate() {
                conforms(spec, items, item, &format!("{at}[{i}]"), name, seen)?;
            }
        }
        Ok(())
    }

    /// The schema of route `path`'s 200 answer to GET.
    fn answer_schema<'a>(spec: &'a Value, path: &str) -> &'a Value {
        &spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    }

    /// Real drives of every kind the SMART domain tells apart (fixtures from
    /// services/smart/tests/fixtures): SATA SSDs worn 85 % and without a temperature sensor, a
    /// Seagate with a packed 188, a SAS disk with SMART reporting off, a worn-out SAS SSD, an
    /// NVMe disk, a disk asleep since its first read and one asleep before ever being read,
    /// a virtio disk. Every list and detail answer must match the spec: every property sent
    /// is declared, with its type and nullability, and every property the spec declares for
    /// them is sent by one of these disks.
    #[tokio::test]
    async fn every_answer_of_real_drives_matches_the_spec() {
        let disks = vec![
            disk("ata-INTEL_SSDSC2BB016T4", "/dev/sda", DiskBus::Sata, false),
            disk("ata-ST16000NM001G", "/dev/sdb", DiskBus::Sata, true),
            disk("ata-TS32GMTS400", "/dev/sdc", DiskBus::Sata, false),
            disk("ata-WDC_WD20EFRX", "/dev/sdd", DiskBus::Sata, true),
            disk("ata-ASLEEP", "/dev/sde", DiskBus::Sata, true),
            disk("scsi-WD4001FYYG", "/dev/sdf", DiskBus::Sas, true),
            disk("scsi-KPM5XMUG400G", "/dev/sdg", DiskBus::Sas, false),
            disk("nvme-Samsung_970", "/dev/nvme0n1", DiskBus::Nvme, false),
            disk("virtio-D1", "/dev/vdb", DiskBus::Virtio, true),
        ];
        let api = serve_smart(Some(disks), |runner, svc| {
            for (dev, name) in [
                ("sda", "ata-ssd-wear-85pct-intel-s3500-ssdsc2bb016t4.json"),
                (
                    "sdb",
                    "ata-hdd-seagate-188-packed-exos-x16-st16000nm001g.json",
                ),
                (
                    "sdc",
                    "ata-ssd-no-temperature-sensor-transcend-ts32gmts400-edited.json",
                ),
                ("sdd", "ata-hdd-healthy-wd-red-wd20efrx.json"),
                ("sde", "standby-ata-os-smartctl75-built.json"),
                ("sdf", "scsi-sas-iec-disabled-wd-wd4001fyyg.json"),
                (
                    "sdg",
                    "scsi-sas-ssd-worn-out-toshiba-kpm5xmug400g-edited.json",
                ),
                ("nvme0n1", "nvme-media-errors-samsung-970-evo.json"),
            ] {
                let dev = format!("/dev/{dev}");
                runner.expect(
                    "smartctl",
                    &["--json", "-x", "-n", "standby", &dev],
                    fixture(name),
                );
            }
            svc.poll_all();
            // The WD Red, read once, is asleep at the next poll.
            runner.expect(
                "smartctl",
                &["--json", "-x", "-n", "standby", "/dev/sdd"],
                fixture("standby-ata-standby-y-smartctl73-built.json"),
            );
            svc.poll_disk("ata-WDC_WD20EFRX").unwrap();
        })
        .await;
        let spec = crate::openapi::merge(crate::openapi::CORE, crate::openapi::FRAGMENTS).unwrap();
        let mut seen = Seen::new();

        let list = api.call(Method::GET, "/api/v1/smart", None).await;
        assert_eq!(list.status, 200);
        let list = list.json();
        conforms(
            &spec,
            answer_schema(&spec, "/api/v1/smart"),
            &list,
            "list",
            "",
            &mut seen,
        )
        .unwrap();
        let disks = list["disks"].as_array().unwrap();
        assert_eq!(disks.len(), 9);
        let mut details = std::collections::BTreeMap::new();
        for d in disks {
            let id = d["id"].as_str().unwrap();
            let r = api
                .call(Method::GET, &format!("/api/v1/smart/{id}"), None)
                .await;
            assert_eq!(r.status, 200, "{id}");
            let v = r.json();
            conforms(
                &spec,
                answer_schema(&spec, "/api/v1/smart/{disk}"),
                &v,
                id,
                "",
                &mut seen,
            )
            .unwrap();
            let s = api
                .call(Method::GET, &format!("/api/v1/smart/{id}/settings"), None)
                .await
                .json();
            let schema = answer_schema(&spec, "/api/v1/smart/{disk}/settings");
            conforms(&spec, schema, &s, "settings", "", &mut seen).unwrap();
            details.insert(id.to_string(), v);
        }

        // The new fields, as the fixtures say.
        let intel = &details["ata-INTEL_SSDSC2BB016T4"];
        assert_eq!(intel["endurance_used_pct"], 85);
        assert_eq!(
            intel["endurance"],
            json!({"used_pct": 85, "worn_out": false, "source": "attribute 233 Media_Wearout_Indicator"})
        );
        assert_eq!(
            details["ata-ST16000NM001G"]["endurance_used_pct"],
            Value::Null
        );
        let a188 = details["ata-ST16000NM001G"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == 188)
            .unwrap()
            .clone();
        assert_eq!(
            (&a188["raw_value"], &a188["count"]),
            (&json!("51540393996"), &json!("12"))
        );
        let transcend = &details["ata-TS32GMTS400"];
        assert!(transcend["temperature_c"].is_null(), "{transcend}");
        assert!(transcend["findings"].to_string().contains("no_temperature"));
        let asleep = &details["ata-WDC_WD20EFRX"];
        assert_eq!(
            (
                &asleep["standby"],
                &asleep["standby_mode"],
                &asleep["verdict"]
            ),
            (&json!(true), &json!("STANDBY_Y"), &json!("healthy"))
        );
        assert!(asleep["checked_at"].is_u64(), "{asleep}");
        let never = &details["ata-ASLEEP"];
        assert_eq!(
            (&never["standby_mode"], &never["checked_at"]),
            (&json!("STANDBY (OS)"), &Value::Null)
        );
        assert!(details["scsi-WD4001FYYG"]["findings"]
            .to_string()
            .contains("smart_disabled"));
        let worn = &details["scsi-KPM5XMUG400G"];
        assert_eq!(worn["verdict"], "failing");
        assert_eq!(worn["endurance"]["worn_out"], true);
        assert_eq!(details["nvme-Samsung_970"]["endurance_used_pct"], 3);
        for d in disks {
            let id = d["id"].as_str().unwrap();
            for k in [
                "endurance_used_pct",
                "temperature_c",
                "standby",
                "checked_at",
            ] {
                assert_eq!(d[k], details[id][k], "{id}: list and detail differ in {k}");
            }
        }

        // Nothing the spec declares for these answers is stale: each property is sent by
        // one of these disks.
        for schema in [
            "SmartSummary",
            "SmartDetail",
            "SmartAttribute",
            "SmartEndurance",
            "SmartFinding",
            "SmartDevice",
            "SmartTempLimits",
            "SmartNvmeLog",
            "SmartScsiCounters",
            "SmartSelfTestEntry",
            "SmartHistory",
            "SmartSettings",
        ] {
            let props = spec["components"]["schemas"][schema]["properties"]
                .as_object()
                .unwrap();
            for k in props.keys() {
                assert!(
                    seen.contains(&(schema.to_string(), k.clone())),
                    "{schema}.{k} is declared but no answer sent it"
                );
            }
        }
    }

    #[test]
    fn the_spec_check_refuses_undeclared_and_null_fields() {
        let spec = crate::openapi::merge(crate::openapi::CORE, crate::openapi::FRAGMENTS).unwrap();
        let schema = json!({"$ref": "#/components/schemas/SmartAttribute"});
        let ok = json!({"id": 188, "name": "Command_Timeout", "when_failed": "", "prefailure": false,
                        "raw_value": "51540393996", "raw_string": null, "count": "12"});
        let check = |v: &Value| conforms(&spec, &schema, v, "a", "", &mut Seen::new());
        check(&ok).unwrap();
        let mut extra = ok.clone();
        extra["counted"] = json!(12);
        assert!(check(&extra)
            .unwrap_err()
            .contains("a.counted is sent but not declared"));
        let mut null = ok.clone();
        null["count"] = Value::Null;
        assert!(check(&null).unwrap_err().contains("a.count is null"));
        let mut wrong = ok;
        wrong["count"] = json!(12);
        assert!(check(&wrong).unwrap_err().contains("is not of type"));
    }

    #[tokio::test]
    async fn without_the_service_the_routes_answer_503() {
        let api = start(false).await;
        let r = api.call(Method::GET, "/api/v1/smart", None).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["code"], "unavailable");
    }
}
