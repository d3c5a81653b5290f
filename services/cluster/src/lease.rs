//! A node's etcd lease, kept alive by our own loop (DESIGN.md §6).
//!
//! `etcd-client` does not reconnect keepalive streams, and the TTL etcd reports can be wrong
//! around a leader change, so the keeper: sends one keepalive at a time every TTL / 3 on a
//! client of its own, recreates client and stream on any error or late answer, records the
//! time each successful keepalive was *sent* (`last_ok`), and declares the lease lost when
//! etcd answers TTL ≤ 0 or when `last_ok + TTL` has passed, whatever etcd says. A lost lease is
//! replaced: a new one is granted and the keys are put again on it.

use crate::etcd::{connect, connect_unbounded, EtcdError, EtcdTls};
use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper as EcKeeper, PutOptions, Txn, TxnOp};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};

/// What the keeper needs.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// etcd client endpoints (`https://ip:port`): voters only.
    pub endpoints: Vec<String>,
    pub tls: EtcdTls,
    /// Where to reread the identity at each (re)connect (the node's cluster directory: a
    /// renewed certificate is used from the next reconnect on); `tls` when absent or
    /// unreadable.
    pub tls_files: Option<crate::local::LocalFiles>,
    /// The lease TTL, whole seconds, at least [`crate::etcd_conf::min_lease_ttl_s`] of the
    /// cluster's election timeout (etcd raises a shorter one silently).
    pub ttl: Duration,
    /// Keys put with the lease (and put again on every new lease).
    pub keys: Vec<(String, Vec<u8>)>,
    /// Bound for connecting and for each request.
    pub request_timeout: Duration,
}

impl LeaseConfig {
    /// The client identity for a new connection: reread from [`LeaseConfig::tls_files`] when
    /// set and readable, else [`LeaseConfig::tls`].
    pub fn identity(&self) -> EtcdTls {
        let Some(files) = &self.tls_files else {
            return self.tls.clone();
        };
        let read = |p: std::path::PathBuf| files.read(&p).ok();
        match (
            read(files.ca_cert()),
            read(files.node_cert()),
            read(files.node_key()),
        ) {
            (Some(ca_pem), Some(cert_pem), Some(key_pem)) => EtcdTls {
                ca_pem,
                cert_pem,
                key_pem,
            },
            _ => self.tls.clone(),
        }
    }
}

/// The lease as the keeper last knew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The current lease (a new id after a loss).
    pub lease_id: i64,
    /// When the last successful keepalive (or the grant) was sent.
    pub last_ok: Instant,
    /// Since when the lease is known or presumed lost (None: held).
    pub lost_since: Option<Instant>,
}

impl LeaseStatus {
    /// The latest instant the lease can still be alive in the cluster, from our own record:
    /// `last_ok + ttl`.
    pub fn deadline(&self, ttl: Duration) -> Instant {
        self.last_ok + ttl
    }

    /// Whether the lease is held at `now`: not lost and before [`LeaseStatus::deadline`].
    pub fn is_held(&self, ttl: Duration, now: Instant) -> bool {
        self.lost_since.is_none() && now < self.deadline(ttl)
    }
}

/// Keeps one lease alive in the background; stops (without revoking) when dropped.
pub struct LeaseKeeper {
    status: watch::Receiver<LeaseStatus>,
    stop: Option<oneshot::Sender<bool>>,
    task: Option<JoinHandle<Result<(), EtcdError>>>,
    ttl: Duration,
}

