//! Turning replication off for a disk, on each side (issue 18 item 1): the record's
//! [`Retire`](super::record::Retire) names the copy kept. Both sides take the resource down
//! and remove the `.res` file and the metadata LV; the other side also removes its copy (the
//! replica's `drbd-cairn<i>` LV), then deletes the record. Facts → plan (pure) → apply.

use super::apply::{ApplyError, Node};
use super::record::ResourceRecord;
use super::side::{lv_exists, vg_lv, SideError};
use cairn_core::command::{run_ok, Invocation};

/// What this node has of a retired resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetireFacts {
    /// The `.res` file exists (drbdadm knows the resource).
    pub res_file: bool,
    pub meta: bool,
    pub backing: bool,
}

/// One step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireStep {
    Down,
    RemoveRes,
    /// `lvremove` of `vg/lv`.
    RemoveLv {
        vg: String,
        lv: String,
    },
    /// The record (and its index) deleted: this node was the last to need it.
    DeleteRecord,
    /// This node taken off the record's former sides (its copy is gone).
    DropFormer,
}

/// The steps for `me`'s side of retired `rec` (None when `rec` is not retired or `me` holds
/// no side). The kept copy's backing LV is never in the plan.
pub fn plan(
    rec: &ResourceRecord,
    me: &str,
    facts: RetireFacts,
) -> Result<Option<Vec<RetireStep>>, SideError> {
    let (Some(retire), Some(side)) = (&rec.retire, rec.side(me)) else {
        return Ok(None);
    };
    let kept = retire.keep == me;
    let last = (!kept).then_some(RetireStep::DeleteRecord);
    removal(side, ("sides.disk", "sides.meta_disk"), facts, !kept, last).map(Some)
}

/// The steps for `me` as a former side of `rec` (the replica moved away from it): its
/// resource down and its copy removed, then itself off the list. None when `me` is not a
/// former side, or is a side again (then its copy is the current replica's).
pub fn former_plan(
    rec: &ResourceRecord,
    me: &str,
    facts: RetireFacts,
) -> Result<Option<Vec<RetireStep>>, SideError> {
    let Some(side) = rec.former.iter().find(|s| s.node == me) else {
        return Ok(None);
    };
    if rec.side(me).is_some() {
        return Ok(Some(vec![RetireStep::DropFormer]));
    }
    removal(
        side,
        ("former.disk", "former.meta_disk"),
        facts,
        true,
        Some(RetireStep::DropFormer),
    )
    .map(Some)
}

/// `side` taken down with its metadata LV, its backing LV too when `remove_copy`, then
/// `last` (`fields` name the device paths in errors).
fn removal(
    side: &super::record::Side,
    (disk_field, meta_field): (&'static str, &'static str),
    facts: RetireFacts,
    remove_copy: bool,
    last: Option<RetireStep>,
) -> Result<Vec<RetireStep>, SideError> {
    let (vg, lv) = vg_lv(disk_field, &side.disk)?;
    let (meta_vg, meta_lv) = vg_lv(meta_field, &side.meta_disk)?;
    let mut steps = Vec::new();
    if facts.res_file {
        steps.extend([RetireStep::Down, RetireStep::RemoveRes]);
    }
    if facts.meta {
        steps.push(RetireStep::RemoveLv {
            vg: meta_vg,
            lv: meta_lv,
        });
    }
    if remove_copy && facts.backing {
        steps.push(RetireStep::RemoveLv { vg, lv });
    }
    steps.extend(last);
    Ok(steps)
}

/// Read what this node has of `rec` (its side, or its former side).
pub fn facts(node: &Node<'_>, rec: &ResourceRecord, me: &str) -> Result<RetireFacts, SideError> {
    let Some(side) = rec
        .side(me)
        .or_else(|| rec.former.iter().find(|s| s.node == me))
    else {
        return Ok(RetireFacts::default());
    };
    let (vg, lv) = vg_lv("sides.disk", &side.disk)?;
    let (meta_vg, meta_lv) = vg_lv("sides.meta_disk", &side.meta_disk)?;
    Ok(RetireFacts {
        res_file: node.drbd_d.join(format!("{}.res", rec.name)).is_file(),
        meta: lv_exists(node.runner, &meta_vg, &meta_lv),
        backing: lv_exists(node.runner, &vg, &lv),
    })
}

