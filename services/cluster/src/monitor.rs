//! The member's watch loop: every tick it probes the voters (the quorum alert), and while it
//! has quorum it refreshes the voter list and the revocation list (the CRL etcd reads and the
//! set the cluster port refuses).

use crate::ctx::Ctx;
use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
use crate::local::LocalState;
use crate::pool::EtcdPool;
use crate::quorum::{self, AlertChange, AlertState, Probe, Voter};
use crate::records;
use crate::status::Observed;
use crate::types::QuorumView;
use cairn_core::alert::{AlertLevel, AlertSink};
use etcd_client::Client;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often the loop runs.
pub const TICK: Duration = Duration::from_secs(2);

/// What the loop knows between ticks; shared with the service (gate, cluster port).
#[derive(Default)]
pub struct Monitor {
    voters: Mutex<Vec<Voter>>,
    /// The revoked serials last read from etcd (or recorded by this node).
    revoked: Mutex<BTreeSet<String>>,
    /// The serials of the CRL last written to disk (None: not written by this process).
    written: Mutex<Option<Vec<String>>>,
    alerts: Mutex<Option<Arc<dyn AlertSink>>>,
    alert: Mutex<AlertState>,
    /// Long-lived clients of the voters (probes, reads).
    pool: Arc<EtcdPool>,
    /// The endpoints of the voters that answered the last probe with a leader, this node's
    /// first: where reads go.
    led: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Monitor {
    /// Where the quorum alert goes (cairnd's alert registry).
    pub fn set_alerts(&self, sink: Arc<dyn AlertSink>) {
        *lock(&self.alerts) = Some(sink);
    }

    /// Where alerts go, once cairnd said (the DRBD controller's alerts go there too).
    pub fn alerts(&self) -> Option<Arc<dyn AlertSink>> {
        lock(&self.alerts).clone()
    }

    /// The voters to probe: the last member list read, or the node's own endpoints.
    pub fn voters(&self, state: &LocalState) -> Vec<Voter> {
        let v = lock(&self.voters).clone();
        if v.is_empty() {
            quorum::voters_of(&[], &state.etcd_endpoints)
        } else {
            v
        }
    }

    /// Probe the voters now and decide.
    pub async fn check(&self, state: &LocalState, tls: &EtcdTls) -> QuorumView {
        let voters = self.voters(state);
        let answers = quorum::probe(&self.pool, &voters, tls).await;
        let mut led: Vec<String> = voters
            .iter()
            .zip(&answers)
            .filter(|(_, (_, p))| matches!(p, Probe::Leader(_)))
            .map(|(v, _)| v.endpoint.clone())
            .collect();
        let own = voters.iter().find(|v| v.name == state.node_name);
        if let Some(own) = own {
            led.sort_by_key(|e| *e != own.endpoint);
        }
        *lock(&self.led) = led;
        quorum::decide(&answers)
    }

    /// A client for reads: the pool's client of a voter that answered the last probe with a
    /// leader (this node's own first), or None when none did.
    pub async fn read_client(&self, tls: &EtcdTls, timeout: Duration) -> Option<(String, Client)> {
        let ep = lock(&self.led).first().cloned()?;
        let c = self.pool.client(&ep, tls, timeout).await.ok()?;
        Some((ep, c))
    }

    /// Read the status's records through [`Self::read_client`] within `deadline`; a failed
    /// read drops that client.
    pub async fn read_records(&self, tls: &EtcdTls, deadline: Duration) -> Option<Observed> {
        let (ep, client) = self.read_client(tls, deadline).await?;
        let observed = crate::probe::read_records(&client, deadline).await;
        if observed.is_none() {
            self.pool.forget(&ep);
        }
        observed
    }

    /// Whether a certificate serial (lowercase hex) is revoked as far as this node knows.
    pub fn is_revoked(&self, serial: &str) -> bool {
        lock(&self.revoked).contains(serial)
    }

    /// Record a revocation this node made itself (before the next tick reads it back).
    pub fn note_revoked(&self, serial: &str) {
        lock(&self.revoked).insert(serial.to_string());
    }

    /// Forget the cluster (a leave): the alert is cleared, the lists emptied.
    pub fn reset(&self) {
        lock(&self.voters).clear();
        lock(&self.revoked).clear();
        *lock(&self.written) = None;
        lock(&self.led).clear();
        self.pool.clear();
        let was = std::mem::take(&mut *lock(&self.alert));
        if was.raised() {
            if let Some(a) = lock(&self.alerts).clone() {
                a.clear(quorum::ALERT_KEY, "this node left its cluster");
            }
        }
    }

    /// One tick: probe, raise or clear the alert, refresh voters and revocations.
    pub async fn tick(&self, ctx: &Ctx, state: &LocalState, tls: &EtcdTls) {
        let view = self.check(state, tls).await;
        let change = lock(&self.alert).observe(&view);
        if let Some(change) = change {
            let sink = lock(&self.alerts).clone();
            match (&change, sink) {
                (AlertChange::Raise(m), Some(a)) => {
                    a.raise(quorum::ALERT_KEY, AlertLevel::Critical, m);
                }
                (AlertChange::Clear(m), Some(a)) => {
                    a.clear(quorum::ALERT_KEY, m);
                }
                (_, None) => {}
            }
            tracing::warn!("cluster: quorum {change:?}");
        }
        if !view.has_quorum {
            return;
        }
        if let Err(e) = self.refresh(ctx, state, tls).await {
            tracing::warn!(
                "cluster: cannot refresh voters and revocations: {}",
                cairn_base::error_chain::error_chain(&e)
            );
        }
    }

    async fn refresh(
        &self,
        ctx: &Ctx,
        state: &LocalState,
        tls: &EtcdTls,
    ) -> Result<(), ClusterError> {
        let Some((ep, mut client)) = self.read_client(tls, quorum::PROBE_TIMEOUT).await else {
            return Ok(());
        };
        let read = self.read_lists(&mut client, state).await;
        if read.is_err() {
            self.pool.forget(&ep);
        }
        let serials = read?;
        *lock(&self.revoked) = serials.iter().cloned().collect();
        let stale = lock(&self.written).as_ref() != Some(&serials);
        if stale {
            crate::crl::write_crl(&ctx.files, &serials, SystemTime::now())?;
            tracing::info!(
                "cluster: revocation list written ({} revoked)",
                serials.len()
            );
            *lock(&self.written) = Some(serials);
        }
        Ok(())
    }

    /// Read the member list (the voters are refreshed from it) and the revoked serials.
    async fn read_lists(
        &self,
        client: &mut Client,
        state: &LocalState,
    ) -> Result<Vec<String>, ClusterError> {
        let members = etcd::member_list(client)
            .await
            .map_err(ClusterError::EtcdOp)?;
        *lock(&self.voters) = quorum::voters_of(&members, &state.etcd_endpoints);
        records::revoked_serials(client).await
    }
}
