//! Stage 1's boot failure records: `/state/boot/failures.jsonl`, one JSON object per line.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where stage 1 appends its failure records (on STATE, as seen after switch_root).
pub const DEFAULT_FAILURES_PATH: &str = "/state/boot/failures.jsonl";

/// When a failure happened: seconds since the Unix epoch (what stage 1 writes), or a
/// timestamp string written by another tool; kept as found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum RecordTime {
    Unix(u64),
    Text(String),
}

/// One failed stage 1 attempt: `{"time":…,"slot":"b","reason":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailureRecord {
    pub time: RecordTime,
    /// The slot stage 1 tried to boot; `null` when the command line named none.
    #[serde(default)]
    pub slot: Option<String>,
    pub reason: String,
}

/// The records of a failures file plus what could not be read in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureLog {
    pub records: Vec<FailureRecord>,
    /// 1-based line numbers and parse errors of lines that are not records (e.g. a line
    /// torn by a power cut while it was written).
    pub bad_lines: Vec<(usize, String)>,
}

/// Why the failures file could not be read or appended to.
#[derive(Debug, thiserror::Error)]
pub enum FailuresError {
    #[error("cannot read boot failure records {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("cannot create directory {0} for boot failure records")]
    CreateDir(PathBuf, #[source] std::io::Error),
    #[error("cannot append to boot failure records {0}")]
    Append(PathBuf, #[source] std::io::Error),
    #[error("cannot encode boot failure record")]
    Encode(#[source] serde_json::Error),
}

/// Parse the text of a failures file, keeping bad lines aside rather than failing.
pub fn parse_failures(text: &str) -> FailureLog {
    let mut log = FailureLog::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<FailureRecord>(line) {
            Ok(r) => log.records.push(r),
            Err(e) => log.bad_lines.push((i + 1, e.to_string())),
        }
    }
    log
}

/// Read the failures file; a missing file means no failures.
pub fn read_failures(path: &Path) -> Result<FailureLog, FailuresError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse_failures(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FailureLog::default()),
        Err(e) => Err(FailuresError::Read(path.to_path_buf(), e)),
    }
}

/// Append one record as a line and fsync it (and the directory when the file is new).
pub fn append_failure(path: &Path, record: &FailureRecord) -> Result<(), FailuresError> {
    let mut line = serde_json::to_vec(record).map_err(FailuresError::Encode)?;
    line.push(b'\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| FailuresError::CreateDir(dir.to_path_buf(), e))?;
    let existed = path.exists();
    let append = |e| FailuresError::Append(path.to_path_buf(), e);
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(append)?;
    f.write_all(&line).map_err(append)?;
    f.sync_all().map_err(append)?;
    if !existed {
        cairn_base::atomic::sync_dir(dir).map_err(append)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_keeps_bad_lines() {
        let text = concat!(
            r#"{"time":1763856000,"slot":"b","reason":"root partition cairn-root-b not found"}"#,
            "\n\n",
            r#"{"time":"2026-11-23T00:00:00Z","slot":null,"reason":"no cairn.slot"}"#,
            "\n",
            r#"{"time":17638"#,
            "\n"
        );
        let log = parse_failures(text);
        assert_eq!(log.records.len(), 2);
        assert_eq!(log.records[0].time, RecordTime::Unix(1763856000));
        assert_eq!(log.records[0].slot.as_deref(), Some("b"));
        assert_eq!(
            log.records[1].time,
            RecordTime::Text("2026-11-23T00:00:00Z".into())
        );
        assert_eq!(log.records[1].slot, None);
        assert_eq!(log.bad_lines.len(), 1);
        assert_eq!(log.bad_lines[0].0, 4);
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let log = read_failures(&dir.path().join("none.jsonl")).unwrap();
        assert_eq!(log, FailureLog::default());
    }

    #[test]
    fn append_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot").join("failures.jsonl");
        let r1 = FailureRecord {
            time: RecordTime::Unix(5),
            slot: Some("b".into()),
            reason: "squashfs mount failed: EINVAL".into(),
        };
        let r2 = FailureRecord {
            time: RecordTime::Unix(6),
            slot: Some("a".into()),
            reason: "x".into(),
        };
        append_failure(&path, &r1).unwrap();
        append_failure(&path, &r2).unwrap();
        let log = read_failures(&path).unwrap();
        assert_eq!(log.records, vec![r1, r2]);
        assert!(log.bad_lines.is_empty());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with(r#"{"time":5,"slot":"b","reason":"#));
    }

    #[test]
    fn unreadable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be.
        let err = read_failures(dir.path()).unwrap_err();
        assert!(matches!(err, FailuresError::Read(..)), "{err}");
    }
}
