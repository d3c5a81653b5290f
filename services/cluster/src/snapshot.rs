//! Scheduled etcd snapshots on STATE: every few hours and after a membership change, written
//! atomically into `/var/lib/cairn/cluster/snapshots/`, the newest few kept.

use crate::error::ClusterError;
use crate::etcd::{self, EtcdTls};
pub use crate::types::SnapshotInfo;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a voter snapshots its etcd.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(6 * 3600);
/// How many snapshots are kept (the oldest are removed after each new one).
pub const KEEP: usize = 5;
/// How often the loop looks whether a snapshot is due (time, or the member list changed).
pub const TICK: Duration = Duration::from_secs(60);

/// The snapshot directory under the cluster directory.
pub fn dir_of(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("snapshots")
}

/// The file name of a snapshot taken at `taken_at` of `revision`.
pub fn file_name(taken_at: u64, revision: i64) -> String {
    format!("etcd-{taken_at:012}-r{revision}.db")
}

/// Read a snapshot's time and revision back from its file name.
pub fn parse_name(name: &str) -> Option<(u64, i64)> {
    let rest = name.strip_prefix("etcd-")?.strip_suffix(".db")?;
    let (t, r) = rest.split_once("-r")?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((t.parse().ok()?, r.parse().ok().filter(|r: &i64| *r >= 0)?))
}

/// The snapshots in `dir`, newest first (other files, `.tmp` leftovers included, ignored).
pub fn list(dir: &Path) -> Vec<SnapshotInfo> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<SnapshotInfo> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let (taken_at, revision) = parse_name(&name)?;
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some(SnapshotInfo {
                file: name,
                taken_at,
                size: meta.len(),
                revision,
            })
        })
        .collect();
    out.sort_by_key(|s| std::cmp::Reverse((s.taken_at, s.revision)));
    out
}

