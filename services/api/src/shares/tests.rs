//! API tests of shares, snapshots, volumes and scrubs over real HTTPS with a Storage on a recording runner.

use crate::test_server::{claimed_state, serve, TestServer, T};
use cairn_core::command::{CommandOutput, RecordingRunner};
use cairn_storage::records::{PoolRecord, Records};
use cairn_storage::{Level, Storage, SystemPaths};
use hyper::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LVS_EMPTY: &str = r#"{"report":[{"lv":[
  {"lv_name":"thin","lv_size":"3221225472","data_percent":"10.00","metadata_percent":"4.12","origin":"","lv_attr":"twi-aotz--"}
]}]}"#;

const LVS_SHARE: &str = r#"{"report":[{"lv":[
  {"lv_name":"share-docs","lv_size":"1073741824","data_percent":"2.50","metadata_percent":"","origin":"","lv_attr":"Vwi-aotz--"},
  {"lv_name":"thin","lv_size":"3221225472","data_percent":"10.00","metadata_percent":"4.12","origin":"","lv_attr":"twi-aotz--"}
]}]}"#;

const LVS_VOLS: &str = r#"{"report":[{"lv":[
  {"lv_name":"thin","lv_size":"3221225472","data_percent":"10.00","metadata_percent":"4.12","origin":"","lv_attr":"twi-aotz--"},
  {"lv_name":"vol-base","lv_size":"67108864","data_percent":"50.00","metadata_percent":"","origin":"","lv_attr":"Vwi-a-tz--"},
  {"lv_name":"vol-c1","lv_size":"67108864","data_percent":"50.00","metadata_percent":"","origin":"vol-base","lv_attr":"Vwi-a-tz--"}
]}]}"#;

const SNAPS: &str = "ID 257 gen 9 cgen 9 top level 5 otime 2026-11-23 03:00:00 path .snapshots\n\
    ID 260 gen 12 cgen 12 top level 257 otime 2026-11-23 03:10:00 path .snapshots/before\n";

