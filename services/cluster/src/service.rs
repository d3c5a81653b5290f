//! The cluster domain's service: status, create, tokens, join (both sides), leave, remove.

use crate::ctx::{Ctx, EtcdTiming, ETCD_TIMING};
use crate::error::ClusterError;
use crate::local::{LocalFiles, LocalState};
use crate::records::{self, TokenRecord};
use crate::status::Observed;
use crate::token::JoinToken;
use crate::types::{
    ClusterMode, ClusterStatus, CreateCluster, JoinCluster, JoinGrant, JoinRequest, Role,
    TokenRequest, TokenView, CLUSTER_PORT, DEFAULT_TOKEN_TTL_S, TOKEN_TTL_RANGE_S,
};
use crate::{accept, create, etcd, etcd_wait, join, lease, status, validate};
use cairn_core::alert::Progress;
use cairn_core::command::{CommandRunner, SystemRunner};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::ctx::LocalNames;

/// Where the cluster domain keeps its files on STATE.
#[derive(Debug, Clone)]
pub struct ClusterPaths {
    /// `/var/lib/cairn/cluster`: state.json, ca.pem, ca.key (0600), node.pem, node.key (0600),
    /// etcd.yaml.
    pub dir: PathBuf,
    /// `/var/lib/cairn/etcd`: etcd's data directory.
    pub etcd_data: PathBuf,
}

/// How long a status read waits for etcd before it reports no quorum.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// The cluster domain.
pub struct ClusterService {
    ctx: Arc<Ctx>,
    /// The runtime the etcd client runs on (its own: callers may be sync or async).
    rt: tokio::runtime::Runtime,
    state: Mutex<Option<LocalState>>,
    /// A create or join is running (a second one is refused).
    busy: AtomicBool,
    /// The liveness lease of this node while it is a member, and the task that (re)starts it.
    keeper: Arc<Mutex<Option<lease::LeaseKeeper>>>,
    keeper_start: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Whether this node is a member (cairnd starts the cluster port when it becomes one).
    member_tx: tokio::sync::watch::Sender<bool>,
}

