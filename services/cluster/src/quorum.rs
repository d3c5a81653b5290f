//! Minority behaviour: probe the voters' etcd, decide whether this node reaches a quorum,
//! refuse cluster-wide changes without one (503 naming who it reaches) and the quorum alert.

use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
use crate::membership;
use crate::pool::EtcdPool;
use crate::types::QuorumView;
use std::sync::Arc;
use std::time::Duration;

/// The alert key raised while this node reaches no quorum of voters.
pub const ALERT_KEY: &str = "cluster-quorum";
/// How long one voter's probe may take (connect + `status`): a request without quorum fails
/// within this, not after etcd's own timeouts.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the slower voters may still answer once a majority did (they count as
/// unreachable after it).
pub const PROBE_GRACE: Duration = Duration::from_millis(300);
/// Consecutive probes without quorum before the alert is raised (one may fall into a leader
/// election of the majority).
pub const RAISE_AFTER: u32 = 2;

/// A voter as the probe knows it: its node name and etcd client endpoint (`https://ip:2379`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub name: String,
    pub endpoint: String,
}

/// What one voter's etcd answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// It answered and knows a leader (its member id).
    Leader(u64),
    /// It answered but knows no leader (an election, or it is cut off itself).
    NoLeader,
    /// No answer within [`PROBE_TIMEOUT`].
    Unreachable,
}

/// The quorum from the voters' answers: reachable are those that answered; there is a
/// quorum when they are a majority of the voters and one of them knows a leader.
pub fn decide(answers: &[(String, Probe)]) -> QuorumView {
    let voters: Vec<String> = answers.iter().map(|(n, _)| n.clone()).collect();
    let reachable: Vec<String> = answers
        .iter()
        .filter(|(_, p)| *p != Probe::Unreachable)
        .map(|(n, _)| n.clone())
        .collect();
    let leader = answers.iter().any(|(_, p)| matches!(p, Probe::Leader(_)));
    let mut view = membership::quorum(&voters, &reachable);
    view.has_quorum &= leader;
    view
}

/// `Ok` with a quorum; otherwise the 503 error naming the members this node reaches.
pub fn gate(view: &QuorumView) -> Result<(), ClusterError> {
    if view.has_quorum {
        Ok(())
    } else {
        Err(ClusterError::NoQuorum {
            reachable: view.reachable.clone(),
            voters: view.voters.clone(),
        })
    }
}

/// A change of the quorum alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertChange {
    Raise(String),
    Clear(String),
}

/// The quorum alert's state across probes: raised after [`RAISE_AFTER`] probes in a row
/// without quorum, cleared by the first probe with one.
#[derive(Debug, Default, Clone)]
pub struct AlertState {
    misses: u32,
    raised: bool,
}

impl AlertState {
    /// Feed one probe's view; returns the change to make, if any.
    pub fn observe(&mut self, view: &QuorumView) -> Option<AlertChange> {
        if view.has_quorum {
            self.misses = 0;
            if self.raised {
                self.raised = false;
                return Some(AlertChange::Clear(format!(
                    "this node reaches a quorum again ({} of the voters {})",
                    list(&view.reachable),
                    list(&view.voters)
                )));
            }
            return None;
        }
        self.misses = self.misses.saturating_add(1);
        if self.misses >= RAISE_AFTER && !self.raised {
            self.raised = true;
            return Some(AlertChange::Raise(format!(
                "this node reaches no quorum: it reaches {} of the voters {}; cluster changes \
                 are refused until it does, its own pools, VMs and page go on",
                list(&view.reachable),
                list(&view.voters)
            )));
        }
        None
    }

    /// Whether the alert is raised.
    pub fn raised(&self) -> bool {
        self.raised
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Probe every voter's etcd in parallel, each within [`PROBE_TIMEOUT`], with the pool's
/// long-lived clients (a voter that does not answer loses its client: the next probe
/// connects afresh).
pub async fn probe(pool: &Arc<EtcdPool>, voters: &[Voter], tls: &EtcdTls) -> Vec<(String, Probe)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, v) in voters.iter().enumerate() {
        let ep = v.endpoint.clone();
        let tls = tls.clone();
        let pool = pool.clone();
        set.spawn(async move {
            let r = tokio::time::timeout(PROBE_TIMEOUT, async {
                let mut c = pool.client(&ep, &tls, PROBE_TIMEOUT).await?;
                etcd::status(&mut c).await
            })
            .await;
            let p = match r {
                Ok(Ok((_, 0))) => Probe::NoLeader,
                Ok(Ok((_, leader))) => Probe::Leader(leader),
                // A member that answers "no leader" is reachable (the client asks for one).
                Ok(Err(e)) if e.to_string().contains("no leader") => Probe::NoLeader,
                _ => Probe::Unreachable,
            };
            if p == Probe::Unreachable {
                pool.forget(&ep);
            }
            (i, p)
        });
    }
    let mut out: Vec<(String, Probe)> = voters
        .iter()
        .map(|v| (v.name.clone(), Probe::Unreachable))
        .collect();
    let mut answered = vec![false; voters.len()];
    // Once a majority answered with a leader the outcome is known: the others get
    // [`PROBE_GRACE`] more, so one dead voter does not make every probe take the full timeout.
    let mut grace_until: Option<tokio::time::Instant> = None;
    loop {
        let next = match grace_until {
            Some(t) => match tokio::time::timeout_at(t, set.join_next()).await {
                Ok(n) => n,
                Err(_) => break,
            },
            None => set.join_next().await,
        };
        let Some(r) = next else { break };
        if let Ok((i, p)) = r {
            out[i].1 = p;
            answered[i] = true;
            if grace_until.is_none() && decide(&out).has_quorum {
                grace_until = Some(tokio::time::Instant::now() + PROBE_GRACE);
            }
        }
    }
    set.abort_all();
    for (v, done) in voters.iter().zip(&answered) {
        if !done {
            pool.forget(&v.endpoint);
        }
    }
    out
}

