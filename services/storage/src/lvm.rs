//! LVM command lines (thin LVs: create, snapshot, clone, activate, extend, remove; the `lvm`
//! shell for batches) and the parsers of the `lvs` reports that volumes and shares are read
//! from.

use crate::data_error::DataError;
use crate::names;
use cairn_core::command::{run_ok, CommandRunner, Invocation};

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
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub fn used_bytes(&self) -> u64 {
        // A percentage of a size in bytes: not negative and below 2^64 (`as` from f64
        // saturates anyway); f64's 53 bits are exact to the byte up to 8 PiB.
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

/// A byte count of the report (`--units b --nosuffix`), 0 when absent.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn bytes(v: &serde_json::Value) -> u64 {
    // Whole bytes below 2^64 as LVM prints them; `as` from f64 saturates (NaN or a negative
    // number gives 0), and f64 is exact to the byte up to 8 PiB.
    num(v) as u64
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
            size_bytes: bytes(&r["lv_size"]),
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
pub(crate) fn tagged_lvs(
    runner: &dyn CommandRunner,
    pool: &str,
    tag: &str,
) -> Result<Vec<String>, DataError> {
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

/// The `lvm` shell's line removing `lv` (a batch's rollback).
pub fn remove_line(pool: &str, lv: &str) -> String {
    format!("lvremove -y {}/{lv}", names::vg_name(pool))
}

/// Whether `lvcreate`'s output `stdout` reports LV `lv` as created
/// (`Logical volume "vol-x" created.`, with or without the volume group).
pub(crate) fn reported_created(stdout: &str, lv: &str) -> bool {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const LVS: &str = r#"{
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
