//! Membership rules without etcd: liveness from leases, quorum, failover, voters wanted.

use crate::types::{FailoverView, Liveness, QuorumView, Role};
use std::time::Duration;

/// A node's liveness and how long ago it was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessView {
    pub liveness: Liveness,
    /// Time since the last keepalive seen (None: never seen).
    pub since_seen: Option<Duration>,
}

/// A node's liveness from what this node observes.
///
/// - `alive_key`: whether `/cairn/alive/<name>` exists (attached to the node's lease: it
///   disappears when the lease expires).
/// - `last_seen`: how long ago this node last saw the node's key refreshed (its own watch or
///   poll), or None if never.
/// - `ttl`: the lease TTL.
///
/// Offline when the key is gone; Unreachable when the key is still there but it was not seen
/// refreshed for longer than the keepalive interval (TTL / 3) plus a margin of the same; Online
/// otherwise.
pub fn liveness(alive_key: bool, last_seen: Option<Duration>, ttl: Duration) -> LivenessView {
    let liveness = if !alive_key {
        Liveness::Offline
    } else {
        match last_seen {
            Some(ago) if ago <= late_after(ttl) => Liveness::Online,
            // The key exists but this node has no fresh sighting: late.
            _ => Liveness::Unreachable,
        }
    };
    LivenessView {
        liveness,
        since_seen: last_seen,
    }
}

/// After how long without a keepalive a node with a live key counts as unreachable: two
/// keepalive intervals (the keepers renew every TTL / 3).
pub fn late_after(ttl: Duration) -> Duration {
    ttl * 2 / 3
}

/// Whether `reachable` (voters this node reaches, itself included) is a majority of `voters`.
pub fn has_quorum(voters: usize, reachable: usize) -> bool {
    voters > 0 && reachable.min(voters) > voters / 2
}

/// The quorum view: voters (sorted), the reachable ones among them, and whether they are a
/// majority. Reachable names that are not voters are ignored.
pub fn quorum(voters: &[String], reachable: &[String]) -> QuorumView {
    let mut voters: Vec<String> = voters.to_vec();
    voters.sort();
    voters.dedup();
    let mut reach: Vec<String> = reachable
        .iter()
        .filter(|r| voters.contains(r))
        .cloned()
        .collect();
    reach.sort();
    reach.dedup();
    QuorumView {
        has_quorum: has_quorum(voters.len(), reach.len()),
        reachable: reach,
        voters,
    }
}

/// Whether the cluster can fail over automatically, and if not, why. `nodes` are every
/// member's roles.
pub fn failover(roles: &[Role]) -> FailoverView {
    let voters = roles.iter().filter(|r| is_voting(**r)).count();
    let workers = roles.iter().filter(|r| **r != Role::Witness).count();
    let reason = if workers < 2 {
        Some("a single node: there is no other node to fail over to".to_string())
    } else if voters < 3 {
        Some(format!(
            "{workers} nodes and only {voters} etcd voters, no witness: losing one node \
             loses the quorum; add a witness (or a third node) for automatic failover"
        ))
    } else {
        None
    };
    FailoverView {
        automatic: reason.is_none(),
        reason,
    }
}

/// Whether a role runs an etcd voting member.
pub fn is_voting(role: Role) -> bool {
    matches!(role, Role::Voter | Role::Witness)
}

/// How many etcd voters a cluster of `nodes` members wants: every node up to 3, 3 from 3 to 4
/// nodes, 5 from 5 nodes on (an even count adds no fault tolerance).
pub fn voters_wanted(nodes: usize) -> usize {
    match nodes {
        0..=3 => nodes,
        4 => 3,
        _ => 5,
    }
}

/// A node as the promotion rule sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub role: Role,
    pub liveness: Liveness,
    /// When it joined (seconds since the epoch): the oldest is promoted first.
    pub joined_at: u64,
}

/// The role a newly joining node gets: a witness is always a voter of its own kind; another
/// node is a voter while the cluster (with it) wants more voters than it has.
pub fn role_for_new_node(members: &[Role], witness: bool) -> Role {
    if witness {
        return Role::Witness;
    }
    let voters = members.iter().filter(|r| is_voting(**r)).count();
    if voters < voters_wanted(members.len() + 1) {
        Role::Voter
    } else {
        Role::Client
    }
}

