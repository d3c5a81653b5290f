//! The cluster port (9443): a small second HTTPS listener on a member's cluster address,
//! served with the node certificate (reread per handshake, so a renewal needs no restart):
//! `GET /cluster/v1/ca`, `POST /cluster/v1/join` and a member's `POST /cluster/v1/renew`.
//!
//! It runs on the same accept loop, connection caps and deadlines as the main API
//! ([`crate::server::serve`], [`crate::conn`]) and the same head and body limits
//! ([`crate::exchange`]). Client certificates are asked for but optional at the TLS level;
//! when one is given, rustls has checked that it chains to the cluster CA. Routes that only a
//! member may call (issue 17: forwarded calls) say so with [`ClusterRoute::needs_member`];
//! [`member_certificate`] is the one place that decides.

use crate::cluster::api_error;
use crate::conn::{Limits, Tracker};
use crate::error::ApiError;
use crate::exchange::read_limited;
use crate::request::{parse_json, require_json_type};
use crate::response::{build, full, json, Body};
use crate::server::{serve, ConnInfo, Served, ShutdownSummary};
use crate::tls::{certs_from_pem, provider, TlsError};
use cairn_cluster::types::{JoinGrant, JoinRequest};
use cairn_cluster::{ClusterError, ClusterService};
use hyper::body::Incoming;
use hyper::{header, Method, Request, Response, StatusCode};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// `GET`: the cluster CA certificate (PEM), public.
pub const CA_PATH: &str = "/cluster/v1/ca";
/// `POST`: a join request (JSON [`JoinRequest`]) answered with a [`JoinGrant`].
pub const JOIN_PATH: &str = "/cluster/v1/join";
/// `POST` (members only): `{"csr_pem"}` of the caller's renewal, answered with `{"cert_pem"}`.
pub const RENEW_PATH: &str = cairn_client::cluster::RENEW_PATH;

/// What the cluster port needs of the cluster domain ([`ClusterService`] in the daemon; a
/// double in tests).
pub trait ClusterPeer: Send + Sync + 'static {
    /// The cluster CA certificate (PEM); `None` while the node is not a member.
    fn ca_pem(&self) -> Option<String>;
    /// The node certificate chain and key (PEM); `None` while the node is not a member.
    fn node_tls(&self) -> Option<(String, String)>;
    /// Accept a join (the member side); blocking.
    fn accept_join(&self, req: JoinRequest) -> Result<JoinGrant, ClusterError>;
    /// Whether the certificate with this serial (lowercase hex) is revoked (a removed node).
    fn is_revoked(&self, _serial: &str) -> bool {
        false
    }

    /// Sign a member's renewal CSR; `caller_pem` is the certificate it presented (verified by
    /// TLS against the cluster CA). Blocking.
    fn sign_renewal(&self, caller_pem: &str, csr_pem: &str) -> Result<String, ClusterError> {
        let _ = (caller_pem, csr_pem);
        Err(ClusterError::Conflict(
            "this node does not sign renewals".into(),
        ))
    }
}

impl ClusterPeer for ClusterService {
    fn ca_pem(&self) -> Option<String> {
        ClusterService::ca_pem(self)
    }
    fn node_tls(&self) -> Option<(String, String)> {
        ClusterService::node_tls(self)
    }
    fn accept_join(&self, req: JoinRequest) -> Result<JoinGrant, ClusterError> {
        ClusterService::accept_join(self, req)
    }
    fn is_revoked(&self, serial: &str) -> bool {
        ClusterService::is_revoked(self, serial)
    }

    fn sign_renewal(&self, caller_pem: &str, csr_pem: &str) -> Result<String, ClusterError> {
        ClusterService::sign_renewal(self, caller_pem, csr_pem)
    }
}