/// How long a member removal may wait for etcd to call the cluster healthy.
fn member_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(60)
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ClusterService {
    /// Open the cluster state kept under `paths` for the node called `node_name` (the real
    /// `cairn-init` and etcd on the loopback).
    pub fn open(
        paths: ClusterPaths,
        node_name: &str,
        names: Arc<dyn LocalNames>,
    ) -> Result<Self, ClusterError> {
        Self::open_with(
            paths,
            node_name,
            names,
            Arc::new(SystemRunner),
            ETCD_TIMING,
            records::client_url(std::net::Ipv4Addr::LOCALHOST.into()),
            true,
        )
    }

    /// [`ClusterService::open`] with the runner that starts etcd, the timing and the local
    /// etcd endpoint given (host tests run etcd themselves).
    pub fn open_with(
        paths: ClusterPaths,
        node_name: &str,
        names: Arc<dyn LocalNames>,
        runner: Arc<dyn CommandRunner>,
        timing: EtcdTiming,
        local_etcd: String,
        listen_any: bool,
    ) -> Result<Self, ClusterError> {
        let files = LocalFiles { dir: paths.dir };
        let state = files.load().map_err(ClusterError::Files)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("cairn-cluster")
            .enable_all()
            .build()
            .map_err(ClusterError::Runtime)?;
        let service = ClusterService {
            ctx: Arc::new(Ctx {
                files,
                etcd_data: paths.etcd_data,
                node_name: node_name.to_string(),
                names,
                runner,
                timing,
                local_etcd,
                listen_any,
            }),
            rt,
            member_tx: tokio::sync::watch::Sender::new(state.is_some()),
            state: Mutex::new(state.clone()),
            busy: AtomicBool::new(false),
            keeper: Arc::new(Mutex::new(None)),
            keeper_start: Mutex::new(None),
        };
        if let Some(state) = state {
            service.start_liveness(&state);
        }
        Ok(service)
    }

    /// Run `fut` on the service's runtime and wait for it (from sync or async callers).
    fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(v) => v,
            // The runtime shut down under us: only at exit.
            Err(_) => std::process::abort(),
        }
    }

    /// Whether this node is a witness (its marker on STATE, written at a witness join): it
    /// runs etcd, the API and this domain only.
    pub fn is_witness(&self) -> bool {
        self.ctx.files.is_witness()
    }

    /// Whether this node is a member, now and on every change (create, join, leave).
    pub fn membership(&self) -> tokio::sync::watch::Receiver<bool> {
        self.member_tx.subscribe()
    }

    fn set_state(&self, state: Option<LocalState>) {
        let member = state.is_some();
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        self.member_tx.send_replace(member);
    }

    fn current(&self) -> Option<LocalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn member(&self) -> Result<LocalState, ClusterError> {
        self.current().ok_or_else(|| {
            ClusterError::Conflict("this node is not in a cluster: create or join one".into())
        })
    }

    fn standalone(&self) -> Result<(), ClusterError> {
        match self.current() {
            None => Ok(()),
            Some(s) => Err(ClusterError::Conflict(format!(
                "this node is already a member of cluster {}",
                s.cluster.name
            ))),
        }
    }

    /// Keep this node's liveness key alive on its lease while it is a member.
    fn start_liveness(&self, state: &LocalState) {
        let tls = match etcd_wait::client_tls(&self.ctx.files) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %cairn_base::error_chain::error_chain(&e), "cluster: no client identity, no liveness");
                return;
            }
        };
        let cfg = lease::LeaseConfig {
            endpoints: state.etcd_endpoints.clone(),
            tls,
            ttl: Duration::from_secs(self.ctx.timing.lease_ttl_s),
            keys: vec![(
                format!("{}{}", records::ALIVE_PREFIX, state.node_name),
                state.node_name.clone().into_bytes(),
            )],
            request_timeout: STATUS_TIMEOUT,
        };
        let slot = self.keeper.clone();
        // etcd may not serve yet (a boot, a cluster without quorum): keep trying.
        let task = self.rt.spawn(async move {
            let mut logged = false;
            loop {
                match lease::LeaseKeeper::start(cfg.clone()).await {
                    Ok(k) => {
                        tracing::info!("cluster: this node's liveness lease is held");
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(k);
                        return;
                    }
                    Err(e) if !logged => {
                        logged = true;
                        tracing::warn!(
                            "cluster: no liveness lease yet, retrying: {}",
                            cairn_base::error_chain::error_chain(&e)
                        );
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
        if let Some(old) = self
            .keeper_start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task)
        {
            old.abort();
        }
    }

    /// Stop the liveness lease (revoked: a graceful leave).
    fn stop_liveness(&self) {
        if let Some(t) = self
            .keeper_start
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(k) = keeper {
            let _ = self.block(async move { k.shutdown(true).await });
        }
    }

    fn etcd_client(&self, state: &LocalState) -> Result<etcd_client::Client, ClusterError> {
        let tls = etcd_wait::client_tls(&self.ctx.files)?;
        let endpoints = state.etcd_endpoints.clone();
        self.block(async move { etcd::connect(&endpoints, &tls, STATUS_TIMEOUT).await })
            .map_err(ClusterError::EtcdOp)
    }

    /// The cluster as this node sees it (`GET /api/v1/cluster`).
    pub fn status(&self) -> ClusterStatus {
        let Some(state) = self.current() else {
            return ClusterStatus {
                mode: if self.busy.load(Ordering::SeqCst) {
                    ClusterMode::Joining
                } else {
                    ClusterMode::Standalone
                },
                this_node: self.ctx.node_name.clone(),
                cluster: None,
                quorum: None,
                nodes: Vec::new(),
                failover: None,
            };
        };
        let tls = etcd_wait::client_tls(&self.ctx.files);
        let endpoints = state.etcd_endpoints.clone();
        let (observed, reachable) = match tls {
            Ok(tls) => self.block(async move { observe(endpoints, tls).await }),
            Err(_) => (None, Vec::new()),
        };
        status::assemble(
            &state,
            observed.as_ref(),
            &reachable,
            self.ctx.timing.lease_ttl_s,
        )
    }

    /// Check a create request (name, address is one of ours, not already a member).
    pub fn check_create(&self, req: &CreateCluster) -> Result<(), ClusterError> {
        validate::node_name("name", &req.name)?;
        validate::cluster_address("address", req.address, &self.ctx.names.addresses())?;
        self.standalone()?;
        if self.busy.load(Ordering::SeqCst) {
            return Err(ClusterError::Conflict(
                "a cluster create or join is already running".into(),
            ));
        }
        Ok(())
    }

    fn exclusive<T>(&self, f: impl FnOnce() -> Result<T, ClusterError>) -> Result<T, ClusterError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(ClusterError::Conflict(
                "a cluster create or join is already running".into(),
            ));
        }
        let out = f();
        self.busy.store(false, Ordering::SeqCst);
        out
    }

    /// Create the cluster: CA, node certificate, a one-member etcd, the cluster record.
    pub fn create(
        &self,
        req: CreateCluster,
        progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        self.check_create(&req)?;
        let state = self.exclusive(|| {
            let ctx = self.ctx.clone();
            let handle = self.rt.handle().clone();
            // The progress sink is not 'static: drive the future from this thread.
            handle.block_on(async move { create::create(&ctx, &req, now_s(), progress).await })
        })?;
        self.start_liveness(&state);
        let name = state.cluster.name.clone();
        self.set_state(Some(state));
        Ok(format!(
            "cluster {name} created: this node is its first voter; add nodes with a join token"
        ))
    }

    /// Make a join token (shown once).
    pub fn issue_token(&self, req: TokenRequest) -> Result<TokenView, ClusterError> {
        let ttl = req.ttl_s.unwrap_or(DEFAULT_TOKEN_TTL_S);
        if !TOKEN_TTL_RANGE_S.contains(&ttl) {
            return Err(ClusterError::Invalid {
                field: "ttl_s",
                reason: format!(
                    "must be {} to {} seconds",
                    TOKEN_TTL_RANGE_S.start(),
                    TOKEN_TTL_RANGE_S.end()
                ),
            });
        }
        let state = self.member()?;
        let client = self.etcd_client(&state)?;
        let members = {
            let client = client.clone();
            self.block(async move { records::nodes(&client).await })?
        };
        let mut endpoints: Vec<SocketAddr> = vec![SocketAddr::new(state.address, CLUSTER_PORT)];
        endpoints.extend(
            members
                .iter()
                .filter(|n| n.name != state.node_name && n.role != Role::Witness)
                .map(|n| SocketAddr::new(n.address, CLUSTER_PORT)),
        );
        let token = JoinToken::new(
            endpoints,
            &state.cluster.ca_fingerprint,
            Duration::from_secs(ttl),
            SystemTime::now(),
        )
        .map_err(|e| ClusterError::Invalid {
            field: "token",
            reason: cairn_base::error_chain::error_chain(&e),
        })?;
        let text = token.encode().map_err(|e| ClusterError::Invalid {
            field: "token",
            reason: cairn_base::error_chain::error_chain(&e),
        })?;
        let record = TokenRecord {
            expires_at: token.expires_at,
            issued_by: state.node_name.clone(),
        };
        let hash = token.secret.hash();
        self.block(async move { records::put_token(&client, &hash, &record, ttl).await })?;
        Ok(TokenView {
            token: text,
            expires_at: token.expires_at,
        })
    }

    /// Check a join request of the admin (token format, address, not already a member).
    pub fn check_join(&self, req: &JoinCluster) -> Result<(), ClusterError> {
        JoinToken::parse(&req.token, SystemTime::now()).map_err(|e| ClusterError::Invalid {
            field: "token",
            reason: cairn_base::error_chain::error_chain(&e),
        })?;
        validate::cluster_address("address", req.address, &self.ctx.names.addresses())?;
        validate::node_name("node name", &self.ctx.node_name)?;
        if req.witness {
            join::witness_fits(&self.ctx.names.names())?;
        }
        self.standalone()?;
        if self.busy.load(Ordering::SeqCst) {
            return Err(ClusterError::Conflict(
                "a cluster create or join is already running".into(),
            ));
        }
        Ok(())
    }

    /// Join the cluster the token names (the joining side; a task).
    pub fn join(&self, req: JoinCluster, progress: &dyn Progress) -> Result<String, ClusterError> {
        self.check_join(&req)?;
        let state = self.exclusive(|| {
            let ctx = self.ctx.clone();
            let handle = self.rt.handle().clone();
            handle.block_on(async move { join::join(&ctx, &req, now_s(), progress).await })
        })?;
        self.start_liveness(&state);
        let msg = format!(
            "joined cluster {} as a {}",
            state.cluster.name,
            match state.role {
                Role::Voter => "voter",
                Role::Client => "client (the cluster has its voters)",
                Role::Witness => "witness",
            }
        );
        self.set_state(Some(state));
        Ok(msg)
    }

    /// The CA certificate (PEM) this member serves unauthenticated at `GET /cluster/v1/ca`.
    pub fn ca_pem(&self) -> Option<String> {
        self.current()?;
        self.ctx.files.read(&self.ctx.files.ca_cert()).ok()
    }

    /// The node certificate chain and key (PEM) the cluster port serves, once a member.
    pub fn node_tls(&self) -> Option<(String, String)> {
        self.current()?;
        let files = &self.ctx.files;
        let cert = files.read(&files.node_cert()).ok()?;
        let ca = files.read(&files.ca_cert()).ok()?;
        let key = files.read(&files.node_key()).ok()?;
        Some((format!("{}\n{}", cert.trim_end(), ca), key))
    }

    /// Accept a join (the member side of `POST /cluster/v1/join`).
    pub fn accept_join(&self, req: JoinRequest) -> Result<JoinGrant, ClusterError> {
        let state = self.member()?;
        let client = self.etcd_client(&state)?;
        let ctx = self.ctx.clone();
        self.block(async move { accept::accept(&ctx, &state, &client, &req).await })
    }

    /// Leave the cluster gracefully (refused while this node holds replicas of HA VMs).
    pub fn leave(&self, progress: &dyn Progress) -> Result<String, ClusterError> {
        let state = self.member()?;
        let client = self.etcd_client(&state)?;
        progress.progress(10, "leaving etcd");
        let name = state.node_name.clone();
        let serial = self.own_serial()?;
        {
            let client = client.clone();
            let name = name.clone();
            self.block(async move {
                records::revoke(
                    &client,
                    &serial,
                    &records::RevokedRecord {
                        node: name.clone(),
                        at: now_s(),
                    },
                )
                .await?;
                records::delete_node(&client, &name).await?;
                let mut admin = client.clone();
                if let Some(m) = etcd::member_list(&mut admin)
                    .await
                    .map_err(ClusterError::EtcdOp)?
                    .into_iter()
                    .find(|m| m.name == name)
                {
                    etcd::remove_member(&mut admin, m.id, member_deadline())
                        .await
                        .map_err(ClusterError::EtcdOp)?;
                }
                Ok::<(), ClusterError>(())
            })?;
        }
        progress.progress(60, "stopping etcd");
        self.stop_liveness();
        if state.role != Role::Client {
            crate::process::stop_etcd(self.ctx.runner.as_ref()).map_err(|source| {
                ClusterError::Service {
                    what: "stop",
                    source,
                }
            })?;
        }
        self.ctx.files.clear().map_err(ClusterError::Files)?;
        etcd_wait::clear_data_dir(&self.ctx.etcd_data)?;
        self.set_state(None);
        Ok(format!(
            "left cluster {}: this node is standalone again, its pools and VMs unchanged",
            state.cluster.name
        ))
    }

    fn own_serial(&self) -> Result<String, ClusterError> {
        let pem = self
            .ctx
            .files
            .read(&self.ctx.files.node_cert())
            .map_err(ClusterError::Files)?;
        Ok(crate::ca::cert_info(&pem)
            .map_err(ClusterError::Certificates)?
            .serial_hex)
    }

    /// Remove a dead node: etcd member remove, its certificate revoked.
    pub fn remove(&self, node: &str, progress: &dyn Progress) -> Result<String, ClusterError> {
        let state = self.member()?;
        if node == state.node_name {
            return Err(ClusterError::Invalid {
                field: "name",
                reason: "this node cannot remove itself: use leave".into(),
            });
        }
        let client = self.etcd_client(&state)?;
        progress.progress(10, &format!("removing {node}"));
        let node = node.to_string();
        let done = node.clone();
        self.block(async move {
            let nodes = records::nodes(&client).await?;
            let Some(rec) = nodes.into_iter().find(|n| n.name == node) else {
                return Err(ClusterError::Invalid {
                    field: "name",
                    reason: format!("{node} is not a node of this cluster"),
                });
            };
            let mut admin = client.clone();
            if let Some(m) = etcd::member_list(&mut admin)
                .await
                .map_err(ClusterError::EtcdOp)?
                .into_iter()
                .find(|m| m.name == node)
            {
                etcd::remove_member(&mut admin, m.id, member_deadline())
                    .await
                    .map_err(ClusterError::EtcdOp)?;
            }
            records::revoke(
                &client,
                &rec.cert_serial,
                &records::RevokedRecord {
                    node: node.clone(),
                    at: now_s(),
                },
            )
            .await?;
            records::delete_node(&client, &node).await
        })?;
        Ok(format!(
            "{done} removed: its etcd member is gone and its certificate revoked"
        ))
    }
}

