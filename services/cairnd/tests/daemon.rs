//! End-to-end: the cairnd binary on loopback with temporary state, ESP and EFI variables.

mod common;

use cairn_api::tls::leaf_fingerprint;
use cairn_client::{self as client, Fingerprint};
use common::{setup_block, start, stop, Machine, READY_DEADLINE};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

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
    // Not a booted node: every domain settles as absent with its reason, and health is
    // then ready (absent domains do not hold it back).
    let deadline = Instant::now() + READY_DEADLINE;
    let v = loop {
        let v = get_health(&rt, d.addr, pin);
        if v["ready"] == true {
            break v;
        }
        assert!(Instant::now() < deadline, "domains not settled: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    for name in ["storage", "smart", "network", "vms"] {
        let dom = &v["domains"][name];
        assert!(
            ["absent", "ready", "failed"].contains(&dom["state"].as_str().unwrap()),
            "{name}: {dom}"
        );
    }
    assert_eq!(v["domains"]["storage"]["state"], "absent", "{v}");
    assert!(v["domains"]["smart"]["reason"]
        .as_str()
        .unwrap()
        .contains("storage"));
    let entries = m.p("esp/loader/entries");
    assert!(entries.join("cairn-b.conf").exists(), "entry renamed");
    assert!(!entries.join("cairn-b+2-1.conf").exists());

    let wrong = rt.block_on(client::get(
        d.addr,
        "/api/v1/nope",
        pin,
        Duration::from_secs(5),
    ));
    // Until setup completes, anything but health, the spec and setup is refused.
    let wrong = wrong.unwrap();
    assert_eq!(wrong.status.as_u16(), 403);
    assert_eq!(wrong.json()["code"], "not_claimed");
    let _ = stop(d);

    // Second start: same certificate, same code, already blessed.
    let d = start(&m);
    let (url2, fp2, code2) = setup_block(&m.p("console"));
    assert_eq!(url2, format!("https://{}/", d.addr));
    assert_eq!(fp2, fp_text);
    assert_eq!(code2, code);
    assert_eq!(std::fs::read(m.p("state/tls/cert.pem")).unwrap(), cert);
    let v = wait_blessed(&rt, d.addr, pin);
    assert_eq!(v["boot"]["slot"], "b");
    let _ = stop(d);
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
