//! Thin LVs: VM volumes (create, CoW clone, snapshot, delete, list) and the `lvs` report they and shares are read from.
//!
//! All methods block (they run LVM tools); call them from `spawn_blocking` in async code.

use crate::data_error::DataError;
use crate::names;
use crate::service::Storage;
use cairn_core::command::{run_ok, CommandError, CommandRunner, Invocation};

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

/// One row of `lvs --reportformat json`.
#[derive(Debug, Clone, PartialEq)]
pub struct LvRow {
    pub name: String,
    pub size_bytes: u64,
    /// Percent of the LV's (or thin pool's) data space in use.
    pub data_percent: f64,
    /// Percent of a thin pool's metadata in use (0 for thin LVs).
    pub metadata_percent: f64,
    /// The thin LV's origin, empty if none.
    pub origin: String,
    /// `lv_attr`, e.g. `Vwi-a-tz--`; the fifth character is `a` when active.
    pub attr: String,
}

impl LvRow {
    /// Whether the LV is active.
    pub fn active(&self) -> bool {
        self.attr.chars().nth(4) == Some('a')
    }

    /// Bytes of the LV in use, from size and data percent.
    pub fn used_bytes(&self) -> u64 {
        (self.size_bytes as f64 * self.data_percent / 100.0).round() as u64
    }
}

