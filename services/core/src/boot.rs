//! What a node knows about its boot: slot, selected entry, blessing, failed attempts.

use crate::bless::{bless, BlessError, BlessOutcome, EspFs};
use crate::efivar::{self, EfiVarError};
use crate::entry::EntryName;
use crate::failures::{self, FailureRecord};
// Re-exported so that `cairn_core::boot::error_chain` keeps working for the services.
pub use cairn_base::error_chain;
use cairn_base::{KernelCmdline, Slot};
use std::path::{Path, PathBuf};

/// How many stage 1 failure records a status carries at most (the newest ones).
pub const MAX_STAGE1_FAILURES: usize = 20;

/// Where boot information is read from; every path can be pointed elsewhere for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPaths {
    /// The kernel command line (`/proc/cmdline`).
    pub cmdline: PathBuf,
    /// The efivarfs mount (`/sys/firmware/efi/efivars`).
    pub efivars: PathBuf,
    /// Where the ESP is mounted (`/run/cairn/esp`).
    pub esp: PathBuf,
    /// Stage 1's failure records (`/state/boot/failures.jsonl`).
    pub failures: PathBuf,
}

impl Default for BootPaths {
    fn default() -> Self {
        BootPaths {
            cmdline: PathBuf::from("/proc/cmdline"),
            efivars: PathBuf::from(efivar::DEFAULT_EFIVARS_DIR),
            esp: PathBuf::from(crate::esp::DEFAULT_ESP_MOUNT),
            failures: PathBuf::from(failures::DEFAULT_FAILURES_PATH),
        }
    }
}

impl BootPaths {
    /// The ESP's `loader/entries` directory.
    pub fn entries_dir(&self) -> PathBuf {
        self.esp.join("loader").join("entries")
    }
}

/// A slot entry whose tries are used up (`cairn-b+0-3.conf`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedAttempt {
    pub slot: Option<Slot>,
    /// The entry id without counter, e.g. `cairn-b`.
    pub entry: String,
    /// How many attempts failed.
    pub tries: u32,
}

/// The boot part of the health report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootStatus {
    /// `cairn.slot` from the kernel command line.
    pub slot: Option<Slot>,
    /// systemd-boot's `LoaderEntrySelected`; `null` on a direct-kernel boot.
    pub entry: Option<String>,
    /// The booted entry carries no boot counter (blessed now or earlier, or not counted).
    pub blessed: bool,
    pub failed_attempts: Vec<FailedAttempt>,
    /// The newest stage 1 failure records, oldest first.
    pub stage1_failures: Vec<FailureRecord>,
}

/// A boot status plus what could not be read while gathering it (each a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    pub status: BootStatus,
    pub problems: Vec<String>,
}

