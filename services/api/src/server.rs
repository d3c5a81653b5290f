//! The HTTPS server: accept loops, connection caps, TLS handshakes, HTTP/1.1 and HTTP/2 with
//! a deadline on every phase of a connection (see [`crate::conn`]), graceful shutdown.

use crate::conn::{self, Activity, CloseReason, Ended, Limits, Tracked, Tracker, Watched};
use crate::exchange::handle;
use crate::response::Body;
use crate::state::ApiState;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use crate::conn::{HANDSHAKE_TIMEOUT, HEADER_TIMEOUT};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot read the local address of a listener")]
    LocalAddr(#[source] std::io::Error),
}

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownSummary {
    /// All in-flight connections finished within the grace period.
    pub drained: bool,
}

/// An HTTPS API server over already-bound listeners.
pub struct Server {
    listeners: Vec<(TcpListener, SocketAddr)>,
    acceptor: TlsAcceptor,
    state: ApiState,
    limits: Limits,
    tracker: Arc<Tracker>,
}

impl Server {
    /// A server on `listeners` with the TLS configuration `tls` and the default limits (the
    /// total connection cap fitted to the process's open-files limit).
    pub fn new(
        listeners: Vec<TcpListener>,
        tls: Arc<ServerConfig>,
        state: ApiState,
    ) -> Result<Self, ServerError> {
        let listeners = listeners
            .into_iter()
            .map(|l| {
                let addr = l.local_addr().map_err(ServerError::LocalAddr)?;
                Ok((l, addr))
            })
            .collect::<Result<Vec<_>, ServerError>>()?;
        Ok(Server {
            listeners,
            acceptor: TlsAcceptor::from(tls),
            state,
            limits: Limits::default(),
            tracker: Tracker::new(&Limits::default()),
        }
        .with_limits(Limits::default()))
    }

    /// The same server with other deadlines and caps (the total connection cap is still
    /// fitted to the process's open-files limit).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = match conn::open_files_limit() {
            Some(n) => limits.fit_open_files(n),
            None => limits,
        };
        self.tracker = Tracker::new(&self.limits);
        self
    }

    /// The deadlines and caps in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The server's count of open connections (for tests and diagnostics).
    pub fn connections(&self) -> Arc<Tracker> {
        self.tracker.clone()
    }

    /// The addresses the server listens on (with the real port when bound to port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, a)| *a).collect()
    }

    /// Serve until `shutdown` completes; then stop accepting, let in-flight connections
    /// finish for at most `grace`, and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) -> ShutdownSummary {
        let state = self.state;
        let events = state.events.clone();
        let limits = self.limits;
        let listeners: Vec<TcpListener> = self.listeners.into_iter().map(|(l, _)| l).collect();
        serve(
            Served {
                listeners,
                acceptor: self.acceptor,
                limits,
                tracker: self.tracker,
            },
            shutdown,
            grace,
            move || events.close(),
            move |req, info| {
                let state = state.clone();
                async move { handle(&state, info.peer, req, &limits).await }
            },
        )
        .await
    }
}

/// What a handler knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The certificate chain the client presented in the TLS handshake (leaf first), when
    /// the server asked for one and it was given (the cluster port; never on the main API).
    pub client_certs: Option<Vec<CertificateDer<'static>>>,
}

/// The listening side of a server: its sockets, TLS, limits and connection count.
pub struct Served {
    pub listeners: Vec<TcpListener>,
    pub acceptor: TlsAcceptor,
    pub limits: Limits,
    pub tracker: Arc<Tracker>,
}

