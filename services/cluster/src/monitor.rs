//! The member's watch loop: every tick it probes the voters (the quorum alert), and while it
//! has quorum it refreshes the voter list and the revocation list (the CRL etcd reads and the
//! set the cluster port refuses).

use crate::ctx::Ctx;
use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
use crate::local::LocalState;
use crate::quorum::{self, AlertChange, AlertState, Voter};
use crate::records;
use crate::types::QuorumView;
use cairn_core::alert::{AlertLevel, AlertSink};
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Monitor {
    /// Where the quorum alert goes (cairnd's alert registry).
    pub fn set_alerts(&self, sink: Arc<dyn AlertSink>) {
        *lock(&self.alerts) = Some(sink);
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
        quorum::decide(&quorum::probe(&voters, tls).await)
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
        let endpoints: Vec<String> = self.voters(state).into_iter().map(|v| v.endpoint).collect();
        let mut client = etcd::connect(&endpoints, tls, quorum::PROBE_TIMEOUT)
            .await
            .map_err(ClusterError::EtcdOp)?;
        let members = etcd::member_list(&mut client)
            .await
            .map_err(ClusterError::EtcdOp)?;
        let voters = quorum::voters_of(&members, &state.etcd_endpoints);
        *lock(&self.voters) = voters;
        let serials = records::revoked_serials(&client).await?;
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
}
