//! The replicated disks' controller of a member (decision 0027): every [`TICK`], each resource
//! record in etcd that names this node is made real here ([`super::side::ensure`]: the
//! replica's disk, metadata, `.res`, `up`), and a resource this node has a `.res` file of but
//! etcd no longer records is taken down and its file removed. Nothing happens while etcd
//! cannot be read (a node cut off changes nothing it cannot check).

use super::apply::Node;
use super::fence;
use super::follow::{self, Action, AlertChange};
use super::record::ResourceRecord;
use super::side::{self, Step};
use crate::ctx::Ctx;
use crate::error::ClusterError;
use crate::local::LocalState;
use crate::monitor::Monitor;
use crate::records::PoolSpace;
use crate::{etcd, etcd_wait};
use cairn_core::alert::AlertSink;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the records are compared with the node.
pub const TICK: Duration = Duration::from_secs(3);
/// The LVM extent (a VG's default), which metadata LV sizes are rounded to.
pub const EXTENT_BYTES: u64 = 4 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one pass decided for this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pass {
    /// Records that name this node (to be ensured).
    pub mine: Vec<ResourceRecord>,
    /// Records that name this node and are being retired (replication turned off).
    pub retired: Vec<ResourceRecord>,
    /// Records whose replica moved away from this node (it removes its old copy).
    pub former: Vec<ResourceRecord>,
    /// Resources with a `.res` file here but no record: to be taken down.
    pub stale: Vec<String>,
}

/// Split the records and the local `.res` names into this node's work (pure).
pub fn pass(records: &[ResourceRecord], me: &str, local_files: &BTreeSet<String>) -> Pass {
    let former_of = |r: &ResourceRecord| r.former.iter().any(|s| s.node == me);
    let known: BTreeSet<&str> = records
        .iter()
        .filter(|r| r.side(me).is_some() || former_of(r))
        .map(|r| r.name.as_str())
        .collect();
    let former: Vec<ResourceRecord> = records
        .iter()
        .filter(|r| former_of(r) && !super::enable::in_progress(&r.vm))
        .cloned()
        .collect();
    // A replication being turned on here is the task's to bring up.
    let mine: Vec<ResourceRecord> = records
        .iter()
        .filter(|r| {
            r.side(me).is_some() && r.retire.is_none() && !super::enable::in_progress(&r.vm)
        })
        .cloned()
        .collect();
    let retired: Vec<ResourceRecord> = records
        .iter()
        .filter(|r| {
            r.side(me).is_some() && r.retire.is_some() && !super::enable::in_progress(&r.vm)
        })
        .cloned()
        .collect();
    let stale = local_files
        .iter()
        .filter(|n| !known.contains(n.as_str()))
        .cloned()
        .collect();
    Pass {
        mine,
        retired,
        former,
        stale,
    }
}

/// The thin pool of the volume group of device `/dev/<vg>/<lv>` among this node's pools.
pub fn thin_pool_of(pools: &[PoolSpace], device: &str) -> Option<String> {
    let (vg, _) = side::vg_lv("disk", device).ok()?;
    pools
        .iter()
        .find(|p| p.volume_group == vg)
        .map(|p| p.thin_pool.clone())
}

