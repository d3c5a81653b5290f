//! Thin LVs as VM volumes: create, CoW clone (one `lvm` batch for many), snapshot, delete,
//! list; the LVM command lines and `lvs` parsers are in `lvm.rs`.
//!
//! All methods block (they run LVM tools); call them from `spawn_blocking` in async code.

use crate::data_error::DataError;
use crate::lvm::{
    activate, clone_line, create_thin, list_lvs, lvm_batch, remove, remove_line, reported_created,
    snapshot_thin, tagged_lvs, LvRow,
};
use crate::names;
use crate::service::Storage;
use cairn_core::command::{run_ok, CommandError};

/// A thin volume of a pool (a VM disk, a clone or a snapshot of one).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    pub pool: String,
    /// The volume's name (its LV is `vol-<name>`).
    pub name: String,
    /// The device node (`/dev/cairn-<pool>/vol-<name>`); present only while active.
    pub path: String,
    /// Virtual size.
    pub size_bytes: u64,
    /// Thin-pool data this volume maps (its own plus what it shares with its origin).
    pub used_bytes: u64,
    /// The volume it was cloned or snapshotted from, if any.
    pub origin: Option<String>,
    /// Whether the LV is active (clones are, snapshots are not).
    pub active: bool,
}

/// A tag no LV has yet, for one clone batch (`cairn-batch-<pid>-<ns since 1970>`; batches
/// of a pool are serialized by LVM's VG lock, and cairnd's VM changes by its own lock).
fn batch_tag() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cairn-batch-{}-{ns}", std::process::id())
}

/// A clone made by [`Storage::clone_volumes`]: inactive until activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClone {
    pub name: String,
    /// The volume it is a clone of.
    pub origin: String,
    /// The device node it has once activated (`/dev/cairn-<pool>/vol-<name>`).
    pub path: String,
}

