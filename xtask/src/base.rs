//! The cached Debian base root filesystem: rebuilt only when packages.txt or build-base.sh change.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::paths::Paths;
use crate::runner::{Runner, ToolCommand};

/// The inputs whose hash keys the cache.
pub const INPUTS: [&str; 2] = ["packages.txt", "build-base.sh"];

/// What to do with build/rootfs-base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseAction {
    /// The stamp matches the inputs.
    UpToDate,
    /// No stamp, but the existing tree has every listed package installed: write the stamp.
    Adopt,
    /// Run build-base.sh.
    Build { reason: String },
}

/// SHA-256 (hex) over the names and contents of the cache inputs.
pub fn input_hash(rootfs_src: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    for name in INPUTS {
        let path = rootfs_src.join(name);
        let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(&data);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Package names listed in packages.txt (comments and blank lines skipped).
pub fn listed_packages(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Names of the packages dpkg's status file marks `install ok installed`.
pub fn installed_packages(status: &str) -> HashSet<String> {
    let mut installed = HashSet::new();
    for stanza in status.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key).map(str::trim))
        };
        if let (Some(name), Some("install ok installed")) = (field("Package:"), field("Status:")) {
            installed.insert(name.to_string());
        }
    }
    installed
}

/// Decides whether the cached base can be used.
pub fn decide(
    stamp: Option<&str>,
    hash: &str,
    base_exists: bool,
    dpkg_status: Option<&str>,
    listed: &[String],
) -> BaseAction {
    if !base_exists {
        return BaseAction::Build {
            reason: "no cached base rootfs".into(),
        };
    }
    match stamp.map(str::trim) {
        Some(s) if s == hash => BaseAction::UpToDate,
        Some(_) => BaseAction::Build {
            reason: "packages.txt or build-base.sh changed".into(),
        },
        None => {
            let installed = dpkg_status.map(installed_packages).unwrap_or_default();
            match listed.iter().find(|p| !installed.contains(*p)) {
                None => BaseAction::Adopt,
                Some(missing) => BaseAction::Build {
                    reason: format!("unstamped base lacks package {missing}"),
                },
            }
        }
    }
}

/// build-base.sh with its output going to `log` (it runs beside the cargo build).
pub fn build_command(script: &Path, out: &Path, log: &Path) -> ToolCommand {
    ToolCommand::new("bash")
        .args(["-c", "exec bash \"$0\" \"$1\" >\"$2\" 2>&1"])
        .arg(script)
        .arg(out)
        .arg(log)
}

/// Makes sure build/rootfs-base matches the inputs; returns what was done.
pub fn ensure(runner: &mut dyn Runner, paths: &Paths, force: bool) -> Result<BaseAction> {
    let src = paths.rootfs_src();
    let hash = input_hash(&src)?;
    let listed_text = fs::read_to_string(src.join("packages.txt"))
        .with_context(|| format!("reading {}", src.join("packages.txt").display()))?;
    let stamp = fs::read_to_string(paths.base_stamp()).ok();
    let status = fs::read_to_string(paths.base().join("var/lib/dpkg/status")).ok();
    let action = if force {
        BaseAction::Build {
            reason: "rebuild requested".into(),
        }
    } else {
        decide(
            stamp.as_deref(),
            &hash,
            paths.base().is_dir(),
            status.as_deref(),
            &listed_packages(&listed_text),
        )
    };
    if let BaseAction::Build { reason } = &action {
        let log = paths.build().join("rootfs-base.log");
        println!(
            "xtask: building the base rootfs ({reason}); log: {}",
            log.display()
        );
        fs::create_dir_all(paths.build())
            .with_context(|| format!("creating {}", paths.build().display()))?;
        let _ = fs::remove_file(paths.base_stamp());
        runner
            .run(&build_command(
                &src.join("build-base.sh"),
                &paths.base(),
                &log,
            ))
            .with_context(|| format!("building the base rootfs failed; see {}", log.display()))?;
    }
    if action != BaseAction::UpToDate {
        fs::write(paths.base_stamp(), format!("{hash}\n"))
            .with_context(|| format!("writing {}", paths.base_stamp().display()))?;
    }
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: udev\nStatus: install ok installed\nVersion: 1\n\n\
                          Package: kmod\nStatus: deinstall ok config-files\n\n\
                          Package: systemd\nStatus: install ok installed\n";

    fn list(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_packages_txt_and_dpkg_status() {
        assert_eq!(listed_packages("# c\nudev\n\n  kmod \n"), ["udev", "kmod"]);
        let installed = installed_packages(STATUS);
        assert!(installed.contains("udev") && installed.contains("systemd"));
        assert!(!installed.contains("kmod"));
    }

    #[test]
    fn matching_stamp_is_up_to_date_and_other_stamp_rebuilds() {
        assert_eq!(
            decide(Some("abc\n"), "abc", true, None, &[]),
            BaseAction::UpToDate
        );
        assert!(matches!(
            decide(Some("old"), "abc", true, Some(STATUS), &[]),
            BaseAction::Build { .. }
        ));
        assert!(matches!(
            decide(Some("abc"), "abc", false, None, &[]),
            BaseAction::Build { .. }
        ));
    }

    #[test]
    fn unstamped_base_is_adopted_only_with_every_package() {
        assert_eq!(
            decide(None, "h", true, Some(STATUS), &list(&["udev", "systemd"])),
            BaseAction::Adopt
        );
        assert_eq!(
            decide(None, "h", true, Some(STATUS), &list(&["udev", "kmod"])),
            BaseAction::Build {
                reason: "unstamped base lacks package kmod".into()
            }
        );
    }

    #[test]
    fn build_output_goes_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s.sh");
        fs::write(&script, "echo building \"$1\"; echo oops >&2; exit 3\n").unwrap();
        let log = dir.path().join("log");
        let cmd = build_command(&script, Path::new("/out"), &log);
        let err = crate::runner::SystemRunner.run(&cmd).unwrap_err();
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        assert_eq!(fs::read_to_string(&log).unwrap(), "building /out\noops\n");
    }

    #[test]
    fn hash_changes_with_either_input() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("packages.txt"), "a\n").unwrap();
        fs::write(dir.path().join("build-base.sh"), "x").unwrap();
        let h1 = input_hash(dir.path()).unwrap();
        fs::write(dir.path().join("build-base.sh"), "y").unwrap();
        let h2 = input_hash(dir.path()).unwrap();
        assert_ne!(h1, h2);
        assert_eq!(h2.len(), 64);
    }
}
