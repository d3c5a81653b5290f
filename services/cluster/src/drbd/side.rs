//! This node's side of a resource made to match its record (decision 0027 "Apply on a node"):
//! what is there ([`SideFacts`]) → the steps ([`plan`], pure) → applied through a
//! [`CommandRunner`] ([`apply`]). The replica's backing LV is made here; metadata is created
//! only on a new metadata LV (never over live metadata); `up` when the kernel has no such
//! minor, `adjust` when the `.res` file changed under a configured one.

use super::apply::{ApplyError, Node};
use super::config;
use super::record::ResourceRecord;
use cairn_core::command::{run_ok, CommandRunner, Invocation};

/// What this node has of the resource now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SideFacts {
    /// The backing thin LV exists.
    pub backing: bool,
    /// The metadata thin LV exists.
    pub meta: bool,
    /// The `.res` file holds what the record renders to.
    pub res_current: bool,
    /// The kernel has the minor (`/proc/drbd` lists it).
    pub configured: bool,
}

/// One step, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    LoadModule,
    /// `lvcreate` of a thin LV of `bytes` in `<vg>/<thin>`.
    CreateBacking {
        vg: String,
        lv: String,
        bytes: u64,
    },
    CreateMeta {
        vg: String,
        lv: String,
        bytes: u64,
    },
    WriteRes,
    CreateMd,
    Up,
    Adjust,
}

