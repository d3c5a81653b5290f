//! `wipefs` listing (what signatures a device carries) and the wipe command lines.

use crate::error::StorageError;
use crate::inventory::Disk;
use cairn_core::command::{run_ok, CommandRunner, Invocation};

/// The signature types `wipefs --json <dev>` lists (`gpt`, `PMBR`, `ext4`, `linux_raid_member`, …).
pub fn parse_list(json: &str) -> Result<Vec<String>, StorageError> {
    if json.trim().is_empty() {
        // wipefs prints nothing at all for a blank device.
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| StorageError::Parse {
        tool: "wipefs".into(),
        reason: e.to_string(),
    })?;
    let sigs = v["signatures"]
        .as_array()
        .ok_or_else(|| StorageError::Parse {
            tool: "wipefs".into(),
            reason: "no \"signatures\" array".into(),
        })?;
    let mut out: Vec<String> = sigs
        .iter()
        .filter_map(|s| s["type"].as_str().map(str::to_string))
        .collect();
    out.dedup();
    Ok(out)
}

/// List the signatures on `dev` now.
pub fn list(runner: &dyn CommandRunner, dev: &str) -> Result<Vec<String>, StorageError> {
    let out = run_ok(runner, &Invocation::new("wipefs", ["--json", dev]))
        .map_err(|e| StorageError::command(format!("reading the signatures on {dev}"), e))?;
    parse_list(&out.stdout_text())
}

/// The commands that wipe `disk`: md superblocks where found, every signature on each
/// partition and on the disk (both GPT copies included), the partition table (`sgdisk
/// --zap-all`), then a re-read of the partition table and a udev settle.
/// `md_parts` are the devices (`/dev/sdb1`, `/dev/sdb`) that carry an md superblock.
pub fn wipe_commands(disk: &Disk, md_devs: &[String]) -> Vec<Invocation> {
    let dev = disk.dev.display().to_string();
    let mut cmds: Vec<Invocation> = md_devs
        .iter()
        .map(|d| Invocation::new("mdadm", ["--zero-superblock", "--force", d.as_str()]))
        .collect();
    for p in &disk.partitions {
        cmds.push(Invocation::new(
            "wipefs",
            ["--all", "--force", &format!("/dev/{}", p.name)],
        ));
    }
    cmds.push(Invocation::new(
        "wipefs",
        ["--all", "--force", dev.as_str()],
    ));
    cmds.push(Invocation::new("sgdisk", ["--zap-all", dev.as_str()]));
    cmds.push(Invocation::new("blockdev", ["--rereadpt", dev.as_str()]));
    cmds.push(Invocation::new("udevadm", ["settle", "--timeout=30"]));
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Partition;

    #[test]
    fn parses_wipefs_json() {
        let j = r#"{
   "signatures": [
      {"device":"sdb", "offset":"0x200", "type":"gpt", "uuid":null, "label":null},
      {"device":"sdb", "offset":"0x3ffffe00", "type":"gpt", "uuid":null, "label":null},
      {"device":"sdb", "offset":"0x1fe", "type":"PMBR", "uuid":null, "label":null}
   ]
}"#;
        assert_eq!(parse_list(j).unwrap(), ["gpt", "PMBR"]);
        assert!(parse_list("").unwrap().is_empty());
        assert!(matches!(parse_list("{}"), Err(StorageError::Parse { .. })));
    }

    #[test]
    fn wipe_clears_partitions_md_and_both_gpt_copies() {
        let mut d = crate::plan::tests_support::disk("sdb", 256);
        d.dev = "/dev/sdb".into();
        d.partitions = vec![Partition {
            name: "sdb1".into(),
            size_bytes: 1,
            label: None,
            fs_type: Some("linux_raid_member".into()),
        }];
        let lines: Vec<String> = wipe_commands(&d, &["/dev/sdb1".into()])
            .iter()
            .map(Invocation::display)
            .collect();
        assert_eq!(
            lines,
            [
                "mdadm --zero-superblock --force /dev/sdb1",
                "wipefs --all --force /dev/sdb1",
                "wipefs --all --force /dev/sdb",
                "sgdisk --zap-all /dev/sdb",
                "blockdev --rereadpt /dev/sdb",
                "udevadm settle --timeout=30",
            ]
        );
    }
}
