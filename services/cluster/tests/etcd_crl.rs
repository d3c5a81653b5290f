//! Host test against a real etcd 3.4 (Debian's `etcd-server`): the revocation list written by
//! `crl.rs` and named in the config `etcd_conf.rs` writes is read by etcd on every handshake,
//! so a revoked client certificate is refused at once and a good one still accepted.
//!
//! Without `/usr/bin/etcd` the test prints a skip message and passes, unless
//! `CAIRN_REQUIRE_ETCD` is set (`./dev test` sets it).

use cairn_cluster::ca;
use cairn_cluster::crl;
use cairn_cluster::etcd::{self, EtcdTls};
use cairn_cluster::etcd_conf::{EtcdMemberConf, EtcdTlsFiles};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

const ETCD: &str = "/usr/bin/etcd";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const TIMEOUT: Duration = Duration::from_secs(2);

fn have_etcd() -> bool {
    if std::path::Path::new(ETCD).exists() {
        return true;
    }
    if std::env::var_os("CAIRN_REQUIRE_ETCD").is_some() {
        panic!("{ETCD} is missing and CAIRN_REQUIRE_ETCD is set (apt install etcd-server)");
    }
    eprintln!("skipped: {ETCD} is missing (apt install etcd-server)");
    false
}

fn free_port() -> u16 {
    TcpListener::bind((LOCAL, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One put through a fresh connection (a fresh TLS handshake) with `tls`.
async fn put_with(ep: &str, tls: &EtcdTls, value: &str) -> Result<(), String> {
    let mut c = etcd::connect(&[ep.to_string()], tls, TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    c.put("/cairn/crl-test", value, None)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Wait until a put with `tls` gives `want_ok` (etcd starting, or the file just rewritten).
async fn wait_put(ep: &str, tls: &EtcdTls, want_ok: bool, what: &str, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = put_with(ep, tls, what).await;
        if r.is_ok() == want_ok {
            eprintln!("{what}: {r:?}");
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "waited 20 s for {what} (last: {r:?})\n--- etcd log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_certificate_is_refused_by_etcd_and_a_good_one_accepted() {
    if !have_etcd() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let now = SystemTime::now();
    let ca = ca::create_ca("crl", now).expect("CA");
    let (key, cert) =
        ca::issue_node_cert(&ca.cert_pem, &ca.key_pem, "node1", &[LOCAL], now).expect("node");
    std::fs::write(d.join("node.pem"), &cert).unwrap();
    std::fs::write(d.join("node.key"), &key).unwrap();
    std::fs::write(d.join("ca.pem"), &ca.cert_pem).unwrap();
    let client = |name: &str| {
        let (key_pem, cert_pem) =
            ca::issue_node_cert(&ca.cert_pem, &ca.key_pem, name, &[], now).expect("client");
        EtcdTls {
            ca_pem: ca.cert_pem.clone(),
            cert_pem,
            key_pem,
        }
    };
    let good = client("node2");
    let doomed = client("node3");
    let doomed_serial = ca::cert_info(&doomed.cert_pem).unwrap().serial_hex;

    // An empty list first, as create and join write it before etcd starts.
    let crl_path = d.join("crl.pem");
    let empty = crl::build_crl(&ca.cert_pem, &ca.key_pem, &[], now).unwrap();
    cairn_base::atomic::write_atomic(&crl_path, empty.as_bytes(), 0o644).unwrap();

    let (client_port, peer_port) = (free_port(), free_port());
    let mut conf = EtcdMemberConf::new(
        "node1",
        d.join("data"),
        LOCAL,
        "crl-test",
        EtcdTlsFiles {
            cert_file: d.join("node.pem"),
            key_file: d.join("node.key"),
            trusted_ca_file: d.join("ca.pem"),
        },
    );
    conf.client_port = client_port;
    conf.peer_port = peer_port;
    conf.initial_cluster = vec![format!("node1=https://127.0.0.1:{peer_port}")];
    conf.crl_file = Some(crl_path.clone());
    std::fs::write(d.join("etcd.yaml"), conf.to_yaml().unwrap()).unwrap();
    let log = d.join("etcd.log");
    let out = std::fs::File::create(&log).unwrap();
    let _etcd = Killed(
        Command::new(ETCD)
            .arg("--config-file")
            .arg(d.join("etcd.yaml"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start etcd"),
    );
    let ep = format!("https://127.0.0.1:{client_port}");

    wait_put(&ep, &good, true, "the good certificate accepted", &log).await;
    wait_put(&ep, &doomed, true, "node3 accepted before revocation", &log).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains(&crl_path.display().to_string()),
        "etcd does not name the CRL file in its TLS settings:\n{text}"
    );

    // Revoke node3: the file is rewritten atomically, etcd is not restarted.
    let listed = crl::build_crl(
        &ca.cert_pem,
        &ca.key_pem,
        std::slice::from_ref(&doomed_serial),
        SystemTime::now(),
    )
    .unwrap();
    cairn_base::atomic::write_atomic(&crl_path, listed.as_bytes(), 0o644).unwrap();
    let t = Instant::now();
    wait_put(&ep, &doomed, false, "node3 refused after revocation", &log).await;
    eprintln!("refused {:?} after the CRL was rewritten", t.elapsed());
    let e = put_with(&ep, &doomed, "again").await.unwrap_err();
    eprintln!("revoked certificate: {e}");
    put_with(&ep, &good, "still")
        .await
        .expect("the good certificate is still accepted");
}
