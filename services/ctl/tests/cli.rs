//! cairnctl against a real HTTPS API server on loopback (the cairn-api server in-process).

use cairn_api::system::NodeSystem;
use cairn_api::tls::{leaf_fingerprint, server_config};
use cairn_api::{ApiState, NodeInfo, Server};
use cairn_client::{self as client, ClientRequest, Fingerprint};
use cairn_core::boot::BootStatus;
use cairn_vm::hypervisor::{DomainSample, HvError, NodeCapacity};
use cairn_vm::{HvEvent, RunState, VolumeError, VolumeUse};
use hyper::Method;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "Basalt-Column-Overlook-42";
const CODE: &str = "6DDJ-P6FE-XZ1W";

struct TestNode;

impl NodeInfo for TestNode {
    fn hostname(&self) -> String {
        "vault".into()
    }
    fn uptime_s(&self) -> u64 {
        3700
    }
    fn boot(&self) -> BootStatus {
        BootStatus {
            slot: None,
            entry: None,
            blessed: true,
            failed_attempts: vec![],
            stage1_failures: vec![],
        }
    }
}

struct NoSystem;

impl NodeSystem for NoSystem {
    fn set_hostname(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn zoneinfo_dir(&self) -> Option<PathBuf> {
        None
    }
}

struct Node {
    addr: SocketAddr,
    pin: Fingerprint,
    api: ApiState,
    _state: tempfile::TempDir,
}

/// A set-up node serving on a loopback port (until the test process ends).
fn node() -> Node {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("setup-code"), CODE).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["vault".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = server_config(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let pin = leaf_fingerprint(cert.pem().as_bytes()).unwrap();
    let api = ApiState::open(Arc::new(TestNode), Arc::new(NoSystem), state.path()).unwrap();
    let served = api.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let server = Server::new(vec![l], tls, served).unwrap();
            tx.send(server.local_addrs()[0]).unwrap();
            server
                .run(std::future::pending(), Duration::from_secs(1))
                .await;
        });
    });
    let addr = rx.recv().unwrap();
    set_up(addr, pin);
    Node {
        addr,
        pin,
        api,
        _state: state,
    }
}

fn set_up(addr: SocketAddr, pin: Fingerprint) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let call = |req: ClientRequest| {
        rt.block_on(client::send(addr, req, pin, Duration::from_secs(10)))
            .unwrap()
    };
    let r =
        call(ClientRequest::new(Method::POST, "/api/v1/setup/code").json(&json!({"code": CODE})));
    let token = r.json()["setup_token"].as_str().unwrap().to_string();
    for (path, body) in [
        ("/api/v1/setup/password", json!({"password": PASSWORD})),
        ("/api/v1/setup/hostname", json!({"hostname": "vault"})),
        ("/api/v1/setup/timezone", json!({"timezone": "UTC"})),
        ("/api/v1/setup/ntp", json!({"servers": []})),
    ] {
        let r = call(
            ClientRequest::new(Method::PUT, path)
                .header("x-setup-token", &token)
                .json(&body),
        );
        assert_eq!(r.status, 200, "{path}");
    }
    let r = call(
        ClientRequest::new(Method::POST, "/api/v1/setup/complete").header("x-setup-token", &token),
    );
    assert_eq!(r.status, 200);
}

fn cairnctl(cfg: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnctl"))
        .arg("--config-dir")
        .arg(cfg)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn stored(cfg: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(cfg.join("nodes.json")).unwrap()).unwrap()
}

