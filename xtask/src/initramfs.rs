//! The initramfs: static cairn-init as /init, the root's kernel modules, mke2fs with its libraries; cpio newc + zstd.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::elf;
use crate::fscopy::{copy_resolving, list_tree};
use crate::modules::{ModuleIndex, ROOT_MODULES};
use crate::runner::{Runner, ToolCommand};

/// Inputs of the initramfs.
#[derive(Debug, Clone)]
pub struct InitramfsInputs {
    /// The root tree modules and mke2fs are taken from.
    pub rootfs: PathBuf,
    pub kernel_version: String,
    /// The static cairn-init binary.
    pub init: PathBuf,
    /// Scratch directory (emptied).
    pub stage: PathBuf,
    /// The zstd-compressed cpio written.
    pub output: PathBuf,
}

/// What went into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InitramfsReport {
    pub modules: Vec<String>,
    pub builtin_modules: Vec<String>,
    pub files: Vec<String>,
}

/// Marker file of stage 1 (boot contract).
pub const MARKER: &str = "etc/cairn-initrd";
/// Module load list (boot contract).
pub const MODULE_LIST: &str = "etc/cairn/initrd-modules";

/// Fills `inputs.stage` with the initramfs tree.
pub fn assemble(runner: &mut dyn Runner, inputs: &InitramfsInputs) -> Result<InitramfsReport> {
    let stage = &inputs.stage;
    if stage.exists() {
        fs::remove_dir_all(stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    for dir in ["dev", "proc", "sys", "run", "tmp", "newroot", "etc/cairn"] {
        fs::create_dir_all(stage.join(dir))
            .with_context(|| format!("creating {}", stage.join(dir).display()))?;
    }
    let init = stage.join("init");
    fs::copy(&inputs.init, &init)
        .with_context(|| format!("copying {} to /init", inputs.init.display()))?;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    fs::write(
        stage.join(MARKER),
        "Cairn initramfs: cairn-init runs stage 1 here.\n",
    )?;

    let moddir = format!("/lib/modules/{}", inputs.kernel_version);
    let read = |name: &str| {
        let path = inputs.rootfs.join(&moddir[1..]).join(name);
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let index = ModuleIndex::parse(
        &read("modules.dep")?,
        &read("modules.builtin")?,
        &read("modules.softdep")?,
        &read("modules.alias")?,
    );
    let closure = index.closure(ROOT_MODULES)?;
    for name in &closure.load_order {
        let rel = index
            .path(name)
            .with_context(|| format!("module {name} has no path in modules.dep"))?;
        copy_resolving(&inputs.rootfs, &format!("{moddir}/{rel}"), stage)?;
    }
    let builtin = copy_resolving(&inputs.rootfs, &format!("{moddir}/modules.builtin"), stage)?;
    let real_moddir = stage.join(builtin.parent().context("modules.builtin has a parent")?);
    fs::write(
        real_moddir.join("modules.dep"),
        index.dep_subset(&closure.load_order),
    )?;
    let mut list = closure.load_order.join("\n");
    list.push('\n');
    fs::write(stage.join(MODULE_LIST), list)?;

    let mut files = Vec::new();
    for file in elf::closure(runner, &inputs.rootfs, "/sbin/mke2fs")? {
        copy_resolving(&inputs.rootfs, &file, stage)?;
        files.push(file);
    }
    if inputs.rootfs.join("etc/mke2fs.conf").exists() {
        copy_resolving(&inputs.rootfs, "/etc/mke2fs.conf", stage)?;
        files.push("/etc/mke2fs.conf".into());
    }
    runner.run(
        &ToolCommand::new("mknod")
            .args(["-m", "600"])
            .arg(stage.join("dev/console"))
            .args(["c", "5", "1"]),
    )?;
    Ok(InitramfsReport {
        modules: closure.load_order,
        builtin_modules: closure.builtin,
        files,
    })
}

/// zstd level of the initramfs: -9 packs 14 MB in 0.5 s to 4.0 MB; -19 needs 9 s for 3.5 MB.
pub const ZSTD_LEVEL: &str = "-9";

/// Packs `stage` as cpio newc (owner root, reproducible) and compresses it with zstd.
pub fn pack(runner: &mut dyn Runner, stage: &Path, output: &Path) -> Result<()> {
    let mut list = String::new();
    for entry in list_tree(stage)? {
        list.push_str(&entry.to_string_lossy());
        list.push('\n');
    }
    let cpio = output.with_extension("cpio");
    runner.run(
        &ToolCommand::new("cpio")
            .args([
                "--quiet",
                "-o",
                "-H",
                "newc",
                "-R",
                "0:0",
                "--reproducible",
                "-D",
            ])
            .arg(stage)
            .arg("-O")
            .arg(&cpio)
            .stdin(list),
    )?;
    runner.run(
        &ToolCommand::new("zstd")
            .args(["-q", "-f", ZSTD_LEVEL, "-T0", "--rm"])
            .arg(&cpio)
            .arg("-o")
            .arg(output),
    )?;
    Ok(())
}

/// Assembles and packs the initramfs.
pub fn build(runner: &mut dyn Runner, inputs: &InitramfsInputs) -> Result<InitramfsReport> {
    let report = assemble(runner, inputs)?;
    pack(runner, &inputs.stage, &inputs.output)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RecordingRunner;
    use std::os::unix::fs::symlink;

    /// A miniature merged-/usr root with a modules tree and mke2fs.
    fn fake_root(root: &Path) {
        let kdir = root.join("usr/lib/modules/6.1.0-test");
        let mods = [
            "kernel/drivers/virtio/virtio.ko",
            "kernel/drivers/virtio/virtio_pci.ko",
            "kernel/drivers/block/virtio_blk.ko",
            "kernel/fs/ext4/ext4.ko",
            "kernel/crypto/crc32c_generic.ko",
            "kernel/sound/snd.ko",
        ];
        for m in mods {
            fs::create_dir_all(kdir.join(m).parent().unwrap()).unwrap();
            fs::write(kdir.join(m), m).unwrap();
        }
        let mut dep = String::from(
            "kernel/drivers/virtio/virtio.ko:\n\
             kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko\n\
             kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n\
             kernel/fs/ext4/ext4.ko:\nkernel/crypto/crc32c_generic.ko:\nkernel/sound/snd.ko:\n",
        );
        // Every other wanted module is declared built in.
        let builtin: String = ROOT_MODULES
            .iter()
            .filter(|m| !["virtio_pci", "virtio_blk", "ext4"].contains(m))
            .map(|m| format!("kernel/x/{m}.ko\n"))
            .collect();
        dep.push('\n');
        fs::write(kdir.join("modules.dep"), dep).unwrap();
        fs::write(kdir.join("modules.builtin"), builtin).unwrap();
        fs::write(
            kdir.join("modules.softdep"),
            "softdep ext4 pre: crypto-crc32c\n",
        )
        .unwrap();
        fs::write(
            kdir.join("modules.alias"),
            "alias crypto-crc32c crc32c_generic\n",
        )
        .unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("usr/sbin", root.join("sbin")).unwrap();
        fs::create_dir_all(root.join("usr/sbin")).unwrap();
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::write(root.join("usr/sbin/mke2fs"), b"mke2fs").unwrap();
        fs::write(root.join("usr/lib/x86_64-linux-gnu/libc.so.6"), b"libc").unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/mke2fs.conf"), b"[defaults]\n").unwrap();
    }

    #[test]
    fn assembles_init_modules_and_mke2fs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fake_root(&root);
        fs::write(dir.path().join("cairn-init"), b"static init").unwrap();
        let inputs = InitramfsInputs {
            rootfs: root,
            kernel_version: "6.1.0-test".into(),
            init: dir.path().join("cairn-init"),
            stage: dir.path().join("stage"),
            output: dir.path().join("initrd"),
        };
        let mut r = RecordingRunner::default();
        r.outputs.push(("readelf".into(), String::new()));
        r.outputs.push((
            "readelf".into(),
            " (NEEDED) Shared library: [libc.so.6]\n".into(),
        ));
        let report = assemble(&mut r, &inputs).unwrap();
        let s = &inputs.stage;
        assert_eq!(fs::read(s.join("init")).unwrap(), b"static init");
        assert!(s.join(MARKER).is_file());
        let list = fs::read_to_string(s.join(MODULE_LIST)).unwrap();
        assert_eq!(
            list,
            "virtio\nvirtio_pci\nvirtio_blk\ncrc32c_generic\next4\n"
        );
        assert_eq!(report.modules.len(), 5);
        let kdir = s.join("usr/lib/modules/6.1.0-test");
        assert!(kdir.join("kernel/fs/ext4/ext4.ko").is_file());
        assert!(!kdir.join("kernel/sound/snd.ko").exists());
        let dep = fs::read_to_string(kdir.join("modules.dep")).unwrap();
        assert_eq!(dep.lines().count(), 5);
        assert!(!dep.contains("snd"));
        assert_eq!(fs::read(s.join("sbin/mke2fs")).unwrap(), b"mke2fs");
        assert!(s.join("lib/x86_64-linux-gnu/libc.so.6").is_file());
        assert!(s.join("etc/mke2fs.conf").is_file());
        assert!(r.lines().last().unwrap().starts_with("mknod -m 600"));
    }

    #[test]
    fn packs_every_entry_with_cpio_then_zstd() {
        let dir = tempfile::tempdir().unwrap();
        let stage = dir.path().join("stage");
        fs::create_dir_all(stage.join("etc")).unwrap();
        fs::write(stage.join("init"), b"x").unwrap();
        let mut r = RecordingRunner::default();
        pack(&mut r, &stage, &dir.path().join("initrd")).unwrap();
        assert_eq!(r.calls[0].program, "cpio");
        assert_eq!(r.calls[0].stdin.as_deref(), Some(&b"etc\ninit\n"[..]));
        assert!(r.lines()[1].starts_with("zstd -q -f -9 -T0"));
    }
}