/// Read nodes, liveness and members; probe each voter's etcd for the reachable list.
async fn observe(endpoints: Vec<String>, tls: etcd::EtcdTls) -> (Option<Observed>, Vec<String>) {
    let mut reachable = Vec::new();
    for e in &endpoints {
        if let Ok(mut c) = etcd::connect(std::slice::from_ref(e), &tls, STATUS_TIMEOUT).await {
            if c.status().await.is_ok() {
                reachable.push(e.trim_start_matches("https://").to_string());
            }
        }
    }
    let Ok(client) = etcd::connect(&endpoints, &tls, STATUS_TIMEOUT).await else {
        return (None, reachable);
    };
    let read = async {
        let nodes = records::nodes(&client).await?;
        let alive = records::alive(&client).await?;
        let mut admin = client.clone();
        let members = etcd::member_list(&mut admin)
            .await
            .map_err(ClusterError::EtcdOp)?
            .into_iter()
            .map(|m| (m.name, format!("{:x}", m.id), m.is_learner))
            .collect();
        Ok::<Observed, ClusterError>(Observed {
            nodes,
            alive,
            members,
        })
    };
    match tokio::time::timeout(STATUS_TIMEOUT, read).await {
        Ok(Ok(o)) => {
            // Name the reachable voters rather than their endpoints.
            let names = o
                .nodes
                .iter()
                .filter(|n| {
                    reachable
                        .iter()
                        .any(|r| r.starts_with(&n.address.to_string()))
                })
                .map(|n| n.name.clone())
                .collect();
            (Some(o), names)
        }
        _ => (None, reachable),
    }
}
