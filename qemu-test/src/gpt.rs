//! Partition lookup in a raw GPT image by PARTLABEL, through `sfdisk --json`.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;

use crate::error::LabError;

/// One partition of a disk image, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

#[derive(Deserialize)]
struct Dump {
    partitiontable: Table,
}

#[derive(Deserialize)]
struct Table {
    #[serde(default)]
    sectorsize: Option<u64>,
    #[serde(default)]
    partitions: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    start: u64,
    size: u64,
    #[serde(default)]
    name: Option<String>,
}

/// Parses `sfdisk --json` output into partitions (byte offsets).
pub fn parse_sfdisk_json(json: &str) -> Result<Vec<Partition>, serde_json::Error> {
    let dump: Dump = serde_json::from_str(json)?;
    let sector = dump.partitiontable.sectorsize.unwrap_or(512);
    Ok(dump
        .partitiontable
        .partitions
        .into_iter()
        .map(|e| Partition {
            name: e.name.unwrap_or_default(),
            offset: e.start * sector,
            size: e.size * sector,
        })
        .collect())
}

/// All partitions of the image at `image`.
pub fn partitions(image: &Path) -> Result<Vec<Partition>, LabError> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(image)
        .output()
        .map_err(|source| LabError::Spawn {
            program: "sfdisk".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::ToolFailed {
            program: "sfdisk --json".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    parse_sfdisk_json(&String::from_utf8_lossy(&out.stdout)).map_err(|source| {
        LabError::PartitionTable {
            image: image.to_path_buf(),
            source,
        }
    })
}

/// The partition named `name` (GPT PARTLABEL) in the image at `image`.
pub fn find(image: &Path, name: &str) -> Result<Partition, LabError> {
    partitions(image)?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| LabError::NoSuchPartition {
            image: image.to_path_buf(),
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
   "partitiontable": {
      "label": "gpt",
      "id": "0D3F5C2E-8E59-4B64-A1A4-8F5B3C2A1D11",
      "device": "cairn.img",
      "unit": "sectors",
      "firstlba": 2048,
      "lastlba": 6291422,
      "sectorsize": 512,
      "partitions": [
         {"node": "cairn.img1", "start": 2048, "size": 524288, "type": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "uuid": "A", "name": "cairn-esp"},
         {"node": "cairn.img2", "start": 526336, "size": 2097152, "type": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "uuid": "B", "name": "cairn-root-a"},
         {"node": "cairn.img4", "start": 4720640, "size": 1570783, "type": "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "uuid": "D", "name": "cairn-state"}
      ]
   }
}"#;

    #[test]
    fn parses_offsets_in_bytes() {
        let parts = parse_sfdisk_json(SAMPLE).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].name, "cairn-esp");
        assert_eq!(parts[0].offset, 2048 * 512);
        assert_eq!(parts[0].size, 256 * 1024 * 1024);
        assert_eq!(parts[2].name, "cairn-state");
        assert_eq!(parts[2].offset, 4_720_640 * 512);
    }

    #[test]
    fn rejects_non_gpt_json() {
        assert!(parse_sfdisk_json("{\"x\":1}").is_err());
    }

    #[test]
    fn finds_partitions_of_a_real_image() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("t.img");
        std::fs::File::create(&img)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let script = "label: gpt\nsize=16MiB, type=U, name=cairn-esp\ntype=L, name=cairn-state\n";
        let mut child = match Command::new("sfdisk")
            .arg("--quiet")
            .arg(&img)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIP finds_partitions_of_a_real_image: sfdisk not runnable: {e}");
                return;
            }
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        let state = find(&img, "cairn-state").unwrap();
        assert_eq!(state.offset, 17 << 20);
        assert!(matches!(
            find(&img, "cairn-root-b"),
            Err(LabError::NoSuchPartition { .. })
        ));
    }
}