/// Why the cluster port could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterPortError {
    /// The node certificate, its key or the CA could not be used.
    #[error("the cluster port's TLS configuration")]
    Tls(#[from] TlsError),
    /// The CA certificate cannot verify client certificates.
    #[error("the cluster CA cannot verify client certificates: {0}")]
    ClientVerifier(String),
    /// The port could not be bound.
    #[error("cannot listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// A listener's local address could not be read.
    #[error("cannot read the local address of the cluster port")]
    LocalAddr(#[source] std::io::Error),
}

/// The TLS configuration of the cluster port: the node certificate chain and key, client
/// certificates asked for and, when given, verified against the cluster CA (`ca_pem`), but
/// not required (a joining node has none yet).
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    ca_pem: &[u8],
) -> Result<Arc<ServerConfig>, ClusterPortError> {
    let certs = certs_from_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Versions)?
        .with_client_cert_verifier(client_verifier(ca_pem)?)
        .with_single_cert(certs, key)
        .map_err(TlsError::CertKey)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Client certificates from the cluster CA are verified; a client without one (a joining
/// node) is let in, and the routes decide what it may do.
fn client_verifier(
    ca_pem: &[u8],
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ClusterPortError> {
    let mut roots = RootCertStore::empty();
    for ca in certs_from_pem(ca_pem)? {
        roots
            .add(ca)
            .map_err(|e| ClusterPortError::ClientVerifier(e.to_string()))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ClusterPortError::ClientVerifier(e.to_string()))
}

/// The server configuration from the peer's own node certificate and CA; `None` while the
/// node is not a member.
pub fn config_of(peer: &dyn ClusterPeer) -> Result<Option<Arc<ServerConfig>>, ClusterPortError> {
    let (Some((cert, key)), Some(ca)) = (peer.node_tls(), peer.ca_pem()) else {
        return Ok(None);
    };
    server_config(cert.as_bytes(), key.as_bytes(), ca.as_bytes()).map(Some)
}

/// [`server_config`] with the node certificate and key asked of `peer` at every handshake
/// ([`crate::cluster_cert::ReloadingCert`]): a renewed certificate is served from the next
/// connection on. `None` while the node is not a member.
pub fn reloading_config_of(
    peer: Arc<dyn ClusterPeer>,
) -> Result<Option<Arc<ServerConfig>>, ClusterPortError> {
    let Some(ca) = peer.ca_pem() else {
        return Ok(None);
    };
    let source = peer.clone();
    let Some(resolver) =
        crate::cluster_cert::ReloadingCert::new(Box::new(move || source.node_tls()))
    else {
        return Ok(None);
    };
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Versions)?
        .with_client_cert_verifier(client_verifier(ca.as_bytes())?)
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

/// One route of the cluster port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterRoute {
    pub method: &'static str,
    pub path: &'static str,
    /// Only a member (a client certificate of the cluster CA) may call it. None does yet;
    /// issue 17's forwarded calls will.
    pub needs_member: bool,
}

/// The cluster port's routes.
pub const ROUTES: &[ClusterRoute] = &[
    ClusterRoute {
        method: "GET",
        path: CA_PATH,
        needs_member: false,
    },
    ClusterRoute {
        method: "POST",
        path: JOIN_PATH,
        needs_member: false,
    },
    ClusterRoute {
        method: "POST",
        path: RENEW_PATH,
        needs_member: true,
    },
];

/// The member certificate a caller presented (leaf), if any. rustls accepted it only if it
/// chains to the cluster CA; every request refuses it when its serial is revoked
/// (`/cairn/revoked/`, see `refuse_revoked`); the hook for issue 17's forwarded calls.
pub fn member_certificate(info: &ConnInfo) -> Option<&CertificateDer<'static>> {
    info.client_certs.as_ref().and_then(|c| c.first())
}

/// A cluster port over already-bound listeners.
pub struct ClusterPort {
    served: Served,
    addrs: Vec<SocketAddr>,
    peer: Arc<dyn ClusterPeer>,
}