/// Why blessing the booted entry failed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("cannot read the LoaderBootCountPath EFI variable")]
    CountVar(#[source] EfiVarError),
    #[error("cannot bless the booted entry")]
    Bless(#[source] BlessError),
}

/// The value of `LoaderBootCountPath`: `Some` when the booted entry is being counted.
pub fn boot_count_path(paths: &BootPaths) -> Result<Option<String>, BootError> {
    efivar::read_loader_string(&paths.efivars, efivar::LOADER_BOOT_COUNT_PATH)
        .map_err(BootError::CountVar)
}

/// Bless the entry named by `count_path` (the value of `LoaderBootCountPath`, see
/// [`boot_count_path`]). The ESP must already be mounted at `paths.esp`.
pub fn bless_booted(
    paths: &BootPaths,
    count_path: &str,
    fs: &dyn EspFs,
) -> Result<BlessOutcome, BootError> {
    bless(&paths.esp, count_path, fs).map_err(BootError::Bless)
}

/// Failed slot entries (`*+0-N.conf`) from a listing of `loader/entries`.
pub fn failed_attempts(names: &[String]) -> Vec<FailedAttempt> {
    let mut out: Vec<FailedAttempt> = names
        .iter()
        .filter_map(|n| EntryName::parse(n).ok())
        .filter(EntryName::is_failed)
        .map(|e| FailedAttempt {
            slot: e.slot(),
            tries: e.counter.map(|c| c.done).unwrap_or(0),
            entry: e.id,
        })
        .collect();
    out.sort_by(|a, b| a.entry.cmp(&b.entry));
    out
}

/// Gather the boot status; `blessed` is what the caller's blessing step concluded.
/// Sources that cannot be read leave their field empty and add a problem.
pub fn read_boot_status(paths: &BootPaths, fs: &dyn EspFs, blessed: bool) -> BootReport {
    let mut problems = Vec::new();
    let slot = match std::fs::read_to_string(&paths.cmdline) {
        Ok(text) => match KernelCmdline::parse(&text).slot() {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        },
        Err(e) => {
            problems.push(format!("cannot read {}: {e}", paths.cmdline.display()));
            None
        }
    };
    let entry = efivar::read_loader_string(&paths.efivars, efivar::LOADER_ENTRY_SELECTED)
        .unwrap_or_else(|e| {
            problems.push(error_chain(&e));
            None
        });
    let failed_attempts = match fs.list_dir(&paths.entries_dir()) {
        Ok(names) => failed_attempts(&names),
        Err(e) => {
            problems.push(format!(
                "cannot list {}: {e}",
                paths.entries_dir().display()
            ));
            Vec::new()
        }
    };
    let stage1_failures = match failures::read_failures(&paths.failures) {
        Ok(log) => {
            for (line, err) in &log.bad_lines {
                problems.push(format!(
                    "{} line {line} is not a failure record: {err}",
                    paths.failures.display()
                ));
            }
            let skip = log.records.len().saturating_sub(MAX_STAGE1_FAILURES);
            log.records.into_iter().skip(skip).collect()
        }
        Err(e) => {
            problems.push(error_chain(&e));
            Vec::new()
        }
    };
    BootReport {
        status: BootStatus {
            slot,
            entry,
            blessed,
            failed_attempts,
            stage1_failures,
        },
        problems,
    }
}

/// Convenience for tests and tools: a `BootPaths` with every path under `root`.
pub fn paths_under(root: &Path) -> BootPaths {
    BootPaths {
        cmdline: root.join("cmdline"),
        efivars: root.join("efivars"),
        esp: root.join("esp"),
        failures: root.join("state/boot/failures.jsonl"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bless::tests::RecordingFs;
    use crate::bless::RealEspFs;
    use crate::efivar::{encode_string, loader_var_path};

    #[test]
    fn failed_attempts_from_names() {
        let names: Vec<String> = [
            "cairn-a.conf",
            "cairn-b+0-3.conf",
            "cairn-c+2-1.conf",
            "x+0.conf",
            "junk",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            failed_attempts(&names),
            vec![
                FailedAttempt {
                    slot: Some(Slot::B),
                    entry: "cairn-b".into(),
                    tries: 3
                },
                FailedAttempt {
                    slot: None,
                    entry: "x".into(),
                    tries: 0
                },
            ]
        );
    }

    #[test]
    fn full_status_from_fake_machine() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        std::fs::write(&paths.cmdline, "cairn.slot=a quiet\n").unwrap();
        std::fs::create_dir_all(&paths.efivars).unwrap();
        std::fs::write(
            loader_var_path(&paths.efivars, efivar::LOADER_ENTRY_SELECTED),
            encode_string("cairn-a+2-1.conf"),
        )
        .unwrap();
        std::fs::create_dir_all(paths.entries_dir()).unwrap();
        std::fs::write(paths.entries_dir().join("cairn-a+2-1.conf"), "").unwrap();
        std::fs::write(paths.entries_dir().join("cairn-b+0-3.conf"), "").unwrap();
        std::fs::create_dir_all(paths.failures.parent().unwrap()).unwrap();
        std::fs::write(
            &paths.failures,
            "{\"time\":1,\"slot\":\"b\",\"reason\":\"squashfs: bad magic\"}\nnot json\n",
        )
        .unwrap();

        let count = boot_count_path(&paths).unwrap();
        assert_eq!(count, None, "no LoaderBootCountPath written yet");
        std::fs::write(
            loader_var_path(&paths.efivars, efivar::LOADER_BOOT_COUNT_PATH),
            encode_string(r"\loader\entries\cairn-a+2-1.conf"),
        )
        .unwrap();
        let count = boot_count_path(&paths).unwrap().unwrap();
        let out = bless_booted(&paths, &count, &RealEspFs).unwrap();
        assert!(matches!(out, BlessOutcome::Blessed { .. }));

        let report = read_boot_status(&paths, &RealEspFs, true);
        let json = serde_json::to_value(&report.status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "slot": "a",
                "entry": "cairn-a+2-1.conf",
                "blessed": true,
                "failed_attempts": [{"slot": "b", "entry": "cairn-b", "tries": 3}],
                "stage1_failures": [{"time": 1, "slot": "b", "reason": "squashfs: bad magic"}]
            })
        );
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].contains("line 2"));
    }

    #[test]
    fn direct_kernel_boot_has_problems_but_a_status() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        std::fs::write(&paths.cmdline, "console=ttyS0").unwrap();
        let report = read_boot_status(&paths, &RecordingFs::default(), true);
        assert_eq!(report.status.slot, None);
        assert_eq!(report.status.entry, None);
        assert!(report.status.failed_attempts.is_empty());
        assert!(report.status.stage1_failures.is_empty());
        // No slot on the command line, and no ESP listing.
        assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    }

    #[test]
    fn keeps_only_newest_failures() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        for i in 0..(MAX_STAGE1_FAILURES as u64 + 5) {
            failures::append_failure(
                &paths.failures,
                &FailureRecord {
                    time: failures::RecordTime::Unix(i),
                    slot: Some("b".into()),
                    reason: "r".into(),
                },
            )
            .unwrap();
        }
        let report = read_boot_status(&paths, &RecordingFs::default(), false);
        let f = &report.status.stage1_failures;
        assert_eq!(f.len(), MAX_STAGE1_FAILURES);
        assert_eq!(f[0].time, failures::RecordTime::Unix(5));
        assert!(!report.status.blessed);
    }
}
