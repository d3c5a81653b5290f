//! `cargo xtask image`: binaries → base rootfs → staged root → squashfs → initramfs → disk image → report.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use cairn_image::esp::EspInputs;
use cairn_image::{write_image, ImageInputs, LayoutSpec, SystemTools};

use crate::info::{FileSize, ImageInfo};
use crate::initramfs::{self, InitramfsInputs};
use crate::paths::Paths;
use crate::runner::{Runner, ToolCommand};
use crate::timing::Phases;
use crate::{base, cargo_build, services, squashfs, stage};

/// Options of `cargo xtask image`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// Take cairn-init and cairnd from this directory instead of building them.
    pub prebuilt: Option<PathBuf>,
    /// Rebuild the base rootfs even when the cache is current.
    pub rebuild_base: bool,
}

/// The name an output is written under until the whole build succeeded.
pub fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Renames `x.partial` to `x` (atomic: open readers keep the old file); returns `x`.
fn publish(partial: &Path) -> Result<PathBuf> {
    let name = partial.to_string_lossy();
    let final_path = PathBuf::from(name.strip_suffix(".partial").unwrap_or(&name));
    fs::rename(partial, &final_path)
        .with_context(|| format!("renaming {} to {}", partial.display(), final_path.display()))?;
    Ok(final_path)
}

/// The effective user id from /proc/self/status text (`Uid: real effective saved fs`).
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The image build needs root: mmdebstrap --mode=root, and the staged tree keeps owners.
fn require_root() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    match effective_uid(&status) {
        Some(0) => Ok(()),
        Some(uid) => anyhow::bail!(
            "the image build must run as root (uid 0), not uid {uid}: mmdebstrap and the root file system's owners need it"
        ),
        None => anyhow::bail!("/proc/self/status has no readable Uid line"),
    }
}

/// Runs the whole image pipeline, recording each phase in `phases`.
pub fn run(
    runner: &mut dyn Runner,
    base_runner: &mut (dyn Runner + Send),
    paths: &Paths,
    opts: &ImageOptions,
    phases: &mut Phases,
) -> Result<ImageInfo> {
    require_root()?;
    let out = paths.out();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // The base rootfs (mmdebstrap: downloads and dpkg, mostly one core) is built on a
    // thread while cargo compiles.
    let (bins, base) = std::thread::scope(|scope| {
        let base = scope.spawn(|| {
            let start = Instant::now();
            let action = base::ensure(base_runner, paths, opts.rebuild_base);
            (action, start.elapsed().as_secs_f64())
        });
        let bins = phases.run("cargo build (release)", || {
            cargo_build::binaries(runner, paths, opts.prebuilt.as_deref())
        });
        (bins, base.join())
    });
    let (action, secs) = base.map_err(|_| anyhow::anyhow!("the base rootfs thread panicked"))?;
    phases.record("base rootfs (beside cargo build)", secs);
    println!("xtask: base rootfs: {:?}", action?);
    let bins = bins?;
    let kver = stage::kernel_version(&paths.base())?;
    phases.run("stage rootfs", || {
        stage::assemble(
            runner,
            &paths.base(),
            &paths.overlay(),
            &bins,
            &paths.stage(),
        )?;
        // cairnd and cairn-virt are dynamically linked: every library they need must be in
        // the root.
        stage::check_libraries(runner, &paths.stage())?;
        let names = services::check(&paths.stage())?;
        println!(
            "xtask: services: {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
        Ok(())
    })?;
    // Built under *.partial names and renamed together at the end, so a reader of build/out
    // (the lab, copying the image) never sees a half-written file.
    let squash = partial(&out.join("rootfs.squashfs"));
    phases.run("squashfs", || {
        squashfs::build(runner, &paths.stage(), &squash)
    })?;
    let initrd = partial(&out.join("initrd"));
    let report = phases.run("initramfs", || {
        initramfs::build(
            runner,
            &InitramfsInputs {
                rootfs: paths.base(),
                kernel_version: kver.clone(),
                init: bins.cairn_init.clone(),
                stage: paths.initramfs_stage(),
                output: initrd.clone(),
            },
        )
    })?;
    let vmlinuz = partial(&out.join("vmlinuz"));
    let img = partial(&out.join("cairn.img"));
    let layout = phases.run("disk image", || {
        let kernel = paths.base().join(format!("boot/vmlinuz-{kver}"));
        fs::copy(&kernel, &vmlinuz).with_context(|| format!("copying {}", kernel.display()))?;
        let inputs = ImageInputs {
            spec: LayoutSpec::CONTRACT,
            esp: EspInputs {
                systemd_boot_efi: paths
                    .base()
                    .join("usr/lib/systemd/boot/efi/systemd-bootx64.efi"),
                kernel: vmlinuz.clone(),
                initrd: initrd.clone(),
            },
            squashfs: squash.clone(),
            work_dir: paths.image_work(),
            output: img.clone(),
        };
        Ok(write_image(&mut SystemTools, &inputs)?)
    })?;
    let mut published = Vec::new();
    for path in [&vmlinuz, &initrd, &squash, &img] {
        published.push(publish(path)?);
    }
    let img = &published[3];
    let zst_partial = partial(&out.join("cairn.img.zst"));
    phases.run("compress image (zstd -3)", || {
        runner.run(
            &ToolCommand::new("zstd")
                .args(["-q", "-f", "-3", "-T0"])
                .arg(img)
                .arg("-o")
                .arg(&zst_partial),
        )
    })?;
    let zst = publish(&zst_partial)?;
    let mut files = BTreeMap::new();
    for path in published.iter().chain([&zst]) {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        files.insert(name, FileSize::of(path)?);
    }
    let compressed = files["cairn.img.zst"].clone();
    let info = ImageInfo {
        kernel_version: kver,
        files,
        compressed_image: zst.display().to_string(),
        compressed_image_mib: compressed.mib,
        layout,
        initramfs: report,
        phases_s: phases.phases.clone(),
    };
    info.write(&out.join("image-info.json"))?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_outputs_are_published_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cairn.img");
        fs::write(&out, b"old").unwrap();
        let tmp = partial(&out);
        assert_eq!(tmp, dir.path().join("cairn.img.partial"));
        fs::write(&tmp, b"new").unwrap();
        assert_eq!(publish(&tmp).unwrap(), out);
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert!(!tmp.exists());
    }

    #[test]
    fn reads_the_effective_uid() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
        assert_eq!(effective_uid("Uid:\t5\t7\t5\t5\n"), Some(7));
        assert_eq!(effective_uid("Name: x\n"), None);
    }
}