impl ClusterPort {
    /// A cluster port on `listeners` with the TLS configuration `tls` (see
    /// [`server_config`]), answering from `peer`, with the main API's limits.
    pub fn new(
        listeners: Vec<TcpListener>,
        tls: Arc<ServerConfig>,
        peer: Arc<dyn ClusterPeer>,
    ) -> Result<Self, ClusterPortError> {
        let addrs = listeners
            .iter()
            .map(|l| l.local_addr().map_err(ClusterPortError::LocalAddr))
            .collect::<Result<Vec<_>, _>>()?;
        let limits = match crate::conn::open_files_limit() {
            Some(n) => Limits::default().fit_open_files(n),
            None => Limits::default(),
        };
        Ok(ClusterPort {
            served: Served {
                listeners,
                acceptor: TlsAcceptor::from(tls),
                limits,
                tracker: Tracker::new(&limits),
            },
            addrs,
            peer,
        })
    }

    /// The addresses it listens on (with the real port when bound to port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Serve until `shutdown` completes; then let in-flight connections finish for at most
    /// `grace`.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) -> ShutdownSummary {
        let peer = self.peer;
        let limits = self.served.limits;
        serve(
            self.served,
            shutdown,
            grace,
            || {},
            move |req, info| {
                let peer = peer.clone();
                async move { answer(peer, req, &info, &limits).await }
            },
        )
        .await
    }
}

/// A started cluster port: its address and how to stop it.
pub struct RunningPort {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<ShutdownSummary>,
}

impl RunningPort {
    /// Stop accepting and wait for in-flight connections (at most the grace given at start).
    pub async fn stop(self) -> ShutdownSummary {
        let _ = self.stop.send(());
        self.done
            .await
            .unwrap_or(ShutdownSummary { drained: false })
    }
}

/// Start the cluster port on `bind` (the cluster address, port [`cairn_cluster::types::CLUSTER_PORT`])
/// if the node is a member: `Ok(None)` while [`ClusterPeer::node_tls`] is `None`. The daemon
/// calls it at start and again once a create or join task succeeded (and stops and starts
/// it again after a certificate renewal or a leave). Must run inside a tokio runtime.
pub async fn start(
    peer: Arc<dyn ClusterPeer>,
    bind: SocketAddr,
    grace: Duration,
) -> Result<Option<RunningPort>, ClusterPortError> {
    let Some(tls) = reloading_config_of(peer.clone())? else {
        return Ok(None);
    };
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| ClusterPortError::Bind(bind, e))?;
    let port = ClusterPort::new(vec![listener], tls, peer)?;
    let addr = port.local_addrs()[0];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(port.run(
        async move {
            let _ = stopped.await;
        },
        grace,
    ));
    tracing::info!("cluster port listening on {addr}");
    Ok(Some(RunningPort { addr, stop, done }))
}

