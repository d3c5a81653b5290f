//! A claimed node's API served over real HTTPS on loopback, for the domain modules' tests.

use crate::health::tests::{FixedNode, NoSystem};
use crate::server::Server;
use crate::state::ApiState;
use crate::tasks::{Task, TaskState};
use crate::tls::{leaf_fingerprint, server_config, tests::self_signed};
use cairn_client::{self as client, ClientRequest, ClientResponse, Fingerprint};
use hyper::Method;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Time limit of one request.
pub const T: Duration = Duration::from_secs(10);

/// The API state of a claimed node (setup done), kept under `dir`.
pub fn claimed_state(dir: &Path) -> ApiState {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(crate::setup::DONE_MARKER), "").unwrap();
    ApiState::open(Arc::new(FixedNode), Arc::new(NoSystem), dir).unwrap()
}

/// A running server and what a test needs to call it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub pin: Fingerprint,
    /// An admin API token.
    pub token: String,
    pub state: ApiState,
}

/// Serve `state` (with the domains under test already in it) on a loopback port with a
/// fresh self-signed certificate, and make an admin API token for the calls.
pub async fn serve(state: ApiState) -> TestServer {
    let (_, token) = state
        .identity
        .make_token(crate::identity::tokens::NewToken {
            user: "admin",
            name: "test",
            scope: crate::identity::tokens::Scope::Admin,
            days: crate::identity::tokens::DEFAULT_DAYS,
            parent: None,
        })
        .unwrap();
    let (cert, key) = self_signed();
    let tls = server_config(cert.as_bytes(), key.as_bytes()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(vec![listener], tls, state.clone()).unwrap();
    let addr = server.local_addrs()[0];
    tokio::spawn(server.run(std::future::pending::<()>(), Duration::from_secs(1)));
    TestServer {
        addr,
        pin: leaf_fingerprint(cert.as_bytes()).unwrap(),
        token,
        state,
    }
}

impl TestServer {
    /// One request with the token, pinned to the server's certificate.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> ClientResponse {
        let mut req = ClientRequest::new(method, path)
            .header("authorization", &format!("Bearer {}", self.token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        client::send(self.addr, req, self.pin, T).await.unwrap()
    }

    /// Poll task `id` in the registry until it finishes (bounded by 200 × 50 ms).
    pub async fn finished(&self, id: u64) -> Task {
        for _ in 0..200 {
            let t = self.state.tasks.get(id).unwrap();
            if t.state != TaskState::Running {
                return t;
            }
            // poll interval of a bounded wait for a background task
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("task {id} did not finish");
    }
}