/// The resource names of the `.res` files in `dir`.
pub fn local_resources(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".res"))
                        .filter(|n| super::names::Index::from_name(n).is_some())
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Run the controller until the task is dropped (the node leaves the cluster).
pub async fn run_loop(ctx: Arc<Ctx>, state: LocalState, monitor: Arc<Monitor>) {
    let mut client: Option<etcd_client::Client> = None;
    // The last error per resource, logged once per change.
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    // Since when each resource's I/O has been seen frozen.
    let mut frozen_since: BTreeMap<String, std::time::Instant> = BTreeMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        if client.is_none() {
            client = connect(&ctx, &state).await.ok();
        }
        let Some(c) = &client else { continue };
        let records = match super::alloc::list(c).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(
                    "drbd: records not read: {}",
                    cairn_base::error_chain::error_chain(&e)
                );
                client = None;
                continue;
            }
        };
        let ctx2 = ctx.clone();
        let me = state.node_name.clone();
        let recs = records.clone();
        let outcome = tokio::task::spawn_blocking(move || reconcile(&ctx2, &me, &recs)).await;
        let Ok(Reconciled {
            out: outcome,
            delete,
            drop_former,
        }) = outcome
        else {
            continue;
        };
        for name in drop_former {
            if let Err(e) = drop_from_former(c, &name, &state.node_name).await {
                tracing::warn!(
                    "drbd: {name}: not taken off the former sides yet: {}",
                    cairn_base::error_chain::error_chain(&e)
                );
            }
        }
        for name in delete {
            match super::alloc::delete(c, &name).await {
                Ok(()) => tracing::info!("drbd: {name}: copy removed here, record deleted"),
                Err(e) => tracing::warn!(
                    "drbd: {name}: record not deleted: {}",
                    cairn_base::error_chain::error_chain(&e)
                ),
            }
        }
        follow_up(
            &ctx,
            c,
            &state.node_name,
            &records,
            monitor.alerts(),
            &mut frozen_since,
        )
        .await;
        if let Some(sink) = monitor.alerts() {
            // A resource taken down for want of a record has no alert any more.
            for (name, _) in outcome
                .iter()
                .filter(|(n, r)| r.is_ok() && !records.iter().any(|rec| &rec.name == n))
            {
                sink.clear(&follow::alert_key(name), &format!("{name}: removed"));
            }
        }
        for (name, result) in outcome {
            match result {
                Ok(steps) if !steps.is_empty() => {
                    tracing::info!("drbd: {name}: {}", describe(&steps));
                    last.remove(&name);
                }
                Ok(_) => {
                    last.remove(&name);
                }
                Err(e) => {
                    if last.get(&name) != Some(&e) {
                        tracing::warn!("drbd: {name}: {e}");
                        last.insert(name, e);
                    }
                }
            }
        }
    }
}

/// After the sides are up: each of this node's resources' follow-up actions
/// ([`follow::actions`]) and alert ([`follow::alert`]).
async fn follow_up(
    ctx: &Arc<Ctx>,
    client: &etcd_client::Client,
    me: &str,
    records: &[ResourceRecord],
    alerts: Option<Arc<dyn AlertSink>>,
    frozen_since: &mut BTreeMap<String, std::time::Instant>,
) {
    let proc = std::fs::read_to_string(Node::system(ctx.runner.as_ref()).proc_drbd)
        .ok()
        .and_then(|t| super::proc_status::parse(&t).ok());
    for rec in records
        .iter()
        .filter(|r| r.side(me).is_some() && !super::enable::in_progress(&r.vm))
    {
        if rec.retire.is_some() {
            if let Some(sink) = &alerts {
                sink.clear(
                    &follow::alert_key(&rec.name),
                    &format!("{}: replication turned off", rec.name),
                );
            }
            continue;
        }
        let dev = proc.as_ref().and_then(|p| p.device(rec.index));
        let frozen_for = if dev.is_some_and(|d| d.io_frozen) {
            frozen_since
                .entry(rec.name.clone())
                .or_insert_with(std::time::Instant::now)
                .elapsed()
        } else {
            frozen_since.remove(&rec.name);
            Duration::ZERO
        };
        for action in follow::actions(rec, me, dev, frozen_for) {
            if let Err(e) = follow_action(ctx, client, me, rec, &action).await {
                tracing::warn!(
                    "drbd: {}: {action:?}: {}",
                    rec.name,
                    cairn_base::error_chain::error_chain(&e)
                );
            }
        }
        if let (Some(sink), Some(change)) = (&alerts, follow::alert(rec, me, dev)) {
            let key = follow::alert_key(&rec.name);
            match change {
                AlertChange::Raise(level, msg) => {
                    sink.raise(&key, level, &msg);
                }
                AlertChange::Clear(msg) => {
                    sink.clear(&key, &msg);
                }
            }
        }
    }
}

/// Take `me` off record `name`'s former sides (guarded by the record's revision).
async fn drop_from_former(
    client: &etcd_client::Client,
    name: &str,
    me: &str,
) -> Result<(), ClusterError> {
    if let Some((mut r, rev)) = super::alloc::get(client, name).await? {
        let before = r.former.len();
        r.former.retain(|s| s.node != me);
        if r.former.len() != before && super::alloc::update_guarded(client, &r, rev).await? {
            tracing::info!("drbd: {name}: old copy removed here, taken off the former sides");
        }
    }
    Ok(())
}