/// One request on the cluster port: limits, body, route, then the answer, with the same
/// security headers as the main API.
async fn answer(
    peer: Arc<dyn ClusterPeer>,
    req: Request<Incoming>,
    info: &ConnInfo,
    limits: &Limits,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().chars().take(200).collect::<String>();
    let http1 = req.version() < hyper::Version::HTTP_2;
    let mut close = false;
    let mut resp = match respond(peer, req, info, limits, &mut close).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    if close && http1 {
        h.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    tracing::debug!(
        peer = %info.peer,
        %method,
        path,
        member = member_certificate(info).is_some(),
        status = resp.status().as_u16(),
        "cluster port request"
    );
    resp
}

async fn respond(
    peer: Arc<dyn ClusterPeer>,
    req: Request<Incoming>,
    info: &ConnInfo,
    limits: &Limits,
    close: &mut bool,
) -> Result<Response<Body>, ApiError> {
    let (parts, body) = read_limited(req, limits, close).await?;
    refuse_revoked(peer.as_ref(), info)?;
    let route = route(&parts.method, parts.uri.path())?;
    if route.needs_member && member_certificate(info).is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_member",
            "this call needs a member's certificate of the cluster CA",
        ));
    }
    match route.path {
        CA_PATH => {
            let ca = peer.ca_pem().ok_or_else(not_a_member)?;
            Ok(build(StatusCode::OK, "application/x-pem-file", full(ca)))
        }
        JOIN_PATH => {
            require_json_type(&parts.headers)?;
            let join: JoinRequest = parse_json(&body)?;
            let grant = tokio::task::spawn_blocking(move || peer.accept_join(join))
                .await
                .map_err(|e| ApiError::internal(format!("the join did not finish: {e}")))?
                .map_err(|e| api_error(&e))?;
            Ok(json(StatusCode::OK, &grant))
        }
        RENEW_PATH => {
            require_json_type(&parts.headers)?;
            let req: RenewRequest = parse_json(&body)?;
            let caller = member_certificate(info)
                .map(|der| der_to_pem(der.as_ref()))
                .ok_or_else(not_a_member)?;
            let cert_pem =
                tokio::task::spawn_blocking(move || peer.sign_renewal(&caller, &req.csr_pem))
                    .await
                    .map_err(|e| ApiError::internal(format!("the renewal did not finish: {e}")))?
                    .map_err(|e| api_error(&e))?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "cert_pem": cert_pem }),
            ))
        }
        _ => Err(ApiError::not_found(parts.uri.path())),
    }
}

/// 403 `revoked` when the caller presents a certificate the cluster revoked (a removed
/// node coming back with its old certificate), whatever it asks for.
fn refuse_revoked(peer: &dyn ClusterPeer, info: &ConnInfo) -> Result<(), ApiError> {
    let Some(cert) = member_certificate(info) else {
        return Ok(());
    };
    let serial = cairn_cluster::crl::serial_of_der(cert.as_ref()).map_err(|e| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "bad_certificate",
            format!("the client certificate cannot be read: {e}"),
        )
    })?;
    if peer.is_revoked(&serial) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "revoked",
            format!(
                "the client certificate {serial} is revoked: its node was removed from the cluster"
            ),
        ));
    }
    Ok(())
}

/// `POST /cluster/v1/renew`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RenewRequest {
    csr_pem: String,
}

/// A certificate's DER as PEM.
fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// 503 `not_a_member`: this node serves the cluster port but is no longer a member.
fn not_a_member() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_a_member",
        "this node is not a cluster member",
    )
}