/// `lvs` of every LV of pool `pool`'s volume group, in bytes, as JSON.
pub fn lvs(pool: &str) -> Invocation {
    Invocation::new(
        "lvs",
        [
            "--reportformat",
            "json",
            "--units",
            "b",
            "--nosuffix",
            "-o",
            "lv_name,lv_size,data_percent,metadata_percent,origin,lv_attr",
            &names::vg_name(pool),
        ],
    )
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_str()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn text(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Parse the JSON report of [`lvs`].
pub fn parse_lvs(json: &str) -> Result<Vec<LvRow>, String> {
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let rows = doc["report"][0]["lv"]
        .as_array()
        .ok_or("no report[0].lv array")?;
    Ok(rows
        .iter()
        .map(|r| LvRow {
            name: text(&r["lv_name"]),
            size_bytes: num(&r["lv_size"]) as u64,
            data_percent: num(&r["data_percent"]),
            metadata_percent: num(&r["metadata_percent"]),
            origin: text(&r["origin"]),
            attr: text(&r["lv_attr"]),
        })
        .collect())
}

/// Run [`lvs`] for `pool` and parse it.
pub fn list_lvs(runner: &dyn CommandRunner, pool: &str) -> Result<Vec<LvRow>, DataError> {
    let out = run_ok(runner, &lvs(pool))
        .map_err(|e| DataError::command(format!("list the volumes of pool {pool}"), e))?;
    parse_lvs(&out.stdout_text()).map_err(|reason| DataError::Parse {
        tool: "lvs".into(),
        reason,
    })
}

/// `lvcreate` of a thin LV `lv` of `size_bytes` in pool `pool`'s thin pool.
pub fn create_thin(pool: &str, lv: &str, size_bytes: u64) -> Invocation {
    Invocation::new(
        "lvcreate",
        [
            "-y".to_string(),
            "-V".to_string(),
            format!("{size_bytes}b"),
            "-T".to_string(),
            format!("{}/{}", names::vg_name(pool), names::THIN_POOL_LV),
            "-n".to_string(),
            lv.to_string(),
        ],
    )
}

/// `lvcreate -s` of a thin snapshot `lv` of `source_lv` (inactive until activated with `-K`).
pub fn snapshot_thin(pool: &str, source_lv: &str, lv: &str) -> Invocation {
    Invocation::new(
        "lvcreate",
        [
            "-y".to_string(),
            "-s".to_string(),
            "-n".to_string(),
            lv.to_string(),
            format!("{}/{source_lv}", names::vg_name(pool)),
        ],
    )
}

/// Activate `lv` even though it carries the snapshot activation-skip flag.
pub fn activate(pool: &str, lv: &str) -> Invocation {
    Invocation::new(
        "lvchange",
        [
            "-ay".to_string(),
            "-K".to_string(),
            format!("{}/{lv}", names::vg_name(pool)),
        ],
    )
}

/// The `lvm` shell's line making clone `lv` of `source_lv`: a thin snapshot that is not
/// activation-skipped (`-kn`: the pool's activation at boot brings it up like any volume),
/// left inactive for now (`-an`: its VM's start activates it), without waiting for udev to
/// re-read the origin after LVM's suspend/resume of it (`--noudevsync`: no device node
/// appears or changes) and without dmeventd calls (`--ignoremonitoring`: only the thin pool
/// is monitored, and it is unchanged), tagged with its batch's `tag` (what a failed batch
/// made). See decision 0009.
pub fn clone_line(pool: &str, source_lv: &str, lv: &str, tag: &str) -> String {
    format!(
        "lvcreate -y -s -kn -an --noudevsync --ignoremonitoring --addtag {tag} -n {lv} {}/{source_lv}",
        names::vg_name(pool)
    )
}

/// A tag no LV has yet, for one clone batch (`cairn-batch-<pid>-<ns since 1970>`; batches
/// of a pool are serialized by LVM's VG lock, and cairnd's VM changes by its own lock).
fn batch_tag() -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cairn-batch-{}-{ns}", std::process::id())
}

/// `lvs` of every LV of pool `pool`'s volume group with its tags, as JSON.
pub fn lvs_tags(pool: &str) -> Invocation {
    Invocation::new(
        "lvs",
        [
            "--reportformat",
            "json",
            "-o",
            "lv_name,lv_tags",
            &names::vg_name(pool),
        ],
    )
}

/// The LVs of pool `pool` carrying `tag`, by [`lvs_tags`].
fn tagged_lvs(runner: &dyn CommandRunner, pool: &str, tag: &str) -> Result<Vec<String>, DataError> {
    let out = run_ok(runner, &lvs_tags(pool))
        .map_err(|e| DataError::command(format!("list the volumes of pool {pool}"), e))?;
    parse_tagged(&out.stdout_text(), tag).map_err(|reason| DataError::Parse {
        tool: "lvs".into(),
        reason,
    })
}

/// The names of the LVs carrying `tag` in a JSON report of [`lvs_tags`].
fn parse_tagged(json: &str, tag: &str) -> Result<Vec<String>, String> {
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let rows = doc["report"][0]["lv"]
        .as_array()
        .ok_or("no report[0].lv array")?;
    Ok(rows
        .iter()
        .filter(|r| text(&r["lv_tags"]).split(',').any(|t| t.trim() == tag))
        .map(|r| text(&r["lv_name"]))
        .collect())
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

/// The `lvm` shell's line removing `lv` (a batch's rollback).
pub fn remove_line(pool: &str, lv: &str) -> String {
    format!("lvremove -y {}/{lv}", names::vg_name(pool))
}

/// Whether `lvcreate`'s output `stdout` reports LV `lv` as created
/// (`Logical volume "vol-x" created.`, with or without the volume group).
fn reported_created(stdout: &str, lv: &str) -> bool {
    let (bare, full) = (format!("\"{lv}\""), format!("/{lv}\""));
    stdout
        .lines()
        .any(|l| l.contains(" created") && (l.contains(&bare) || l.contains(&full)))
}

/// One `lvm` process running `lines` one after another (its shell reads commands from
/// standard input): one start-up instead of one per command. The shell goes on after a
/// failed command and exits 0 anyway, so callers check the outcome with [`lvs`].
pub fn lvm_batch(lines: &[String]) -> Invocation {
    let mut input = lines.join("\n");
    input.push('\n');
    Invocation::new("lvm", Vec::<String>::new()).with_stdin(input)
}

/// Remove `lv`.
pub fn remove(pool: &str, lv: &str) -> Invocation {
    Invocation::new(
        "lvremove",
        ["-y".to_string(), format!("{}/{lv}", names::vg_name(pool))],
    )
}

/// Extend `lv` to `size_bytes`.
pub fn extend(pool: &str, lv: &str, size_bytes: u64) -> Invocation {
    Invocation::new(
        "lvextend",
        [
            "-L".to_string(),
            format!("{size_bytes}b"),
            format!("{}/{lv}", names::vg_name(pool)),
        ],
    )
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

    const LVS: &str = r#"{
      "report": [
          {
              "lv": [
                  {"lv_name":"share-docs", "lv_size":"1073741824", "data_percent":"2.50", "metadata_percent":"", "origin":"", "lv_attr":"Vwi-aotz--"},
                  {"lv_name":"thin", "lv_size":"3221225472", "data_percent":"10.00", "metadata_percent":"4.12", "origin":"", "lv_attr":"twi-aotz--"},
                  {"lv_name":"vol-base", "lv_size":"67108864", "data_percent":"50.00", "metadata_percent":"", "origin":"", "lv_attr":"Vwi-a-tz--"},
                  {"lv_name":"vol-c1", "lv_size":"67108864", "data_percent":"50.00", "metadata_percent":"", "origin":"vol-base", "lv_attr":"Vwi-a-tz--"},
                  {"lv_name":"vol-s1", "lv_size":"67108864", "data_percent":"50.00", "metadata_percent":"", "origin":"vol-base", "lv_attr":"Vwi---tz-k"}
              ]
          }
      ]
  }"#;

    #[test]
    fn lvs_report_is_parsed() {
        let rows = parse_lvs(LVS).unwrap();
        assert_eq!(rows.len(), 5);
        assert_eq!(rows[1].name, "thin");
        assert!((rows[1].metadata_percent - 4.12).abs() < 1e-9);
        assert_eq!(rows[2].used_bytes(), 33_554_432);
        assert!(rows[3].active());
        assert!(!rows[4].active());
        assert!(parse_lvs("{}").is_err());
    }

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

    #[test]
    fn thin_command_lines() {
        assert_eq!(
            create_thin("tank", "vol-web", 1 << 30).display(),
            "lvcreate -y -V 1073741824b -T cairn-tank/thin -n vol-web"
        );
        assert_eq!(
            snapshot_thin("tank", "vol-web", "vol-web2").display(),
            "lvcreate -y -s -n vol-web2 cairn-tank/vol-web"
        );
        assert_eq!(
            activate("tank", "vol-web2").display(),
            "lvchange -ay -K cairn-tank/vol-web2"
        );
        assert_eq!(
            remove("tank", "vol-web").display(),
            "lvremove -y cairn-tank/vol-web"
        );
    }
}