/// Why this node's side cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    #[error("{node} holds no side of resource {resource}")]
    NotASide { node: String, resource: String },
    /// The recorded primary's own data disk is gone: never replaced by an empty one.
    #[error(
        "the data disk {disk} of resource {resource} is missing on {node}, which holds the \
         current data: nothing was created in its place"
    )]
    DataMissing {
        node: String,
        resource: String,
        disk: String,
    },
    #[error("{field}: {path:?} is not /dev/<vg>/<lv>")]
    DevicePath { field: &'static str, path: String },
    #[error("bringing the side up")]
    Apply(#[source] ApplyError),
}

/// `/dev/<vg>/<lv>` → (vg, lv).
pub fn vg_lv(field: &'static str, path: &str) -> Result<(String, String), SideError> {
    let bad = || SideError::DevicePath {
        field,
        path: path.to_string(),
    };
    let rest = path.strip_prefix("/dev/").ok_or_else(bad)?;
    let (vg, lv) = rest.split_once('/').ok_or_else(bad)?;
    if vg.is_empty() || lv.is_empty() || lv.contains('/') {
        return Err(bad());
    }
    Ok((vg.to_string(), lv.to_string()))
}

/// The steps that bring `me`'s side of `rec` from `facts` to up and matching the record.
/// The backing LV is created only on a node that is not the recorded primary (the replica);
/// the recorded primary's missing disk is an error, never an empty replacement.
pub fn plan(
    rec: &ResourceRecord,
    me: &str,
    facts: SideFacts,
    extent_bytes: u64,
) -> Result<Vec<Step>, SideError> {
    let side = rec.side(me).ok_or_else(|| SideError::NotASide {
        node: me.to_string(),
        resource: rec.name.clone(),
    })?;
    let (vg, lv) = vg_lv("sides.disk", &side.disk)?;
    let (meta_vg, meta_lv) = vg_lv("sides.meta_disk", &side.meta_disk)?;
    let mut steps = Vec::new();
    if facts.configured {
        if !facts.res_current {
            steps.extend([Step::WriteRes, Step::Adjust]);
        }
        return Ok(steps);
    }
    steps.push(Step::LoadModule);
    if !facts.backing {
        if rec.primary == me {
            return Err(SideError::DataMissing {
                node: me.to_string(),
                resource: rec.name.clone(),
                disk: side.disk.clone(),
            });
        }
        steps.push(Step::CreateBacking {
            vg,
            lv,
            bytes: rec.size_bytes,
        });
    }
    if !facts.meta {
        steps.push(Step::CreateMeta {
            vg: meta_vg,
            lv: meta_lv,
            bytes: super::names::metadata_bytes(rec.size_bytes, extent_bytes),
        });
    }
    if !facts.res_current {
        steps.push(Step::WriteRes);
    }
    // New metadata (or a new backing disk under old metadata, whose bitmap would lie, or a
    // replica that never finished its initial sync: whatever it held is not this disk).
    let fresh_replica = !rec.initial_sync_done && rec.primary != me;
    if !facts.meta || !facts.backing || fresh_replica {
        steps.push(Step::CreateMd);
    }
    steps.push(Step::Up);
    Ok(steps)
}

/// Whether LV `vg/lv` exists (`lvs` answers 0 only for an existing one).
pub fn lv_exists(runner: &dyn CommandRunner, vg: &str, lv: &str) -> bool {
    run_ok(
        runner,
        &Invocation::new(
            "lvs",
            [
                "--noheadings".to_string(),
                "-o".to_string(),
                "lv_name".to_string(),
                format!("{vg}/{lv}"),
            ],
        ),
    )
    .is_ok()
}

/// Read what this node has of `rec`.
pub fn facts(node: &Node<'_>, rec: &ResourceRecord, me: &str) -> Result<SideFacts, SideError> {
    let side = rec.side(me).ok_or_else(|| SideError::NotASide {
        node: me.to_string(),
        resource: rec.name.clone(),
    })?;
    let (vg, lv) = vg_lv("sides.disk", &side.disk)?;
    let (meta_vg, meta_lv) = vg_lv("sides.meta_disk", &side.meta_disk)?;
    let want =
        config::render(rec, &node.settings).map_err(|e| SideError::Apply(ApplyError::Record(e)))?;
    let have = std::fs::read_to_string(node.drbd_d.join(format!("{}.res", rec.name))).ok();
    let configured = std::fs::read_to_string(&node.proc_drbd)
        .ok()
        .and_then(|t| super::proc_status::parse(&t).ok())
        .is_some_and(|p| p.device(rec.index).is_some());
    Ok(SideFacts {
        backing: lv_exists(node.runner, &vg, &lv),
        meta: lv_exists(node.runner, &meta_vg, &meta_lv),
        res_current: have.as_deref() == Some(want.as_str()),
        configured,
    })
}

/// Run `steps` for `rec` on this node (`thin_pool` is the thin pool LV's name in each VG).
pub fn apply(
    node: &Node<'_>,
    rec: &ResourceRecord,
    steps: &[Step],
    thin_pool: &str,
) -> Result<(), SideError> {
    for step in steps {
        match step {
            Step::LoadModule => node.load_module(),
            Step::CreateBacking { vg, lv, bytes } => node.create_thin(
                &format!("create the replica disk {vg}/{lv}"),
                vg,
                thin_pool,
                lv,
                *bytes,
            ),
            Step::CreateMeta { vg, lv, bytes } => node.create_thin(
                &format!("create the DRBD metadata volume {vg}/{lv}"),
                vg,
                thin_pool,
                lv,
                *bytes,
            ),
            Step::WriteRes => node.write_res(rec).map(|_| ()),
            Step::CreateMd => node.create_md(&rec.name),
            Step::Up => node.up(&rec.name),
            Step::Adjust => node.adjust(&rec.name),
        }
        .map_err(SideError::Apply)?;
    }
    Ok(())
}

/// Facts, plan and apply: this node's side of `rec` up and matching it. Returns the steps run.
pub fn ensure(
    node: &Node<'_>,
    rec: &ResourceRecord,
    me: &str,
    thin_pool: &str,
    extent_bytes: u64,
) -> Result<Vec<Step>, SideError> {
    let f = facts(node, rec, me)?;
    let steps = plan(rec, me, f, extent_bytes)?;
    apply(node, rec, &steps, thin_pool)?;
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drbd::record::tests::sample;
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::path::Path;

    const MIB4: u64 = 4 << 20;

    fn none() -> SideFacts {
        SideFacts::default()
    }

    #[test]
    fn the_replica_gets_its_disk_metadata_and_comes_up() {
        let s = plan(&sample(), "node2", none(), MIB4).unwrap();
        assert_eq!(
            s,
            [
                Step::LoadModule,
                Step::CreateBacking {
                    vg: "pool2".into(),
                    lv: "vm-web-disk0".into(),
                    bytes: sample().size_bytes
                },
                Step::CreateMeta {
                    vg: "pool2".into(),
                    lv: "vm-web-disk0_drbdmd".into(),
                    bytes: MIB4
                },
                Step::WriteRes,
                Step::CreateMd,
                Step::Up,
            ]
        );
    }

    #[test]
    fn the_primary_keeps_its_disk_and_never_gets_an_empty_one() {
        let with_disk = SideFacts {
            backing: true,
            ..none()
        };
        let s = plan(&sample(), "node1", with_disk, MIB4).unwrap();
        assert!(!s.iter().any(|s| matches!(s, Step::CreateBacking { .. })));
        assert!(s.contains(&Step::CreateMd));
        let e = plan(&sample(), "node1", none(), MIB4).unwrap_err();
        assert!(matches!(e, SideError::DataMissing { .. }), "{e}");
        assert!(e.to_string().contains("nothing was created"));
    }

    #[test]
    fn existing_metadata_is_never_recreated_after_a_reboot() {
        let rebooted = SideFacts {
            backing: true,
            meta: true,
            res_current: true,
            configured: false,
        };
        let mut synced = sample();
        synced.initial_sync_done = true;
        assert_eq!(
            plan(&synced, "node2", rebooted, MIB4).unwrap(),
            [Step::LoadModule, Step::Up]
        );
        assert_eq!(
            plan(&synced, "node1", rebooted, MIB4).unwrap(),
            [Step::LoadModule, Step::Up]
        );
        // A replica that never finished its initial sync gets fresh metadata.
        let mut never = sample();
        never.initial_sync_done = false;
        assert_eq!(
            plan(&never, "node2", rebooted, MIB4).unwrap(),
            [Step::LoadModule, Step::CreateMd, Step::Up]
        );
    }

    #[test]
    fn a_configured_side_is_adjusted_only_when_the_file_changed() {
        let up = SideFacts {
            backing: true,
            meta: true,
            res_current: true,
            configured: true,
        };
        assert!(plan(&sample(), "node1", up, MIB4).unwrap().is_empty());
        let changed = SideFacts {
            res_current: false,
            ..up
        };
        assert_eq!(
            plan(&sample(), "node1", changed, MIB4).unwrap(),
            [Step::WriteRes, Step::Adjust]
        );
    }

    #[test]
    fn a_stranger_or_a_bad_path_is_refused() {
        assert!(matches!(
            plan(&sample(), "node3", none(), MIB4),
            Err(SideError::NotASide { .. })
        ));
        let mut odd = sample();
        odd.sides[1].disk = "/dev/mapper-x".into();
        assert!(matches!(
            plan(&odd, "node2", none(), MIB4),
            Err(SideError::DevicePath {
                field: "sides.disk",
                ..
            })
        ));
    }

    #[test]
    fn ensure_reads_the_node_and_runs_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let r = RecordingRunner::new();
        // The replica's disk is missing (lvs fails), its metadata too.
        r.expect(
            "lvs",
            &["--noheadings", "-o", "lv_name", "pool2/vm-web-disk0"],
            CommandOutput::failed(5, "Failed to find logical volume"),
        );
        r.expect(
            "lvs",
            &["--noheadings", "-o", "lv_name", "pool2/vm-web-disk0_drbdmd"],
            CommandOutput::failed(5, "Failed to find logical volume"),
        );
        let node = Node {
            runner: &r,
            drbd_d: dir.path().to_path_buf(),
            proc_drbd: dir.path().join("proc-drbd"),
            settings: config::SETTINGS,
        };
        let steps = ensure(&node, &sample(), "node2", "thin", MIB4).unwrap();
        assert_eq!(steps.len(), 6);
        let lines = r.command_lines();
        assert_eq!(
            lines,
            [
                "lvs --noheadings -o lv_name pool2/vm-web-disk0",
                "lvs --noheadings -o lv_name pool2/vm-web-disk0_drbdmd",
                "modprobe drbd",
                &format!(
                    "lvcreate -y -V {}b -T pool2/thin -n vm-web-disk0",
                    sample().size_bytes
                ),
                "lvcreate -y -V 4194304b -T pool2/thin -n vm-web-disk0_drbdmd",
                "drbdadm -- --force create-md cairn3",
                "drbdadm up cairn3",
            ]
        );
        assert!(Path::new(&dir.path().join("cairn3.res")).is_file());
    }
}