/// The route of `method` and `path` (`HEAD` answers where `GET` does): 404 for an unknown
/// path, 405 for a known path with another method.
fn route(method: &Method, path: &str) -> Result<ClusterRoute, ApiError> {
    let wanted = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let on_path: Vec<&ClusterRoute> = ROUTES.iter().filter(|r| r.path == path).collect();
    if on_path.is_empty() {
        return Err(ApiError::not_found(path));
    }
    match on_path.iter().find(|r| r.method == wanted) {
        Some(r) => Ok(**r),
        None => {
            let allowed: &'static [&'static str] =
                if path == CA_PATH { &["GET"] } else { &["POST"] };
            Err(ApiError::method_not_allowed(method.as_str(), path, allowed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_client::cluster::{ca_fingerprint, fetch_ca, fetch_ca_checked, MemberTls};
    use cairn_client::{send_with, ClientRequest};
    use cairn_cluster::types::{ClusterInfo, NameInventory, Role};
    use serde_json::json;
    use std::sync::Mutex;

    const T: Duration = Duration::from_secs(10);

    /// A cluster CA and a node certificate it signed for 127.0.0.1, as PEM.
    struct Pki {
        ca_pem: String,
        ca_key: rcgen::KeyPair,
        ca: rcgen::Certificate,
    }

    impl Pki {
        fn new() -> Self {
            let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "Cairn cluster CA test");
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            let ca = params.self_signed(&ca_key).unwrap();
            Pki {
                ca_pem: ca.pem(),
                ca_key,
                ca,
            }
        }

        /// A node certificate (serverAuth + clientAuth) for `name` and 127.0.0.1.
        fn node(&self, name: &str) -> (String, String) {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut params =
                rcgen::CertificateParams::new(vec![name.to_string(), "127.0.0.1".to_string()])
                    .unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            params.extended_key_usages = vec![
                rcgen::ExtendedKeyUsagePurpose::ServerAuth,
                rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        }
    }

    /// A member that records the joins it is asked for and grants them.
    struct Member {
        ca: String,
        tls: Mutex<(String, String)>,
        joins: Mutex<Vec<JoinRequest>>,
        revoked: Mutex<Vec<String>>,
        /// The caller certificates renewals were signed for.
        renewals: Mutex<Vec<String>>,
    }

    impl ClusterPeer for Member {
        fn ca_pem(&self) -> Option<String> {
            Some(self.ca.clone())
        }
        fn node_tls(&self) -> Option<(String, String)> {
            Some(self.tls.lock().unwrap().clone())
        }
        fn sign_renewal(&self, caller_pem: &str, csr_pem: &str) -> Result<String, ClusterError> {
            self.renewals.lock().unwrap().push(caller_pem.to_string());
            Ok(format!("SIGNED {csr_pem}"))
        }
        fn is_revoked(&self, serial: &str) -> bool {
            self.revoked.lock().unwrap().iter().any(|s| s == serial)
        }
        fn accept_join(&self, req: JoinRequest) -> Result<JoinGrant, ClusterError> {
            if req.secret != "s3cret" {
                return Err(ClusterError::TokenRefused("unknown token".into()));
            }
            self.joins.lock().unwrap().push(req.clone());
            Ok(JoinGrant {
                cluster: ClusterInfo {
                    name: "prod".into(),
                    id: "c1".into(),
                    ca_fingerprint: ca_fingerprint(&self.ca).unwrap(),
                    created_at: 1,
                },
                node_cert_pem: "CERT".into(),
                ca_cert_pem: self.ca.clone(),
                ca_key_pem: "KEY".into(),
                role: Role::Voter,
                etcd_initial_cluster: vec!["a=https://127.0.0.1:2380".into()],
                etcd_endpoints: vec!["https://127.0.0.1:2379".into()],
                etcd_heartbeat_ms: 100,
                etcd_election_ms: 1000,
            })
        }
    }

    struct NotMember;

    impl ClusterPeer for NotMember {
        fn ca_pem(&self) -> Option<String> {
            None
        }
        fn node_tls(&self) -> Option<(String, String)> {
            None
        }
        fn accept_join(&self, _: JoinRequest) -> Result<JoinGrant, ClusterError> {
            Err(ClusterError::Conflict("not a member".into()))
        }
    }

    fn join_request(secret: &str) -> serde_json::Value {
        json!({
            "secret": secret,
            "node_name": "b",
            "address": "127.0.0.1",
            "witness": false,
            "csr_pem": "CSR",
            "names": NameInventory::default(),
        })
    }

    async fn member(pki: &Pki) -> (RunningPort, Arc<Member>) {
        let m = Arc::new(Member {
            ca: pki.ca_pem.clone(),
            tls: Mutex::new(pki.node("a")),
            joins: Mutex::new(Vec::new()),
            revoked: Mutex::new(Vec::new()),
            renewals: Mutex::new(Vec::new()),
        });
        let port = start(m.clone(), "127.0.0.1:0".parse().unwrap(), T)
            .await
            .unwrap()
            .expect("a member serves the cluster port");
        (port, m)
    }

    #[tokio::test]
    async fn a_standalone_node_serves_no_cluster_port() {
        let got = start(Arc::new(NotMember), "127.0.0.1:0".parse().unwrap(), T)
            .await
            .unwrap();
        assert!(got.is_none());
    }

    #[tokio::test]
    async fn the_ca_is_fetched_untrusted_then_the_join_goes_to_exactly_that_ca() {
        let pki = Pki::new();
        let (port, m) = member(&pki).await;
        let fp = ca_fingerprint(&pki.ca_pem).unwrap();
        assert!(fp.starts_with("sha256:") && fp.len() == 7 + 64, "{fp}");
        let ca = fetch_ca(port.addr, T).await.unwrap();
        assert_eq!(ca, pki.ca_pem);
        let ca = fetch_ca_checked(port.addr, &fp.to_uppercase(), T)
            .await
            .unwrap();
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = fetch_ca_checked(port.addr, &wrong, T).await.unwrap_err();
        assert!(e.to_string().contains("does not match the token"), "{e}");

        let tls = MemberTls::new(&ca, None).unwrap();
        let r = send_with(
            port.addr,
            ClientRequest::new(Method::POST, JOIN_PATH).json(&join_request("s3cret")),
            &tls,
            T,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["cluster"]["name"], "prod");
        assert_eq!(r.json()["role"], "voter");
        assert_eq!(m.joins.lock().unwrap()[0].node_name, "b");

        let r = send_with(
            port.addr,
            ClientRequest::new(Method::POST, JOIN_PATH).json(&join_request("guess")),
            &tls,
            T,
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.json()["code"].clone()),
            (403, json!("token_refused"))
        );
        let mut bad = join_request("s3cret");
        bad["address"] = json!("nowhere");
        let r = send_with(
            port.addr,
            ClientRequest::new(Method::POST, JOIN_PATH).json(&bad),
            &tls,
            T,
        )
        .await
        .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.json()["field"].clone()),
            (400, json!("address"))
        );
        for (m, p, status) in [
            (Method::GET, JOIN_PATH, 405),
            (Method::POST, CA_PATH, 405),
            (Method::GET, "/api/v1/health", 404),
        ] {
            let r = send_with(port.addr, ClientRequest::new(m, p), &tls, T)
                .await
                .unwrap();
            assert_eq!(r.status.as_u16(), status, "{p}");
        }
        let big = "x".repeat(crate::exchange::MAX_BODY + 1);
        let r = send_with(
            port.addr,
            ClientRequest::new(Method::POST, JOIN_PATH).json(&json!({ "secret": big })),
            &tls,
            T,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 413);
        assert!(port.stop().await.drained);
    }

    #[tokio::test]
    async fn a_member_certificate_is_seen_and_another_ca_is_refused() {
        let pki = Pki::new();
        let (port, _m) = member(&pki).await;
        let (cert, key) = pki.node("b");
        let tls = MemberTls::new(&pki.ca_pem, Some((&cert, &key))).unwrap();
        let r = send_with(port.addr, ClientRequest::new(Method::GET, CA_PATH), &tls, T)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        // A client trusting another CA does not talk to this member at all.
        let other = Pki::new();
        let tls = MemberTls::new(&other.ca_pem, None).unwrap();
        let e = send_with(port.addr, ClientRequest::new(Method::GET, CA_PATH), &tls, T)
            .await
            .unwrap_err();
        assert!(matches!(e, cairn_client::ClientError::Handshake(..)), "{e}");
        // A client certificate of another CA is refused in the handshake.
        let (cert, key) = other.node("x");
        let tls = MemberTls::new(&pki.ca_pem, Some((&cert, &key))).unwrap();
        let r = send_with(port.addr, ClientRequest::new(Method::GET, CA_PATH), &tls, T).await;
        assert!(r.is_err() || r.unwrap().status != 200);
        port.stop().await;
    }

    #[tokio::test]
    async fn a_revoked_member_certificate_is_refused_and_a_good_one_accepted() {
        let pki = Pki::new();
        let (port, m) = member(&pki).await;
        let (good_cert, good_key) = pki.node("b");
        let (old_cert, old_key) = pki.node("c");
        let serial = cairn_cluster::ca::cert_info(&old_cert).unwrap().serial_hex;
        m.revoked.lock().unwrap().push(serial.clone());
        let tls = MemberTls::new(&pki.ca_pem, Some((&old_cert, &old_key))).unwrap();
        for (method, path) in [(Method::GET, CA_PATH), (Method::POST, JOIN_PATH)] {
            let r = send_with(port.addr, ClientRequest::new(method, path), &tls, T)
                .await
                .unwrap();
            assert_eq!(r.status, 403, "{path}");
            let body = r.json();
            assert_eq!(body["code"], "revoked", "{body}");
            let msg = body["message"].as_str().unwrap_or_default().to_string();
            assert!(msg.contains(&serial), "{msg}");
        }
        let tls = MemberTls::new(&pki.ca_pem, Some((&good_cert, &good_key))).unwrap();
        let r = send_with(port.addr, ClientRequest::new(Method::GET, CA_PATH), &tls, T)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        // Without a certificate (a joining node) nothing changes.
        let tls = MemberTls::new(&pki.ca_pem, None).unwrap();
        let r = send_with(port.addr, ClientRequest::new(Method::GET, CA_PATH), &tls, T)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        port.stop().await;
    }

    #[tokio::test]
    async fn a_renewal_needs_a_member_certificate_and_a_renewed_one_is_served_without_restart() {
        let pki = Pki::new();
        let (port, m) = member(&pki).await;
        let body = json!({ "csr_pem": "CSR" });
        // No client certificate: refused before the service is asked.
        let anon = MemberTls::new(&pki.ca_pem, None).unwrap();
        let r = send_with(
            port.addr,
            ClientRequest::new(Method::POST, RENEW_PATH).json(&body),
            &anon,
            T,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["code"], "not_a_member");
        assert!(m.renewals.lock().unwrap().is_empty());
        // A member: its certificate is handed to the service.
        let (cert, key) = pki.node("b");
        let tls = MemberTls::new(&pki.ca_pem, Some((&cert, &key))).unwrap();
        let r = send_with(
            port.addr,
            ClientRequest::new(Method::POST, RENEW_PATH).json(&body),
            &tls,
            T,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json()["cert_pem"], "SIGNED CSR");
        let seen = m.renewals.lock().unwrap()[0].clone();
        assert_eq!(
            certs_from_pem(seen.as_bytes()).unwrap(),
            certs_from_pem(cert.as_bytes()).unwrap()[..1]
        );
        let first = r.peer;
        // The node's certificate is renewed under the running port: the next connection
        // is served the new one.
        let renewed = pki.node("a");
        let want = crate::tls::leaf_fingerprint(renewed.0.as_bytes()).unwrap();
        *m.tls.lock().unwrap() = renewed;
        // A fresh client (no TLS session to resume, which would skip the certificate).
        let fresh = MemberTls::new(&pki.ca_pem, None).unwrap();
        let r = send_with(
            port.addr,
            ClientRequest::new(Method::GET, CA_PATH),
            &fresh,
            T,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(r.peer, first);
        assert_eq!(r.peer, want);
        port.stop().await;
    }

    #[test]
    fn routes_and_the_member_hook() {
        assert_eq!(route(&Method::GET, CA_PATH).unwrap().path, CA_PATH);
        assert_eq!(route(&Method::HEAD, CA_PATH).unwrap().path, CA_PATH);
        assert_eq!(route(&Method::POST, JOIN_PATH).unwrap().path, JOIN_PATH);
        assert_eq!(
            route(&Method::DELETE, JOIN_PATH).unwrap_err().allow,
            Some(&["POST"][..])
        );
        assert_eq!(route(&Method::GET, "/").unwrap_err().code, "not_found");
        assert_eq!(
            ROUTES
                .iter()
                .filter(|r| r.needs_member)
                .map(|r| r.path)
                .collect::<Vec<_>>(),
            vec![RENEW_PATH]
        );
        let info = ConnInfo {
            peer: "127.0.0.1:1".parse().unwrap(),
            client_certs: None,
        };
        assert!(member_certificate(&info).is_none());
    }
}