/// Accept connections on `served` and answer each request with `handler` until `shutdown`
/// completes; then stop accepting, run `on_stop`, let in-flight connections finish for at
/// most `grace`, and return. The main API and the cluster port both run on this.
pub async fn serve<H, F>(
    served: Served,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    on_stop: impl FnOnce(),
    handler: H,
) -> ShutdownSummary
where
    H: Fn(Request<Incoming>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let Served {
        listeners,
        acceptor,
        limits,
        tracker,
    } = served;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = accept_any(&listeners) => a,
        };
        match accepted {
            Ok((tcp, peer)) => match tracker.open(peer.ip()) {
                Ok(slot) => {
                    tokio::spawn(connection(
                        tcp,
                        peer,
                        slot,
                        acceptor.clone(),
                        limits,
                        stop_rx.clone(),
                        handler.clone(),
                    ));
                }
                // Over its share: closed at once, before any TLS work.
                Err(why) => {
                    drop(tcp);
                    tracker.log_refusal(peer, why);
                }
            },
            Err(e) => {
                // Out of file descriptors and the like: log, pause briefly so the loop
                // does not spin, and keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listeners);
    tracing::info!("shutting down: no new connections");
    on_stop();
    let _ = stop_tx.send(true);
    let open = tracker.total();
    let drained = tokio::time::timeout(grace, tracker.all_closed())
        .await
        .is_ok();
    if drained {
        tracing::info!("all {open} open connections finished");
    } else {
        tracing::warn!(
            "connections still open after {} ms; closing them",
            grace.as_millis()
        );
    }
    ShutdownSummary { drained }
}

/// Accept from whichever listener has a connection first.
async fn accept_any(
    listeners: &[TcpListener],
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for l in listeners {
            if let std::task::Poll::Ready(r) = l.poll_accept(cx) {
                return std::task::Poll::Ready(r);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// One connection: TLS handshake (abandoned on shutdown or after its deadline), then HTTP
/// until the client is done, a deadline passes, or graceful shutdown closes it. `_slot`
/// keeps it counted against its address and the total until it ends.
async fn connection<H, F>(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    _slot: conn::Slot,
    acceptor: TlsAcceptor,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(Request<Incoming>, Arc<ConnInfo>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(limits.handshake, acceptor.accept(tcp));
    let tls = tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
        h = handshake => match h {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not done within {:?}", limits.handshake);
                return;
            }
        },
    };
    let info = Arc::new(ConnInfo {
        peer,
        client_certs: tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect()),
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.headers)
        .max_buf_size(conn::HTTP1_MAX_BUF)
        .max_headers(conn::HTTP1_MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.h2_ping_interval))
        .keep_alive_timeout(limits.h2_ping_timeout)
        .max_header_list_size(conn::HTTP2_MAX_HEADER_LIST);
    let activity = Activity::new();
    let handler = Arc::new(handler);
    let svc = service_fn({
        let activity = activity.clone();
        move |req| {
            let in_flight = activity.begin();
            let answer = handler(req, info.clone());
            async move {
                let resp = answer.await;
                Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, in_flight)))
            }
        }
    });
    let conn = builder.serve_connection(TokioIo::new(Watched::new(tls, activity.clone())), svc);
    tokio::pin!(conn);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let ended = conn::watch(conn.as_mut(), &activity, &limits, stopped, |c, why| {
        if why == CloseReason::Idle {
            tracing::debug!(%peer, "closing an idle connection");
        }
        c.graceful_shutdown();
    })
    .await;
    match ended {
        Ended::Finished(Ok(())) => {}
        Ended::Finished(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        Ended::SendTimeout => tracing::debug!(
            %peer,
            "dropped a connection: the client took nothing for {:?}",
            limits.send
        ),
        Ended::CloseTimeout => tracing::debug!(
            %peer,
            "dropped a connection still closing after {:?}",
            limits.close_grace
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::tests::FixedNode;
    use crate::system::NodeSystem;
    use crate::tls::{leaf_fingerprint, server_config, tests::self_signed};
    use crate::{setup, ui};
    use cairn_client::{self as client, ClientRequest, ClientResponse, Fingerprint};
    use hyper::Method;
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    const T: Duration = Duration::from_secs(10);
    const CODE: &str = "6DDJ-P6FE-XZ1W";
    const PASSWORD: &str = "correct horse battery";

    /// Records hostnames instead of setting them.
    #[derive(Default)]
    struct TestSystem(Mutex<Vec<String>>);

    impl NodeSystem for TestSystem {
        fn set_hostname(&self, name: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(name.to_string());
            Ok(())
        }
        fn zoneinfo_dir(&self) -> Option<PathBuf> {
            None
        }
    }

    struct Running {
        addr: SocketAddr,
        pin: Fingerprint,
        state: ApiState,
        system: Arc<TestSystem>,
        dir: tempfile::TempDir,
        stop: oneshot::Sender<()>,
        done: tokio::task::JoinHandle<ShutdownSummary>,
    }

    impl Running {
        async fn call(&self, req: ClientRequest) -> ClientResponse {
            client::send(self.addr, req, self.pin, T).await.unwrap()
        }

        async fn get(&self, path: &str) -> ClientResponse {
            self.call(ClientRequest::new(Method::GET, path)).await
        }
    }

    async fn start() -> Running {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(setup::CODE_FILE), format!("{CODE}\n")).unwrap();
        let (cert, key) = self_signed();
        let tls = server_config(cert.as_bytes(), key.as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let system = Arc::new(TestSystem::default());
        let state = ApiState::open(Arc::new(FixedNode), system.clone(), dir.path()).unwrap();
        let server = Server::new(vec![listener], tls, state.clone()).unwrap();
        let addr = server.local_addrs()[0];
        let (stop, stop_rx) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_secs(2),
        ));
        Running {
            addr,
            pin: leaf_fingerprint(cert.as_bytes()).unwrap(),
            state,
            system,
            dir,
            stop,
            done,
        }
    }

    fn put(path: &str, token: &str, body: serde_json::Value) -> ClientRequest {
        ClientRequest::new(Method::PUT, path)
            .header(setup::TOKEN_HEADER, token)
            .json(&body)
    }

    /// Run every setup step; returns the completion response.
    async fn set_up(s: &Running) -> ClientResponse {
        let r = s
            .call(
                ClientRequest::new(Method::POST, "/api/v1/setup/code").json(&json!({"code": CODE})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let token = r.json()["setup_token"].as_str().unwrap().to_string();
        for (path, body) in [
            ("/api/v1/setup/password", json!({"password": PASSWORD})),
            ("/api/v1/setup/hostname", json!({"hostname": "nas-01"})),
            (
                "/api/v1/setup/timezone",
                json!({"timezone": "Europe/Berlin"}),
            ),
            ("/api/v1/setup/ntp", json!({"servers": ["pool.ntp.org"]})),
        ] {
            let r = s.call(put(path, &token, body)).await;
            assert_eq!(r.status, 200, "{path}: {:?}", r.json());
        }
        let r = s
            .call(
                ClientRequest::new(Method::POST, "/api/v1/setup/complete")
                    .header(setup::TOKEN_HEADER, &token),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        r
    }

    /// The session cookie (`name=value`) set by a response.
    fn session_cookie(r: &ClientResponse) -> String {
        let set = r.header_all("set-cookie");
        let c = set
            .iter()
            .find(|c| c.starts_with("cairn_session="))
            .expect("session cookie");
        c.split(';').next().unwrap().to_string()
    }

    async fn login(s: &Running, cookie: Option<&str>) -> ClientResponse {
        let mut req = ClientRequest::new(Method::POST, "/api/v1/auth/login")
            .json(&json!({"username": "admin", "password": PASSWORD}));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        s.call(req).await
    }

    /// An image upload's body is not read before its route, caller and domain are checked:
    /// a body well over the JSON limit gets 401 without a session and 503 (the VM domain
    /// is not running here) with one, never 413.
    #[tokio::test]
    async fn an_upload_is_routed_before_its_body_is_read() {
        let s = start().await;
        let path = "/api/v1/pools/tank/images/uploads/0a1b?offset=0";
        let big = vec![0u8; 4 * crate::exchange::MAX_BODY];
        let put = |extra: Option<(&str, &str)>| {
            let mut r = ClientRequest::new(Method::PUT, path)
                .header("content-type", "application/octet-stream");
            if let Some((k, v)) = extra {
                r = r.header(k, v);
            }
            ClientRequest {
                body: Some(big.clone()),
                ..r
            }
        };
        assert_eq!(s.call(put(None)).await.status, 403, "not claimed yet");
        let done = set_up(&s).await;
        let cookie = session_cookie(&done);
        let csrf = done.json()["csrf_token"].as_str().unwrap().to_string();
        assert_eq!(s.call(put(None)).await.status, 401);
        let r = s.call(put(Some(("cookie", &cookie)))).await;
        assert_eq!(
            r.status,
            403,
            "a session needs its CSRF token: {:?}",
            r.json()
        );
        let mut req = put(Some(("cookie", &cookie)));
        req = req.header("x-csrf-token", &csrf);
        let r = s.call(req).await;
        assert_eq!(r.status, 503, "{:?}", r.json());
        assert!(r.json()["message"].as_str().unwrap().contains("VM"));
    }

    #[tokio::test]
    async fn health_over_https() {
        let s = start().await;
        let r = s.get("/api/v1/health").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["status"], "ok");
        assert_eq!(v["hostname"], "cairn-abc123");
        assert_eq!(v["boot"]["failed_attempts"][0]["tries"], 3);
        assert_eq!(r.header_all("x-content-type-options"), vec!["nosniff"]);
        s.stop.send(()).unwrap();
        assert!(s.done.await.unwrap().drained);
    }

    #[tokio::test]
    async fn unclaimed_node_answers_only_setup() {
        let s = start().await;
        for path in [
            "/api/v1/tasks",
            "/api/v1/tasks/1",
            "/api/v1/events",
            "/api/v1/auth/me",
            "/api/v1/nope",
            "/favicon.ico",
            "/index.html",
        ] {
            let r = s.get(path).await;
            assert_eq!(r.status, 403, "{path}");
            assert_eq!(r.json()["code"], "not_claimed", "{path}");
        }
        let r = login(&s, None).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (403, json!("not_claimed"))
        );
        assert_eq!(s.get("/api/v1/openapi.json").await.status, 200);
        let r = s.get("/api/v1/setup").await;
        assert_eq!(r.json(), json!({"claimed": false, "progress": null}));
        let r = s
            .call(ClientRequest::new(Method::POST, "/api/v1/health"))
            .await;
        assert_eq!(r.status, 405);
        let _ = s.stop.send(());
    }

    /// The UI's files are public: they answer on an unclaimed node, with their content
    /// type, the CSP and revalidation headers; a missing one is a plain 404.
    #[tokio::test]
    async fn ui_is_served_before_and_after_setup() {
        let s = start().await;
        for claimed in [false, true] {
            for (path, ct, needle) in [
                (
                    "/",
                    "text/html; charset=utf-8",
                    "<script type=\"module\" src=\"/ui/app.js\">",
                ),
                ("/ui/app.js", "text/javascript; charset=utf-8", "import"),
                (
                    "/ui/setup.js",
                    "text/javascript; charset=utf-8",
                    "export function renderSetup",
                ),
                ("/ui/style.css", "text/css; charset=utf-8", ":root"),
                ("/ui/icon.svg", "image/svg+xml", "<svg"),
            ] {
                let r = s.get(path).await;
                assert_eq!(r.status, 200, "{path} (claimed: {claimed})");
                assert_eq!(r.header_all("content-type"), vec![ct], "{path}");
                assert_eq!(
                    r.header_all("content-security-policy"),
                    vec![ui::CSP],
                    "{path}"
                );
                assert!(ui::CSP.starts_with("default-src 'self'"));
                assert_eq!(r.header_all("cache-control"), vec!["no-cache"], "{path}");
                assert_eq!(r.header_all("x-frame-options"), vec!["DENY"], "{path}");
                assert!(String::from_utf8_lossy(&r.body).contains(needle), "{path}");
                let etag = r.header_all("etag")[0].clone();
                let again = s
                    .call(ClientRequest::new(Method::GET, path).header("if-none-match", &etag))
                    .await;
                assert_eq!(again.status, 304, "{path}");
                assert!(again.body.is_empty());
                assert_eq!(again.header_all("etag"), vec![etag]);
            }
            for path in ["/ui/missing.js", "/ui/a/b", "/ui/"] {
                let r = s.get(path).await;
                assert_eq!(
                    (r.status.as_u16(), r.json()["code"].clone()),
                    (404, json!("not_found")),
                    "{path} (claimed: {claimed})"
                );
            }
            let r = s.get("/api/v1/timezones").await;
            assert_eq!(r.status, 200, "{:?}", r.json());
            assert_eq!(
                r.json()["zones"],
                json!([]),
                "the test system has no tz database"
            );
            let r = s.call(ClientRequest::new(Method::POST, "/")).await;
            assert_eq!(r.status, 405);
            if !claimed {
                assert_eq!(
                    s.get("/api/v1/tasks").await.status,
                    403,
                    "the gate still holds"
                );
                set_up(&s).await;
            }
        }
        let _ = s.stop.send(());
    }

    #[tokio::test]
    async fn me_gives_a_session_its_csrf_token() {
        let s = start().await;
        let done = set_up(&s).await;
        let cookie = session_cookie(&done);
        let r = s
            .call(ClientRequest::new(Method::GET, "/api/v1/auth/me").header("cookie", &cookie))
            .await;
        assert_eq!(r.json()["csrf_token"], done.json()["csrf_token"]);
        let _ = s.stop.send(());
    }

    #[tokio::test]
    async fn setup_validates_each_step_and_resumes() {
        let s = start().await;
        let code = |c: &str| {
            ClientRequest::new(Method::POST, "/api/v1/setup/code").json(&json!({"code": c}))
        };
        let mut plain = code("AAAA-BBBB-CCCC");
        plain.headers.retain(|(k, _)| k != "content-type");
        let r = s.call(plain.header("content-type", "text/plain")).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (415, json!("unsupported_media_type"))
        );
        let r = s.call(code("AAAA-BBBB-CCCC")).await;
        assert_eq!(r.status, 401);
        assert_eq!(
            (r.json()["code"].clone(), r.json()["field"].clone()),
            (json!("wrong_code"), json!("code"))
        );
        let r = s
            .call(put(
                "/api/v1/setup/hostname",
                "nope",
                json!({"hostname": "x"}),
            ))
            .await;
        assert_eq!(r.status, 401, "steps need the setup token");
        let r = s.call(code(&CODE.to_lowercase())).await;
        assert_eq!(r.status, 200);
        let token = r.json()["setup_token"].as_str().unwrap().to_string();
        let bad = [
            (
                "/api/v1/setup/password",
                json!({"password": "short"}),
                "password",
            ),
            (
                "/api/v1/setup/hostname",
                json!({"hostname": "bad_name"}),
                "hostname",
            ),
            (
                "/api/v1/setup/timezone",
                json!({"timezone": "../etc"}),
                "timezone",
            ),
            (
                "/api/v1/setup/ntp",
                json!({"servers": ["ok.org", "no way"]}),
                "servers[1]",
            ),
        ];
        for (path, body, field) in bad {
            let r = s.call(put(path, &token, body)).await;
            assert_eq!(r.status, 422, "{path}");
            assert_eq!(r.json()["field"], field, "{path}");
            assert!(!r.json()["message"].as_str().unwrap().is_empty());
        }
        let r = s
            .call(put(
                "/api/v1/setup/hostname",
                &token,
                json!({"hostname": "x", "extra": 1}),
            ))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (400, json!("extra"))
        );
        let r = s
            .call(put(
                "/api/v1/setup/hostname",
                &token,
                json!({"hostname": "NAS-01"}),
            ))
            .await;
        assert_eq!(r.json()["progress"]["hostname"], "nas-01");
        let r = s
            .call(
                ClientRequest::new(Method::POST, "/api/v1/setup/complete")
                    .header(setup::TOKEN_HEADER, &token),
            )
            .await;
        assert_eq!(r.status, 409);
        assert_eq!(
            (r.json()["code"].clone(), r.json()["field"].clone()),
            (json!("setup_incomplete"), json!("password"))
        );

        // An interrupted setup resumes: a new API state over the same directory keeps the
        // progress and the token.
        let again = ApiState::open(Arc::new(FixedNode), s.system.clone(), s.dir.path()).unwrap();
        assert!(!again.identity.setup().is_claimed());
        let saved = std::fs::read_to_string(s.dir.path().join(setup::PROGRESS_FILE)).unwrap();
        assert!(
            saved.contains("nas-01") && !saved.contains(&token),
            "token kept hashed"
        );
        let r = s
            .call(
                ClientRequest::new(Method::GET, "/api/v1/setup")
                    .header(setup::TOKEN_HEADER, &token),
            )
            .await;
        assert_eq!(r.json()["progress"]["hostname"], "nas-01");
        assert_eq!(r.json()["progress"]["password_set"], false);
        let _ = s.stop.send(());
    }

    #[tokio::test]
    async fn completing_setup_claims_the_node_and_retires_the_code() {
        let s = start().await;
        let r = set_up(&s).await;
        assert_eq!(r.json()["user"], "admin");
        assert!(s.state.identity.setup().is_claimed());
        let dir = s.dir.path();
        assert!(dir.join(setup::DONE_MARKER).exists());
        assert!(!dir.join(setup::CODE_FILE).exists());
        assert!(!dir.join(setup::PROGRESS_FILE).exists());
        assert_eq!(
            std::fs::read_to_string(dir.join(setup::HOSTNAME_FILE)).unwrap(),
            "nas-01\n"
        );
        let node: setup::NodeConfig =
            serde_json::from_slice(&std::fs::read(dir.join(setup::NODE_FILE)).unwrap()).unwrap();
        assert_eq!(node.timezone, "Europe/Berlin");
        assert_eq!(node.ntp_servers, vec!["pool.ntp.org"]);
        assert_eq!(*s.system.0.lock().unwrap(), vec!["nas-01".to_string()]);
        let users = std::fs::read_to_string(dir.join(crate::identity::users::FILE_NAME)).unwrap();
        assert!(users.contains("$argon2id$") && !users.contains(PASSWORD));
        let r = s
            .call(
                ClientRequest::new(Method::POST, "/api/v1/setup/code").json(&json!({"code": CODE})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (409, json!("already_set_up"))
        );
        assert_eq!(
            s.get("/api/v1/setup").await.json(),
            json!({"claimed": true, "progress": null})
        );
        let r = s.get("/api/v1/tasks").await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (401, json!("unauthorized"))
        );
        // The completion signed the admin in.
        let cookie = session_cookie(&r_or(&s, r).await);
        let r = s
            .call(ClientRequest::new(Method::GET, "/api/v1/auth/me").header("cookie", &cookie))
            .await;
        assert_eq!(r.json()["user"], "admin");
        let _ = s.stop.send(());
    }

    /// The completion response is consumed above; sign in again to get a cookie.
    async fn r_or(s: &Running, _: ClientResponse) -> ClientResponse {
        login(s, None).await
    }

    #[tokio::test]
    async fn sessions_csrf_rotation_logout_and_password_change() {
        let s = start().await;
        let done = set_up(&s).await;
        let setup_cookie = session_cookie(&done);
        let set = done.header_all("set-cookie").join(";");
        for attr in [
            "HttpOnly",
            "Secure",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=",
        ] {
            assert!(set.contains(attr), "{attr} in {set}");
        }
        let r = login(&s, Some(&setup_cookie)).await;
        assert_eq!(r.status, 200);
        let cookie = session_cookie(&r);
        assert_ne!(cookie, setup_cookie, "a new session id on login");
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        let me = |c: &str| ClientRequest::new(Method::GET, "/api/v1/auth/me").header("cookie", c);
        assert_eq!(
            s.call(me(&setup_cookie)).await.status,
            401,
            "old session ended"
        );
        assert_eq!(s.call(me(&cookie)).await.json()["auth"], "session");

        let create = |c: &str| {
            ClientRequest::new(Method::POST, "/api/v1/auth/tokens")
                .header("cookie", c)
                .json(&json!({"name": "laptop"}))
        };
        let r = s.call(create(&cookie)).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (403, json!("csrf"))
        );
        let r = s
            .call(create(&cookie).header("x-csrf-token", "wrong"))
            .await;
        assert_eq!(r.status, 403);
        let r = s.call(create(&cookie).header("x-csrf-token", &csrf)).await;
        assert_eq!(r.status, 201);

        let change = |cur: &str, new: &str| {
            ClientRequest::new(Method::PUT, "/api/v1/auth/password")
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&json!({"current_password": cur, "new_password": new}))
        };
        let r = s.call(change(PASSWORD, "short")).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("new_password"))
        );
        let r = s
            .call(change("not the password", "another long password"))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (403, json!("current_password"))
        );
        let other = session_cookie(&login(&s, None).await);
        let r = s.call(change(PASSWORD, "another long password")).await;
        assert_eq!(r.status, 204);
        assert_eq!(s.call(me(&other)).await.status, 401, "other sessions ended");
        assert_eq!(s.call(me(&cookie)).await.status, 200, "this one kept");
        assert_eq!(login(&s, None).await.status, 401, "old password refused");

        let logout =
            ClientRequest::new(Method::POST, "/api/v1/auth/logout").header("cookie", &cookie);
        assert_eq!(
            s.call(logout.clone()).await.status,
            403,
            "logout needs CSRF too"
        );
        let r = s.call(logout.header("x-csrf-token", &csrf)).await;
        assert_eq!(r.status, 204);
        assert!(r.header_all("set-cookie")[0].contains("Max-Age=0"));
        assert_eq!(s.call(me(&cookie)).await.status, 401);
        let _ = s.stop.send(());
    }

    #[tokio::test]
    async fn api_tokens_and_tasks() {
        let s = start().await;
        let done = set_up(&s).await;
        let cookie = session_cookie(&done);
        let csrf = done.json()["csrf_token"].as_str().unwrap().to_string();
        let r = s
            .call(
                ClientRequest::new(Method::POST, "/api/v1/auth/tokens")
                    .header("cookie", &cookie)
                    .header("x-csrf-token", &csrf)
                    .json(&json!({"name": " "})),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (422, json!("name"))
        );
        let r = s
            .call(
                ClientRequest::new(Method::POST, "/api/v1/auth/tokens")
                    .header("cookie", &cookie)
                    .header("x-csrf-token", &csrf)
                    .json(&json!({"name": "cli"})),
            )
            .await;
        let token = r.json()["token"].as_str().unwrap().to_string();
        let id = r.json()["id"].as_str().unwrap().to_string();
        let bearer = format!("Bearer {token}");
        let me = s
            .call(
                ClientRequest::new(Method::GET, "/api/v1/auth/me").header("authorization", &bearer),
            )
            .await;
        assert_eq!(
            me.json(),
            json!({"user": "admin", "auth": "token", "token_id": id,
                "expires": r.json()["expires"], "scope": "admin"})
        );
        let list = s
            .call(
                ClientRequest::new(Method::GET, "/api/v1/auth/tokens")
                    .header("authorization", &bearer),
            )
            .await;
        assert_eq!(list.json()["tokens"][0]["name"], "cli");
        assert!(!list
            .body
            .windows(token.len())
            .any(|w| w == token.as_bytes()));

        let task = s.state.tasks.start("pool.create", "building");
        task.progress(30, "syncing");
        let r = s
            .call(
                ClientRequest::new(Method::GET, &format!("/api/v1/tasks/{}", task.id()))
                    .header("authorization", &bearer),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            (r.json()["progress"].clone(), r.json()["state"].clone()),
            (json!(30), json!("running"))
        );
        let r = s
            .call(ClientRequest::new(Method::GET, "/api/v1/tasks").header("authorization", &bearer))
            .await;
        assert_eq!(r.json()["tasks"][0]["kind"], "pool.create");
        let r = s
            .call(
                ClientRequest::new(Method::GET, "/api/v1/tasks/999")
                    .header("authorization", &bearer),
            )
            .await;
        assert_eq!(r.status, 404);

        // Bearer requests need no CSRF token; a revoked token stops working.
        let del = ClientRequest::new(Method::DELETE, &format!("/api/v1/auth/tokens/{id}"))
            .header("authorization", &bearer);
        assert_eq!(s.call(del.clone()).await.status, 204);
        let r = s.call(del).await;
        assert_eq!(r.status, 401);
        let r = s
            .call(
                ClientRequest::new(Method::GET, "/api/v1/auth/me")
                    .header("authorization", "Bearer cairn_00"),
            )
            .await;
        assert_eq!(r.status, 401);
        let _ = s.stop.send(());
    }

    #[tokio::test]
    async fn events_stream_task_progress_over_https() {
        let s = start().await;
        let done = set_up(&s).await;
        let cookie = session_cookie(&done);
        let mut events = client::stream(
            s.addr,
            ClientRequest::new(Method::GET, "/api/v1/events").header("cookie", &cookie),
            s.pin,
            T,
        )
        .await
        .unwrap();
        // The handler subscribes before it answers, so nothing published from now is missed.
        assert_eq!(events.status, 200);
        let task = s.state.tasks.start("scrub", "reading");
        task.progress(50, "half way");
        task.succeed("clean");
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let ev = tokio::time::timeout(T, events.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(ev.event, "task");
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            seen.push((
                v["progress"].as_u64().unwrap(),
                v["state"].as_str().unwrap().to_string(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                (0, "running".into()),
                (50, "running".into()),
                (100, "succeeded".into())
            ]
        );
        s.state
            .alerts
            .raise("pool/tank", crate::events::AlertLevel::Warning, "degraded");
        let list = s
            .call(ClientRequest::new(Method::GET, "/api/v1/alerts").header("cookie", &cookie))
            .await;
        assert_eq!(list.json()["active"][0]["key"], "pool/tank");
        assert_eq!(list.json()["recent"][0]["state"], "raised");
        let ev = tokio::time::timeout(T, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.event, "alert");
        // Shutdown ends the stream, so connections drain.
        s.stop.send(()).unwrap();
        assert_eq!(
            tokio::time::timeout(T, events.next())
                .await
                .unwrap()
                .unwrap(),
            None
        );
        assert!(s.done.await.unwrap().drained);
    }

    /// Poll a task until it ends.
    async fn finished_task(s: &Running, id: u64) -> crate::tasks::Task {
        for _ in 0..200 {
            let t = s.state.tasks.get(id).unwrap();
            if t.state != crate::tasks::TaskState::Running {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {id} did not finish");
    }

    #[tokio::test]
    async fn alert_channels_validate_test_and_deliver() {
        let s = start().await;
        let done = set_up(&s).await;
        let cookie = session_cookie(&done);
        let csrf = done.json()["csrf_token"].as_str().unwrap().to_string();
        let put = |path: &str, body: serde_json::Value| {
            ClientRequest::new(Method::PUT, path)
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
                .json(&body)
        };
        let post = |path: &str| {
            ClientRequest::new(Method::POST, path)
                .header("cookie", &cookie)
                .header("x-csrf-token", &csrf)
        };
        let r = s.call(post("/api/v1/alerts/channels/webhook/test")).await;
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (409, json!("not_configured"))
        );
        for (body, field) in [
            (json!({"url": "ftp://x"}), "url"),
            (json!({"url": "https://x.org", "min_level": "loud"}), ""),
        ] {
            let r = s.call(put("/api/v1/alerts/channels/webhook", body)).await;
            assert!(r.status == 422 || r.status == 400, "{:?}", r.json());
            if !field.is_empty() {
                assert_eq!(r.json()["field"], field);
            }
        }
        for (body, field) in [
            (
                json!({"host": "bad host", "from": "a@x.org", "to": ["b@x.org"]}),
                "host",
            ),
            (
                json!({"host": "smtp.x.org", "from": "nope", "to": ["b@x.org"]}),
                "from",
            ),
            (
                json!({"host": "smtp.x.org", "from": "a@x.org", "to": ["b@x.org", "c d"]}),
                "to[1]",
            ),
            (
                json!({"host": "smtp.x.org", "from": "a@x.org", "to": []}),
                "to",
            ),
            (
                json!({"host": "smtp.x.org", "from": "a@x.org", "to": ["b@x.org"], "username": "u"}),
                "password",
            ),
            (
                json!({"host": "smtp.x.org", "from": "a@x.org", "to": ["b@x.org"], "username": "u", "password": "p", "security": "none"}),
                "security",
            ),
        ] {
            let r = s.call(put("/api/v1/alerts/channels/email", body)).await;
            assert_eq!(
                (r.status.as_u16(), r.json()["field"].clone()),
                (422, json!(field))
            );
        }

        // Webhook: the test action is a task; real alerts go out through the delivery loop.
        let delivery =
            cairn_alert_delivery::spawn_delivery(s.state.channels.clone(), &s.state.events);
        let (port, hook) = cairn_alert_delivery::testing::one_request(200).await;
        let url = format!("http://127.0.0.1:{port}/hook");
        let r = s
            .call(put(
                "/api/v1/alerts/channels/webhook",
                json!({"url": url, "min_level": "critical"}),
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        let r = s.call(post("/api/v1/alerts/channels/webhook/test")).await;
        assert_eq!(r.status, 202);
        let t = finished_task(&s, r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(
            (t.state, t.message.as_str()),
            (crate::tasks::TaskState::Succeeded, "test alert delivered")
        );
        let (_, body) = hook.await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["test"].clone(), v["node"].clone()),
            (json!(true), json!("cairn-abc123"))
        );

        let (port, hook) = cairn_alert_delivery::testing::one_request(200).await;
        let url = format!("http://127.0.0.1:{port}/hook");
        s.call(put(
            "/api/v1/alerts/channels/webhook",
            json!({"url": url, "min_level": "critical"}),
        ))
        .await;
        s.state.alerts.raise(
            "disk/a",
            crate::events::AlertLevel::Warning,
            "below the channel's level",
        );
        s.state.alerts.raise(
            "pool/tank",
            crate::events::AlertLevel::Critical,
            "pool tank is degraded",
        );
        let (_, body) = tokio::time::timeout(T, hook).await.unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (v["key"].clone(), v["state"].clone(), v["test"].clone()),
            (json!("pool/tank"), json!("raised"), json!(false))
        );

        // Email over STARTTLS to a scripted server; the password is kept but never shown.
        let (acceptor, client) = cairn_alert_delivery::testing::test_pki();
        s.state.channels.trust(client);
        let (port, smtp) = cairn_alert_delivery::testing::server(Some(acceptor)).await;
        let r = s
            .call(put(
                "/api/v1/alerts/channels/email",
                json!({"host": "localhost", "port": port, "username": "u", "password": "p",
                       "from": "nas@example.com", "to": ["ops@example.com"]}),
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["email"]["password_set"], true);
        assert!(!String::from_utf8_lossy(&r.body).contains("\"password\""));
        let r = s
            .call(put(
                "/api/v1/alerts/channels/email",
                json!({"host": "localhost", "port": port, "username": "u",
                       "from": "nas@example.com", "to": ["ops@example.com"], "min_level": "info"}),
            ))
            .await;
        assert_eq!(
            r.json()["email"]["password_set"],
            true,
            "kept for the same user"
        );
        let r = s.call(post("/api/v1/alerts/channels/email/test")).await;
        let t = finished_task(&s, r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(t.state, crate::tasks::TaskState::Succeeded, "{}", t.message);
        let seen = smtp.await.unwrap();
        assert!(seen
            .data
            .contains("Subject: [cairn-abc123] TEST: Test alert from cairn-abc123"));
        let r = s
            .call(
                ClientRequest::new(Method::GET, "/api/v1/alerts/channels")
                    .header("cookie", &cookie),
            )
            .await;
        assert_eq!(r.json()["email"]["last"]["ok"], true);
        assert_eq!(r.json()["webhook"]["last"]["ok"], true);

        // A failing channel says why in its last delivery.
        let r = s.call(post("/api/v1/alerts/channels/email/test")).await;
        let t = finished_task(&s, r.json()["id"].as_u64().unwrap()).await;
        assert_eq!(t.state, crate::tasks::TaskState::Failed);
        assert!(
            t.message.contains("cannot connect to localhost"),
            "{}",
            t.message
        );
        let saved =
            std::fs::read_to_string(s.dir.path().join(cairn_alert_delivery::channels::FILE_NAME))
                .unwrap();
        assert!(saved.contains("\"password\": \"p\""));
        s.stop.send(()).unwrap();
        tokio::time::timeout(T, s.done).await.unwrap().unwrap();
        tokio::time::timeout(T, delivery).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn wrong_pin_is_refused() {
        let s = start().await;
        let wrong = Fingerprint::of_der(b"another certificate");
        let err = client::get(s.addr, "/api/v1/health", wrong, T)
            .await
            .unwrap_err();
        match err {
            client::ClientError::Handshake(_, seen, _) => assert_eq!(seen, s.pin.to_string()),
            other => panic!("expected a handshake error, got {other}"),
        }
        assert_eq!(client::fetch_fingerprint(s.addr, T).await.unwrap(), s.pin);
        let _ = s.stop.send(());
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let s = start().await;
        s.stop.send(()).unwrap();
        let summary = tokio::time::timeout(T, s.done).await.unwrap().unwrap();
        assert!(summary.drained);
        let err = client::get(s.addr, "/api/v1/health", s.pin, T)
            .await
            .unwrap_err();
        assert!(matches!(err, client::ClientError::Connect(..)), "{err}");
    }
}
