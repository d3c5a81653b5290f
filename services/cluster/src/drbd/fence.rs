//! The fence-peer handler's answers: drbdadm runs it when a resource loses its peer (I/O is
//! frozen meanwhile, `fencing resource-and-stonith`); it asks etcd, never the peer, and exits
//! with DRBD 8.4's codes (drbd.conf(5), `conn_try_outdate_peer()` in drbd_nl.c).

use super::alloc;
use super::record::{LoneWriter, ResourceRecord};
use crate::error::ClusterError;
use crate::records::ALIVE_PREFIX;
use etcd_client::{Client, GetOptions};

/// This node's role in the resource when the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
}

/// What etcd told the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View<'a> {
    /// No answer from etcd (this node may be the cut-off side).
    Unreachable(String),
    /// The resource's record (None: etcd has none) and whether the peer's node lease lives.
    Reached {
        record: Option<&'a ResourceRecord>,
        peer_alive: bool,
    },
}

/// The handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 3: the peer never finished its initial sync (its disk is Inconsistent).
    PeerInconsistent,
    /// 4: the peer is outdated (recorded in etcd; its cairnd runs `drbdadm outdate`).
    PeerOutdated,
    /// 5: the peer is unreachable (its lease expired); DRBD outdates it if we are UpToDate.
    PeerDown,
    /// 6: the peer is the recorded primary; DRBD outdates this node's disk.
    PeerPrimary,
    /// 7: the HA manager recorded the peer fenced.
    PeerFenced,
    /// 1 (not a code DRBD accepts as an answer): DRBD logs the helper as broken and leaves
    /// the I/O frozen. The reason goes to the log and the alert.
    KeepFrozen(String),
}

impl Answer {
    /// The exit code drbdadm passes to the kernel.
    pub fn exit_code(&self) -> u8 {
        match self {
            Answer::PeerInconsistent => 3,
            Answer::PeerOutdated => 4,
            Answer::PeerDown => 5,
            Answer::PeerPrimary => 6,
            Answer::PeerFenced => 7,
            Answer::KeepFrozen(_) => 1,
        }
    }
}

/// The answer, and the record to write first (guarded by the revision it was read at) when
/// this node is let write alone. If that write loses, the caller asks again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub answer: Answer,
    pub write: Option<ResourceRecord>,
}

fn frozen(reason: String) -> Decision {
    Decision {
        answer: Answer::KeepFrozen(reason),
        write: None,
    }
}

/// Decide for node `me`, in `role`, of resource `resource`, at `now` (seconds since the epoch).
pub fn decide(me: &str, resource: &str, role: Role, view: &View<'_>, now: u64) -> Decision {
    let (rec, peer_alive) = match view {
        View::Unreachable(why) => {
            return frozen(format!(
                "{resource}: etcd is unreachable from {me} ({why}); I/O stays frozen until \
                 the cluster says who is current"
            ))
        }
        View::Reached { record: None, .. } => {
            return frozen(format!("{resource}: etcd has no record of this resource"))
        }
        View::Reached {
            record: Some(r),
            peer_alive,
        } => (*r, *peer_alive),
    };
    let Some(peer) = rec.peer_of(me) else {
        return frozen(format!("{resource}: etcd's record has no side on {me}"));
    };
    if rec.side(&rec.primary).is_none() {
        return frozen(format!(
            "{resource}: etcd's record names {} as current, which holds neither side",
            rec.primary
        ));
    }
    if rec.primary == peer.node {
        return match role {
            Role::Secondary => Decision {
                answer: Answer::PeerPrimary,
                write: None,
            },
            Role::Primary => frozen(format!(
                "{resource}: etcd's record names {} as current (generation {}); {me} lost its \
                 place as primary and must not write alone",
                peer.node, rec.generation
            )),
        };
    }
    // This node is the recorded primary: it may write alone, once etcd says so.
    let answer = if !rec.initial_sync_done {
        Answer::PeerInconsistent
    } else if rec.fenced.contains(&peer.node) {
        Answer::PeerFenced
    } else if !peer_alive {
        Answer::PeerDown
    } else {
        Answer::PeerOutdated
    };
    let mut next = rec.clone();
    next.lone_writer = Some(LoneWriter {
        node: me.to_string(),
        generation: rec.generation,
        since: now,
    });
    Decision {
        answer,
        write: Some(next),
    }
}

/// How many times the handler re-reads after losing the guarded write.
pub const ATTEMPTS: usize = 3;

/// Ask etcd and record the lone writer: the whole handler but for reading the role and
/// exiting. An etcd failure becomes `KeepFrozen`.
pub async fn handle(client: &Client, me: &str, resource: &str, role: Role, now: u64) -> Answer {
    for _ in 0..ATTEMPTS {
        let read = async {
            let rec = alloc::get(client, resource).await?;
            let peer_alive = match rec.as_ref().and_then(|(r, _)| r.peer_of(me)) {
                Some(p) => peer_alive(client, &p.node).await?,
                None => false,
            };
            Ok::<_, ClusterError>((rec, peer_alive))
        };
        let (rec, alive) = match read.await {
            Ok(v) => v,
            Err(e) => return Answer::KeepFrozen(format!("{resource}: etcd: {e}")),
        };
        let view = View::Reached {
            record: rec.as_ref().map(|(r, _)| r),
            peer_alive: alive,
        };
        let d = decide(me, resource, role, &view, now);
        let (Some(next), Some((_, rev))) = (&d.write, &rec) else {
            return d.answer;
        };
        match alloc::update_guarded(client, next, *rev).await {
            Ok(true) => return d.answer,
            Ok(false) => continue,
            Err(e) => return Answer::KeepFrozen(format!("{resource}: etcd: {e}")),
        }
    }
    Answer::KeepFrozen(format!(
        "{resource}: the record kept changing under {ATTEMPTS} attempts to record {me} as \
         the lone writer"
    ))
}

