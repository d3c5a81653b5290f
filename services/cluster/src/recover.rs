//! Quorum lost for good: the survivor restores a snapshot (or its own live data) into a new
//! one-member cluster with a new identity, keeps the CA, and drops the lost members.
//!
//! We use `etcdctl snapshot restore` with a fresh `--initial-cluster` and
//! `--initial-cluster-token` rather than `--force-new-cluster`: the restore gives the cluster
//! a new cluster id and a new member id, so a lost member that comes back with its old data
//! dir is refused by etcd itself ("cluster ID mismatch") instead of rejoining a cluster that
//! no longer counts it; `--force-new-cluster` keeps the old cluster id and is meant as a
//! one-shot flag that must be removed from the config afterwards (etcd's disaster-recovery
//! guide, docs/cluster.md "Quorum lost for good").

use crate::ctx::{Ctx, ETCD_START_WAIT};
use crate::error::ClusterError;
use crate::local::LocalState;
use crate::records::{self, NodeRecord, RevokedRecord};
use crate::types::{ClusterInfo, Role};
use crate::{etcd_conf, etcd_wait, process, snapshot};
use cairn_core::alert::Progress;
use cairn_core::command::{run_ok, CommandError, CommandRunner, Invocation};
use etcd_client::Client;
use std::path::{Path, PathBuf};

/// Debian's etcdctl (package etcd-client).
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// What to restore from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A snapshot file saved with `snapshot save` (hash checked).
    Snapshot(PathBuf),
    /// The live backend of a stopped member (`<data>/member/snap/db`): it has no snapshot
    /// hash, so the restore skips the hash check.
    LiveData(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Snapshot(p) | Source::LiveData(p) => p,
        }
    }
}

/// The backend file of a member's data directory.
pub fn live_db(etcd_data: &Path) -> PathBuf {
    etcd_data.join("member").join("snap").join("db")
}