/// Remove all but the newest `keep` snapshots (and stale `.tmp` files); returns the removed.
pub fn prune(dir: &Path, keep: usize) -> Vec<String> {
    let mut removed = Vec::new();
    for s in list(dir).into_iter().skip(keep) {
        if std::fs::remove_file(dir.join(&s.file)).is_ok() {
            removed.push(s.file);
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    removed
}

/// Whether a snapshot is due: none yet, the newest is `every` old, or the member list
/// (`members`, sorted ids) differs from the one at the last snapshot.
pub fn due(
    newest_at: Option<u64>,
    now_s: u64,
    every: Duration,
    members_then: Option<&[u64]>,
    members_now: &[u64],
) -> bool {
    let Some(at) = newest_at else {
        return true;
    };
    if now_s.saturating_sub(at) >= every.as_secs() {
        return true;
    }
    members_then.is_some_and(|then| then != members_now)
}

/// Take a snapshot of the etcd at `endpoint` into `dir` (temp file, fsync, rename), then keep
/// the newest `keep`.
pub async fn take(
    endpoint: &str,
    tls: &EtcdTls,
    dir: &Path,
    now_s: u64,
    keep: usize,
) -> Result<SnapshotInfo, ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut c = etcd::connect_unbounded(&[endpoint.to_string()], tls, Duration::from_secs(5))
        .await
        .map_err(ClusterError::EtcdOp)?;
    let revision = c
        .status()
        .await
        .map_err(|e| ClusterError::Etcd {
            what: "read the revision before a snapshot".into(),
            source: Box::new(e),
        })?
        .header()
        .map(|h| h.revision())
        .unwrap_or(0);
    let name = file_name(now_s, revision);
    let size = etcd::snapshot_to_file(&mut c, &dir.join(&name))
        .await
        .map_err(ClusterError::EtcdOp)?;
    prune(dir, keep);
    Ok(SnapshotInfo {
        file: name,
        taken_at: now_s,
        size,
        revision,
    })
}

/// The sorted member ids etcd lists (what "a membership change" is compared on).
pub async fn member_ids(endpoint: &str, tls: &EtcdTls) -> Result<Vec<u64>, ClusterError> {
    let mut c = etcd::connect(&[endpoint.to_string()], tls, Duration::from_secs(5))
        .await
        .map_err(ClusterError::EtcdOp)?;
    let mut ids: Vec<u64> = etcd::member_list(&mut c)
        .await
        .map_err(ClusterError::EtcdOp)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The snapshot loop of a voter: every [`TICK`], take one when [`due`], log failures.
pub async fn run_loop(
    endpoint: String,
    tls: EtcdTls,
    dir: PathBuf,
    every: Duration,
    keep: usize,
    now_s: impl Fn() -> u64 + Send + 'static,
) {
    let mut members_then: Option<Vec<u64>> = None;
    loop {
        let now = now_s();
        let newest = list(&dir).first().map(|s| s.taken_at);
        match member_ids(&endpoint, &tls).await {
            Ok(ids) => {
                if due(newest, now, every, members_then.as_deref(), &ids) {
                    match take(&endpoint, &tls, &dir, now, keep).await {
                        Ok(s) => {
                            tracing::info!(file = %s.file, size = s.size, revision = s.revision, "cluster: etcd snapshot taken");
                            members_then = Some(ids);
                        }
                        Err(e) => tracing::warn!(
                            "cluster: etcd snapshot failed: {}",
                            cairn_base::error_chain::error_chain(&e)
                        ),
                    }
                } else if members_then.is_none() {
                    members_then = Some(ids);
                }
            }
            // No quorum is fine for a snapshot, but no member list means etcd is not serving.
            Err(e) => tracing::debug!(
                "cluster: no member list for the snapshot check: {}",
                cairn_base::error_chain::error_chain(&e)
            ),
        }
        tokio::time::sleep(TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        let n = file_name(1_700_000_000, 42);
        assert_eq!(n, "etcd-001700000000-r42.db");
        assert_eq!(parse_name(&n), Some((1_700_000_000, 42)));
        for bad in [
            "etcd-1-r2.db.tmp",
            "etcd--r2.db",
            "etcd-12-rx.db",
            "etcd-12-r-1.db",
            "other.db",
            "etcd-1a-r2.db",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn listed_newest_first_and_pruned_to_keep() {
        let d = tempfile::tempdir().unwrap();
        for (t, r) in [(100, 5), (300, 9), (200, 7), (400, 11)] {
            std::fs::write(
                d.path().join(file_name(t, r)),
                vec![0u8; usize::try_from(t).unwrap()],
            )
            .unwrap();
        }
        std::fs::write(d.path().join("etcd-000000000500-r12.tmp"), b"x").unwrap();
        std::fs::write(d.path().join("notes.txt"), b"x").unwrap();
        let l = list(d.path());
        assert_eq!(
            l.iter().map(|s| s.taken_at).collect::<Vec<_>>(),
            vec![400, 300, 200, 100]
        );
        assert_eq!(l[0].size, 400);
        assert_eq!(l[0].revision, 11);
        let removed = prune(d.path(), 2);
        assert_eq!(removed.len(), 2);
        assert_eq!(
            list(d.path())
                .iter()
                .map(|s| s.taken_at)
                .collect::<Vec<_>>(),
            vec![400, 300]
        );
        assert!(!d.path().join("etcd-000000000500-r12.tmp").exists());
        assert!(d.path().join("notes.txt").exists());
        assert!(list(&d.path().join("absent")).is_empty());
    }

    #[test]
    fn due_by_age_first_time_or_membership_change() {
        let every = Duration::from_secs(3600);
        assert!(due(None, 10, every, None, &[1]));
        assert!(!due(Some(1000), 1000 + 3599, every, Some(&[1, 2]), &[1, 2]));
        assert!(due(Some(1000), 1000 + 3600, every, Some(&[1, 2]), &[1, 2]));
        assert!(due(Some(1000), 1001, every, Some(&[1, 2]), &[1, 2, 3]));
        // Not known yet which members the last snapshot saw: only the age counts.
        assert!(!due(Some(1000), 1001, every, None, &[1, 2, 3]));
    }
}
