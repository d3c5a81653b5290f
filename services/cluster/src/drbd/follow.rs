//! What a member does about a resource that is up, from its record and `/proc/drbd` (pure;
//! the controller applies it): the replica outdates itself when etcd records the peer writing
//! alone; the lone-writer mark is cleared once both copies are current again; frozen I/O is
//! resumed once the peer is back or etcd lets this node write alone; and the recorded
//! primary's node raises, changes and clears the resource's alert (decision 0027).

use super::proc_status::Device;
use super::record::ResourceRecord;
use cairn_core::alert::AlertLevel;

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `drbdadm outdate`: etcd records the peer writing alone at the current generation.
    Outdate,
    /// Both copies are current again: the record's lone writer is cleared (guarded).
    ClearLoneWriter,
    /// `drbdadm resume-io` now: the peer is connected again.
    ResumeIo,
    /// Ask the fence decision again (etcd is reachable now); resume I/O only if it lets this
    /// node write alone.
    RetryFence,
}

/// The alert of the resource (`drbd/<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertChange {
    Raise(AlertLevel, String),
    Clear(String),
}

/// The alert key of resource `name`.
pub fn alert_key(name: &str) -> String {
    format!("drbd/{name}")
}

/// Whether `connection` means the two sides talk (connected or syncing).
pub fn is_connected(connection: &str) -> bool {
    matches!(
        connection,
        "Connected"
            | "SyncSource"
            | "SyncTarget"
            | "PausedSyncS"
            | "PausedSyncT"
            | "VerifyS"
            | "VerifyT"
            | "WFBitMapS"
            | "WFBitMapT"
            | "WFSyncUUID"
            | "StartingSyncS"
            | "StartingSyncT"
    )
}

/// How long I/O must have stayed frozen before the controller steps in: DRBD's own
/// fence-peer handler may still be running until its deadline, and a `resume-io` beside its
/// answer makes DRBD rotate the data generation twice (the peer then looks unrelated: a
/// false split brain, seen in the lab).
pub const RESUME_AFTER: std::time::Duration = std::time::Duration::from_secs(35);

/// The actions for `me`'s side of `rec`, whose device is `dev` (None: not up here) and has
/// had its I/O frozen for `frozen_for` (zero when not frozen).
pub fn actions(
    rec: &ResourceRecord,
    me: &str,
    dev: Option<&Device>,
    frozen_for: std::time::Duration,
) -> Vec<Action> {
    let Some(d) = dev else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let connected = is_connected(&d.connection);
    if d.io_frozen && d.role == "Primary" && frozen_for >= RESUME_AFTER {
        out.push(if connected {
            Action::ResumeIo
        } else {
            Action::RetryFence
        });
    }
    match &rec.lone_writer {
        Some(lw)
            if lw.node != me
                && lw.generation == rec.generation
                && d.role == "Secondary"
                && d.disk == "UpToDate"
                && !connected =>
        {
            out.push(Action::Outdate);
        }
        Some(lw)
            if lw.node == me
                && d.connection == "Connected"
                && d.disk == "UpToDate"
                && d.peer_disk == "UpToDate" =>
        {
            out.push(Action::ClearLoneWriter);
        }
        _ => {}
    }
    out
}

