//! Kernel modules for stage 1: names → `.ko` paths with dependencies, from modules.dep.

use std::collections::{BTreeMap, BTreeSet};

/// Normalised module name (`-` and `_` are the same to the kernel).
pub fn normalize(name: &str) -> String {
    name.trim().replace('-', "_")
}

fn module_name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    normalize(stem)
}

/// The parsed modules.dep: module name → (path, dependency paths in modules.dep order).
#[derive(Debug, Default)]
pub struct DepMap {
    entries: BTreeMap<String, (String, Vec<String>)>,
}

impl DepMap {
    pub fn parse(text: &str) -> Self {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(String::from).collect();
            entries.insert(module_name_of(path), (path.to_string(), deps));
        }
        DepMap { entries }
    }

    fn by_path(&self, path: &str) -> Option<&(String, Vec<String>)> {
        self.entries.get(&module_name_of(path))
    }
}

/// What to load (relative paths under /lib/modules/RELEASE, in load order) and what was
/// not found (names that are neither modules nor built in).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadPlan {
    pub paths: Vec<String>,
    pub missing: Vec<String>,
}

/// Resolves names (one per line in /etc/cairn/initrd-modules; `#` comments allowed) into a
/// load order: each module after its dependencies, nothing twice.
pub fn plan(list: &str, dep: &DepMap, builtin: &str) -> LoadPlan {
    let builtin: BTreeSet<String> = builtin.lines().map(module_name_of).collect();
    let mut out = LoadPlan::default();
    let mut seen = BTreeSet::new();
    for raw in list.lines() {
        let name = raw.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let key = normalize(name);
        match dep.entries.get(&key) {
            Some((path, _)) => add(path, dep, &mut seen, &mut out.paths, 0),
            None if builtin.contains(&key) => {}
            None => out.missing.push(name.to_string()),
        }
    }
    out
}

fn add(path: &str, dep: &DepMap, seen: &mut BTreeSet<String>, out: &mut Vec<String>, depth: usize) {
    if depth > 64 || !seen.insert(path.to_string()) {
        return;
    }
    if let Some((_, deps)) = dep.by_path(path) {
        // modules.dep lists the deepest dependency last: load from the end.
        for d in deps.iter().rev() {
            add(d, dep, seen, out, depth + 1);
        }
    }
    out.push(path.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str =
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
kernel/fs/jbd2/jbd2.ko:\n\
kernel/fs/mbcache.ko:\n\
kernel/lib/crc16.ko:\n\
kernel/drivers/block/virtio_blk.ko:\n\
kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_common.ko kernel/drivers/scsi/scsi_mod.ko\n\
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko\n\
kernel/drivers/scsi/scsi_common.ko:\n\
kernel/fs/squashfs/squashfs.ko:\n";

    #[test]
    fn dependencies_first_no_duplicates() {
        let d = DepMap::parse(DEP);
        let p = plan("# root\nsd-mod\next4\nvirtio_blk\nscsi_mod\n", &d, "");
        assert_eq!(
            p.paths,
            vec![
                "kernel/drivers/scsi/scsi_common.ko",
                "kernel/drivers/scsi/scsi_mod.ko",
                "kernel/drivers/scsi/sd_mod.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/mbcache.ko",
                "kernel/lib/crc16.ko",
                "kernel/fs/ext4/ext4.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
        assert!(p.missing.is_empty());
    }

    #[test]
    fn builtin_is_fine_unknown_is_reported() {
        let d = DepMap::parse(DEP);
        let p = plan(
            "squashfs\nnvme\nbogus\n",
            &d,
            "kernel/drivers/nvme/host/nvme.ko\n",
        );
        assert_eq!(p.paths, vec!["kernel/fs/squashfs/squashfs.ko"]);
        assert_eq!(p.missing, vec!["bogus"]);
    }
}
