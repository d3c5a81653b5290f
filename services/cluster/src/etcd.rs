//! The etcd client: mutual-TLS connections, membership changes, snapshots, guarded writes.
//!
//! Every call takes a [`Client`]; `etcd-client`'s request timeout applies to the whole
//! channel, so make a fresh client with [`connect_unbounded`] for anything that blocks long
//! (campaign, watch, keepalive, snapshot) and keep [`connect`]'s bounded client for the rest.

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, MemberAddOptions,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

pub use etcd_client;

/// A failed etcd operation, naming it.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// etcd (or the connection to it) refused or failed the call.
    #[error("etcd {op}: {source}")]
    Call {
        op: String,
        #[source]
        source: etcd_client::Error,
    },
    /// The operation did not succeed before its deadline.
    #[error("etcd {op}: gave up after {waited:?} waiting for {waited_for} (last error: {last})")]
    Timeout {
        op: String,
        waited_for: String,
        waited: Duration,
        last: String,
    },
    /// The answer does not make sense for the request.
    #[error("etcd {op}: {reason}")]
    Unexpected { op: String, reason: String },
    /// A local file could not be written.
    #[error("etcd {op}: {path}: {source}")]
    Io {
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn call(op: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> EtcdError {
    let op = op.into();
    move |source| EtcdError::Call { op, source }
}

/// The client side of etcd's mutual TLS: the cluster CA and this node's certificate and key
/// (PEM).
#[derive(Clone)]
pub struct EtcdTls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca_pem", &self.ca_pem.len())
            .field("cert_pem", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl EtcdTls {
    fn options(&self) -> TlsOptions {
        TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
    }
}

/// A member as `member list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// Empty until the member started.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// A client of `endpoints` (`https://ip:port`) with mutual TLS; `timeout` bounds connecting
/// and every request. With several endpoints, each is asked for its status first (in
/// parallel, within `timeout`) and only those that answer with a leader are used: the
/// balancer would otherwise send some requests to a dead member. With one endpoint the
/// connection is lazy and the first call reports an unreachable member. A client does not
/// follow members that die later: on a transport error, connect again.
pub async fn connect(
    endpoints: &[String],
    tls: &EtcdTls,
    timeout: Duration,
) -> Result<Client, EtcdError> {
    let live = live_endpoints(endpoints, tls, timeout).await?;
    connect_with(&live, tls, timeout, Some(timeout)).await
}

/// A client whose requests have no overall timeout (only connecting is bounded), for one
/// long-blocking call or stream (keepalive, watch, campaign, snapshot). Endpoints are
/// probed as in [`connect`].
pub async fn connect_unbounded(
    endpoints: &[String],
    tls: &EtcdTls,
    connect_timeout: Duration,
) -> Result<Client, EtcdError> {
    let live = live_endpoints(endpoints, tls, connect_timeout).await?;
    connect_with(&live, tls, connect_timeout, None).await
}

/// A client of one member (lazy: the first request connects), every request bounded by
/// `timeout`; for long-lived use ([`crate::pool::EtcdPool`]).
pub async fn connect_one(
    endpoint: &str,
    tls: &EtcdTls,
    timeout: Duration,
) -> Result<Client, EtcdError> {
    connect_with(&[endpoint.to_string()], tls, timeout, Some(timeout)).await
}

/// The endpoints that answer `status` with a leader within `timeout` (all of them when only
/// one is given). None answering is an error naming each endpoint's failure.
pub async fn live_endpoints(
    endpoints: &[String],
    tls: &EtcdTls,
    timeout: Duration,
) -> Result<Vec<String>, EtcdError> {
    if endpoints.len() <= 1 {
        return Ok(endpoints.to_vec());
    }
    let mut probes = tokio::task::JoinSet::new();
    for (i, ep) in endpoints.iter().enumerate() {
        let ep = ep.clone();
        let tls = tls.clone();
        probes.spawn(async move {
            let r = tokio::time::timeout(timeout, async {
                let mut c =
                    connect_with(std::slice::from_ref(&ep), &tls, timeout, Some(timeout)).await?;
                let (_, leader) = status(&mut c).await?;
                if leader == 0 {
                    return Err(EtcdError::Unexpected {
                        op: "status".into(),
                        reason: "no leader".into(),
                    });
                }
                Ok(())
            })
            .await;
            let r = match r {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            };
            (i, ep, r)
        });
    }
    let mut live = Vec::new();
    let mut failures = Vec::new();
    while let Some(done) = probes.join_next().await {
        match done {
            Ok((i, ep, Ok(()))) => live.push((i, ep)),
            Ok((_, ep, Err(e))) => failures.push(format!("{ep}: {e}")),
            Err(e) => failures.push(format!("probe: {e}")),
        }
    }
    if live.is_empty() {
        return Err(EtcdError::Unexpected {
            op: "connect".into(),
            reason: format!("no member answered: {}", failures.join("; ")),
        });
    }
    live.sort();
    Ok(live.into_iter().map(|(_, ep)| ep).collect())
}

async fn connect_with(
    endpoints: &[String],
    tls: &EtcdTls,
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
) -> Result<Client, EtcdError> {
    if endpoints.is_empty() {
        return Err(EtcdError::Unexpected {
            op: "connect".into(),
            reason: "no endpoints".into(),
        });
    }
    let mut opts = ConnectOptions::new()
        .with_tls(tls.options())
        .with_connect_timeout(connect_timeout)
        // HTTP/2 pings find a dead or frozen member even while a stream is idle.
        .with_keep_alive(connect_timeout, connect_timeout)
        .with_keep_alive_while_idle(true)
        // A member cut off from the leader fails requests instead of holding them.
        .with_require_leader(true);
    if let Some(t) = request_timeout {
        opts = opts.with_timeout(t);
    }
    Client::connect(endpoints, Some(opts))
        .await
        .map_err(call(format!("connect to {}", endpoints.join(","))))
}

/// The cluster's members.
pub async fn member_list(c: &mut Client) -> Result<Vec<Member>, EtcdError> {
    let resp = c.member_list().await.map_err(call("member list"))?;
    Ok(resp
        .members()
        .iter()
        .map(|m| Member {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        })
        .collect())
}

/// Add a learner at `peer_url` (`https://ip:2380`); returns its member id. etcd 3.4 allows
/// one learner at a time: a second add fails until the first is promoted or removed.
pub async fn add_learner(c: &mut Client, peer_url: &str) -> Result<u64, EtcdError> {
    let op = format!("member add --learner {peer_url}");
    let resp = c
        .member_add([peer_url], Some(MemberAddOptions::new().with_is_learner()))
        .await
        .map_err(call(op.clone()))?;
    resp.member().map(|m| m.id()).ok_or(EtcdError::Unexpected {
        op,
        reason: "the answer names no member".into(),
    })
}

/// Promote learner `id` to a voter, retrying with backoff until `deadline` while etcd says
/// the learner has not caught up with the leader (or the leader changes). A member that is
/// already a voter counts as promoted.
pub async fn promote_learner_with_retry(
    c: &mut Client,
    id: u64,
    deadline: Instant,
) -> Result<(), EtcdError> {
    let op = format!("member promote {id:x}");
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        let err = match c.member_promote(id).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let text = err.to_string();
        if text.contains("can only promote a learner member which is in sync")
            || is_transient(&text)
        {
            // Not caught up yet, or a transient failure: retry.
        } else if text.contains("can only promote a learner member") {
            // Already a voter (an earlier attempt succeeded but its answer was lost)?
            let members = member_list(c).await?;
            match members.iter().find(|m| m.id == id) {
                Some(m) if !m.is_learner => return Ok(()),
                _ => return Err(EtcdError::Call { op, source: err }),
            }
        } else {
            return Err(EtcdError::Call { op, source: err });
        }
        let now = Instant::now();
        if now + backoff > deadline {
            return Err(EtcdError::Timeout {
                op,
                waited_for: format!("learner {id:x} to catch up with the leader"),
                waited: now - started,
                last: text,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Remove member `id`, retrying with backoff until `deadline` while etcd refuses because the
/// cluster would be unhealthy without it (etcd's strict reconfiguration check wants the other
/// voters connected for 5 s first) or the leader changes. A dead member is removed at once.
pub async fn remove_member(c: &mut Client, id: u64, deadline: Instant) -> Result<(), EtcdError> {
    let op = format!("member remove {id:x}");
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let err = match c.member_remove(id).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let text = err.to_string();
        if !(text.contains("unhealthy cluster")
            || text.contains("re-configuration failed due to not enough started members")
            || is_transient(&text))
        {
            return Err(EtcdError::Call { op, source: err });
        }
        let now = Instant::now();
        if now + backoff > deadline {
            return Err(EtcdError::Timeout {
                op,
                waited_for: "the other voters to be connected and healthy".into(),
                waited: now - started,
                last: text,
            });
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

fn is_transient(text: &str) -> bool {
    text.contains("leader changed")
        || text.contains("no leader")
        || text.contains("timed out")
        || text.contains("Unavailable")
        || text.contains("transport")
}

/// The id of the member `c` reaches first and the leader's id, from `status` (one endpoint).
pub async fn status(c: &mut Client) -> Result<(u64, u64), EtcdError> {
    let s = c.status().await.map_err(call("status"))?;
    let member = s.header().map(|h| h.member_id()).unwrap_or(0);
    Ok((member, s.leader()))
}

/// Stream a snapshot of the backend into `path` (written to `path.tmp`, synced, renamed).
/// Returns its size in bytes. Use a client from [`connect_unbounded`]: a snapshot of a big
/// database outlives a request timeout.
pub async fn snapshot_to_file(c: &mut Client, path: &Path) -> Result<u64, EtcdError> {
    let op = "snapshot save";
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| EtcdError::Io {
            op: op.into(),
            path,
            source,
        }
    };
    let tmp = path.with_extension("tmp");
    let mut stream = c.snapshot().await.map_err(call(op))?;
    let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
    let mut size = 0u64;
    let mut finished = false;
    while let Some(chunk) = stream.message().await.map_err(call(op))? {
        file.write_all(chunk.blob()).await.map_err(io(&tmp))?;
        size += chunk.blob().len() as u64;
        if chunk.remaining_bytes() == 0 {
            finished = true;
        }
    }
    if !finished || size == 0 {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(EtcdError::Unexpected {
            op: op.into(),
            reason: format!("the stream ended early after {size} bytes"),
        });
    }
    file.sync_all().await.map_err(io(&tmp))?;
    drop(file);
    tokio::fs::rename(&tmp, path).await.map_err(io(path))?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = tokio::fs::File::open(dir).await {
            let _ = d.sync_all().await;
        }
    }
    Ok(size)
}

/// The condition of a guarded put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The key does not exist.
    Absent,
    /// The key exists with this create revision (the same incarnation: an election key, a
    /// record read before).
    CreateRevision(i64),
    /// The key was last modified at this revision (nobody changed it since it was read).
    ModRevision(i64),
}

/// Put `key = value` (attached to `lease` if given) only if `guard` holds, in one txn.
/// Returns whether it was written.
pub async fn guarded_put(
    c: &mut Client,
    key: &str,
    value: impl Into<Vec<u8>>,
    guard: Guard,
    lease: Option<i64>,
) -> Result<bool, EtcdError> {
    let cmp = match guard {
        Guard::Absent => Compare::create_revision(key, CompareOp::Equal, 0),
        Guard::CreateRevision(r) => Compare::create_revision(key, CompareOp::Equal, r),
        Guard::ModRevision(r) => Compare::mod_revision(key, CompareOp::Equal, r),
    };
    let opts = lease.map(|l| PutOptions::new().with_lease(l));
    let txn = Txn::new()
        .when([cmp])
        .and_then([TxnOp::put(key, value, opts)]);
    let resp = c
        .txn(txn)
        .await
        .map_err(call(format!("put {key} if {guard:?}")))?;
    Ok(resp.succeeded())
}

/// Put `key = value` only if the key does not exist. Returns whether it was written.
pub async fn put_if_absent(
    c: &mut Client,
    key: &str,
    value: impl Into<Vec<u8>>,
    lease: Option<i64>,
) -> Result<bool, EtcdError> {
    guarded_put(c, key, value, Guard::Absent, lease).await
}

/// Delete `key` only if it exists, in one txn; returns whether this call deleted it (so of
/// two members spending the same token, exactly one gets `true`).
pub async fn delete_if_exists(c: &mut Client, key: &str) -> Result<bool, EtcdError> {
    let txn = Txn::new()
        .when([Compare::version(key, CompareOp::Greater, 0)])
        .and_then([TxnOp::delete(key, None)]);
    let resp = c
        .txn(txn)
        .await
        .map_err(call(format!("delete {key} if it exists")))?;
    if !resp.succeeded() {
        return Ok(false);
    }
    Ok(resp.op_responses().iter().any(|r| match r {
        TxnOpResponse::Delete(d) => d.deleted() > 0,
        _ => false,
    }))
}

/// A key's value with its create and mod revisions, or None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    /// The lease it is attached to (0: none).
    pub lease: i64,
}

/// Read one key (linearizable).
pub async fn get(c: &mut Client, key: &str) -> Result<Option<Versioned>, EtcdError> {
    let resp = c.get(key, None).await.map_err(call(format!("get {key}")))?;
    Ok(resp.kvs().first().map(|kv| Versioned {
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }))
}