/// Pick the source: the snapshot named `wanted` (a file name of `snapshots`, newest first),
/// the newest snapshot, or the live data when there is none.
pub fn pick_source(
    snapshot_dir: &Path,
    snapshots: &[crate::snapshot::SnapshotInfo],
    wanted: Option<&str>,
    etcd_data: &Path,
) -> Result<Source, ClusterError> {
    if let Some(w) = wanted {
        return match snapshots.iter().find(|s| s.file == w) {
            Some(s) => Ok(Source::Snapshot(snapshot_dir.join(&s.file))),
            None => Err(ClusterError::Invalid {
                field: "snapshot",
                reason: format!(
                    "no snapshot {w:?} on this node (it has: {})",
                    if snapshots.is_empty() {
                        "none".to_string()
                    } else {
                        snapshots
                            .iter()
                            .map(|s| s.file.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            }),
        };
    }
    if let Some(s) = snapshots.first() {
        return Ok(Source::Snapshot(snapshot_dir.join(&s.file)));
    }
    let db = live_db(etcd_data);
    if db.is_file() {
        return Ok(Source::LiveData(db));
    }
    Err(ClusterError::Invalid {
        field: "snapshot",
        reason: format!(
            "this node has no etcd snapshot and no etcd data ({} is missing): nothing to recover",
            db.display()
        ),
    })
}

/// The `etcdctl snapshot restore` that makes a new one-member cluster `name` at `peer_url`
/// with the cluster token `token` in `data_dir` (which must not exist).
pub fn restore_invocation(
    source: &Source,
    name: &str,
    peer_url: &str,
    token: &str,
    data_dir: &Path,
) -> Invocation {
    let mut args = vec![
        "snapshot".to_string(),
        "restore".to_string(),
        source.path().display().to_string(),
        "--name".to_string(),
        name.to_string(),
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--initial-cluster".to_string(),
        format!("{name}={peer_url}"),
        "--initial-advertise-peer-urls".to_string(),
        peer_url.to_string(),
        "--initial-cluster-token".to_string(),
        token.to_string(),
    ];
    if matches!(source, Source::LiveData(_)) {
        args.push("--skip-hash-check".to_string());
    }
    Invocation::new(ETCDCTL, args)
}

/// Restore `source` into `data_dir` as a new one-member cluster: into `data_dir.restoring`
/// first, then the old directory is moved to `data_dir.lost-<now_s>` (kept for the admin)
/// and the new one renamed into place. The caller has stopped etcd.
pub fn restore(
    runner: &dyn CommandRunner,
    source: &Source,
    name: &str,
    peer_url: &str,
    token: &str,
    data_dir: &Path,
    now_s: u64,
) -> Result<(), RestoreError> {
    let staging = data_dir.with_extension("restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| RestoreError::Io(staging.clone(), e))?;
    }
    // A live db is read from the data directory that is about to move: copy it first.
    let source = match source {
        Source::LiveData(db) => {
            let copy = data_dir.with_extension(format!("db-{now_s}"));
            std::fs::copy(db, &copy).map_err(|e| RestoreError::Io(db.clone(), e))?;
            Source::LiveData(copy)
        }
        s => s.clone(),
    };
    run_ok(
        runner,
        &restore_invocation(&source, name, peer_url, token, &staging),
    )
    .map_err(RestoreError::Etcdctl)?;
    if data_dir.exists() {
        let lost = data_dir.with_extension(format!("lost-{now_s}"));
        std::fs::rename(data_dir, &lost).map_err(|e| RestoreError::Io(data_dir.into(), e))?;
    }
    std::fs::rename(&staging, data_dir).map_err(|e| RestoreError::Io(staging.clone(), e))?;
    if let Source::LiveData(copy) = source {
        let _ = std::fs::remove_file(copy);
    }
    Ok(())
}

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("etcdctl snapshot restore")]
    Etcdctl(#[source] CommandError),
    #[error("{}", .0.display())]
    Io(PathBuf, #[source] std::io::Error),
}

/// After the restore, in the new cluster: the cluster record with its new identity, every
/// node but `survivor` dropped (record and liveness key) and its certificate revoked.
/// Returns the dropped nodes' names.
pub async fn rewrite_records(
    client: &Client,
    cluster: &ClusterInfo,
    survivor: &str,
    now_s: u64,
) -> Result<Vec<String>, ClusterError> {
    let mut kv = client.kv_client();
    kv.put(
        records::CLUSTER_KEY,
        serde_json::to_vec(cluster).unwrap_or_default(),
        None,
    )
    .await
    .map_err(|e| ClusterError::Etcd {
        what: "write the recovered cluster record".into(),
        source: Box::new(e),
    })?;
    let nodes: Vec<NodeRecord> = records::nodes(client).await?;
    let mut dropped = Vec::new();
    for n in nodes.into_iter().filter(|n| n.name != survivor) {
        records::revoke(
            client,
            &n.cert_serial,
            &RevokedRecord {
                node: n.name.clone(),
                at: now_s,
            },
        )
        .await?;
        records::delete_node(client, &n.name).await?;
        kv.delete(format!("{}{}", records::ALIVE_PREFIX, n.name), None)
            .await
            .map_err(|e| ClusterError::Etcd {
                what: format!("drop the liveness key of {}", n.name),
                source: Box::new(e),
            })?;
        dropped.push(n.name);
    }
    Ok(dropped)
}

/// The whole recovery on the survivor (a voter or witness; the caller checked it has no
/// quorum and stopped its liveness lease): restore, start etcd as a new one-member cluster,
/// rewrite the records, save the new local state. Returns it and the dropped nodes.
pub async fn run(
    ctx: &Ctx,
    state: &LocalState,
    wanted: Option<&str>,
    now_s: u64,
    progress: &dyn Progress,
) -> Result<(LocalState, Vec<String>), ClusterError> {
    progress.progress(5, "picking the snapshot");
    let sdir = snapshot::dir_of(&ctx.files.dir);
    let source = pick_source(&sdir, &snapshot::list(&sdir), wanted, &ctx.etcd_data)?;
    progress.progress(15, "stopping etcd");
    process::stop_etcd(ctx.runner.as_ref()).map_err(|source| ClusterError::Service {
        what: "stop",
        source,
    })?;
    let new_id = records::new_cluster_id();
    progress.progress(30, &format!("restoring {}", source.path().display()));
    restore(
        ctx.runner.as_ref(),
        &source,
        &state.node_name,
        &records::peer_url(state.address),
        &new_id,
        &ctx.etcd_data,
        now_s,
    )
    .map_err(|e| ClusterError::Invalid {
        field: "snapshot",
        reason: cairn_base::error_chain::error_chain(&e),
    })?;
    let mut conf = etcd_conf::EtcdMemberConf::new(
        &state.node_name,
        ctx.etcd_data.clone(),
        state.address,
        &new_id,
        etcd_wait::tls_paths(&ctx.files),
    );
    conf.heartbeat_ms = state.etcd_heartbeat_ms;
    conf.election_ms = state.etcd_election_ms;
    conf.listen_any = ctx.listen_any;
    let yaml = conf.to_yaml().map_err(ClusterError::EtcdConf)?;
    ctx.files
        .write(&ctx.files.etcd_conf(), yaml.as_bytes(), 0o600)
        .map_err(ClusterError::Files)?;
    progress.progress(50, "starting etcd (a new cluster of one)");
    process::start_etcd(ctx.runner.as_ref()).map_err(|source| ClusterError::Service {
        what: "start",
        source,
    })?;
    let tls = etcd_wait::client_tls(&ctx.files)?;
    let client = etcd_wait::wait_serving(&ctx.local_etcd, &tls, ETCD_START_WAIT).await?;
    progress.progress(80, "dropping the lost members");
    let cluster = ClusterInfo {
        id: new_id,
        ..state.cluster.clone()
    };
    let dropped = rewrite_records(&client, &cluster, &state.node_name, now_s).await?;
    let new_state = LocalState {
        cluster,
        role: if state.role == Role::Witness {
            Role::Witness
        } else {
            Role::Voter
        },
        etcd_endpoints: vec![records::client_url(state.address)],
        ..state.clone()
    };
    ctx.files.save(&new_state).map_err(ClusterError::Files)?;
    progress.progress(100, "recovered");
    Ok((new_state, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotInfo;

    fn snap(file: &str) -> SnapshotInfo {
        SnapshotInfo {
            file: file.into(),
            taken_at: 1,
            size: 1,
            revision: 1,
        }
    }

    #[test]
    fn the_source_is_the_named_the_newest_or_the_live_data() {
        let d = tempfile::tempdir().unwrap();
        let sdir = d.path().join("snapshots");
        let data = d.path().join("etcd");
        let list = [snap("etcd-2-r2.db"), snap("etcd-1-r1.db")];
        assert_eq!(
            pick_source(&sdir, &list, None, &data).unwrap(),
            Source::Snapshot(sdir.join("etcd-2-r2.db"))
        );
        assert_eq!(
            pick_source(&sdir, &list, Some("etcd-1-r1.db"), &data).unwrap(),
            Source::Snapshot(sdir.join("etcd-1-r1.db"))
        );
        let e = pick_source(&sdir, &list, Some("../x"), &data).unwrap_err();
        assert!(e.to_string().starts_with("snapshot: no snapshot"), "{e}");
        assert!(e.to_string().contains("etcd-2-r2.db"), "{e}");
        let e = pick_source(&sdir, &[], None, &data).unwrap_err();
        assert!(e.to_string().contains("nothing to recover"), "{e}");
        std::fs::create_dir_all(data.join("member/snap")).unwrap();
        std::fs::write(data.join("member/snap/db"), b"x").unwrap();
        assert_eq!(
            pick_source(&sdir, &[], None, &data).unwrap(),
            Source::LiveData(data.join("member/snap/db"))
        );
    }

    #[test]
    fn the_restore_gets_a_fresh_one_member_cluster_and_skips_the_hash_of_live_data() {
        let inv = restore_invocation(
            &Source::Snapshot("/s/etcd-1-r1.db".into()),
            "node1",
            "https://10.0.0.1:2380",
            "newid",
            Path::new("/var/lib/cairn/etcd.restoring"),
        );
        assert_eq!(
            inv.display(),
            "/usr/bin/etcdctl snapshot restore /s/etcd-1-r1.db --name node1 \
             --data-dir /var/lib/cairn/etcd.restoring \
             --initial-cluster node1=https://10.0.0.1:2380 \
             --initial-advertise-peer-urls https://10.0.0.1:2380 --initial-cluster-token newid"
        );
        let live = restore_invocation(
            &Source::LiveData("/d/member/snap/db".into()),
            "node1",
            "https://10.0.0.1:2380",
            "newid",
            Path::new("/x"),
        );
        assert_eq!(live.args.last().unwrap(), "--skip-hash-check");
    }

    #[test]
    fn restore_moves_the_old_data_aside_and_a_failure_leaves_it() {
        use cairn_core::command::{CommandOutput, RecordingRunner};
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("etcd");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("old"), b"x").unwrap();
        let src = Source::Snapshot(d.path().join("s.db"));

        let failing = RecordingRunner::new();
        failing.expect(ETCDCTL, &["snapshot"], CommandOutput::failed(1, "bad hash"));
        let e = restore(&failing, &src, "n", "https://127.0.0.1:1", "t", &data, 7).unwrap_err();
        assert!(matches!(e, RestoreError::Etcdctl(_)));
        assert!(data.join("old").exists());

        // etcdctl "makes" the staging directory.
        struct Fake;
        impl CommandRunner for Fake {
            fn run(&self, inv: &Invocation) -> Result<CommandOutput, CommandError> {
                let i = inv.args.iter().position(|a| a == "--data-dir").unwrap();
                std::fs::create_dir_all(Path::new(&inv.args[i + 1]).join("member")).unwrap();
                Ok(CommandOutput::ok(""))
            }
        }
        restore(&Fake, &src, "n", "https://127.0.0.1:1", "t", &data, 7).unwrap();
        assert!(data.join("member").is_dir());
        assert!(d.path().join("etcd.lost-7").join("old").exists());
        assert!(!d.path().join("etcd.restoring").exists());
    }
}