/// Which client node to promote next, if the cluster wants more voters than it has: the online
/// client that joined first (name as tie-break). None when no promotion is due or no client is
/// online.
pub fn next_to_promote(nodes: &[Candidate]) -> Option<&Candidate> {
    let voters = nodes.iter().filter(|n| is_voting(n.role)).count();
    if voters >= voters_wanted(nodes.len()) {
        return None;
    }
    nodes
        .iter()
        .filter(|n| n.role == Role::Client && n.liveness == Liveness::Online)
        .min_by(|a, b| (a.joined_at, &a.name).cmp(&(b.joined_at, &b.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(6);

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn liveness_from_the_lease() {
        let l = liveness(true, Some(Duration::from_secs(1)), TTL);
        assert_eq!(l.liveness, Liveness::Online);
        assert_eq!(l.since_seen, Some(Duration::from_secs(1)));
        assert_eq!(
            liveness(true, Some(Duration::from_secs(4)), TTL).liveness,
            Liveness::Online
        );
        assert_eq!(
            liveness(true, Some(Duration::from_secs(5)), TTL).liveness,
            Liveness::Unreachable
        );
        assert_eq!(liveness(true, None, TTL).liveness, Liveness::Unreachable);
        let off = liveness(false, Some(Duration::from_secs(30)), TTL);
        assert_eq!(off.liveness, Liveness::Offline);
        assert_eq!(off.since_seen, Some(Duration::from_secs(30)));
        assert_eq!(liveness(false, None, TTL).liveness, Liveness::Offline);
    }

    #[test]
    fn quorum_is_a_majority() {
        assert!(has_quorum(1, 1));
        assert!(!has_quorum(2, 1));
        assert!(has_quorum(2, 2));
        assert!(has_quorum(3, 2));
        assert!(!has_quorum(3, 1));
        assert!(!has_quorum(5, 2));
        assert!(has_quorum(5, 3));
        assert!(!has_quorum(0, 0));
        // More reachable than voters cannot make a quorum out of nothing.
        assert!(!has_quorum(4, 1));

        let q = quorum(&names(&["c", "a", "b"]), &names(&["b", "x", "a"]));
        assert!(q.has_quorum);
        assert_eq!(q.voters, names(&["a", "b", "c"]));
        assert_eq!(q.reachable, names(&["a", "b"]));
        let q = quorum(&names(&["a", "b", "c"]), &names(&["c", "x", "y"]));
        assert!(!q.has_quorum);
        assert_eq!(q.reachable, names(&["c"]));
    }

    #[test]
    fn two_nodes_without_witness_have_no_automatic_failover() {
        let f = failover(&[Role::Voter, Role::Voter]);
        assert!(!f.automatic);
        assert!(f.reason.as_deref().unwrap().contains("witness"));
        let f = failover(&[Role::Voter, Role::Voter, Role::Witness]);
        assert!(f.automatic, "{f:?}");
        assert!(f.reason.is_none());
        let f = failover(&[Role::Voter]);
        assert!(!f.automatic);
        assert!(f.reason.unwrap().contains("single node"));
        assert!(failover(&[Role::Voter; 3]).automatic);
        let mut four = vec![Role::Voter; 3];
        four.push(Role::Client);
        assert!(failover(&four).automatic);
    }

    #[test]
    fn voters_wanted_by_size() {
        let want: Vec<usize> = (0..=8).map(voters_wanted).collect();
        assert_eq!(want, vec![0, 1, 2, 3, 3, 5, 5, 5, 5]);
    }

    #[test]
    fn roles_for_new_nodes() {
        assert_eq!(role_for_new_node(&[Role::Voter], false), Role::Voter);
        assert_eq!(role_for_new_node(&[Role::Voter; 2], false), Role::Voter);
        assert_eq!(role_for_new_node(&[Role::Voter; 3], false), Role::Client);
        assert_eq!(role_for_new_node(&[Role::Voter; 2], true), Role::Witness);
        // The fifth node: 5 voters wanted, 3 voters + 1 client → voter.
        let four = [Role::Voter, Role::Voter, Role::Voter, Role::Client];
        assert_eq!(role_for_new_node(&four, false), Role::Voter);
    }

    #[test]
    fn promote_the_oldest_online_client() {
        let c = |name: &str, role, liveness, joined_at| Candidate {
            name: name.to_string(),
            role,
            liveness,
            joined_at,
        };
        let mut nodes = vec![
            c("a", Role::Voter, Liveness::Online, 1),
            c("b", Role::Voter, Liveness::Online, 2),
            c("c", Role::Voter, Liveness::Online, 3),
            c("d", Role::Client, Liveness::Online, 5),
            c("e", Role::Client, Liveness::Online, 4),
        ];
        // 5 nodes want 5 voters: promote e (joined before d).
        assert_eq!(next_to_promote(&nodes).unwrap().name, "e");
        nodes[4].liveness = Liveness::Offline;
        assert_eq!(next_to_promote(&nodes).unwrap().name, "d");
        nodes[3].liveness = Liveness::Unreachable;
        assert!(next_to_promote(&nodes).is_none());
        // Four nodes with three voters: nothing to do.
        nodes.truncate(4);
        nodes[3].liveness = Liveness::Online;
        assert!(next_to_promote(&nodes).is_none());
        // Two voters left after a removal, one client: promote it.
        nodes.remove(0);
        assert_eq!(next_to_promote(&nodes).unwrap().name, "d");
    }
}