/// Run one follow-up action.
async fn follow_action(
    ctx: &Arc<Ctx>,
    client: &etcd_client::Client,
    me: &str,
    rec: &ResourceRecord,
    action: &Action,
) -> Result<(), ClusterError> {
    let name = rec.name.clone();
    let blocking = |what: fn(&Node<'_>, &str) -> Result<(), super::apply::ApplyError>| {
        let ctx = ctx.clone();
        let name = name.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                what(&Node::system(ctx.runner.as_ref()), &name).map_err(|e| ClusterError::Drbd {
                    resource: name.clone(),
                    source: Box::new(e),
                })
            })
            .await
            .unwrap_or_else(|e| Err(ClusterError::Conflict(format!("DRBD command: {e}"))))
        }
    };
    match action {
        Action::Outdate => {
            blocking(|n, r| n.outdate(r)).await?;
            tracing::info!(
                "drbd: {name}: outdated this copy (etcd records {} writing alone)",
                rec.lone_writer.as_ref().map_or("?", |l| l.node.as_str())
            );
        }
        Action::ResumeIo => {
            blocking(|n, r| n.resume_io(r)).await?;
            tracing::info!("drbd: {name}: the peer is back: frozen I/O resumed");
        }
        Action::RetryFence => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let answer = fence::handle(client, me, &name, fence::Role::Primary, now).await;
            if matches!(
                answer,
                fence::Answer::PeerOutdated | fence::Answer::PeerDown | fence::Answer::PeerFenced
            ) {
                blocking(|n, r| n.resume_io(r)).await?;
                tracing::info!("drbd: {name}: etcd lets this node write alone ({answer:?}): frozen I/O resumed");
            }
        }
        Action::ClearLoneWriter => {
            if let Some((mut r, rev)) = super::alloc::get(client, &name).await? {
                if r.lone_writer.as_ref().is_some_and(|l| l.node == me) {
                    r.lone_writer = None;
                    if super::alloc::update_guarded(client, &r, rev).await? {
                        tracing::info!(
                            "drbd: {name}: both copies current again: lone-writer mark cleared"
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

async fn connect(ctx: &Ctx, state: &LocalState) -> Result<etcd_client::Client, ClusterError> {
    let tls = etcd_wait::client_tls(&ctx.files)?;
    etcd::connect(&state.etcd_endpoints, &tls, REQUEST_TIMEOUT)
        .await
        .map_err(ClusterError::EtcdOp)
}

fn describe(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::LoadModule => "module loaded".to_string(),
            Step::CreateBacking { vg, lv, .. } => format!("replica disk {vg}/{lv} created"),
            Step::CreateMeta { vg, lv, .. } => format!("metadata volume {vg}/{lv} created"),
            Step::WriteRes => "resource file written".to_string(),
            Step::CreateMd => "metadata initialised".to_string(),
            Step::Up => "up".to_string(),
            Step::Adjust => "adjusted".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One pass on this node: each of its records ensured, each stale resource taken down.
/// Returns per resource the steps run or the error (as text, for the log).
pub fn reconcile(ctx: &Ctx, me: &str, records: &[ResourceRecord]) -> Reconciled {
    let node = Node::system(ctx.runner.as_ref());
    let work = pass(records, me, &local_resources(&node.drbd_d));
    let pools = ctx.names.pools();
    let mut out = Vec::new();
    for rec in &work.mine {
        let device = rec.side(me).map(|s| s.disk.clone()).unwrap_or_default();
        let result = match thin_pool_of(&pools, &device) {
            None => Err(format!(
                "no pool of this node holds {device} (its volume group is not one of this \
                 node's pools)"
            )),
            Some(thin) => side::ensure(&node, rec, me, &thin, EXTENT_BYTES)
                .map_err(|e| cairn_base::error_chain::error_chain(&e)),
        };
        out.push((rec.name.clone(), result));
    }
    for name in &work.stale {
        let result = take_down(&node, name)
            .map(|()| Vec::new())
            .map_err(|e| cairn_base::error_chain::error_chain(&e));
        if result.is_ok() {
            tracing::info!("drbd: {name}: no record in etcd: taken down, file removed");
        }
        out.push((name.clone(), result));
    }
    let mut delete = Vec::new();
    for rec in &work.retired {
        let result = super::retire::facts(&node, rec, me)
            .and_then(|f| super::retire::plan(rec, me, f))
            .map_err(|e| cairn_base::error_chain::error_chain(&e))
            .and_then(|steps| {
                let steps = steps.unwrap_or_default();
                super::retire::apply_local(&node, rec, &steps)
                    .map(|del| (steps, del))
                    .map_err(|e| cairn_base::error_chain::error_chain(&e))
            });
        match result {
            Ok((steps, del)) => {
                if !steps.is_empty() {
                    tracing::info!(
                        "drbd: {}: replication turned off ({}'s copy kept): {steps:?}",
                        rec.name,
                        rec.retire.as_ref().map_or("?", |r| r.keep.as_str())
                    );
                }
                if del {
                    delete.push(rec.name.clone());
                }
                out.push((rec.name.clone(), Ok(Vec::new())));
            }
            Err(e) => out.push((rec.name.clone(), Err(e))),
        }
    }
    let mut drop_former = Vec::new();
    for rec in &work.former {
        let result = super::retire::facts(&node, rec, me)
            .and_then(|f| super::retire::former_plan(rec, me, f))
            .map_err(|e| cairn_base::error_chain::error_chain(&e))
            .and_then(|steps| {
                let steps = steps.unwrap_or_default();
                super::retire::apply_local(&node, rec, &steps)
                    .map(|due| (steps, due))
                    .map_err(|e| cairn_base::error_chain::error_chain(&e))
            });
        match result {
            Ok((steps, due)) => {
                if steps.len() > 1 {
                    tracing::info!(
                        "drbd: {}: the replica moved away from this node: {steps:?}",
                        rec.name
                    );
                }
                if due {
                    drop_former.push(rec.name.clone());
                }
                out.push((rec.name.clone(), Ok(Vec::new())));
            }
            Err(e) => out.push((rec.name.clone(), Err(e))),
        }
    }
    Reconciled {
        out,
        delete,
        drop_former,
    }
}

/// One pass's outcome: per resource the steps run or the error, and the retired records this
/// node is to delete.
pub struct Reconciled {
    pub out: Vec<(String, Result<Vec<Step>, String>)>,
    pub delete: Vec<String>,
    /// Records to take this node off the former sides of (its old copy is gone).
    pub drop_former: Vec<String>,
}

/// `drbdadm down` (a no-op for an unconfigured resource) and the file removed.
fn take_down(node: &Node<'_>, name: &str) -> Result<(), super::apply::ApplyError> {
    node.down(name)?;
    let path = node.drbd_d.join(format!("{name}.res"));
    std::fs::remove_file(&path).map_err(|e| super::apply::ApplyError::Write {
        path: path.clone(),
        source: cairn_core::AtomicWriteError::Write(path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;

    #[test]
    fn a_pass_takes_this_nodes_records_and_finds_stale_files() {
        let mut other = sample();
        other.name = "cairn4".into();
        other.index = 4;
        other.sides[0].node = "node7".into();
        other.sides[1].node = "node8".into();
        let mut retired = sample();
        retired.name = "cairn5".into();
        retired.retire = Some(crate::drbd::record::Retire {
            keep: "node1".into(),
            since: 1,
        });
        let files: BTreeSet<String> = ["cairn3".into(), "cairn5".into(), "cairn9".into()].into();
        let p = pass(&[sample(), other, retired.clone()], "node2", &files);
        assert_eq!(p.mine, [sample()]);
        assert_eq!(p.retired, [retired]);
        assert_eq!(p.stale, ["cairn9"]);
        let p = pass(&[], "node2", &files);
        assert!(p.mine.is_empty());
        assert_eq!(p.stale, ["cairn3", "cairn5", "cairn9"]);
    }

    #[test]
    fn the_thin_pool_is_found_by_volume_group() {
        let pools = [PoolSpace {
            name: "tank".into(),
            volume_group: "cairn-tank".into(),
            thin_pool: "thin".into(),
            free_bytes: 1 << 30,
        }];
        assert_eq!(
            thin_pool_of(&pools, "/dev/cairn-tank/vol-web-disk0").as_deref(),
            Some("thin")
        );
        assert_eq!(thin_pool_of(&pools, "/dev/cairn-other/vol-x"), None);
        assert_eq!(thin_pool_of(&pools, "nonsense"), None);
    }

    #[test]
    fn only_our_resource_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "cairn0.res",
            "cairn12.res",
            "other.res",
            "cairn1.res.tmp",
            "x",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let names: Vec<String> = local_resources(dir.path()).into_iter().collect();
        assert_eq!(names, ["cairn0", "cairn12"]);
        assert!(local_resources(&dir.path().join("missing")).is_empty());
    }
}
