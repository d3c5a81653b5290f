//! Kernel module closure for the initramfs: modules.dep, modules.builtin, softdeps and aliases, resolved purely.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{bail, Result};

/// Modules the root file system needs on QEMU and on real servers (virtio, SATA, NVMe,
/// SAS HBAs, USB sticks), plus squashfs and ext4.
pub const ROOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "ahci",
    "nvme",
    "vmd",
    "sd_mod",
    "mpt3sas",
    "mpi3mr",
    "megaraid_sas",
    "aacraid",
    "hpsa",
    "smartpqi",
    "xhci_pci",
    "ehci_pci",
    "usb_storage",
    "uas",
    "squashfs",
    "ext4",
];

/// `-` and `_` are the same in module names.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Module name of a modules.dep path such as `kernel/fs/ext4/ext4.ko`.
pub fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

/// The parsed module index of one kernel.
#[derive(Debug, Default)]
pub struct ModuleIndex {
    /// name → (path, dependency paths)
    deps: HashMap<String, (String, Vec<String>)>,
    builtin: HashSet<String>,
    /// name → modules or aliases to load first
    softdeps: HashMap<String, Vec<String>>,
    /// alias → module names
    aliases: HashMap<String, Vec<String>>,
}

/// The modules to put into the initramfs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Closure {
    /// Names in a valid load order (every module after its dependencies).
    pub load_order: Vec<String>,
    /// Wanted modules that are built into the kernel.
    pub builtin: Vec<String>,
}

impl ModuleIndex {
    /// Parses modules.dep, modules.builtin, modules.softdep and modules.alias texts.
    pub fn parse(dep: &str, builtin: &str, softdep: &str, alias: &str) -> Self {
        let mut index = Self::default();
        for line in dep.lines() {
            let Some((path, rest)) = line.split_once(':') else {
                continue;
            };
            let deps = rest.split_whitespace().map(String::from).collect();
            index
                .deps
                .insert(name_of(path), (path.trim().to_string(), deps));
        }
        index.builtin = builtin.lines().map(name_of).collect();
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("softdep") {
                continue;
            }
            let Some(module) = words.next() else { continue };
            let mut pre = true;
            for word in words {
                match word {
                    "pre:" => pre = true,
                    "post:" => pre = false,
                    w if pre => index
                        .softdeps
                        .entry(normalize(module))
                        .or_default()
                        .push(w.to_string()),
                    _ => {}
                }
            }
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(a), Some(m)) = (words.next(), words.next(), words.next()) {
                index
                    .aliases
                    .entry(a.to_string())
                    .or_default()
                    .push(normalize(m));
            }
        }
        index
    }

    /// The path of a module inside the modules directory.
    pub fn path(&self, name: &str) -> Option<&str> {
        self.deps.get(&normalize(name)).map(|(p, _)| p.as_str())
    }

    /// Resolves `wanted` with hard and soft (pre) dependencies; unknown wanted names are errors.
    pub fn closure(&self, wanted: &[&str]) -> Result<Closure> {
        let mut closure = Closure::default();
        let mut seen = HashSet::new();
        for name in wanted {
            let name = normalize(name);
            if self.builtin.contains(&name) {
                closure.builtin.push(name);
            } else if self.deps.contains_key(&name) {
                self.visit(&name, &mut seen, &mut closure.load_order);
            } else {
                bail!("initramfs module `{name}` is neither in modules.dep nor built in");
            }
        }
        Ok(closure)
    }

    fn visit(&self, name: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(name.to_string()) {
            return;
        }
        for soft in self.softdeps.get(name).into_iter().flatten() {
            let targets = match self.aliases.get(soft.as_str()) {
                Some(names) => names.clone(),
                None => vec![normalize(soft)],
            };
            for target in targets {
                if self.deps.contains_key(&target) {
                    self.visit(&target, seen, order);
                }
            }
        }
        if let Some((_, deps)) = self.deps.get(name) {
            for dep in deps.iter().rev() {
                self.visit(&name_of(dep), seen, order);
            }
        }
        order.push(name.to_string());
    }

    /// modules.dep lines for exactly these modules (their dependencies are in the set).
    pub fn dep_subset(&self, names: &[String]) -> String {
        let set: BTreeSet<&String> = names.iter().collect();
        let mut out = String::new();
        for name in set {
            if let Some((path, deps)) = self.deps.get(name) {
                out.push_str(path);
                out.push(':');
                for dep in deps {
                    out.push(' ');
                    out.push_str(dep);
                }
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
kernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\nkernel/fs/jbd2/jbd2.ko:\n\
kernel/crypto/crc32c_generic.ko:\nkernel/arch/x86/crypto/crc32c-intel.ko:\n\
kernel/drivers/usb/storage/uas.ko: kernel/drivers/usb/storage/usb-storage.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/scsi/scsi_mod.ko:\n";
    const BUILTIN: &str = "kernel/drivers/block/loop.ko\n";
    const SOFTDEP: &str = "# comment\nsoftdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c post: nothing\n";
    const ALIAS: &str = "alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c_intel\n";

    fn index() -> ModuleIndex {
        ModuleIndex::parse(DEP, BUILTIN, SOFTDEP, ALIAS)
    }

    fn pos(order: &[String], name: &str) -> usize {
        order.iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn dependencies_and_softdeps_load_first() {
        let c = index().closure(&["ext4", "uas"]).unwrap();
        let o = &c.load_order;
        assert_eq!(o.len(), 9, "{o:?}");
        for dep in ["crc16", "mbcache", "jbd2", "crc32c_generic", "crc32c_intel"] {
            assert!(pos(o, dep) < pos(o, "ext4"), "{dep} in {o:?}");
        }
        assert!(pos(o, "scsi_mod") < pos(o, "usb_storage"));
        assert!(pos(o, "usb_storage") < pos(o, "uas"));
    }

    #[test]
    fn builtin_modules_are_reported_not_loaded_and_unknown_ones_fail() {
        let c = index().closure(&["loop", "usb-storage"]).unwrap();
        assert_eq!(c.builtin, ["loop"]);
        assert_eq!(c.load_order, ["scsi_mod", "usb_storage"]);
        let err = index().closure(&["floppy"]).unwrap_err();
        assert!(err.to_string().contains("`floppy`"), "{err}");
    }

    #[test]
    fn dep_subset_keeps_only_chosen_lines() {
        let idx = index();
        let c = idx.closure(&["uas"]).unwrap();
        let sub = idx.dep_subset(&c.load_order);
        assert_eq!(sub.lines().count(), 3);
        assert!(sub.contains("kernel/drivers/usb/storage/uas.ko: kernel/drivers/usb/storage/usb-storage.ko kernel/drivers/scsi/scsi_mod.ko\n"));
        assert_eq!(
            idx.path("usb-storage"),
            Some("kernel/drivers/usb/storage/usb-storage.ko")
        );
    }
}
