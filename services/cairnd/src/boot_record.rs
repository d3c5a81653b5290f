//! After the API is up: mount the ESP, bless the booted entry, gather the boot status.

use crate::cli::EspMount;
use cairn_core::bless::{BlessOutcome, EspFs};
use cairn_core::boot::{self, error_chain, BootPaths, BootStatus};
use cairn_core::esp::{self, MountOutcome, Mounter};

/// The status shown before blessing has run (nothing mounted or renamed yet).
pub fn initial_status(paths: &BootPaths, fs: &dyn EspFs) -> BootStatus {
    boot::read_boot_status(paths, fs, false).status
}

/// Mount the ESP if asked and needed, bless the booted entry when systemd-boot counted it,
/// and read the boot status. Every step logs what it did; failures are logged and leave
/// `blessed` false or fields empty rather than stopping the daemon.
pub fn bless_and_read(
    paths: &BootPaths,
    esp_mount: EspMount,
    mounter: &dyn Mounter,
    fs: &dyn EspFs,
) -> BootStatus {
    let esp_ready = match esp_mount {
        EspMount::Never => true,
        EspMount::Auto => match esp::ensure_mounted(esp::ESP_PARTLABEL, &paths.esp, mounter) {
            Ok(MountOutcome::AlreadyMounted) => {
                tracing::debug!(esp = %paths.esp.display(), "ESP already mounted");
                true
            }
            Ok(MountOutcome::Mounted { device }) => {
                tracing::info!(
                    "mounted the ESP {} at {}",
                    device.display(),
                    paths.esp.display()
                );
                true
            }
            Err(e) => {
                tracing::warn!(
                    "ESP not available, cannot bless or list failed slots: {}",
                    error_chain(&e)
                );
                false
            }
        },
    };
    let blessed = match boot::boot_count_path(paths) {
        Ok(None) => {
            tracing::info!("no LoaderBootCountPath: direct-kernel boot or an entry without a boot counter; nothing to bless");
            true
        }
        Ok(Some(count)) if !esp_ready => {
            tracing::error!(
                "boot NOT blessed: booted entry {count} is counted but the ESP is not available"
            );
            false
        }
        Ok(Some(count)) => match boot::bless_booted(paths, &count, fs) {
            Ok(BlessOutcome::Blessed { from, to }) => {
                tracing::info!(
                    "boot blessed: renamed {} to {}",
                    from.display(),
                    to.display()
                );
                true
            }
            Ok(BlessOutcome::AlreadyBlessed { path }) => {
                tracing::info!(
                    "boot already blessed earlier in this boot: {}",
                    path.display()
                );
                true
            }
            Ok(BlessOutcome::NotCounted { path }) => {
                tracing::info!(
                    "booted entry {} has no counter; nothing to bless",
                    path.display()
                );
                true
            }
            Err(e) => {
                tracing::error!("boot NOT blessed: {}", error_chain(&e));
                false
            }
        },
        Err(e) => {
            tracing::error!("boot NOT blessed: {}", error_chain(&e));
            false
        }
    };
    let report = boot::read_boot_status(paths, fs, blessed);
    for p in &report.problems {
        tracing::warn!("boot status incomplete: {p}");
    }
    for f in &report.status.failed_attempts {
        tracing::warn!("entry {} failed to boot {} times", f.entry, f.tries);
    }
    for f in &report.status.stage1_failures {
        tracing::info!(
            "stage 1 failure on record: slot {}: {}",
            f.slot.as_deref().unwrap_or("?"),
            f.reason
        );
    }
    report.status
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::bless::RealEspFs;
    use cairn_core::boot::paths_under;
    use cairn_core::efivar::{encode_string, loader_var_path, LOADER_BOOT_COUNT_PATH};
    use std::cell::RefCell;
    use std::io;
    use std::path::{Path, PathBuf};

    #[derive(Default)]
    struct FakeMounter {
        mounted: bool,
        log: RefCell<Vec<String>>,
    }

    impl Mounter for FakeMounter {
        fn mountinfo(&self) -> io::Result<String> {
            Ok(String::new())
        }
        fn find_partition(&self, _label: &str) -> io::Result<Option<PathBuf>> {
            Ok(self.mounted.then(|| PathBuf::from("/dev/vda1")))
        }
        fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
            Ok(())
        }
        fn mount_vfat(&self, device: &Path, target: &Path) -> io::Result<()> {
            self.log
                .borrow_mut()
                .push(format!("mount {} {}", device.display(), target.display()));
            Ok(())
        }
    }

    fn machine(count: Option<&str>) -> (tempfile::TempDir, BootPaths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_under(dir.path());
        std::fs::write(&paths.cmdline, "cairn.slot=b").unwrap();
        std::fs::create_dir_all(&paths.efivars).unwrap();
        std::fs::create_dir_all(paths.entries_dir()).unwrap();
        std::fs::write(paths.entries_dir().join("cairn-b+2-1.conf"), "").unwrap();
        std::fs::write(paths.entries_dir().join("cairn-a+0-3.conf"), "").unwrap();
        if let Some(c) = count {
            std::fs::write(
                loader_var_path(&paths.efivars, LOADER_BOOT_COUNT_PATH),
                encode_string(c),
            )
            .unwrap();
        }
        (dir, paths)
    }

    #[test]
    fn mounts_blesses_and_reports() {
        let (_d, paths) = machine(Some(r"\loader\entries\cairn-b+2-1.conf"));
        let m = FakeMounter {
            mounted: true,
            ..Default::default()
        };
        let before = initial_status(&paths, &RealEspFs);
        assert!(!before.blessed);
        let s = bless_and_read(&paths, EspMount::Auto, &m, &RealEspFs);
        assert_eq!(m.log.borrow().len(), 1);
        assert!(s.blessed);
        assert!(paths.entries_dir().join("cairn-b.conf").exists());
        assert_eq!(s.failed_attempts.len(), 1);
        assert_eq!(s.failed_attempts[0].entry, "cairn-a");
        // A restart in the same boot finds it already blessed.
        let again = bless_and_read(&paths, EspMount::Never, &m, &RealEspFs);
        assert!(again.blessed);
    }

    #[test]
    fn no_count_var_means_nothing_to_do() {
        let (_d, paths) = machine(None);
        let s = bless_and_read(&paths, EspMount::Never, &FakeMounter::default(), &RealEspFs);
        assert!(s.blessed);
        assert!(paths.entries_dir().join("cairn-b+2-1.conf").exists());
    }

    #[test]
    fn counted_but_no_esp_is_not_blessed() {
        let (_d, paths) = machine(Some(r"\loader\entries\cairn-b+2-1.conf"));
        let s = bless_and_read(&paths, EspMount::Auto, &FakeMounter::default(), &RealEspFs);
        assert!(!s.blessed);
        assert!(paths.entries_dir().join("cairn-b+2-1.conf").exists());
    }

    #[test]
    fn missing_entry_is_not_blessed() {
        let (_d, paths) = machine(Some(r"\loader\entries\cairn-a+1-2.conf"));
        let s = bless_and_read(&paths, EspMount::Never, &FakeMounter::default(), &RealEspFs);
        assert!(!s.blessed);
    }
}