/// The voters from etcd's member list (voting members with a name and a client URL), or
/// from the endpoints this node knows (named by their address) before it read one.
pub fn voters_of(members: &[etcd::Member], fallback: &[String]) -> Vec<Voter> {
    let from_members: Vec<Voter> = members
        .iter()
        .filter(|m| !m.is_learner && !m.name.is_empty())
        .filter_map(|m| {
            m.client_urls.first().map(|u| Voter {
                name: m.name.clone(),
                endpoint: u.clone(),
            })
        })
        .collect();
    if !from_members.is_empty() {
        return from_members;
    }
    fallback
        .iter()
        .map(|e| Voter {
            name: e.trim_start_matches("https://").to_string(),
            endpoint: e.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(a: &[(&str, Probe)]) -> Vec<(String, Probe)> {
        a.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn a_majority_with_a_leader_has_quorum() {
        let v = decide(&answers(&[
            ("node1", Probe::Leader(7)),
            ("node2", Probe::Leader(7)),
            ("node3", Probe::Unreachable),
        ]));
        assert!(v.has_quorum);
        assert_eq!(v.reachable, ["node1", "node2"]);
        assert!(gate(&v).is_ok());
    }

    #[test]
    fn a_cut_off_node_reaches_only_itself_and_is_refused_naming_it() {
        let v = decide(&answers(&[
            ("node1", Probe::Unreachable),
            ("node2", Probe::Unreachable),
            ("node3", Probe::NoLeader),
        ]));
        assert!(!v.has_quorum);
        let e = gate(&v).unwrap_err();
        assert!(matches!(e, ClusterError::NoQuorum { .. }));
        let text = e.to_string();
        assert!(text.contains("[\"node3\"]"), "{text}");
        assert!(text.contains("node1") && text.contains("node2"), "{text}");
    }

    #[test]
    fn a_cut_off_node_that_still_believes_in_the_old_leader_has_no_quorum() {
        // Before its election timeout the cut-off member still reports the old leader.
        let v = decide(&answers(&[
            ("node1", Probe::Unreachable),
            ("node2", Probe::Unreachable),
            ("node3", Probe::Leader(1)),
        ]));
        assert!(!v.has_quorum);
    }

    #[test]
    fn a_majority_during_an_election_has_no_quorum_yet() {
        let v = decide(&answers(&[
            ("node1", Probe::NoLeader),
            ("node2", Probe::NoLeader),
            ("node3", Probe::Unreachable),
        ]));
        assert!(!v.has_quorum);
        assert_eq!(v.reachable, ["node1", "node2"]);
    }

    #[test]
    fn one_voter_alone_is_its_own_quorum_and_two_of_four_are_not() {
        assert!(decide(&answers(&[("a", Probe::Leader(1))])).has_quorum);
        assert!(
            !decide(&answers(&[
                ("a", Probe::Leader(1)),
                ("b", Probe::Leader(1)),
                ("c", Probe::Unreachable),
                ("d", Probe::Unreachable),
            ]))
            .has_quorum
        );
    }

    #[test]
    fn the_alert_is_raised_after_two_misses_and_cleared_by_the_first_success() {
        let bad = decide(&answers(&[
            ("node1", Probe::Unreachable),
            ("node2", Probe::Unreachable),
            ("node3", Probe::NoLeader),
        ]));
        let good = decide(&answers(&[
            ("node1", Probe::Leader(1)),
            ("node2", Probe::Leader(1)),
            ("node3", Probe::Leader(1)),
        ]));
        let mut s = AlertState::default();
        assert_eq!(s.observe(&good), None);
        assert_eq!(s.observe(&bad), None, "one miss may be an election");
        assert_eq!(s.observe(&good), None);
        assert_eq!(s.observe(&bad), None);
        match s.observe(&bad) {
            Some(AlertChange::Raise(m)) => {
                assert!(
                    m.contains("reaches node3 of the voters node1, node2, node3"),
                    "{m}"
                )
            }
            other => panic!("expected a raise, got {other:?}"),
        }
        assert!(s.raised());
        assert_eq!(s.observe(&bad), None, "raised once");
        assert!(matches!(s.observe(&good), Some(AlertChange::Clear(_))));
        assert!(!s.raised());
        assert_eq!(s.observe(&good), None);
    }

    #[test]
    fn voters_come_from_the_member_list_or_the_known_endpoints() {
        let m = |name: &str, learner: bool| etcd::Member {
            id: 1,
            name: name.into(),
            peer_urls: vec![],
            client_urls: vec![format!("https://{name}:2379")],
            is_learner: learner,
        };
        let v = voters_of(
            &[m("node1", false), m("node4", true), m("", false)],
            &["https://10.0.0.1:2379".into()],
        );
        assert_eq!(
            v,
            [Voter {
                name: "node1".into(),
                endpoint: "https://node1:2379".into()
            }]
        );
        let v = voters_of(&[], &["https://10.0.0.1:2379".into()]);
        assert_eq!(v[0].name, "10.0.0.1:2379");
    }
}