#[test]
fn login_pins_stores_a_token_and_status_reports() {
    let n = node();
    let cfg = tempfile::tempdir().unwrap();
    let node_arg = n.addr.to_string();
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&n.pin.to_string()),
        "the pin is shown"
    );
    assert!(text(&out.stdout).contains(&format!("Logged in to {node_arg} as admin")));
    let v = stored(cfg.path());
    let entry = &v["nodes"][&node_arg];
    assert_eq!(entry["fingerprint"], n.pin.to_string());
    assert!(entry["token"].as_str().unwrap().starts_with("cairn_"));
    assert_eq!(v["current"], node_arg.as_str());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(cfg.path().join("nodes.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Without --node, the node last signed in to.
    let out = cairnctl(cfg.path(), &["status"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(t.contains("hostname:  vault"), "{t}");
    assert!(t.contains("uptime:    1h 1m"), "{t}");
    assert!(
        t.contains(&format!(
            "signed in: admin (token {})",
            entry["token_id"].as_str().unwrap()
        )),
        "{t}"
    );

    let out = cairnctl(cfg.path(), &["-o", "json", "status"], "");
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["health"]["status"], "ok");
    assert_eq!(j["me"]["user"], "admin");
    assert_eq!(j["me"]["auth"], "token");

    // A changed certificate is refused with a clear message, for status and login alike.
    let mut v = stored(cfg.path());
    v["nodes"][&node_arg]["fingerprint"] = json!(Fingerprint::of_der(b"other").to_string());
    std::fs::write(cfg.path().join("nodes.json"), v.to_string()).unwrap();
    for args in [vec!["status"], vec!["--node", &node_arg, "login"]] {
        let out = cairnctl(cfg.path(), &args, &format!("{PASSWORD}\n"));
        assert!(!out.status.success());
        let e = text(&out.stderr);
        assert!(e.contains("has CHANGED since it was pinned"), "{e}");
        assert!(e.contains(&n.pin.to_string()), "{e}");
    }

    // Forgetting a node whose certificate changed cannot revoke the token there: it warns.
    let out = cairnctl(cfg.path(), &["forget"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("could not be revoked"));
    assert_eq!(stored(cfg.path())["nodes"], json!({}));

    // Forgetting a reachable node revokes its token there.
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = n.api.identity.list_tokens("admin").len();
    let out = cairnctl(cfg.path(), &["--node", &node_arg, "forget"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    assert_eq!(n.api.identity.list_tokens("admin").len(), before - 1);
}

#[test]
fn wrong_password_and_wrong_expected_fingerprint_store_nothing() {
    let n = node();
    let cfg = tempfile::tempdir().unwrap();
    let node_arg = n.addr.to_string();
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login"],
        "not the password\n",
    );
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("login failed: wrong user name or password (bad_credentials)"),
        "{e}"
    );
    assert!(!cfg.path().join("nodes.json").exists());

    let wrong = Fingerprint::of_der(b"x").to_string();
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login", "--fingerprint", &wrong],
        &format!("{PASSWORD}\n"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not signing in"),
        "{}",
        text(&out.stderr)
    );

    let out = cairnctl(
        cfg.path(),
        &[
            "--node",
            &node_arg,
            "-o",
            "json",
            "login",
            "--fingerprint",
            &n.pin.to_string(),
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (j["user"].clone(), j["pinned_now"].clone()),
        (json!("admin"), json!(true))
    );
}

#[test]
fn task_wait_follows_progress_live() {
    let n = node();
    let cfg = tempfile::tempdir().unwrap();
    let node_arg = n.addr.to_string();
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let run = |task: cairn_api::tasks::TaskHandle, fail: bool| {
        let api = n.api.clone();
        std::thread::spawn(move || {
            // Move only once cairnctl is listening (and has had time for its second look at
            // the task), so every step is seen live.
            while api.events.subscribers() == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(300));
            task.progress(40, "copying");
            std::thread::sleep(Duration::from_millis(50));
            task.progress(80, "verifying");
            std::thread::sleep(Duration::from_millis(50));
            if fail {
                task.fail("disk vanished");
            } else {
                task.succeed("clean");
            }
        })
    };
    let task = n.api.tasks.start("scrub", "starting");
    let id = task.id().to_string();
    let mover = run(task, false);
    let out = cairnctl(cfg.path(), &["task", &id, "--wait"], "");
    mover.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bars = text(&out.stderr);
    for step in [
        "  0% starting",
        " 40% copying",
        " 80% verifying",
        "100% clean",
    ] {
        assert!(bars.contains(step), "{step:?} in {bars}");
    }
    assert!(text(&out.stdout).contains("succeeded"));

    let task = n.api.tasks.start("pool.grow", "starting");
    let id = task.id().to_string();
    let mover = run(task, true);
    let out = cairnctl(cfg.path(), &["-o", "json", "task", &id, "--wait"], "");
    mover.join().unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(&format!("task {id} failed: disk vanished")));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["state"], "failed");

    n.api.alerts.raise(
        "pool/tank",
        cairn_api::events::AlertLevel::Critical,
        "pool tank is degraded",
    );
    let out = cairnctl(cfg.path(), &["alerts"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("CRITICAL  pool/tank"),
        "{}",
        text(&out.stdout)
    );

    let out = cairnctl(cfg.path(), &["tasks"], "");
    let t = text(&out.stdout);
    assert!(t.contains("pool.grow") && t.contains("scrub"), "{t}");
    let out = cairnctl(cfg.path(), &["task", "999"], "");
    assert!(text(&out.stderr)
        .contains("cannot get task 999: no resource at /api/v1/tasks/999 (not_found)"));
}

struct NoNames;

impl cairn_cluster::service::LocalNames for NoNames {
    fn names(&self) -> cairn_cluster::types::NameInventory {
        Default::default()
    }
    fn addresses(&self) -> Vec<std::net::IpAddr> {
        vec!["10.77.0.11".parse().unwrap()]
    }
}

#[test]
fn cluster_status_and_refused_requests_name_the_field() {
    let n = node();
    let cfg = tempfile::tempdir().unwrap();
    let node_arg = n.addr.to_string();
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cairnctl(cfg.path(), &["cluster", "status"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the cluster service is not running on this node"),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let paths = cairn_cluster::service::ClusterPaths {
        dir: dir.path().join("cluster"),
        etcd_data: dir.path().join("etcd"),
    };
    let service = cairn_cluster::ClusterService::open(paths, "vault", Arc::new(NoNames)).unwrap();
    n.api.domains.cluster.set_ready(Arc::new(service));
    let out = cairnctl(cfg.path(), &["cluster"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("vault is standalone"),
        "{}",
        text(&out.stdout)
    );
    let out = cairnctl(cfg.path(), &["-o", "json", "cluster", "status"], "");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["mode"], "standalone");

    let out = cairnctl(cfg.path(), &["cluster", "token", "--ttl", "5s"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot make a join token: ttl_s: a join token lives 60 to 86400 seconds (5 given) (invalid)"),
        "{}",
        text(&out.stderr)
    );
    let out = cairnctl(
        cfg.path(),
        &[
            "cluster",
            "create",
            "--name",
            "Prod",
            "--address",
            "127.0.0.1",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot create the cluster: name:"),
        "{}",
        text(&out.stderr)
    );
}

/// A hypervisor whose only running domain is `web`; every other call succeeds doing nothing.
struct FixedHv;

impl cairn_vm::Hypervisor for FixedHv {
    fn capacity(&self) -> Result<NodeCapacity, HvError> {
        Ok(NodeCapacity {
            cpus: 4,
            memory_mib: 8192,
        })
    }
    fn define(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn undefine(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn start(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn shutdown(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn destroy(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn reboot(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn reset(&self, _: &str) -> Result<(), HvError> {
        Ok(())
    }
    fn sample(&self, _: &str, _: &[String]) -> Result<Option<DomainSample>, HvError> {
        Ok(None)
    }
    fn states(&self) -> Result<BTreeMap<String, RunState>, HvError> {
        Ok([("web".to_string(), RunState::Running)].into())
    }
    fn subscribe(&self, _: std::sync::mpsc::Sender<HvEvent>) -> Result<(), HvError> {
        Ok(())
    }
}

/// Volumes that are never asked for (the VMs' records are written before the service opens).
struct NoVolumes;

impl cairn_vm::Volumes for NoVolumes {
    fn pools(&self) -> Result<Vec<String>, VolumeError> {
        Ok(vec!["tank".into()])
    }
    fn create(&self, _: &str, _: &str, _: u64) -> Result<PathBuf, VolumeError> {
        Err(VolumeError("not in this test".into()))
    }
    fn clone_volume(&self, _: &str, _: &str, _: &str) -> Result<PathBuf, VolumeError> {
        Err(VolumeError("not in this test".into()))
    }
    fn clone_many(&self, _: &str, _: &[(String, String)]) -> Result<Vec<PathBuf>, VolumeError> {
        Err(VolumeError("not in this test".into()))
    }
    fn path(&self, pool: &str, name: &str) -> PathBuf {
        PathBuf::from(format!("/dev/{pool}/{name}"))
    }
    fn snapshot(&self, _: &str, _: &str, _: &str) -> Result<(), VolumeError> {
        Err(VolumeError("not in this test".into()))
    }
    fn activate(&self, _: &str, _: &str) -> Result<(), VolumeError> {
        Ok(())
    }
    fn delete(&self, _: &str, _: &str) -> Result<(), VolumeError> {
        Err(VolumeError("not in this test".into()))
    }
    fn usage(&self, _: &str) -> Result<Vec<VolumeUse>, VolumeError> {
        Ok(vec![])
    }
    fn share_path(&self, pool: &str, share: &str) -> PathBuf {
        PathBuf::from(format!("/srv/{pool}/{share}"))
    }
}

/// The node of these tests: no bridges, TCG, nothing to promote.
struct NoHost;

impl cairn_vm::host::Host for NoHost {
    fn bridges(&self) -> std::collections::BTreeSet<String> {
        Default::default()
    }
    fn accelerator(&self) -> cairn_vm::Accelerator {
        cairn_vm::Accelerator::Tcg
    }
    fn is_file(&self, _: &Path) -> bool {
        false
    }
    fn exists(&self, _: &Path) -> bool {
        true
    }
    fn promote(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// A VM record as the VM service stores it: one virtio disk on pool tank, replicated when
/// `replication` is given (`[resource, replica]`).
fn vm_record(name: &str, replication: Option<[&str; 2]>) -> serde_json::Value {
    let mut disk = json!({"kind": "disk", "bus": "virtio", "pool": "tank",
        "volume": format!("{name}-disk0"), "path": format!("/dev/tank/{name}-disk0"), "origin": null});
    if let Some([resource, replica]) = replication {
        disk["path"] = json!("/dev/drbd977");
        disk["replication"] = json!({"resource": resource, "replica": replica});
    }
    json!({"name": name, "uuid": format!("uuid-{name}"), "vcpus": 1, "memory_mib": 64,
        "disks": [disk], "nics": [], "boot": ["disk"], "cpu_model": "qemu64", "machine": "q35",
        "autostart": false})
}

/// A set-up node with cairnctl signed in (its config folder), a VM service over [`FixedHv`]
/// with `records` (`{name: record}`) and a standalone cluster service (their state in the
/// third folder).
fn vm_node(records: serde_json::Value) -> (Node, tempfile::TempDir, tempfile::TempDir) {
    let n = node();
    let cfg = tempfile::tempdir().unwrap();
    let node_arg = n.addr.to_string();
    let out = cairnctl(
        cfg.path(),
        &["--node", &node_arg, "login"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("vms")).unwrap();
    std::fs::write(
        dir.path().join("vms/vms.json"),
        json!({ "vms": records }).to_string(),
    )
    .unwrap();
    let vms = cairn_vm::Vms::open(
        cairn_vm::VmsConfig {
            state_dir: dir.path().to_path_buf(),
            console_dir: dir.path().join("console"),
            emulator: "/usr/bin/qemu-system-x86_64".into(),
        },
        Arc::new(FixedHv),
        Arc::new(NoVolumes),
        Arc::new(NoHost),
    )
    .unwrap();
    n.api.domains.vms.set_ready(Arc::new(vms));
    let paths = cairn_cluster::service::ClusterPaths {
        dir: dir.path().join("cluster"),
        etcd_data: dir.path().join("etcd"),
    };
    let cluster = cairn_cluster::ClusterService::open(paths, "vault", Arc::new(NoNames)).unwrap();
    n.api.domains.cluster.set_ready(Arc::new(cluster));
    (n, cfg, dir)
}

#[test]
fn vms_replication_shows_each_disk_and_replicate_is_refused_with_the_reason() {
    // Three VMs: web runs, db is off, ha has a replicated disk (a resource not up here: the
    // test machine has no such DRBD device).
    let (_n, cfg, _dir) = vm_node(json!({
        "web": vm_record("web", None),
        "db": vm_record("db", None),
        "ha": vm_record("ha", Some(["cairn977", "node2"])),
    }));

    // Nothing replicated: said, with how to turn it on.
    let out = cairnctl(cfg.path(), &["vms", "replication", "db"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "no disk of VM db is replicated (turn replication on with: cairnctl vms replicate db)\n"
    );

    // A replicated disk: one line with its state on this node.
    let out = cairnctl(cfg.path(), &["vms", "replication", "ha"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(
        lines[0].starts_with("DISK") && lines[0].ends_with("STATUS"),
        "{t}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(cols[..3], ["disk0", "cairn977", "node2"], "{t}");
    assert!(lines[1].ends_with("not up on this node"), "{t}");

    // The global JSON output is the API's answer.
    let out = cairnctl(cfg.path(), &["vms", "replication", "ha", "-o", "json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["vm"], "ha");
    assert_eq!(j["disks"][0]["resource"], "cairn977");
    assert_eq!(j["disks"][0]["role"], serde_json::Value::Null);
    assert_eq!(j["disks"][0]["healthy"], false);

    // vms show names the replicated disk.
    let out = cairnctl(cfg.path(), &["vms", "show", "ha"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("disk0: replicated on node2 (cairn977, /dev/drbd977)\n"),
        "{}",
        text(&out.stdout)
    );

    // Refused with the node's reason: this node is standalone, which the node says before it
    // reads the VM (so even the running web is refused for that); an unknown VM is named.
    let out = cairnctl(
        cfg.path(),
        &["vms", "replicate", "web", "--to", "node2"],
        "",
    );
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains(
            "cannot turn replication on for VM web: this node is not in a cluster: create or join one (conflict)"
        ),
        "{e}"
    );
    let out = cairnctl(cfg.path(), &["vms", "replicate", "nope"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot turn replication on for VM nope:"),
        "{}",
        text(&out.stderr)
    );
    let out = cairnctl(cfg.path(), &["vms", "replication", "nope"], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot get the replication of VM nope:"),
        "{}",
        text(&out.stderr)
    );
    // An empty --to is caught before asking the node.
    let out = cairnctl(cfg.path(), &["vms", "replicate", "db", "--to", ""], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--to"), "{}", text(&out.stderr));
}

#[test]
fn vms_unreplicate_needs_keep_and_is_refused_with_the_reason() {
    // web runs with a replicated disk, ha is off with one, db is off without; the cluster
    // service is standalone.
    let (_n, cfg, _dir) = vm_node(json!({
        "web": vm_record("web", Some(["cairn976", "node2"])),
        "ha": vm_record("ha", Some(["cairn977", "node2"])),
        "db": vm_record("db", None),
    }));
    let refused = |args: &[&str]| {
        let out = cairnctl(cfg.path(), args, "");
        assert!(!out.status.success(), "{args:?}: {}", text(&out.stdout));
        text(&out.stderr)
    };

    // Without --keep: a usage error naming it, before asking the node.
    let out = cairnctl(cfg.path(), &["vms", "unreplicate", "ha"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let e = text(&out.stderr);
    assert!(
        e.contains("the following required arguments were not provided")
            && e.contains("--keep <NODE>")
            && e.contains("Usage: cairnctl vms unreplicate --keep <NODE> <NAME>"),
        "{e}"
    );

    // An empty keep: the node's refusal names the field.
    let e = refused(&["vms", "unreplicate", "ha", "--keep", ""]);
    assert!(
        e.contains(
            "cannot turn replication off for VM ha: keep: the node whose copy stays (this node) (invalid)"
        ),
        "{e}"
    );
    // Refused while the VM runs, with the node's reason.
    let e = refused(&["vms", "unreplicate", "web", "--keep", "vault"]);
    assert!(
        e.contains("cannot turn replication off for VM web:")
            && e.contains("shut it down to turn replication off"),
        "{e}"
    );
    // Nothing replicated; an unknown VM.
    let e = refused(&["vms", "unreplicate", "db", "--keep", "vault"]);
    assert!(
        e.contains("cannot turn replication off for VM db:")
            && e.contains("VM db has no replicated disk"),
        "{e}"
    );
    let e = refused(&["vms", "unreplicate", "nope", "--keep", "vault"]);
    assert!(
        e.contains("cannot turn replication off for VM nope: no VM named nope"),
        "{e}"
    );
    // The replication is the cluster's: a node outside one cannot turn it off.
    let e = refused(&["vms", "unreplicate", "ha", "--keep", "vault"]);
    assert!(
        e.contains("cannot turn replication off for VM ha: this node is not in a cluster"),
        "{e}"
    );
    // Refused, ha was not held: the delete is still refused for its replicated disk, saying
    // to turn replication off first.
    let e = refused(&["vms", "delete", "ha", "--yes"]);
    assert!(
        e.contains("cannot delete VM ha:") && e.contains("turn replication off first"),
        "{e}"
    );
}

#[test]
fn vms_move_replica_needs_to_and_is_refused_with_the_reason() {
    // web runs with a replicated disk, ha is off with one, db is off without; the cluster
    // service is standalone.
    let (_n, cfg, _dir) = vm_node(json!({
        "web": vm_record("web", Some(["cairn976", "node2"])),
        "ha": vm_record("ha", Some(["cairn977", "node2"])),
        "db": vm_record("db", None),
    }));
    let refused = |args: &[&str]| {
        let out = cairnctl(cfg.path(), args, "");
        assert!(!out.status.success(), "{args:?}: {}", text(&out.stdout));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stderr)
    };

    // Without --to: a usage error naming it, before asking the node.
    let out = cairnctl(cfg.path(), &["vms", "move-replica", "ha"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let e = text(&out.stderr);
    assert!(
        e.contains("the following required arguments were not provided")
            && e.contains("--to <NODE>")
            && e.contains("Usage: cairnctl vms move-replica --to <NODE> <NAME>"),
        "{e}"
    );

    // An empty to: the node's refusal names the field.
    let e = refused(&["vms", "move-replica", "ha", "--to", ""]);
    assert!(
        e.contains(
            "cannot move the replica of VM ha: to: the node to move the other copy to (invalid)"
        ),
        "{e}"
    );
    // The replication is the cluster's: a node outside one cannot move it, for a running VM
    // (the move does not need it shut down) as for a shut-off one.
    for vm in ["web", "ha"] {
        let e = refused(&["vms", "move-replica", vm, "--to", "node3"]);
        assert!(
            e.contains(&format!(
                "cannot move the replica of VM {vm}: this node is not in a cluster"
            )),
            "{e}"
        );
    }
    // An unknown VM is named.
    let e = refused(&["vms", "move-replica", "nope", "--to", "node3"]);
    assert!(
        e.contains("cannot move the replica of VM nope: no VM named nope"),
        "{e}"
    );
    // Nothing moved: the record still names node2.
    let out = cairnctl(cfg.path(), &["vms", "show", "ha"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("disk0: replicated on node2 (cairn977, /dev/drbd977)\n"),
        "{}",
        text(&out.stdout)
    );
}