/// The alert for the resource on `me`: only the recorded primary's node speaks for it (after
/// the initial sync; the task reports before), others clear theirs.
pub fn alert(rec: &ResourceRecord, me: &str, dev: Option<&Device>) -> Option<AlertChange> {
    let what = format!("VM {} {} ({})", rec.vm, rec.vm_disk, rec.name);
    let peer = rec
        .peer_of(me)
        .map_or("the other node", |p| p.node.as_str());
    if rec.primary != me || !rec.initial_sync_done {
        return Some(AlertChange::Clear(format!(
            "{what}: reported by {}",
            rec.primary
        )));
    }
    let Some(d) = dev else {
        return Some(AlertChange::Raise(
            AlertLevel::Critical,
            format!("{what}: the replicated disk is not up on {me}, which holds its current data"),
        ));
    };
    if d.io_frozen {
        return Some(AlertChange::Raise(
            AlertLevel::Critical,
            format!(
                "{what}: I/O is frozen: {me} lost {peer} and the cluster has not yet said that \
                 {me} may write alone"
            ),
        ));
    }
    if !is_connected(&d.connection) {
        return Some(AlertChange::Raise(
            AlertLevel::Warning,
            format!("{what}: the copy on {peer} is disconnected; only {me}'s copy is current"),
        ));
    }
    if d.disk != "UpToDate" || d.peer_disk != "UpToDate" {
        return Some(AlertChange::Raise(
            AlertLevel::Warning,
            format!("{what}: the copy on {peer} is behind and is being resynced"),
        ));
    }
    Some(AlertChange::Clear(format!(
        "{what}: both copies are up to date again"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;
    use crate::drbd::record::LoneWriter;

    fn dev(cs: &str, ro: (&str, &str), ds: (&str, &str), frozen: bool) -> Device {
        Device {
            minor: 3,
            connection: cs.into(),
            role: ro.0.into(),
            peer_role: ro.1.into(),
            disk: ds.0.into(),
            peer_disk: ds.1.into(),
            protocol: Some('C'),
            io_frozen: frozen,
            out_of_sync_kib: 0,
            sync: None,
        }
    }

    const ZERO: std::time::Duration = std::time::Duration::ZERO;

    fn synced() -> ResourceRecord {
        let r = sample();
        assert!(r.initial_sync_done);
        r
    }

    fn lone(node: &str, generation: u64) -> Option<LoneWriter> {
        Some(LoneWriter {
            node: node.into(),
            generation,
            since: 1,
        })
    }

    #[test]
    fn the_replica_outdates_itself_when_etcd_records_the_primary_alone() {
        let mut r = synced();
        r.lone_writer = lone("node1", r.generation);
        let cut = dev(
            "WFConnection",
            ("Secondary", "Unknown"),
            ("UpToDate", "DUnknown"),
            false,
        );
        assert_eq!(actions(&r, "node2", Some(&cut), ZERO), [Action::Outdate]);
        // Already outdated, still connected, or a mark of an older generation: nothing.
        let outdated = dev(
            "WFConnection",
            ("Secondary", "Unknown"),
            ("Outdated", "DUnknown"),
            false,
        );
        assert!(actions(&r, "node2", Some(&outdated), ZERO).is_empty());
        let up = dev(
            "Connected",
            ("Secondary", "Primary"),
            ("UpToDate", "UpToDate"),
            false,
        );
        assert!(actions(&r, "node2", Some(&up), ZERO).is_empty());
        r.lone_writer = lone("node1", r.generation - 1);
        assert!(actions(&r, "node2", Some(&cut), ZERO).is_empty());
    }

    #[test]
    fn the_lone_writer_mark_goes_once_both_copies_are_current() {
        let mut r = synced();
        r.lone_writer = lone("node1", r.generation);
        let syncing = dev(
            "SyncSource",
            ("Primary", "Secondary"),
            ("UpToDate", "Inconsistent"),
            false,
        );
        assert!(actions(&r, "node1", Some(&syncing), ZERO).is_empty());
        let up = dev(
            "Connected",
            ("Primary", "Secondary"),
            ("UpToDate", "UpToDate"),
            false,
        );
        assert_eq!(
            actions(&r, "node1", Some(&up), ZERO),
            [Action::ClearLoneWriter]
        );
    }

    #[test]
    fn frozen_io_resumes_only_with_the_peer_back_or_etcds_word() {
        let r = synced();
        let back = dev(
            "Connected",
            ("Primary", "Secondary"),
            ("UpToDate", "UpToDate"),
            true,
        );
        assert_eq!(
            actions(&r, "node1", Some(&back), RESUME_AFTER),
            [Action::ResumeIo]
        );
        let cut = dev(
            "WFConnection",
            ("Primary", "Unknown"),
            ("UpToDate", "DUnknown"),
            true,
        );
        assert_eq!(
            actions(&r, "node1", Some(&cut), RESUME_AFTER),
            [Action::RetryFence]
        );
        assert!(actions(&r, "node1", None, RESUME_AFTER).is_empty());
        // While DRBD's own fence-peer handler may still answer, nothing is done.
        let early = RESUME_AFTER - std::time::Duration::from_secs(1);
        assert!(actions(&r, "node1", Some(&cut), early).is_empty());
        assert!(actions(&r, "node1", Some(&back), early).is_empty());
    }

    #[test]
    fn only_the_recorded_primary_raises_and_it_clears_when_healthy() {
        let r = synced();
        let up = dev(
            "Connected",
            ("Primary", "Secondary"),
            ("UpToDate", "UpToDate"),
            false,
        );
        assert!(matches!(
            alert(&r, "node1", Some(&up)),
            Some(AlertChange::Clear(_))
        ));
        let cut = dev(
            "WFConnection",
            ("Primary", "Unknown"),
            ("UpToDate", "Outdated"),
            false,
        );
        let Some(AlertChange::Raise(level, msg)) = alert(&r, "node1", Some(&cut)) else {
            panic!("no alert for a disconnected copy");
        };
        assert_eq!(level, AlertLevel::Warning);
        assert_eq!(
            msg,
            "VM web disk0 (cairn3): the copy on node2 is disconnected; only node1's copy is current"
        );
        let frozen = dev(
            "WFConnection",
            ("Primary", "Unknown"),
            ("UpToDate", "DUnknown"),
            true,
        );
        assert!(matches!(
            alert(&r, "node1", Some(&frozen)),
            Some(AlertChange::Raise(AlertLevel::Critical, _))
        ));
        let behind = dev(
            "SyncSource",
            ("Primary", "Secondary"),
            ("UpToDate", "Inconsistent"),
            false,
        );
        assert!(matches!(
            alert(&r, "node1", Some(&behind)),
            Some(AlertChange::Raise(AlertLevel::Warning, m)) if m.contains("behind")
        ));
        // The replica's node never raises; before the initial sync nobody does.
        assert!(matches!(
            alert(&r, "node2", Some(&cut)),
            Some(AlertChange::Clear(_))
        ));
        let mut never = sample();
        never.initial_sync_done = false;
        assert!(matches!(
            alert(&never, "node1", Some(&cut)),
            Some(AlertChange::Clear(_))
        ));
    }
}
