//! End-to-end: the cairnd binary on loopback with temporary state, ESP and EFI variables.

use cairn_api::{client, tls::leaf_fingerprint, Fingerprint};
use cairn_core::efivar::{
    encode_string, loader_var_path, LOADER_BOOT_COUNT_PATH, LOADER_ENTRY_SELECTED,
};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const READY_DEADLINE: Duration = Duration::from_secs(30);

struct Machine {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let entries = root.join("esp/loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(entries.join("cairn-b+2-1.conf"), "title Cairn (slot b)\n").unwrap();
        std::fs::write(entries.join("cairn-a+0-3.conf"), "title Cairn (slot a)\n").unwrap();
        let efivars = root.join("efivars");
        std::fs::create_dir_all(&efivars).unwrap();
        std::fs::write(
            loader_var_path(&efivars, LOADER_BOOT_COUNT_PATH),
            encode_string(r"\loader\entries\cairn-b+2-1.conf"),
        )
        .unwrap();
        std::fs::write(
            loader_var_path(&efivars, LOADER_ENTRY_SELECTED),
            encode_string("cairn-b+2-1.conf"),
        )
        .unwrap();
        std::fs::write(root.join("cmdline"), "console=ttyS0 cairn.slot=b quiet\n").unwrap();
        std::fs::write(
            root.join("failures.jsonl"),
            "{\"time\":1763856000,\"slot\":\"a\",\"reason\":\"root partition cairn-root-a: bad squashfs\"}\n",
        )
        .unwrap();
        Machine { _dir: dir, root }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

struct Daemon {
    child: Child,
    addr: SocketAddr,
    stderr_lines: mpsc::Receiver<String>,
}

fn start(m: &Machine) -> Daemon {
    // Each start gets a fresh console file so the block read is this start's.
    std::fs::write(m.p("console"), "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "stderr",
            "--esp-mount",
            "never",
        ])
        .args(["--address-wait-s", "1"])
        .arg("--state-dir")
        .arg(m.p("state"))
        .arg("--console")
        .arg(m.p("console"))
        .arg("--cmdline")
        .arg(m.p("cmdline"))
        .arg("--efivars-dir")
        .arg(m.p("efivars"))
        .arg("--esp-dir")
        .arg(m.p("esp"))
        .arg("--boot-failures")
        .arg(m.p("failures.jsonl"))
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start cairnd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[cairnd] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + READY_DEADLINE;
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!("no `listening on` log line from cairnd within {READY_DEADLINE:?}")
        });
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .trim()
                .parse::<SocketAddr>()
                .expect("listening address");
        }
    };
    Daemon {
        child,
        addr,
        stderr_lines: rx,
    }
}

/// Wait for the complete setup block in the console file; returns (url, fingerprint, code).
fn setup_block(console: &Path) -> (String, String, String) {
    let deadline = Instant::now() + READY_DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(console).unwrap();
        if text.contains("CAIRN SETUP END") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no complete CAIRN SETUP block on the console within {READY_DEADLINE:?}; got {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("\nCAIRN SETUP\n"), "{text}");
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} line in {text}"))
            .to_string()
    };
    (
        field("URL: "),
        field("Fingerprint: "),
        field("Setup code: "),
    )
}

fn get_health(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    pin: Fingerprint,
) -> serde_json::Value {
    let r = rt
        .block_on(client::get(
            addr,
            "/api/v1/health",
            pin,
            Duration::from_secs(5),
        ))
        .expect("health request");
    assert_eq!(r.status.as_u16(), 200);
    serde_json::from_slice(&r.body).unwrap()
}

/// Poll health until the boot is reported blessed (blessing runs after the listener is up).
fn wait_blessed(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    pin: Fingerprint,
) -> serde_json::Value {
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let v = get_health(rt, addr, pin);
        if v["boot"]["blessed"] == true {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "boot not blessed within {READY_DEADLINE:?}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut d: Daemon) {
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = d.child.kill();
            panic!("cairnd did not exit within 3 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "cairnd exited with {status}");
    let lines: Vec<String> = d.stderr_lines.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("cairnd stopped")),
        "{lines:?}"
    );
}

#[test]
fn serves_health_blesses_and_keeps_identity_across_restart() {
    let m = Machine::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let d = start(&m);
    let (url, fp_text, code) = setup_block(&m.p("console"));
    assert_eq!(url, format!("https://{}/", d.addr));
    let pin: Fingerprint = fp_text.parse().expect("printed fingerprint parses");
    let cert = std::fs::read(m.p("state/tls/cert.pem")).unwrap();
    assert_eq!(
        leaf_fingerprint(&cert).unwrap(),
        pin,
        "printed fingerprint is the stored certificate's"
    );
    let stored_code = std::fs::read_to_string(m.p("state/setup-code")).unwrap();
    assert_eq!(stored_code.trim(), code);
    for f in ["state/tls/key.pem", "state/setup-code"] {
        let mode = std::fs::metadata(m.p(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }

    // The pinned client only completes a handshake with the certificate printed above.
    let v = wait_blessed(&rt, d.addr, pin);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], "0.1.0");
    assert!(!v["hostname"].as_str().unwrap().is_empty());
    assert!(v["uptime_s"].as_u64().unwrap() > 0);
    assert_eq!(
        v["boot"],
        serde_json::json!({
            "slot": "b",
            "entry": "cairn-b+2-1.conf",
            "blessed": true,
            "failed_attempts": [{"slot": "a", "entry": "cairn-a", "tries": 3}],
            "stage1_failures": [{"time": 1763856000, "slot": "a", "reason": "root partition cairn-root-a: bad squashfs"}]
        })
    );
    let entries = m.p("esp/loader/entries");
    assert!(entries.join("cairn-b.conf").exists(), "entry renamed");
    assert!(!entries.join("cairn-b+2-1.conf").exists());

    let wrong = rt.block_on(client::get(
        d.addr,
        "/api/v1/nope",
        pin,
        Duration::from_secs(5),
    ));
    assert_eq!(wrong.unwrap().status.as_u16(), 404);
    stop(d);

    // Second start: same certificate, same code, already blessed.
    let d = start(&m);
    let (url2, fp2, code2) = setup_block(&m.p("console"));
    assert_eq!(url2, format!("https://{}/", d.addr));
    assert_eq!(fp2, fp_text);
    assert_eq!(code2, code);
    assert_eq!(std::fs::read(m.p("state/tls/cert.pem")).unwrap(), cert);
    let v = wait_blessed(&rt, d.addr, pin);
    assert_eq!(v["boot"]["slot"], "b");
    stop(d);
}

#[test]
fn bad_flag_fails_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairnd"))
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("flag --listen: \"not-an-address\" is not valid"),
        "{err}"
    );
}
