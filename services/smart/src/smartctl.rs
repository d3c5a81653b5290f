//! The smartctl command lines this crate runs (always through a `CommandRunner`).

use crate::schedule::TestKind;
use cairn_core::command::Invocation;
use std::path::Path;

/// A poll: everything (`-x`) as JSON, skipping a disk that is spun down (`-n standby`), so
/// polling never wakes a sleeping disk. The exit status is a bit mask, not success/failure.
pub fn poll(program: &str, dev: &Path) -> Invocation {
    Invocation::new(
        program,
        [
            "--json".to_string(),
            "-x".into(),
            "-n".into(),
            "standby".into(),
            dev.display().to_string(),
        ],
    )
}

/// Start a self-test (`-t short|long`); the drive runs it in the background.
pub fn start_test(program: &str, kind: TestKind, dev: &Path) -> Invocation {
    Invocation::new(
        program,
        [
            "--json".to_string(),
            "-t".into(),
            kind.as_str().into(),
            dev.display().to_string(),
        ],
    )
}

/// Self-test progress and log: capabilities (ATA execution status) and the self-test log.
pub fn test_status(program: &str, dev: &Path) -> Invocation {
    Invocation::new(
        program,
        [
            "--json".to_string(),
            "-c".into(),
            "-l".into(),
            "selftest".into(),
            dev.display().to_string(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines() {
        let dev = Path::new("/dev/sda");
        assert_eq!(
            poll("smartctl", dev).display(),
            "smartctl --json -x -n standby /dev/sda"
        );
        assert_eq!(
            start_test("smartctl", TestKind::Long, dev).display(),
            "smartctl --json -t long /dev/sda"
        );
        assert_eq!(
            test_status("smartctl", dev).display(),
            "smartctl --json -c -l selftest /dev/sda"
        );
    }
}