/// Whether `node`'s liveness key exists (its lease lives).
async fn peer_alive(client: &Client, node: &str) -> Result<bool, ClusterError> {
    let resp = client
        .kv_client()
        .get(
            format!("{ALIVE_PREFIX}{node}"),
            Some(GetOptions::new().with_count_only()),
        )
        .await
        .map_err(|source| ClusterError::Etcd {
            what: "read the peer's liveness key".into(),
            source: Box::new(source),
        })?;
    Ok(resp.count() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;

    fn reached(r: &ResourceRecord, peer_alive: bool) -> View<'_> {
        View::Reached {
            record: Some(r),
            peer_alive,
        }
    }

    fn lone_writer_of(d: &Decision) -> Option<(String, u64, u64)> {
        d.write
            .as_ref()
            .and_then(|r| r.lone_writer.as_ref())
            .map(|w| (w.node.clone(), w.generation, w.since))
    }

    #[test]
    fn exit_codes_are_drbd_84s() {
        let codes: Vec<u8> = [
            Answer::PeerInconsistent,
            Answer::PeerOutdated,
            Answer::PeerDown,
            Answer::PeerPrimary,
            Answer::PeerFenced,
            Answer::KeepFrozen(String::new()),
        ]
        .iter()
        .map(Answer::exit_code)
        .collect();
        assert_eq!(codes, [3, 4, 5, 6, 7, 1]);
    }

    #[test]
    fn recorded_primary_with_a_live_peer_outdates_it_and_records_itself_first() {
        let r = sample();
        let d = decide("node1", "cairn3", Role::Primary, &reached(&r, true), 99);
        assert_eq!(d.answer, Answer::PeerOutdated);
        assert_eq!(lone_writer_of(&d), Some(("node1".into(), 1, 99)));
    }

    #[test]
    fn recorded_primary_with_the_peer_gone_or_fenced() {
        let mut r = sample();
        let d = decide("node1", "cairn3", Role::Primary, &reached(&r, false), 5);
        assert_eq!(d.answer, Answer::PeerDown);
        assert!(d.write.is_some());
        r.fenced.push("node2".into());
        let d = decide("node1", "cairn3", Role::Primary, &reached(&r, false), 5);
        assert_eq!(d.answer, Answer::PeerFenced);
        assert!(d.write.is_some());
    }

    #[test]
    fn initial_sync_unfinished_peer_is_inconsistent() {
        let mut r = sample();
        r.initial_sync_done = false;
        let d = decide("node1", "cairn3", Role::Primary, &reached(&r, true), 5);
        assert_eq!(d.answer, Answer::PeerInconsistent);
    }

    #[test]
    fn a_secondary_whose_peer_is_recorded_primary_is_outdated_itself() {
        let r = sample();
        let d = decide("node2", "cairn3", Role::Secondary, &reached(&r, true), 5);
        assert_eq!(
            d,
            Decision {
                answer: Answer::PeerPrimary,
                write: None
            }
        );
    }

    #[test]
    fn a_primary_that_lost_its_place_stays_frozen() {
        let mut r = sample();
        r.primary = "node2".into();
        r.generation = 2;
        let d = decide("node1", "cairn3", Role::Primary, &reached(&r, false), 5);
        match d.answer {
            Answer::KeepFrozen(why) => {
                assert!(
                    why.contains("names node2 as current (generation 2)"),
                    "{why}"
                );
                assert!(why.contains("node1 lost its place"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.write, None);
    }

    #[test]
    fn a_promoted_secondary_recorded_primary_writes_alone() {
        // The HA manager moved the record to node2 after fencing node1: node2's promotion
        // runs the handler while disconnected.
        let mut r = sample();
        r.primary = "node2".into();
        r.generation = 2;
        r.fenced.push("node1".into());
        let d = decide("node2", "cairn3", Role::Secondary, &reached(&r, false), 7);
        assert_eq!(d.answer, Answer::PeerFenced);
        assert_eq!(lone_writer_of(&d), Some(("node2".into(), 2, 7)));
    }

    #[test]
    fn no_etcd_no_record_or_strange_record_stays_frozen() {
        let d = decide(
            "node1",
            "cairn3",
            Role::Primary,
            &View::Unreachable("timeout".into()),
            1,
        );
        assert_eq!(d.answer.exit_code(), 1);
        let none = View::Reached {
            record: None,
            peer_alive: true,
        };
        assert_eq!(
            decide("node1", "cairn3", Role::Primary, &none, 1)
                .answer
                .exit_code(),
            1
        );
        let r = sample();
        assert_eq!(
            decide("node3", "cairn3", Role::Primary, &reached(&r, true), 1)
                .answer
                .exit_code(),
            1
        );
        let mut third = sample();
        third.primary = "node3".into();
        assert_eq!(
            decide("node1", "cairn3", Role::Primary, &reached(&third, true), 1)
                .answer
                .exit_code(),
            1
        );
    }
}