/// Run the node-local steps (all but [`RetireStep::DeleteRecord`] and
/// [`RetireStep::DropFormer`], which need etcd: the caller does them). Returns whether one of
/// those is due.
pub fn apply_local(
    node: &Node<'_>,
    rec: &ResourceRecord,
    steps: &[RetireStep],
) -> Result<bool, ApplyError> {
    let mut delete = false;
    for step in steps {
        match step {
            RetireStep::Down => node.down(&rec.name)?,
            RetireStep::RemoveRes => {
                let path = node.drbd_d.join(format!("{}.res", rec.name));
                std::fs::remove_file(&path).map_err(|e| ApplyError::Write {
                    path: path.clone(),
                    source: cairn_core::AtomicWriteError::Write(path, e),
                })?;
            }
            RetireStep::RemoveLv { vg, lv } => run_ok(
                node.runner,
                &Invocation::new("lvremove", ["-y".to_string(), format!("{vg}/{lv}")]),
            )
            .map(|_| ())
            .map_err(|source| ApplyError::Command {
                what: format!("remove {vg}/{lv}"),
                source,
            })?,
            RetireStep::DeleteRecord | RetireStep::DropFormer => delete = true,
        }
    }
    Ok(delete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::config;
    use crate::drbd::record::tests::sample;
    use crate::drbd::record::Retire;
    use cairn_core::command::RecordingRunner;

    fn retired(keep: &str) -> ResourceRecord {
        let mut r = sample();
        r.retire = Some(Retire {
            keep: keep.into(),
            since: 1,
        });
        r
    }

    const ALL: RetireFacts = RetireFacts {
        res_file: true,
        meta: true,
        backing: true,
    };

    #[test]
    fn the_kept_side_keeps_its_disk_and_the_other_removes_its_copy_then_the_record() {
        assert_eq!(
            plan(&retired("node1"), "node1", ALL).unwrap().unwrap(),
            [
                RetireStep::Down,
                RetireStep::RemoveRes,
                RetireStep::RemoveLv {
                    vg: "pool1".into(),
                    lv: "vm-web-disk0_drbdmd".into()
                },
            ]
        );
        assert_eq!(
            plan(&retired("node1"), "node2", ALL).unwrap().unwrap(),
            [
                RetireStep::Down,
                RetireStep::RemoveRes,
                RetireStep::RemoveLv {
                    vg: "pool2".into(),
                    lv: "vm-web-disk0_drbdmd".into()
                },
                RetireStep::RemoveLv {
                    vg: "pool2".into(),
                    lv: "vm-web-disk0".into()
                },
                RetireStep::DeleteRecord,
            ]
        );
    }

    #[test]
    fn what_is_gone_already_is_skipped_and_live_records_are_not_retired() {
        let none = RetireFacts::default();
        assert!(plan(&retired("node1"), "node1", none)
            .unwrap()
            .unwrap()
            .is_empty());
        assert_eq!(
            plan(&retired("node1"), "node2", none).unwrap().unwrap(),
            [RetireStep::DeleteRecord]
        );
        assert_eq!(plan(&sample(), "node1", ALL).unwrap(), None);
        assert_eq!(plan(&retired("node1"), "node3", ALL).unwrap(), None);
    }

    #[test]
    fn a_former_side_removes_its_copy_and_then_itself() {
        let mut r = sample();
        let old = r.sides[1].clone();
        r.sides[1].node = "node3".into();
        r.former = vec![old];
        assert_eq!(
            former_plan(&r, "node2", ALL).unwrap().unwrap(),
            [
                RetireStep::Down,
                RetireStep::RemoveRes,
                RetireStep::RemoveLv {
                    vg: "pool2".into(),
                    lv: "vm-web-disk0_drbdmd".into()
                },
                RetireStep::RemoveLv {
                    vg: "pool2".into(),
                    lv: "vm-web-disk0".into()
                },
                RetireStep::DropFormer,
            ]
        );
        assert_eq!(former_plan(&r, "node3", ALL).unwrap(), None);
        assert_eq!(former_plan(&r, "node1", ALL).unwrap(), None);
        // Moved back to node2 meanwhile: its copy is the replica's again, only the mark goes.
        r.sides[1].node = "node2".into();
        assert_eq!(
            former_plan(&r, "node2", ALL).unwrap().unwrap(),
            [RetireStep::DropFormer]
        );
    }

    #[test]
    fn the_steps_run_in_order_and_ask_for_the_record_deletion() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cairn3.res"), "x").unwrap();
        let r = RecordingRunner::new();
        let node = Node {
            runner: &r,
            drbd_d: dir.path().to_path_buf(),
            proc_drbd: dir.path().join("proc"),
            settings: config::SETTINGS,
        };
        let rec = retired("node1");
        let f = facts(&node, &rec, "node2").unwrap();
        assert!(f.res_file && f.meta && f.backing, "{f:?}");
        let steps = plan(&rec, "node2", f).unwrap().unwrap();
        assert!(apply_local(&node, &rec, &steps).unwrap());
        assert!(!dir.path().join("cairn3.res").exists());
        assert_eq!(
            r.command_lines()[2..],
            [
                "drbdadm down cairn3",
                "lvremove -y pool2/vm-web-disk0_drbdmd",
                "lvremove -y pool2/vm-web-disk0",
            ]
        );
    }
}
