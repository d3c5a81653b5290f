//! The cluster domain's service: status, create, tokens, join (both sides), leave, remove.

use crate::ctx::{Ctx, EtcdTiming, ETCD_TIMING};
use crate::error::ClusterError;
use crate::local::{LocalFiles, LocalState};
use crate::monitor::Monitor;
use crate::networks;
use crate::placement::{self, TargetView};
use crate::records::{self, TokenRecord};
use crate::token::JoinToken;
use crate::types::{
    ClusterMode, ClusterStatus, CreateCluster, JoinCluster, JoinGrant, JoinRequest, RecoverCluster,
    Role, TokenRequest, TokenView, CLUSTER_PORT, DEFAULT_TOKEN_TTL_S, TOKEN_TTL_RANGE_S,
};
use crate::{accept, create, etcd, etcd_wait, join, lease, monitor, quorum, status, validate};
use crate::{recover, renewal, snapshot, upkeep};
use cairn_core::alert::{AlertSink, Progress};
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
    pub(crate) ctx: Arc<Ctx>,
    /// The runtime the etcd client runs on (its own: callers may be sync or async), made at
    /// the first call that needs it (a standalone node may never).
    rt: std::sync::OnceLock<tokio::runtime::Runtime>,
    state: Mutex<Option<LocalState>>,
    /// A create or join is running (a second one is refused).
    busy: AtomicBool,
    /// The liveness lease of this node while it is a member, and the task that (re)starts it.
    keeper: Arc<Mutex<Option<lease::LeaseKeeper>>>,
    keeper_start: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Whether this node is a member (cairnd starts the cluster port when it becomes one).
    member_tx: tokio::sync::watch::Sender<bool>,
    /// Quorum, alert and revocations, refreshed by the watch loop while a member.
    monitor: Arc<Monitor>,
    monitor_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Certificate renewal, snapshots and network records while a member.
    upkeep: Mutex<Option<upkeep::Upkeep>>,
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
            rt: std::sync::OnceLock::new(),
            member_tx: tokio::sync::watch::Sender::new(state.is_some()),
            state: Mutex::new(state.clone()),
            busy: AtomicBool::new(false),
            keeper: Arc::new(Mutex::new(None)),
            keeper_start: Mutex::new(None),
            monitor: Arc::new(Monitor::default()),
            monitor_task: Mutex::new(None),
            upkeep: Mutex::new(None),
        };
        if let Some(state) = state {
            service.start_liveness(&state);
        }
        Ok(service)
    }

    /// The service's runtime, made on first use.
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.get_or_init(|| match build_runtime() {
            Ok(rt) => rt,
            Err(e) => {
                // Without a runtime no cluster call can run; there is nothing to fall back on.
                tracing::error!(
                    "cluster: {}",
                    cairn_base::error_chain::error_chain(&ClusterError::Runtime(e))
                );
                std::process::abort()
            }
        })
    }

    /// Run `fut` on the service's runtime and wait for it (from sync or async callers).
    pub(crate) fn block<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        self.rt().spawn(async move {
            let _ = tx.send(fut.await);
        });
        match rx.recv() {
            Ok(v) => v,
            // The runtime shut down under us: only at exit.
            Err(_) => std::process::abort(),
        }
    }

    /// Where the quorum alert (`cluster-quorum`) is raised and cleared.
    pub fn set_alerts(&self, sink: Arc<dyn AlertSink>) {
        self.monitor.set_alerts(sink);
    }

    /// Whether the certificate with this serial (lowercase hex) is revoked, as of the last
    /// tick of the watch loop (the cluster port refuses it).
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.monitor.is_revoked(serial)
    }

    /// Refuse a cluster-wide change unless this node reaches a quorum of voters: 503
    /// naming the members it reaches, within [`quorum::PROBE_TIMEOUT`].
    fn require_quorum(&self, state: &LocalState) -> Result<(), ClusterError> {
        let tls = etcd_wait::client_tls(&self.ctx.files)?;
        let monitor = self.monitor.clone();
        let state = state.clone();
        let view = self.block(async move { monitor.check(&state, &tls).await });
        quorum::gate(&view)
    }

    /// Check a leave or remove before its task starts: a member that reaches a quorum (so
    /// a minority answers 503 at once rather than with a failed task).
    pub fn check_change(&self) -> Result<(), ClusterError> {
        let state = self.member()?;
        self.require_quorum(&state)
    }

    /// Check a graceful leave: [`Self::check_change`], and refused while this node holds a
    /// side of a replicated disk (its VM would lose its second copy), naming the VMs.
    pub fn check_leave(&self) -> Result<(), ClusterError> {
        self.check_change()?;
        let state = self.member()?;
        let client = self.etcd_client(&state)?;
        let resources = self.block(async move { crate::drbd::alloc::list(&client).await })?;
        let vms = replicated_vms_on(&resources, &state.node_name);
        if vms.is_empty() {
            return Ok(());
        }
        Err(ClusterError::Conflict(format!(
            "this node holds replicated disks of the VMs {}: turn their replication off or move \
             the replicas to another node first",
            vms.join(", ")
        )))
    }

    /// Every other node as a target for a VM of this node using `vm_bridges`
    /// (`GET /api/v1/vms/{vm}/targets`): empty on a standalone node; 503 without quorum (the
    /// records could not be read, so no node can be vouched for).
    pub fn targets(&self, vm_bridges: &[String]) -> Result<Vec<TargetView>, ClusterError> {
        let status = self.status();
        if status.mode != ClusterMode::Member {
            return Ok(Vec::new());
        }
        if let Some(q) = &status.quorum {
            quorum::gate(q)?;
        }
        Ok(placement::targets(
            &status.this_node,
            &status.nodes,
            vm_bridges,
        ))
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

    pub(crate) fn member(&self) -> Result<LocalState, ClusterError> {
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
            tls_files: Some(self.ctx.files.clone()),
            ttl: Duration::from_secs(self.ctx.timing.lease_ttl_s),
            keys: vec![(
                format!("{}{}", records::ALIVE_PREFIX, state.node_name),
                state.node_name.clone().into_bytes(),
            )],
            request_timeout: STATUS_TIMEOUT,
        };
        let monitor = self.monitor.clone();
        let ctx = self.ctx.clone();
        let watched = state.clone();
        let tick_tls = cfg.tls.clone();
        let watch = self.rt().spawn(async move {
            loop {
                monitor.tick(&ctx, &watched, &tick_tls).await;
                tokio::time::sleep(monitor::TICK).await;
            }
        });
        if let Some(old) = self
            .monitor_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(watch)
        {
            old.abort();
        }
        let slot = self.keeper.clone();
        // etcd may not serve yet (a boot, a cluster without quorum): keep trying.
        let task = self.rt().spawn(async move {
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
        *self.upkeep.lock().unwrap_or_else(|e| e.into_inner()) = Some(upkeep::start(
            self.rt().handle(),
            self.ctx.clone(),
            state,
            self.monitor.clone(),
        ));
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
        self.upkeep.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self
            .monitor_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        self.monitor.reset();
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

    pub(crate) fn etcd_client(
        &self,
        state: &LocalState,
    ) -> Result<etcd_client::Client, ClusterError> {
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
                this_node: self.ctx_now().node_name.clone(),
                cluster: None,
                quorum: None,
                nodes: Vec::new(),
                failover: None,
                snapshots: Vec::new(),
                bridges: Vec::new(),
            };
        };
        let tls = etcd_wait::client_tls(&self.ctx.files);
        let monitor = self.monitor.clone();
        let probed = state.clone();
        let (observed, reachable) = match tls {
            Ok(tls) => self.block(async move {
                // The voters are probed in parallel (a cut-off node answers within the
                // probe's timeout); the records are read only with a quorum.
                let view = monitor.check(&probed, &tls).await;
                if !view.has_quorum {
                    return (None, view.reachable);
                }
                (
                    monitor.read_records(&tls, STATUS_TIMEOUT).await,
                    view.reachable,
                )
            }),
            Err(_) => (None, Vec::new()),
        };
        let mut out = status::assemble(
            &state,
            observed.as_ref(),
            &reachable,
            self.ctx.timing.lease_ttl_s,
        );
        if let Some(o) = &observed {
            out.bridges =
                networks::bridge_table(o.nodes.iter().map(|n| (n.name.as_str(), &n.networks)));
        }
        out.snapshots = snapshot::list(&snapshot::dir_of(&self.ctx.files.dir));
        out
    }

    /// Check a create request (name, address is one of ours, not already a member).
    pub fn check_create(&self, req: &CreateCluster) -> Result<(), ClusterError> {
        validate::node_name("name", &req.name)?;
        validate::cluster_address("address", req.address, &self.ctx.names.addresses())?;
        // This node's hostname becomes its name in the cluster (and in its certificate).
        validate::node_name("node name", &self.ctx_now().node_name)?;
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

    /// The context with this node's name as it is now: a standalone node takes its current
    /// hostname (set by the setup wizard, perhaps after cairnd started) when it creates or
    /// joins; a member keeps the name it has in the cluster (`state.node_name`).
    fn ctx_now(&self) -> Arc<Ctx> {
        match self.ctx.names.node_name() {
            Some(name) if !name.is_empty() && name != self.ctx.node_name => Arc::new(Ctx {
                node_name: name,
                ..(*self.ctx).clone()
            }),
            _ => self.ctx.clone(),
        }
    }

    /// Create the cluster: CA, node certificate, a one-member etcd, the cluster record.
    pub fn create(
        &self,
        req: CreateCluster,
        progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        self.check_create(&req)?;
        let state = self.exclusive(|| {
            let ctx = self.ctx_now();
            let handle = self.rt().handle().clone();
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
        self.require_quorum(&state)?;
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
        validate::node_name("node name", &self.ctx_now().node_name)?;
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
            let ctx = self.ctx_now();
            let handle = self.rt().handle().clone();
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
        self.require_quorum(&state)?;
        let client = self.etcd_client(&state)?;
        let ctx = self.ctx.clone();
        self.block(async move { accept::accept(&ctx, &state, &client, &req).await })
    }

    /// Leave the cluster gracefully (refused while this node holds replicas of HA VMs).
    pub fn leave(&self, progress: &dyn Progress) -> Result<String, ClusterError> {
        let state = self.member()?;
        self.require_quorum(&state)?;
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
        self.require_quorum(&state)?;
        let client = self.etcd_client(&state)?;
        progress.progress(10, &format!("removing {node}"));
        let node = node.to_string();
        let done = node.clone();
        let serials = self.block(async move {
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
            for serial in std::iter::once(&rec.cert_serial).chain(&rec.previous_serials) {
                records::revoke(
                    &client,
                    serial,
                    &records::RevokedRecord {
                        node: node.clone(),
                        at: now_s(),
                    },
                )
                .await?;
            }
            records::delete_node(&client, &node).await?;
            Ok(std::iter::once(rec.cert_serial)
                .chain(rec.previous_serials)
                .collect::<Vec<_>>())
        })?;
        for serial in &serials {
            self.monitor.note_revoked(serial);
        }
        Ok(format!(
            "{done} removed: its etcd member is gone and its certificate revoked"
        ))
    }
}

impl ClusterService {
    /// Check a recovery request: a member that runs an etcd member, the snapshot it names
    /// exists, and this node has **no** quorum (otherwise remove the dead nodes instead).
    pub fn check_recover(&self, req: &RecoverCluster) -> Result<(), ClusterError> {
        let state = self.member()?;
        if state.role == Role::Client {
            return Err(ClusterError::Conflict(
                "this node runs no etcd member and has no etcd data: recover on a surviving voter"
                    .into(),
            ));
        }
        if let Some(w) = &req.snapshot {
            let sdir = snapshot::dir_of(&self.ctx.files.dir);
            recover::pick_source(&sdir, &snapshot::list(&sdir), Some(w), &self.ctx.etcd_data)?;
        }
        if self.busy.load(Ordering::SeqCst) {
            return Err(ClusterError::Conflict(
                "a cluster create, join or recovery is already running".into(),
            ));
        }
        let status = self.status();
        if let Some(q) = status.quorum.filter(|q| q.has_quorum) {
            return Err(ClusterError::Conflict(format!(
                "this node has quorum (it reaches {} of the voters {}): recovery is only for a \
                 cluster that lost quorum for good; remove dead nodes instead",
                q.reachable.join(", "),
                q.voters.join(", ")
            )));
        }
        Ok(())
    }

    /// Quorum lost for good: make this node a new one-member cluster from a snapshot (a new
    /// cluster id, the CA kept, the lost members and their nodes dropped). A task.
    pub fn recover(
        &self,
        req: RecoverCluster,
        progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        self.check_recover(&req)?;
        let state = self.member()?;
        let (new_state, dropped) = self.exclusive(|| {
            // The old lease cannot be revoked without quorum: let it go.
            self.upkeep.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(t) = self
                .keeper_start
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                t.abort();
            }
            drop(self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take());
            let ctx = self.ctx.clone();
            let handle = self.rt().handle().clone();
            let wanted = req.snapshot.clone();
            handle.block_on(async move {
                recover::run(&ctx, &state, wanted.as_deref(), now_s(), progress).await
            })
        })?;
        self.start_liveness(&new_state);
        let msg = format!(
            "cluster {} recovered on {} as a new cluster of one (id {}); dropped: {}; add nodes \
             with a join token",
            new_state.cluster.name,
            new_state.node_name,
            new_state.cluster.id,
            if dropped.is_empty() {
                "none".to_string()
            } else {
                dropped.join(", ")
            }
        );
        self.set_state(Some(new_state));
        Ok(msg)
    }

    /// The member side of `POST /cluster/v1/renew`: sign the CSR of the member whose
    /// certificate (PEM, verified by TLS) is `caller_pem`, unless it was revoked.
    pub fn sign_renewal(&self, caller_pem: &str, csr_pem: &str) -> Result<String, ClusterError> {
        let state = self.member()?;
        let files = &self.ctx.files;
        let ca_cert = files.read(&files.ca_cert()).map_err(ClusterError::Files)?;
        let ca_key = files.read(&files.ca_key()).map_err(|_| {
            ClusterError::Conflict("this node holds no CA key: ask another member".into())
        })?;
        let serial = crate::ca::cert_info(caller_pem)
            .map_err(ClusterError::Certificates)?
            .serial_hex;
        let client = self.etcd_client(&state)?;
        if self.block(async move { records::is_revoked(&client, &serial).await })? {
            return Err(ClusterError::TokenRefused(
                "this member certificate was revoked".into(),
            ));
        }
        renewal::sign_for_member(&ca_cert, &ca_key, caller_pem, csr_pem, SystemTime::now()).map_err(
            |e| ClusterError::Invalid {
                field: "csr_pem",
                reason: cairn_base::error_chain::error_chain(&e),
            },
        )
    }
}

fn build_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .thread_name("cairn-cluster")
        .enable_all()
        .build()
}

/// The VMs (sorted, once each) with a replicated disk that has a side on `node`.
fn replicated_vms_on(resources: &[crate::drbd::record::ResourceRecord], node: &str) -> Vec<String> {
    let mut vms: Vec<String> = resources
        .iter()
        .filter(|r| r.side(node).is_some())
        .map(|r| r.vm.clone())
        .collect();
    vms.sort();
    vms.dedup();
    vms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NameInventory;

    struct NoNames;

    impl LocalNames for NoNames {
        fn names(&self) -> NameInventory {
            NameInventory::default()
        }
        fn addresses(&self) -> Vec<std::net::IpAddr> {
            Vec::new()
        }
    }

    /// A node renamed by the setup wizard after cairnd started.
    struct Renamed;

    impl LocalNames for Renamed {
        fn names(&self) -> NameInventory {
            NameInventory::default()
        }
        fn addresses(&self) -> Vec<std::net::IpAddr> {
            Vec::new()
        }
        fn node_name(&self) -> Option<String> {
            Some("node3".into())
        }
    }

    /// A standalone service in `dir/sub`, started under `name`.
    fn open_in(
        dir: &tempfile::TempDir,
        sub: &str,
        name: &str,
        names: Arc<dyn LocalNames>,
    ) -> ClusterService {
        ClusterService::open(
            ClusterPaths {
                dir: dir.path().join(sub).join("cluster"),
                etcd_data: dir.path().join(sub).join("etcd"),
            },
            name,
            names,
        )
        .unwrap()
    }

    #[test]
    fn a_standalone_node_goes_by_its_current_hostname() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, "a", "cairn-dd7529", Arc::new(Renamed));
        assert_eq!(s.status().this_node, "node3");
        assert_eq!(s.ctx_now().node_name, "node3");
        // Without a current name the one given at open stands.
        let s = open_in(&dir, "b", "cairn-dd7529", Arc::new(NoNames));
        assert_eq!(s.status().this_node, "cairn-dd7529");
    }

    #[test]
    fn a_standalone_node_makes_no_runtime_until_a_call_needs_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = open_in(&dir, "a", "node1", Arc::new(NoNames));
        assert_eq!(s.status().mode, ClusterMode::Standalone);
        assert!(s.check_recover(&RecoverCluster::default()).is_err());
        assert!(
            s.rt.get().is_none(),
            "a runtime was made for a standalone node"
        );
        assert_eq!(s.block(async { 1 + 1 }), 2);
        assert!(s.rt.get().is_some());
    }

    #[test]
    fn leave_names_the_vms_whose_disks_this_node_replicates() {
        let web = crate::drbd::record::tests::sample();
        let mut web1 = web.clone();
        web1.name = "cairn4".into();
        web1.vm_disk = "disk1".into();
        let mut db = web.clone();
        db.name = "cairn5".into();
        db.vm = "db".into();
        db.sides[1].node = "node3".into();
        let all = [web, web1, db];
        assert_eq!(replicated_vms_on(&all, "node1"), ["db", "web"]);
        assert_eq!(replicated_vms_on(&all, "node2"), ["web"]);
        assert_eq!(replicated_vms_on(&all, "node3"), ["db"]);
        assert!(replicated_vms_on(&all, "node4").is_empty());
    }
}