/// Check a share, volume or snapshot name: 1–48 of `a-z 0-9 - _`, starting with a letter or digit.
pub fn validate_name(field: &str, name: &str) -> Result<(), DataError> {
    if name.is_empty() {
        return Err(DataError::invalid(field, "must not be empty"));
    }
    if name.len() > 48 {
        return Err(DataError::invalid(field, "must be at most 48 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(DataError::invalid(
            field,
            "must start with a lowercase letter or a digit",
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
    {
        return Err(DataError::invalid(
            field,
            format!("must use only a-z, 0-9, '-' and '_' (found {c:?})"),
        ));
    }
    Ok(())
}

/// The smallest VM volume we create.
pub const MIN_VOLUME_BYTES: u64 = 1 << 20;

fn to_volume(pool: &str, row: &LvRow) -> Option<Volume> {
    let name = row.name.strip_prefix("vol-")?;
    Some(Volume {
        pool: pool.to_string(),
        name: name.to_string(),
        path: names::lv_path(pool, &row.name).display().to_string(),
        size_bytes: row.size_bytes,
        used_bytes: row.used_bytes(),
        origin: row
            .origin
            .strip_prefix("vol-")
            .map(str::to_string)
            .or_else(|| (!row.origin.is_empty()).then(|| row.origin.clone())),
        active: row.active(),
    })
}

impl Storage {
    /// The thin volumes (`vol-*` LVs) of `pool`.
    pub fn volumes(&self, pool: &str) -> Result<Vec<Volume>, DataError> {
        self.pool_usable(pool)?;
        Ok(list_lvs(self.runner(), pool)?
            .iter()
            .filter_map(|r| to_volume(pool, r))
            .collect())
    }

    /// One thin volume of `pool`.
    pub fn volume(&self, pool: &str, name: &str) -> Result<Volume, DataError> {
        self.volumes(pool)?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| DataError::NoSuchVolume {
                pool: pool.to_string(),
                volume: name.to_string(),
            })
    }

    /// Check `source` exists and `name` is free, with one `lvs`.
    fn require_source_and_free_name(
        &self,
        pool: &str,
        source: Option<&str>,
        name: &str,
    ) -> Result<(), DataError> {
        if let Some(src) = source {
            validate_name("source", src)?;
        }
        validate_name("name", name)?;
        let vols = self.volumes(pool)?;
        if let Some(src) = source.filter(|s| !vols.iter().any(|v| v.name == *s)) {
            return Err(DataError::NoSuchVolume {
                pool: pool.to_string(),
                volume: src.to_string(),
            });
        }
        if vols.iter().any(|v| v.name == name) {
            return Err(DataError::Exists {
                what: "volume",
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Create an (active) thin volume `name` of `size_bytes` (rounded up by LVM to its extent size).
    pub fn create_volume(
        &self,
        pool: &str,
        name: &str,
        size_bytes: u64,
    ) -> Result<Volume, DataError> {
        if size_bytes < MIN_VOLUME_BYTES {
            return Err(DataError::invalid("size_bytes", "must be at least 1 MiB"));
        }
        self.require_source_and_free_name(pool, None, name)?;
        run_ok(
            self.runner(),
            &create_thin(pool, &names::volume_lv(name), size_bytes),
        )
        .map_err(|e| DataError::command(format!("create volume {name}"), e))?;
        self.volume(pool, name)
    }

    /// A writable copy-on-write clone `name` of volume `source` (a thin snapshot, activated):
    /// instant, and it uses no pool data until either side is written.
    pub fn clone_volume(&self, pool: &str, source: &str, name: &str) -> Result<Volume, DataError> {
        self.require_source_and_free_name(pool, Some(source), name)?;
        let lv = names::volume_lv(name);
        run_ok(
            self.runner(),
            &snapshot_thin(pool, &names::volume_lv(source), &lv),
        )
        .map_err(|e| DataError::command(format!("clone volume {source} as {name}"), e))?;
        run_ok(self.runner(), &activate(pool, &lv))
            .map_err(|e| DataError::command(format!("activate clone {name}"), e))?;
        self.volume(pool, name)
    }

    /// Many copy-on-write clones at once, `(source, name)` each, all in one `lvm` process
    /// and nothing else when it reports every clone created; all or nothing: if any clone
    /// fails (a taken name, a missing source, no space), the ones made are removed again and
    /// the error names the first that failed. The clones are left inactive (their block
    /// devices appear once activated, see [`activate`]) and are not activation-skipped.
    ///
    /// There is no `lvs` before the batch: `lvcreate` refuses a taken name or a missing
    /// source itself, and every clone carries the batch's own tag, so after a failure the
    /// volume group says which LVs this batch made (never an LV that existed before).
    pub fn clone_volumes(
        &self,
        pool: &str,
        clones: &[(String, String)],
    ) -> Result<Vec<NewClone>, DataError> {
        self.clone_volumes_tagged(pool, clones, &batch_tag())
    }

    /// [`Storage::clone_volumes`] with the batch's tag given.
    fn clone_volumes_tagged(
        &self,
        pool: &str,
        clones: &[(String, String)],
        tag: &str,
    ) -> Result<Vec<NewClone>, DataError> {
        if clones.is_empty() {
            return Err(DataError::invalid("clones", "must name at least one clone"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, (source, name)) in clones.iter().enumerate() {
            validate_name(&format!("clones[{i}].source"), source)?;
            validate_name(&format!("clones[{i}].name"), name)?;
            if !seen.insert(name.as_str()) {
                return Err(DataError::invalid(
                    format!("clones[{i}].name"),
                    format!("{name} is named twice"),
                ));
            }
        }
        self.pool_usable(pool)?;
        let lines: Vec<String> = clones
            .iter()
            .map(|(source, name)| {
                clone_line(
                    pool,
                    &names::volume_lv(source),
                    &names::volume_lv(name),
                    tag,
                )
            })
            .collect();
        let batch = lvm_batch(&lines);
        let made_all = || {
            clones
                .iter()
                .map(|(source, name)| NewClone {
                    name: name.clone(),
                    origin: source.clone(),
                    path: names::lv_path(pool, &names::volume_lv(name))
                        .display()
                        .to_string(),
                })
                .collect()
        };
        let t0 = std::time::Instant::now();
        // The shell's own exit status says little (it goes on after a failed command).
        let ran = self.runner().run(&batch);
        let batched = t0.elapsed();
        // Every clone reported as created: `lvcreate` says so only for an LV it made.
        if let Ok(out) = &ran {
            let text = out.stdout_text();
            if clones
                .iter()
                .all(|(_, n)| reported_created(&text, &names::volume_lv(n)))
            {
                tracing::info!(
                    "clone batch of {} on pool {pool}: lvm {:.2} s",
                    clones.len(),
                    batched.as_secs_f64()
                );
                return Ok(made_all());
            }
        }
        // Otherwise the batch's tag says what was made.
        let made = tagged_lvs(self.runner(), pool, tag)?;
        tracing::info!(
            "clone batch of {} on pool {pool}: lvm {:.2} s, verified {:.2} s",
            clones.len(),
            batched.as_secs_f64(),
            (t0.elapsed() - batched).as_secs_f64()
        );
        let is_made = |name: &str| made.iter().any(|lv| *lv == names::volume_lv(name));
        let Some((source, name)) = clones.iter().find(|(_, n)| !is_made(n)) else {
            return Ok(made_all());
        };
        let cause = match ran {
            Ok(out) => CommandError::Failed {
                command: batch.display(),
                code: out.code,
                stderr: out.stderr_text(),
            },
            Err(e) => e,
        };
        if !made.is_empty() {
            let undo: Vec<String> = made.iter().map(|lv| remove_line(pool, lv)).collect();
            let removed = run_ok(self.runner(), &lvm_batch(&undo)).and_then(|_| {
                let left =
                    tagged_lvs(self.runner(), pool, tag).map_err(|e| CommandError::Failed {
                        command: "lvs".into(),
                        code: None,
                        stderr: e.to_string(),
                    })?;
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(CommandError::Failed {
                        command: "lvremove".into(),
                        code: None,
                        stderr: format!("still present: {}", left.join(", ")),
                    })
                }
            });
            if let Err(e) = removed {
                tracing::error!(
                    "clone rollback: cannot remove the clones made in pool {pool}: {}",
                    cairn_core::boot::error_chain(&e)
                );
            }
        }
        Err(DataError::command(
            format!("clone volume {source} as {name}"),
            cause,
        ))
    }

    /// A point-in-time snapshot `snap` of volume `source` (a thin snapshot left inactive, so
    /// nothing writes to it; clone it to use it).
    pub fn snapshot_volume(
        &self,
        pool: &str,
        source: &str,
        snap: &str,
    ) -> Result<Volume, DataError> {
        self.require_source_and_free_name(pool, Some(source), snap)?;
        run_ok(
            self.runner(),
            &snapshot_thin(pool, &names::volume_lv(source), &names::volume_lv(snap)),
        )
        .map_err(|e| DataError::command(format!("snapshot volume {source} as {snap}"), e))?;
        self.volume(pool, snap)
    }

    /// Delete volume `name` (its clones and snapshots stay: thin snapshots are independent).
    pub fn delete_volume(&self, pool: &str, name: &str) -> Result<(), DataError> {
        validate_name("name", name)?;
        self.volume(pool, name)?;
        run_ok(self.runner(), &remove(pool, &names::volume_lv(name)))
            .map_err(|e| DataError::command(format!("delete volume {name}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvm::parse_lvs;
    use crate::lvm::tests::LVS;

    #[test]
    fn only_vol_lvs_are_volumes() {
        let rows = parse_lvs(LVS).unwrap();
        let vols: Vec<_> = rows.iter().filter_map(|r| to_volume("tank", r)).collect();
        assert_eq!(vols.len(), 3);
        assert_eq!(vols[1].name, "c1");
        assert_eq!(vols[1].origin.as_deref(), Some("base"));
        assert_eq!(vols[1].path, "/dev/cairn-tank/vol-c1");
        assert!(!vols[2].active);
    }

    #[test]
    fn names_are_validated_with_the_field() {
        assert!(validate_name("name", "web-01_a").is_ok());
        let e = validate_name("name", "Web").unwrap_err();
        assert_eq!(e.field(), Some("name"));
        assert!(validate_name("name", "").is_err());
        assert!(validate_name("name", "a/b")
            .unwrap_err()
            .to_string()
            .contains("'/'"));
        assert!(validate_name("name", &"a".repeat(49)).is_err());
        assert!(validate_name("name", "-a").is_err());
    }

    #[test]
    fn clone_is_an_activated_thin_snapshot_and_refuses_taken_names() {
        use crate::testing::storage_with;
        use cairn_core::command::{CommandOutput, RecordingRunner};
        let r = RecordingRunner::new();
        let before = LVS.replace("vol-c1", "vol-other");
        r.expect("lvs", &[], CommandOutput::ok(before))
            .expect("lvs", &[], CommandOutput::ok(LVS));
        let (st, _d, _a) = storage_with(r);
        let v = st.clone_volume("tank", "base", "c1").unwrap();
        assert_eq!(v.origin.as_deref(), Some("base"));
        assert!(v.active);
        let lines = st.runner_lines();
        assert_eq!(
            lines[1..3],
            [
                "lvcreate -y -s -n vol-c1 cairn-tank/vol-base".to_string(),
                "lvchange -ay -K cairn-tank/vol-c1".to_string()
            ]
        );
        st.script("lvs", CommandOutput::ok(LVS));
        let e = st.clone_volume("tank", "base", "c1").unwrap_err();
        assert!(matches!(e, DataError::Exists { .. }), "{e}");
        let e = st.create_volume("tank", "big", 10).unwrap_err();
        assert_eq!(e.field(), Some("size_bytes"));
        let e = st.volumes("nope").unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    fn pairs(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ("base".to_string(), n.to_string()))
            .collect()
    }

    const TAG: &str = "cairn-batch-1-2";

    /// A JSON report of [`lvs_tags`]: `LVS`'s LVs, and clones `tagged` of this batch.
    fn lvs_tagged(tagged: &[&str]) -> String {
        let rows: Vec<String> = ["share-docs", "thin", "vol-base", "vol-c1", "vol-s1"]
            .iter()
            .map(|n| format!(r#"{{"lv_name":"{n}", "lv_tags":"other"}}"#))
            .chain(
                tagged
                    .iter()
                    .map(|n| format!(r#"{{"lv_name":"vol-{n}", "lv_tags":"x,{TAG}"}}"#)),
            )
            .collect();
        format!(r#"{{"report": [{{"lv": [{}]}}]}}"#, rows.join(","))
    }

    #[test]
    fn a_batch_of_clones_is_one_lvm_process_and_nothing_else() {
        use crate::testing::storage_with;
        use cairn_core::command::{CommandOutput, RecordingRunner};
        let r = RecordingRunner::new();
        r.expect(
            "lvm",
            &[],
            CommandOutput::ok(
                "  Logical volume \"vol-x1\" created.\n  Logical volume \"cairn-tank/vol-x2\" created.\n  Logical volume \"vol-x3\" created.\n",
            ),
        );
        let (st, _d, _a) = storage_with(r);
        let made = st
            .clone_volumes_tagged("tank", &pairs(&["x1", "x2", "x3"]), TAG)
            .unwrap();
        assert_eq!(
            made.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
            ["x1", "x2", "x3"]
        );
        assert!(made.iter().all(|v| v.origin == "base"));
        assert_eq!(made[0].path, "/dev/cairn-tank/vol-x1");
        let calls = st.runner.calls();
        let programs: Vec<&str> = calls.iter().map(|c| c.program.as_str()).collect();
        assert_eq!(programs, ["lvm"]);
        let input = String::from_utf8(calls[0].stdin.clone().unwrap()).unwrap();
        assert_eq!(
            input,
            "lvcreate -y -s -kn -an --noudevsync --ignoremonitoring --addtag cairn-batch-1-2 -n vol-x1 cairn-tank/vol-base\n\
             lvcreate -y -s -kn -an --noudevsync --ignoremonitoring --addtag cairn-batch-1-2 -n vol-x2 cairn-tank/vol-base\n\
             lvcreate -y -s -kn -an --noudevsync --ignoremonitoring --addtag cairn-batch-1-2 -n vol-x3 cairn-tank/vol-base\n"
        );
        // Every batch gets a tag of its own.
        let (a, b) = (batch_tag(), batch_tag());
        assert!(a.starts_with("cairn-batch-") && a != b, "{a} {b}");
    }

    #[test]
    fn without_a_created_report_for_every_clone_the_tag_decides() {
        use crate::testing::storage_with;
        use cairn_core::command::{CommandOutput, RecordingRunner};
        let r = RecordingRunner::new();
        r.expect(
            "lvm",
            &[],
            CommandOutput::ok("  Logical volume \"vol-x1\" created.\n"),
        )
        .expect("lvs", &[], CommandOutput::ok(lvs_tagged(&["x1", "x2"])));
        let (st, _d, _a) = storage_with(r);
        let made = st
            .clone_volumes_tagged("tank", &pairs(&["x1", "x2"]), TAG)
            .unwrap();
        assert_eq!(made.len(), 2);
        let calls = st.runner.calls();
        let programs: Vec<&str> = calls.iter().map(|c| c.program.as_str()).collect();
        assert_eq!(programs, ["lvm", "lvs"]);
        assert_eq!(
            calls[1].display(),
            "lvs --reportformat json -o lv_name,lv_tags cairn-tank"
        );
        assert!(!reported_created(
            "  Logical volume \"vol-x10\" created.",
            "vol-x1"
        ));
    }

    #[test]
    fn a_failed_clone_of_a_batch_is_named_and_the_others_are_removed() {
        use crate::testing::storage_with;
        use cairn_core::command::{CommandOutput, RecordingRunner};
        let r = RecordingRunner::new();
        r.expect(
            "lvm",
            &[],
            CommandOutput {
                code: Some(0),
                stdout: Vec::new(),
                stderr: b"  Logical volume \"vol-x2\": no space\n".to_vec(),
            },
        )
        // x1 and x3 were made, x2 was not.
        .expect("lvs", &[], CommandOutput::ok(lvs_tagged(&["x1", "x3"])))
        .expect("lvm", &[], CommandOutput::ok(""))
        .expect("lvs", &[], CommandOutput::ok(lvs_tagged(&[])));
        let (st, _d, _a) = storage_with(r);
        let e = st
            .clone_volumes_tagged("tank", &pairs(&["x1", "x2", "x3"]), TAG)
            .unwrap_err();
        let text = cairn_core::boot::error_chain(&e);
        assert!(text.starts_with("clone volume base as x2"), "{text}");
        assert!(text.contains("no space"), "{text}");
        let calls = st.runner.calls();
        assert_eq!(calls.len(), 4);
        let undo = String::from_utf8(calls[2].stdin.clone().unwrap()).unwrap();
        assert_eq!(
            undo,
            "lvremove -y cairn-tank/vol-x1\nlvremove -y cairn-tank/vol-x3\n"
        );
    }

    #[test]
    fn a_taken_name_fails_the_batch_and_the_existing_volume_is_kept() {
        use crate::testing::storage_with;
        use cairn_core::command::{CommandOutput, RecordingRunner};
        let r = RecordingRunner::new();
        // c1 exists (a leftover disk of a deleted VM, a clone of base too): lvcreate refuses
        // it; x1 is made. Only x1 carries the batch's tag, so only x1 is removed.
        r.expect(
            "lvm",
            &[],
            CommandOutput {
                code: Some(0),
                stdout: b"  Logical volume \"vol-x1\" created.\n".to_vec(),
                stderr:
                    b"  Logical Volume \"vol-c1\" already exists in volume group \"cairn-tank\"\n"
                        .to_vec(),
            },
        )
        .expect("lvs", &[], CommandOutput::ok(lvs_tagged(&["x1"])))
        .expect("lvm", &[], CommandOutput::ok(""))
        .expect("lvs", &[], CommandOutput::ok(lvs_tagged(&[])));
        let (st, _d, _a) = storage_with(r);
        let e = st
            .clone_volumes_tagged("tank", &pairs(&["x1", "c1"]), TAG)
            .unwrap_err();
        let text = cairn_core::boot::error_chain(&e);
        assert!(text.starts_with("clone volume base as c1"), "{text}");
        assert!(text.contains("already exists"), "{text}");
        let undo = String::from_utf8(st.runner.calls()[2].stdin.clone().unwrap()).unwrap();
        assert_eq!(undo, "lvremove -y cairn-tank/vol-x1\n");
    }

    #[test]
    fn a_batch_is_checked_before_anything_runs() {
        use crate::testing::storage_with;
        use cairn_core::command::RecordingRunner;
        let (st, _d, _a) = storage_with(RecordingRunner::new());
        let e = st.clone_volumes("tank", &pairs(&["x1", "x1"])).unwrap_err();
        assert_eq!(e.field(), Some("clones[1].name"));
        let e = st
            .clone_volumes("tank", &pairs(&["x1", "Bad"]))
            .unwrap_err();
        assert_eq!(e.field(), Some("clones[1].name"));
        assert_eq!(
            st.clone_volumes("tank", &[]).unwrap_err().field(),
            Some("clones")
        );
        let e = st.clone_volumes("nope", &pairs(&["x1"])).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(st.runner_lines().is_empty());
    }
}