/// The served API plus the storage service's recording runner and state directory.
struct Running {
    server: TestServer,
    runner: Arc<RecordingRunner>,
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Running {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}

impl Running {
    /// Poll a task through the API until it is no longer running.
    async fn finished(&self, id: u64) -> Value {
        let deadline = Instant::now() + T;
        loop {
            let t = self
                .call(Method::GET, &format!("/api/v1/tasks/{id}"), None)
                .await
                .json();
            if t["state"] != "running" {
                return t;
            }
            assert!(Instant::now() < deadline, "task {id} still running: {t}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A claimed node whose API has a Storage (pool `tank` assembled) on `runner`, or none.
async fn start(runner: RecordingRunner, with_storage: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut state = claimed_state(&dir.path().join("api"));
    let runner = Arc::new(runner);
    if with_storage {
        cairn_storage::md::fake::add_array(
            dir.path(),
            "tank",
            "md127",
            2,
            0,
            ("idle", "none"),
            &[("vdb", "0", "in_sync"), ("vdc", "1", "in_sync")],
        );
        let st_dir = dir.path().join("storage");
        std::fs::create_dir_all(&st_dir).unwrap();
        Records {
            pools: vec![PoolRecord {
                name: "tank".into(),
                level: Level::Raid1,
                md_uuid: "a:b:c:d".into(),
                members: vec!["virtio-A".into(), "virtio-B".into()],
                created: 1,
            }],
        }
        .save(&st_dir)
        .unwrap();
        let storage = Storage::open(
            runner.clone(),
            dir.path(),
            Arc::new(state.alerts.clone()),
            SystemPaths::under(dir.path()),
        )
        .unwrap();
        state.domains.storage = crate::domains::Slot::ready(Arc::new(storage));
    }
    Running {
        server: serve(state).await,
        runner,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_are_created_validated_resized_and_deleted() {
    let r = RecordingRunner::new();
    r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY))
        .expect("lvs", &[], CommandOutput::ok(LVS_SHARE))
        .expect("lvs", &[], CommandOutput::ok(LVS_SHARE))
        .expect("lvs", &[], CommandOutput::ok(LVS_SHARE))
        .expect("lvs", &[], CommandOutput::ok(LVS_SHARE));
    let s = start(r, true).await;
    let base = "/api/v1/pools/tank/shares";

    let bad = s
        .call(
            Method::POST,
            base,
            Some(json!({"name": "My Docs", "size_bytes": 1u64 << 30})),
        )
        .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["field"], "name");
    let small = s
        .call(
            Method::POST,
            base,
            Some(json!({"name": "docs", "size_bytes": 1000})),
        )
        .await;
    assert_eq!(small.json()["field"], "size_bytes");
    assert!(
        !s.runner
            .command_lines()
            .iter()
            .any(|l| l.starts_with("lvcreate")),
        "bad input changes nothing"
    );

    let made = s
        .call(
            Method::POST,
            base,
            Some(json!({"name": "docs", "size_bytes": 1u64 << 30})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.json());
    assert_eq!(made.json()["mountpoint"], "/var/lib/cairn/shares/tank/docs");
    assert!(s.runner.command_lines().contains(
        &"mkfs.btrfs -q -f --nodiscard --csum xxhash -L docs /dev/cairn-tank/share-docs"
            .to_string()
    ));
    let again = s
        .call(
            Method::POST,
            base,
            Some(json!({"name": "docs", "size_bytes": 1u64 << 30})),
        )
        .await;
    assert_eq!(again.status, 409);

    let list = s.call(Method::GET, base, None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "docs");

    let shrink = s
        .call(
            Method::PATCH,
            &format!("{base}/docs"),
            Some(json!({"size_bytes": 1u64 << 29})),
        )
        .await;
    assert_eq!(shrink.status, 422);
    assert_eq!(shrink.json()["field"], "size_bytes");
    let grow = s
        .call(
            Method::PATCH,
            &format!("{base}/docs"),
            Some(json!({"size_bytes": 2u64 << 30})),
        )
        .await;
    assert_eq!(grow.status, 200, "{}", grow.json());

    let wrong = s
        .call(
            Method::DELETE,
            &format!("{base}/docs"),
            Some(json!({"confirm": "doc"})),
        )
        .await;
    assert_eq!(wrong.json()["field"], "confirm");
    let gone = s
        .call(
            Method::DELETE,
            &format!("{base}/docs"),
            Some(json!({"confirm": "docs"})),
        )
        .await;
    assert_eq!(gone.status, 204);
    assert!(s
        .runner
        .command_lines()
        .contains(&"lvremove -y cairn-tank/share-docs".to_string()));
    let missing = s.call(Method::GET, &format!("{base}/docs"), None).await;
    assert_eq!(missing.status, 404);
    let nopool = s.call(Method::GET, "/api/v1/pools/nope/shares", None).await;
    assert_eq!(nopool.status, 404, "{}", nopool.json());
    drop(s.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_restore_as_a_task_and_schedules_validate() {
    let r = RecordingRunner::new();
    r.expect("lvs", &[], CommandOutput::ok(LVS_EMPTY)).expect(
        "lvs",
        &[],
        CommandOutput::ok(LVS_SHARE),
    );
    let s = start(r, true).await;
    let base = "/api/v1/pools/tank/shares";
    let made = s
        .call(
            Method::POST,
            base,
            Some(json!({"name": "docs", "size_bytes": 1u64 << 30})),
        )
        .await;
    assert_eq!(made.status, 201);
    for _ in 0..4 {
        s.runner
            .expect("btrfs", &["subvolume", "list"], CommandOutput::ok(SNAPS));
    }
    let list = s
        .call(Method::GET, &format!("{base}/docs/snapshots"), None)
        .await;
    assert_eq!(list.json()[0]["name"], "before");
    let reserved = s
        .call(
            Method::POST,
            &format!("{base}/docs/snapshots"),
            Some(json!({"name": "auto-x"})),
        )
        .await;
    assert_eq!(reserved.json()["field"], "name");
    let none = s
        .call(
            Method::POST,
            &format!("{base}/docs/snapshots/nope/restore"),
            Some(json!({"new_share": "docs-old"})),
        )
        .await;
    assert_eq!(none.status, 404);
    s.runner.expect("lvs", &[], CommandOutput::ok(LVS_SHARE));
    let restore = s
        .call(
            Method::POST,
            &format!("{base}/docs/snapshots/before/restore"),
            Some(json!({"new_share": "docs-old"})),
        )
        .await;
    assert_eq!(restore.status, 202, "{}", restore.json());
    let task = s.finished(restore.json()["id"].as_u64().unwrap()).await;
    assert_eq!(task["state"], "succeeded", "{task}");
    assert_eq!(task["progress"], 100);
    assert!(s.runner.command_lines().contains(
        &"cp -a --reflink=auto -- /var/lib/cairn/shares/tank/docs/.snapshots/before/. /var/lib/cairn/shares/tank/docs-old/"
            .to_string()
    ));

    let bad = s
        .call(
            Method::PUT,
            &format!("{base}/docs/snapshot-schedule"),
            Some(json!({"hourly": 1000})),
        )
        .await;
    assert_eq!(bad.json()["field"], "hourly");
    let unknown = s
        .call(
            Method::PUT,
            &format!("{base}/docs/snapshot-schedule"),
            Some(json!({"yearly": 1})),
        )
        .await;
    assert_eq!(unknown.status, 400);
    let ok = s
        .call(
            Method::PUT,
            &format!("{base}/docs/snapshot-schedule"),
            Some(json!({"hourly": 24, "daily": 7})),
        )
        .await;
    assert_eq!(ok.status, 200);
    let got = s
        .call(Method::GET, &format!("{base}/docs/snapshot-schedule"), None)
        .await
        .json();
    assert_eq!(got, json!({"hourly": 24, "daily": 7, "weekly": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_clone_and_unavailable_storage() {
    let r = RecordingRunner::new();
    let before = LVS_VOLS.replace("vol-c1", "vol-other");
    r.expect("lvs", &[], CommandOutput::ok(before))
        .expect("lvs", &[], CommandOutput::ok(LVS_VOLS));
    let s = start(r, true).await;
    let clone = s
        .call(
            Method::POST,
            "/api/v1/pools/tank/volumes/base/clone",
            Some(json!({"name": "c1"})),
        )
        .await;
    assert_eq!(clone.status, 201, "{}", clone.json());
    assert_eq!(clone.json()["origin"], "base");
    assert!(s
        .runner
        .command_lines()
        .contains(&"lvchange -ay -K cairn-tank/vol-c1".to_string()));
    let bad = s
        .call(
            Method::POST,
            "/api/v1/pools/tank/volumes",
            Some(json!({"name": "x", "size_bytes": 5})),
        )
        .await;
    assert_eq!(bad.json()["field"], "size_bytes");

    let none = start(RecordingRunner::new(), false).await;
    let r = none
        .call(Method::GET, "/api/v1/pools/tank/volumes", None)
        .await;
    assert_eq!(r.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_runs_as_a_task_with_progress_and_raises_findings() {
    let r = RecordingRunner::new();
    let s = start(r, true).await;
    let md = s.dir.path().join("sys/block/md127/md");
    std::fs::write(md.join("mismatch_cnt"), "0\n").unwrap();
    let md2 = md.clone();
    // The "kernel": finish the check once it is requested, with mismatches found.
    let kernel = std::thread::spawn(move || {
        let deadline = Instant::now() + T;
        while std::fs::read_to_string(md2.join("sync_action"))
            .unwrap()
            .trim()
            != "check"
        {
            assert!(Instant::now() < deadline, "check was never requested");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(md2.join("mismatch_cnt"), "8\n").unwrap();
        std::fs::write(md2.join("sync_action"), "idle\n").unwrap();
    });
    let started = s.call(Method::POST, "/api/v1/pools/tank/scrub", None).await;
    assert_eq!(started.status, 202, "{}", started.json());
    let task = s.finished(started.json()["id"].as_u64().unwrap()).await;
    kernel.join().unwrap();
    assert_eq!(task["state"], "succeeded", "{task}");
    assert!(
        task["message"].as_str().unwrap().contains("8 mismatched"),
        "{task}"
    );
    let alerts = s.call(Method::GET, "/api/v1/alerts", None).await.json();
    assert!(alerts.to_string().contains("pool/tank/scrub"), "{alerts}");
    let st = s
        .call(Method::GET, "/api/v1/pools/tank/scrub", None)
        .await
        .json();
    assert_eq!(st["interval_days"], 30);
    assert_eq!(st["last"]["mismatch_cnt"], 8);
    let bad = s
        .call(
            Method::PUT,
            "/api/v1/pools/tank/scrub-schedule",
            Some(json!({"interval_days": 999})),
        )
        .await;
    assert_eq!(bad.json()["field"], "interval_days");
    let nopool = s.call(Method::POST, "/api/v1/pools/nope/scrub", None).await;
    assert_eq!(nopool.status, 404);
    drop(s);
}
