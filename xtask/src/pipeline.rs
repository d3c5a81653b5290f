//! `cargo xtask image`: binaries → base rootfs → staged root → squashfs → initramfs → disk image → report.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

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

/// Runs the whole image pipeline, recording each phase in `phases`.
pub fn run(
    runner: &mut dyn Runner,
    paths: &Paths,
    opts: &ImageOptions,
    phases: &mut Phases,
) -> Result<ImageInfo> {
    let out = paths.out();
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let bins = phases.run("cargo build (static release)", || {
        cargo_build::binaries(runner, paths, opts.prebuilt.as_deref())
    })?;
    phases.run("base rootfs (cached)", || {
        let action = base::ensure(runner, paths, opts.rebuild_base)?;
        println!("xtask: base rootfs: {action:?}");
        Ok(())
    })?;
    let kver = stage::kernel_version(&paths.base())?;
    phases.run("stage rootfs", || {
        stage::assemble(
            runner,
            &paths.base(),
            &paths.overlay(),
            &bins,
            &paths.stage(),
        )?;
        let names = services::check(&paths.stage())?;
        println!(
            "xtask: services: {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
        Ok(())
    })?;
    let squash = out.join("rootfs.squashfs");
    phases.run("squashfs", || {
        squashfs::build(runner, &paths.stage(), &squash)
    })?;
    let initrd = out.join("initrd");
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
    let vmlinuz = out.join("vmlinuz");
    let img = out.join("cairn.img");
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
    let zst = out.join("cairn.img.zst");
    phases.run("compress image (zstd -3)", || {
        runner.run(
            &ToolCommand::new("zstd")
                .args(["-q", "-f", "-3", "-T0"])
                .arg(&img)
                .arg("-o")
                .arg(&zst),
        )
    })?;
    let mut files = BTreeMap::new();
    for path in [&vmlinuz, &initrd, &squash, &img, &zst] {
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
