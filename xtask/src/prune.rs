//! What is removed from the staged root: boot files, docs, locales, package-manager leftovers, unneeded kernel modules.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

/// One pruning rule: remove `path` (relative to the root, `{kver}` = kernel version), or,
/// when `keep` is not empty, every child of `path` except those names.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub path: &'static str,
    pub keep: &'static [&'static str],
}

const fn all(path: &'static str) -> Rule {
    Rule { path, keep: &[] }
}

/// The rules applied to every image.
pub const RULES: &[Rule] = &[
    // Kernel and Debian's initramfs: the ESP carries ours.
    all("boot"),
    all("vmlinuz"),
    all("vmlinuz.old"),
    all("initrd.img"),
    all("initrd.img.old"),
    all("etc/initramfs-tools"),
    all("usr/share/initramfs-tools"),
    all("var/lib/initramfs-tools"),
    all("usr/sbin/mkinitramfs"),
    all("usr/sbin/update-initramfs"),
    all("usr/sbin/update-initramfs.distrib"),
    all("usr/bin/lsinitramfs"),
    all("usr/bin/unmkinitramfs"),
    all("etc/kernel"),
    // Documentation and locales (licences in usr/share/doc/*/copyright stay).
    all("usr/share/man"),
    all("usr/share/info"),
    all("usr/share/lintian"),
    all("usr/share/bug"),
    all("usr/share/bash-completion"),
    all("usr/share/zsh"),
    all("usr/share/gdb"),
    Rule {
        path: "usr/share/locale",
        keep: &["locale.alias"],
    },
    // The package manager: a read-only appliance root is never updated in place.
    all("var/cache/apt"),
    all("var/lib/apt"),
    all("var/log/apt"),
    all("etc/apt"),
    all("usr/lib/apt"),
    all("usr/bin/apt"),
    all("usr/bin/apt-get"),
    all("usr/bin/apt-cache"),
    all("usr/bin/apt-config"),
    all("usr/bin/apt-mark"),
    all("usr/bin/apt-cdrom"),
    all("var/lib/dpkg/info"),
    all("var/lib/dpkg/status-old"),
    all("var/cache/debconf/config.dat-old"),
    all("var/cache/debconf/templates.dat-old"),
    // Full perl (pulled in by usrmerge at build time); perl-base stays.
    all("usr/share/perl"),
    all("usr/lib/x86_64-linux-gnu/perl"),
    // Kernel modules no server appliance uses: sound, cameras/TV, Wi-Fi, Bluetooth,
    // staging drivers, sensors for phones, desktop GPUs, joysticks.
    all("usr/lib/modules/{kver}/kernel/sound"),
    all("usr/lib/modules/{kver}/kernel/drivers/media"),
    all("usr/lib/modules/{kver}/kernel/drivers/net/wireless"),
    all("usr/lib/modules/{kver}/kernel/net/wireless"),
    all("usr/lib/modules/{kver}/kernel/net/mac80211"),
    all("usr/lib/modules/{kver}/kernel/net/bluetooth"),
    all("usr/lib/modules/{kver}/kernel/drivers/bluetooth"),
    all("usr/lib/modules/{kver}/kernel/drivers/staging"),
    all("usr/lib/modules/{kver}/kernel/drivers/iio"),
    all("usr/lib/modules/{kver}/kernel/drivers/comedi"),
    all("usr/lib/modules/{kver}/kernel/drivers/isdn"),
    all("usr/lib/modules/{kver}/kernel/drivers/gpu/drm/amd"),
    all("usr/lib/modules/{kver}/kernel/drivers/gpu/drm/i915"),
    all("usr/lib/modules/{kver}/kernel/drivers/gpu/drm/nouveau"),
    all("usr/lib/modules/{kver}/kernel/drivers/gpu/drm/radeon"),
    all("usr/lib/modules/{kver}/kernel/drivers/gpu/drm/gma500"),
    all("usr/lib/modules/{kver}/kernel/drivers/input/joystick"),
    all("usr/lib/modules/{kver}/kernel/drivers/input/touchscreen"),
    all("usr/lib/modules/{kver}/kernel/drivers/input/tablet"),
];

fn remove(path: &Path) -> Result<bool> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(false);
    };
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
    .with_context(|| format!("removing {}", path.display()))?;
    Ok(true)
}

/// Applies `rules` under `root`; returns how many paths were removed.
pub fn apply(root: &Path, kver: &str, rules: &[Rule]) -> Result<usize> {
    let mut removed = 0;
    for rule in rules {
        let path = root.join(rule.path.replace("{kver}", kver));
        if rule.keep.is_empty() {
            removed += usize::from(remove(&path)?);
            continue;
        }
        let Ok(entries) = fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {}", path.display()))?;
            let name = entry.file_name();
            if !rule.keep.iter().any(|k| name == *k) {
                removed += usize::from(remove(&entry.path())?);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_paths_and_honours_keep_lists() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("usr/share/locale/de/LC_MESSAGES")).unwrap();
        fs::write(r.join("usr/share/locale/locale.alias"), b"").unwrap();
        fs::create_dir_all(r.join("usr/lib/modules/6.1/kernel/sound/pci")).unwrap();
        fs::create_dir_all(r.join("usr/lib/modules/6.1/kernel/fs/ext4")).unwrap();
        std::os::unix::fs::symlink("boot/vmlinuz-6.1", r.join("vmlinuz")).unwrap();
        let rules = [
            Rule {
                path: "usr/share/locale",
                keep: &["locale.alias"],
            },
            all("usr/lib/modules/{kver}/kernel/sound"),
            all("vmlinuz"),
            all("not/there"),
        ];
        assert_eq!(apply(r, "6.1", &rules).unwrap(), 3);
        assert!(r.join("usr/share/locale/locale.alias").exists());
        assert!(!r.join("usr/share/locale/de").exists());
        assert!(!r.join("usr/lib/modules/6.1/kernel/sound").exists());
        assert!(r.join("usr/lib/modules/6.1/kernel/fs/ext4").exists());
        assert!(fs::symlink_metadata(r.join("vmlinuz")).is_err());
    }

    #[test]
    fn rules_never_touch_what_the_root_needs() {
        for rule in RULES {
            for needed in [
                "usr/lib/modules/{kver}/kernel/fs",
                "usr/sbin",
                "etc/cairn",
                "var",
            ] {
                assert_ne!(rule.path, needed);
            }
        }
    }
}