impl LeaseKeeper {
    /// Grant a lease, put the keys with it and start keeping it alive. Fails if the first
    /// grant fails (no quorum reachable, bad TLS, bad TTL).
    pub async fn start(cfg: LeaseConfig) -> Result<LeaseKeeper, EtcdError> {
        let ttl_s = i64::try_from(cfg.ttl.as_secs()).unwrap_or(i64::MAX);
        if ttl_s < 1 || cfg.ttl.subsec_nanos() != 0 {
            return Err(EtcdError::Unexpected {
                op: "lease grant".into(),
                reason: format!("TTL {:?} is not a whole number (≥ 1) of seconds", cfg.ttl),
            });
        }
        let (lease_id, sent) = grant_and_put(&cfg, ttl_s).await?;
        let (tx, rx) = watch::channel(LeaseStatus {
            lease_id,
            last_ok: sent,
            lost_since: None,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let ttl = cfg.ttl;
        let task = tokio::spawn(run(cfg, ttl_s, tx, stop_rx));
        Ok(LeaseKeeper {
            status: rx,
            stop: Some(stop_tx),
            task: Some(task),
            ttl,
        })
    }

    /// Follow the status (changes on every successful keepalive, loss and new lease).
    pub fn watch(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// The status now.
    pub fn status(&self) -> LeaseStatus {
        *self.status.borrow()
    }

    /// The lease TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Stop keeping the lease alive; with `revoke` (a graceful leave) revoke it so its keys
    /// go at once, else it expires after its TTL.
    pub async fn shutdown(mut self, revoke: bool) -> Result<(), EtcdError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(revoke);
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Grant a lease and put every key on it in one txn; returns the id and when the grant was
/// sent.
async fn grant_and_put(cfg: &LeaseConfig, ttl_s: i64) -> Result<(i64, Instant), EtcdError> {
    let mut c = connect(&cfg.endpoints, &cfg.identity(), cfg.request_timeout).await?;
    let sent = Instant::now();
    let grant = c
        .lease_grant(ttl_s, None)
        .await
        .map_err(|source| EtcdError::Call {
            op: format!("lease grant {ttl_s} s"),
            source,
        })?;
    let id = grant.id();
    if !cfg.keys.is_empty() {
        let ops: Vec<TxnOp> = cfg
            .keys
            .iter()
            .map(|(k, v)| {
                TxnOp::put(
                    k.as_str(),
                    v.clone(),
                    Some(PutOptions::new().with_lease(id)),
                )
            })
            .collect();
        c.txn(Txn::new().and_then(ops))
            .await
            .map_err(|source| EtcdError::Call {
                op: format!("put the keys of lease {id:x}"),
                source,
            })?;
    }
    Ok((id, sent))
}

struct Stream {
    _client: Client,
    keeper: EcKeeper,
    stream: LeaseKeepAliveStream,
}

async fn run(
    cfg: LeaseConfig,
    ttl_s: i64,
    tx: watch::Sender<LeaseStatus>,
    mut stop: oneshot::Receiver<bool>,
) -> Result<(), EtcdError> {
    let interval = (cfg.ttl / 3).max(Duration::from_millis(100));
    // Wait at most this long for one answer: a late answer is as bad as none.
    let answer_within = cfg.request_timeout.min(interval);
    let retry = (interval / 4).max(Duration::from_millis(50));
    let mut stream: Option<Stream> = None;
    let mut next = Instant::now() + interval;
    loop {
        tokio::select! {
            biased;
            r = &mut stop => {
                let revoke = r.unwrap_or(false);
                drop(stream);
                if revoke {
                    let id = tx.borrow().lease_id;
                    let mut c = connect(&cfg.endpoints, &cfg.identity(), cfg.request_timeout).await?;
                    c.lease_revoke(id).await.map_err(|source| EtcdError::Call {
                        op: format!("lease revoke {id:x}"),
                        source,
                    })?;
                }
                return Ok(());
            }
            _ = sleep_until(next) => {}
        }
        let now = Instant::now();
        next = now + interval;
        let current = *tx.borrow();

        if current.lost_since.is_some() {
            match grant_and_put(&cfg, ttl_s).await {
                Ok((id, sent)) => {
                    tracing::info!(lease = format!("{id:x}"), "etcd lease: new lease granted");
                    tx.send_replace(LeaseStatus {
                        lease_id: id,
                        last_ok: sent,
                        lost_since: None,
                    });
                }
                Err(e) => {
                    tracing::debug!("etcd lease: new lease not granted yet: {e}");
                    next = Instant::now() + retry;
                }
            }
            continue;
        }

        let sent = Instant::now();
        let outcome = match stream.as_mut() {
            None => match open_stream(&cfg, current.lease_id, answer_within).await {
                Ok(s) => {
                    stream = Some(s);
                    Outcome::Ok
                }
                Err(o) => o,
            },
            Some(s) => {
                let r = timeout(answer_within, async {
                    s.keeper.keep_alive().await?;
                    s.stream.message().await
                })
                .await;
                match r {
                    Ok(Ok(Some(resp))) if resp.ttl() > 0 => Outcome::Ok,
                    Ok(Ok(Some(_))) => Outcome::Expired,
                    Ok(Ok(None)) => Outcome::Failed("the keepalive stream ended".into()),
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Failed(format!("no answer within {answer_within:?}")),
                }
            }
        };
        match outcome {
            Outcome::Ok => {
                tx.send_modify(|s| s.last_ok = sent);
            }
            Outcome::Expired => {
                tracing::warn!(
                    lease = format!("{:x}", current.lease_id),
                    "etcd lease: expired (etcd answered TTL ≤ 0)"
                );
                stream = None;
                tx.send_modify(|s| s.lost_since = Some(Instant::now()));
                next = Instant::now();
            }
            Outcome::Failed(why) => {
                tracing::debug!("etcd lease: keepalive failed, reconnecting: {why}");
                stream = None;
                next = Instant::now() + retry;
            }
        }
        // Our own deadline, whatever etcd reports.
        let now = Instant::now();
        if tx.borrow().lost_since.is_none() && now >= tx.borrow().deadline(cfg.ttl) {
            tracing::warn!(
                lease = format!("{:x}", current.lease_id),
                "etcd lease: no keepalive succeeded within the TTL, presumed lost"
            );
            stream = None;
            tx.send_modify(|s| s.lost_since = Some(now));
            next = now;
        }
    }
}

enum Outcome {
    Ok,
    Expired,
    Failed(String),
}

/// A fresh client and keepalive stream (opening it sends the first keepalive).
async fn open_stream(
    cfg: &LeaseConfig,
    id: i64,
    answer_within: Duration,
) -> Result<Stream, Outcome> {
    let mut client = connect_unbounded(&cfg.endpoints, &cfg.identity(), cfg.request_timeout)
        .await
        .map_err(|e| Outcome::Failed(e.to_string()))?;
    match timeout(answer_within, client.lease_keep_alive(id)).await {
        Ok(Ok((keeper, stream))) => Ok(Stream {
            _client: client,
            keeper,
            stream,
        }),
        Ok(Err(etcd_client::Error::LeaseKeepAliveError(e))) if e.contains("not found") => {
            Err(Outcome::Expired)
        }
        Ok(Err(e)) => Err(Outcome::Failed(e.to_string())),
        Err(_) => Err(Outcome::Failed(format!(
            "no stream within {answer_within:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_reread_from_the_files_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::local::LocalFiles {
            dir: dir.path().to_path_buf(),
        };
        let started = EtcdTls {
            ca_pem: "CA".into(),
            cert_pem: "OLD".into(),
            key_pem: "OLDKEY".into(),
        };
        let mut cfg = LeaseConfig {
            endpoints: vec![],
            tls: started,
            tls_files: Some(files.clone()),
            ttl: Duration::from_secs(3),
            keys: vec![],
            request_timeout: Duration::from_secs(1),
        };
        // Nothing on disk: what it started with.
        assert_eq!(cfg.identity().cert_pem, "OLD");
        files.write(&files.ca_cert(), b"CA", 0o644).unwrap();
        files.write(&files.node_key(), b"NEWKEY", 0o600).unwrap();
        files.write(&files.node_cert(), b"NEW", 0o644).unwrap();
        let id = cfg.identity();
        assert_eq!(
            (id.cert_pem.as_str(), id.key_pem.as_str()),
            ("NEW", "NEWKEY")
        );
        cfg.tls_files = None;
        assert_eq!(cfg.identity().cert_pem, "OLD");
    }

    #[test]
    fn held_until_our_own_deadline() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(6);
        let s = LeaseStatus {
            lease_id: 7,
            last_ok: t0,
            lost_since: None,
        };
        assert_eq!(s.deadline(ttl), t0 + ttl);
        assert!(s.is_held(ttl, t0 + Duration::from_secs(5)));
        assert!(!s.is_held(ttl, t0 + ttl));
        let lost = LeaseStatus {
            lost_since: Some(t0),
            ..s
        };
        assert!(!lost.is_held(ttl, t0));
    }
}
