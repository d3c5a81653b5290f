//! The harness of the API integration tests: a real HTTPS server on loopback over a
//! temporary state directory, with a recording system and every log line captured.
#![allow(dead_code)]

use cairn_api::clock::Clock;
use cairn_api::server::ShutdownSummary;
use cairn_api::system::NodeSystem;
use cairn_api::tls::{leaf_fingerprint, server_config};
use cairn_api::{ApiState, NodeInfo, Server};
use cairn_client::Fingerprint;
use cairn_client::{self as client, ClientRequest, ClientResponse};
use cairn_core::boot::BootStatus;
use hyper::Method;
use serde_json::json;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const T: Duration = Duration::from_secs(20);
pub const CODE: &str = "6DDJ-P6FE-XZ1W";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Node;

impl NodeInfo for Node {
    fn hostname(&self) -> String {
        "cairn-sec".into()
    }
    fn uptime_s(&self) -> u64 {
        1
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

/// Records the time settings applied; fails applying them while `fail_time` is set.
#[derive(Default)]
pub struct System {
    pub applied: Mutex<Vec<(String, Vec<String>)>>,
    pub fail_time: std::sync::atomic::AtomicBool,
}

impl NodeSystem for System {
    fn set_hostname(&self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn zoneinfo_dir(&self) -> Option<PathBuf> {
        None
    }
    fn apply_time(&self, tz: &str, servers: &[String]) -> std::io::Result<()> {
        self.applied
            .lock()
            .unwrap()
            .push((tz.to_string(), servers.to_vec()));
        if self.fail_time.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("chronyd did not restart"));
        }
        Ok(())
    }
}

/// Everything the process logs (a global tracing subscriber writing here).
pub fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Writer(w.clone()))
            .init();
        buf
    })
}

pub struct Writer(Arc<Mutex<Vec<u8>>>);

impl Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct Running {
    pub addr: SocketAddr,
    pub pin: Fingerprint,
    pub system: Arc<System>,
    pub dir: tempfile::TempDir,
    /// The server's state (shares its stores with the server).
    pub state: ApiState,
    /// The clock of the sign-in limits and token expiry (manual for `start_with_clock`).
    pub clock: Clock,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<ShutdownSummary>,
}

impl Running {
    pub async fn call(&self, req: ClientRequest) -> ClientResponse {
        client::send(self.addr, req, self.pin, T).await.unwrap()
    }
    /// A request from the loopback address `source` (any 127.0.0.0/8 address), so the
    /// per-address limits see a different client.
    pub async fn call_from(&self, source: IpAddr, req: ClientRequest) -> ClientResponse {
        client::send_from(source, self.addr, req, self.pin, T)
            .await
            .unwrap()
    }
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(T, self.done).await.unwrap().unwrap();
    }
    /// Stop the server and start a new one over the same state directory and clock (as a
    /// cairnd restart does).
    pub async fn restart(self) -> Running {
        let Running {
            dir,
            clock,
            stop,
            done,
            ..
        } = self;
        stop.send(()).unwrap();
        tokio::time::timeout(T, done).await.unwrap().unwrap();
        serve(dir, clock).await
    }
}

pub async fn start() -> Running {
    start_with_clock(Clock::system()).await
}

/// A fresh node whose limits and token expiry run on `clock`.
pub async fn start_with_clock(clock: Clock) -> Running {
    log_buffer();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("setup-code"), format!("{CODE}\n")).unwrap();
    serve(dir, clock).await
}

async fn serve(dir: tempfile::TempDir, clock: Clock) -> Running {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let tls = server_config(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    let system = Arc::new(System::default());
    let state =
        ApiState::open_with_clock(Arc::new(Node), system.clone(), dir.path(), clock.clone())
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(vec![listener], tls, state.clone()).unwrap();
    let addr = server.local_addrs()[0];
    let (stop, rx) = oneshot::channel::<()>();
    let done = tokio::spawn(server.run(
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(2),
    ));
    Running {
        addr,
        pin: leaf_fingerprint(cert.pem().as_bytes()).unwrap(),
        system,
        dir,
        state,
        clock,
        stop,
        done,
    }
}

pub fn cookie_of(r: &ClientResponse) -> String {
    r.header_all("set-cookie")
        .iter()
        .find(|c| c.starts_with("cairn_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// Run setup (with one wrong code first); returns (setup token, completion response).
pub async fn set_up(s: &Running) -> (String, ClientResponse) {
    let code = |c: &str| {
        ClientRequest::new(Method::POST, "/api/v1/setup/code").json(&json!({ "code": c }))
    };
    assert_eq!(s.call(code("AAAA-BBBB-CCCC")).await.status, 401);
    let r = s.call(code(CODE)).await;
    assert_eq!(r.status, 200);
    let token = r.json()["setup_token"].as_str().unwrap().to_string();
    for (path, body) in [
        ("/api/v1/setup/password", json!({ "password": PASSWORD })),
        ("/api/v1/setup/hostname", json!({ "hostname": "sec" })),
        ("/api/v1/setup/timezone", json!({ "timezone": "UTC" })),
        ("/api/v1/setup/ntp", json!({ "servers": ["10.0.2.2"] })),
    ] {
        let r = s
            .call(
                ClientRequest::new(Method::PUT, path)
                    .header("x-setup-token", &token)
                    .json(&body),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.json());
    }
    let r = s
        .call(
            ClientRequest::new(Method::POST, "/api/v1/setup/complete")
                .header("x-setup-token", &token),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    (token, r)
}
