//! The HTTPS server: accept loops, TLS handshakes, HTTP/1.1 and HTTP/2, graceful shutdown.

use crate::response::Body;
use crate::router::{route, Action};
use crate::state::ApiState;
use crate::{health, router};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take for its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

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
}

impl Server {
    /// A server on `listeners` with the TLS configuration `tls`.
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
        })
    }

    /// The addresses the server listens on (with the real port when bound to port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(_, a)| *a).collect()
    }

    /// Serve until `shutdown` completes; then stop accepting, let in-flight connections
    /// finish for at most `grace`, and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) -> ShutdownSummary {
        let graceful = GracefulShutdown::new();
        let (stop_tx, stop_rx) = watch::channel(false);
        let listeners: Vec<TcpListener> = self.listeners.into_iter().map(|(l, _)| l).collect();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = accept_any(&listeners) => a,
            };
            match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(connection(
                        tcp,
                        peer,
                        self.acceptor.clone(),
                        self.state.clone(),
                        graceful.watcher(),
                        stop_rx.clone(),
                    ));
                }
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
        let _ = stop_tx.send(true);
        let open = graceful.count();
        let drained = tokio::time::timeout(grace, graceful.shutdown())
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

/// One connection: TLS handshake (abandoned on shutdown or after a deadline), then HTTP
/// until the client is done or graceful shutdown closes it.
async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    state: ApiState,
    watcher: Watcher,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        _ = stop.wait_for(|s| *s) => return,
        h = handshake => match h {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not done within {HANDSHAKE_TIMEOUT:?}");
                return;
            }
        },
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, req)) }
    });
    let conn = builder.serve_connection(TokioIo::new(tls), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Route a request and run its action.
pub fn handle(state: &ApiState, req: Request<Incoming>) -> Response<Body> {
    let resp = match route(req.method(), req.uri().path()) {
        Ok(action) => dispatch(state, action),
        Err(e) => e.into_response(),
    };
    tracing::debug!(
        method = %req.method(),
        path = req.uri().path(),
        status = resp.status().as_u16(),
        "request"
    );
    resp
}

fn dispatch(state: &ApiState, action: Action) -> Response<Body> {
    match action {
        router::Action::GetHealth => health::get(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client;
    use crate::fingerprint::Fingerprint;
    use crate::health::tests::FixedNode;
    use crate::tls::{leaf_fingerprint, server_config, tests::self_signed};
    use tokio::sync::oneshot;

    const T: Duration = Duration::from_secs(5);

    struct Running {
        addr: SocketAddr,
        pin: Fingerprint,
        stop: oneshot::Sender<()>,
        done: tokio::task::JoinHandle<ShutdownSummary>,
    }

    async fn start() -> Running {
        let (cert, key) = self_signed();
        let tls = server_config(cert.as_bytes(), key.as_bytes()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(vec![listener], tls, ApiState::new(Arc::new(FixedNode))).unwrap();
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
            stop,
            done,
        }
    }

    async fn json_of(
        addr: SocketAddr,
        method: Method,
        path: &str,
        pin: Fingerprint,
    ) -> (u16, serde_json::Value) {
        let r = client::request(addr, method, path, pin, T).await.unwrap();
        (r.status.as_u16(), serde_json::from_slice(&r.body).unwrap())
    }

    use hyper::Method;

    #[tokio::test]
    async fn health_over_https() {
        let s = start().await;
        let (status, v) = json_of(s.addr, Method::GET, "/api/v1/health", s.pin).await;
        assert_eq!(status, 200);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["version"], "0.1.0");
        assert_eq!(v["hostname"], "cairn-abc123");
        assert_eq!(v["boot"]["failed_attempts"][0]["tries"], 3);
        s.stop.send(()).unwrap();
        assert!(s.done.await.unwrap().drained);
    }

    #[tokio::test]
    async fn not_found_and_method_not_allowed_are_json() {
        let s = start().await;
        let (status, v) = json_of(s.addr, Method::GET, "/api/v1/nope", s.pin).await;
        assert_eq!(status, 404);
        assert_eq!(v["code"], "not_found");
        let (status, v) = json_of(s.addr, Method::POST, "/api/v1/health", s.pin).await;
        assert_eq!(status, 405);
        assert_eq!(v["code"], "method_not_allowed");
        let _ = s.stop.send(());
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
