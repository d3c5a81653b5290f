//! Assembles the staged root: base copy, pruning, overlay, our binaries, read-only-root symlinks, the /var skeleton.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::prune;
use crate::runner::{Runner, ToolCommand};

/// Where the image keeps the /var content packages installed; cairn-init seeds
/// /state/var from it (entries missing in /state/var only) before binding /var.
pub const VAR_SKEL: &str = "usr/share/cairn/var-skel";

/// Symlinks that make the read-only root work: (link, target).
pub const SYMLINKS: &[(&str, &str)] = &[
    ("etc/machine-id", "/run/machine-id"),
    ("etc/resolv.conf", "/run/resolv.conf"),
    // The time zone: cairnd points /var/lib/cairn/localtime (STATE) at the chosen zone;
    // until setup the link dangles and glibc reads that as UTC.
    ("etc/localtime", "/var/lib/cairn/localtime"),
    ("usr/sbin/init", "cairn-init"),
    // File services (docs/files.md): cairnd generates both on STATE.
    ("etc/samba/smb.conf", "/var/lib/cairn/files/smb.conf"),
    ("etc/exports", "/var/lib/cairn/files/exports"),
];

/// Where the libvirt helper is installed (cairnd starts it from there: `cairn_vm::remote`).
pub const HELPER_DEST: &str = "usr/libexec/cairn/cairn-virt";

/// Our dynamically linked programs in the root: every library they need must be in it.
pub const DYNAMIC_PROGRAMS: &[&str] = &["/usr/sbin/cairnd", "/usr/libexec/cairn/cairn-virt"];

/// Our binaries: (source, destination in the root).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub cairn_init: PathBuf,
    pub cairnd: PathBuf,
    /// The libvirt helper `cairn-virt` (links libvirt, so cairnd does not).
    pub cairn_virt: PathBuf,
}

/// The single kernel version under `root`/usr/lib/modules.
pub fn kernel_version(root: &Path) -> Result<String> {
    let dir = root.join("usr/lib/modules");
    let mut versions: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no kernel modules under {}", dir.display()),
        many => bail!(
            "{} holds several kernels ({}); the image needs exactly one",
            dir.display(),
            many.join(", ")
        ),
    }
}

/// Replaces whatever is at `link` by a symlink to `target`.
fn force_symlink(root: &Path, link: &str, target: &str) -> Result<()> {
    let path = root.join(link);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if let Ok(meta) = fs::symlink_metadata(&path) {
        if meta.is_dir() {
            bail!("{} is a directory, expected a file or link", path.display());
        }
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    symlink(target, &path).with_context(|| format!("linking {} -> {target}", path.display()))
}

fn install(src: &Path, root: &Path, dest: &str) -> Result<()> {
    let path = root.join(dest);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if fs::symlink_metadata(&path).is_ok() {
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    fs::copy(src, &path).with_context(|| format!("installing {} as /{dest}", src.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Moves /var to the skeleton and leaves empty /var and /state mount points.
pub fn make_var_skeleton(root: &Path) -> Result<()> {
    let skel = root.join(VAR_SKEL);
    if let Some(parent) = skel.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    if skel.exists() {
        fs::remove_dir_all(&skel).with_context(|| format!("removing {}", skel.display()))?;
    }
    fs::rename(root.join("var"), &skel).with_context(|| format!("moving /var to /{VAR_SKEL}"))?;
    for dir in ["var", "state"] {
        let path = root.join(dir);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Fails unless every library each of [`DYNAMIC_PROGRAMS`] needs is in the staged root.
pub fn check_libraries(runner: &mut dyn Runner, stage: &Path) -> Result<()> {
    for program in DYNAMIC_PROGRAMS {
        crate::elf::closure(runner, stage, program).with_context(|| {
            format!(
                "{program}'s shared libraries are not all in the rootfs (add their package to rootfs/packages.txt)"
            )
        })?;
    }
    Ok(())
}

/// Empties the runtime directories that are mount points at boot.
fn clear_mount_points(root: &Path) -> Result<()> {
    for dir in ["run", "tmp", "dev", "proc", "sys"] {
        let path = root.join(dir);
        if path.exists() {
            for entry in
                fs::read_dir(&path).with_context(|| format!("listing {}", path.display()))?
            {
                let entry = entry?.path();
                if fs::symlink_metadata(&entry)?.is_dir() {
                    fs::remove_dir_all(&entry)
                } else {
                    fs::remove_file(&entry)
                }
                .with_context(|| format!("removing {}", entry.display()))?;
            }
        } else {
            fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        }
    }
    Ok(())
}

/// Builds the staged root at `stage` from `base`, `overlay` and `binaries`.
pub fn assemble(
    runner: &mut dyn Runner,
    base: &Path,
    overlay: &Path,
    binaries: &Binaries,
    stage: &Path,
) -> Result<()> {
    if stage.exists() {
        fs::remove_dir_all(stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    if let Some(parent) = stage.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    runner.run(
        &ToolCommand::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(base)
            .arg(stage),
    )?;
    let kver = kernel_version(stage)?;
    prune::apply(stage, &kver, prune::RULES)?;
    runner.run(&ToolCommand::new("depmod").arg("-b").arg(stage).arg(&kver))?;
    if overlay.is_dir() {
        runner.run(
            &ToolCommand::new("cp")
                .args(["-a", "--no-preserve=ownership"])
                .arg(overlay.join("."))
                .arg(stage),
        )?;
    }
    install(&binaries.cairn_init, stage, "usr/sbin/cairn-init")?;
    install(&binaries.cairnd, stage, "usr/sbin/cairnd")?;
    install(&binaries.cairn_virt, stage, HELPER_DEST)?;
    for (link, target) in SYMLINKS {
        force_symlink(stage, link, target)?;
    }
    clear_mount_points(stage)?;
    make_var_skeleton(stage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RecordingRunner;

    #[test]
    fn kernel_version_needs_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("usr/lib/modules");
        assert!(kernel_version(dir.path()).is_err());
        fs::create_dir_all(m.join("6.1.0-56-amd64")).unwrap();
        assert_eq!(kernel_version(dir.path()).unwrap(), "6.1.0-56-amd64");
        fs::create_dir_all(m.join("6.1.0-57-amd64")).unwrap();
        let err = kernel_version(dir.path()).unwrap_err();
        assert!(err.to_string().contains("several kernels"), "{err}");
    }

    #[test]
    fn var_moves_to_the_skeleton_and_mount_points_stay_empty() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::create_dir_all(r.join("var/lib/dhcpcd")).unwrap();
        symlink("/run", r.join("var/run")).unwrap();
        make_var_skeleton(r).unwrap();
        assert!(r.join(VAR_SKEL).join("lib/dhcpcd").is_dir());
        assert!(fs::symlink_metadata(r.join(VAR_SKEL).join("run"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_dir(r.join("var")).unwrap().count(), 0);
        assert!(r.join("state").is_dir());
    }

    #[test]
    fn assemble_copies_prunes_overlays_installs_and_links() {
        // Uses the real cp and depmod (installed by ./dev) on a miniature base.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let base = d.join("base");
        for p in [
            "usr/lib/modules/6.1.0-t/kernel/sound",
            "usr/lib/modules/6.1.0-t/kernel/fs",
            "usr/sbin",
            "etc",
            "var/log",
            "run/lock",
            "boot",
        ] {
            fs::create_dir_all(base.join(p)).unwrap();
        }
        symlink("usr/lib", base.join("lib")).unwrap();
        fs::write(base.join("etc/machine-id"), b"").unwrap();
        fs::write(base.join("etc/resolv.conf"), b"nameserver 192.0.2.1\n").unwrap();
        fs::create_dir_all(d.join("overlay/etc/cairn/services")).unwrap();
        fs::write(
            d.join("overlay/etc/cairn/services/x.toml"),
            b"exec = \"/bin/true\"\n",
        )
        .unwrap();
        fs::write(d.join("init-bin"), b"init").unwrap();
        fs::write(d.join("cairnd-bin"), b"cairnd").unwrap();
        fs::write(d.join("virt-bin"), b"cairn-virt").unwrap();
        let bins = Binaries {
            cairn_init: d.join("init-bin"),
            cairnd: d.join("cairnd-bin"),
            cairn_virt: d.join("virt-bin"),
        };
        let stage = d.join("out/stage");
        fs::create_dir_all(&stage).unwrap();
        fs::write(stage.join("stale"), b"").unwrap();
        assemble(
            &mut crate::runner::SystemRunner,
            &base,
            &d.join("overlay"),
            &bins,
            &stage,
        )
        .unwrap();
        assert!(!stage.join("stale").exists());
        assert!(!stage.join("boot").exists());
        assert!(!stage.join("usr/lib/modules/6.1.0-t/kernel/sound").exists());
        assert!(stage.join("usr/lib/modules/6.1.0-t/modules.dep").exists());
        assert!(stage.join("etc/cairn/services/x.toml").is_file());
        assert_eq!(
            fs::read_link(stage.join("etc/machine-id")).unwrap(),
            Path::new("/run/machine-id")
        );
        assert_eq!(
            fs::read_link(stage.join("etc/resolv.conf")).unwrap(),
            Path::new("/run/resolv.conf")
        );
        assert_eq!(
            fs::read_link(stage.join("usr/sbin/init")).unwrap(),
            Path::new("cairn-init")
        );
        assert_eq!(
            fs::read_link(stage.join("etc/localtime")).unwrap(),
            Path::new("/var/lib/cairn/localtime")
        );
        assert_eq!(fs::read(stage.join("usr/sbin/cairnd")).unwrap(), b"cairnd");
        let helper = stage.join(HELPER_DEST);
        assert_eq!(fs::read(&helper).unwrap(), b"cairn-virt");
        assert_eq!(
            fs::metadata(&helper).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        assert_eq!(
            Path::new("/").join(HELPER_DEST),
            Path::new(DYNAMIC_PROGRAMS[1])
        );
        assert_eq!(fs::read_dir(stage.join("run")).unwrap().count(), 0);
        assert!(stage.join(VAR_SKEL).join("log").is_dir());
        assert_eq!(fs::read_dir(stage.join("var")).unwrap().count(), 0);
    }

    #[test]
    fn a_failing_copy_stops_assembly() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = RecordingRunner {
            fail: Some("cp".into()),
            ..Default::default()
        };
        let bins = Binaries {
            cairn_init: dir.path().join("a"),
            cairnd: dir.path().join("b"),
            cairn_virt: dir.path().join("c"),
        };
        let err = assemble(
            &mut r,
            &dir.path().join("base"),
            &dir.path().join("o"),
            &bins,
            &dir.path().join("s"),
        );
        assert!(err.unwrap_err().to_string().contains("cp -a"));
        assert_eq!(r.calls.len(), 1);
    }

    #[test]
    fn the_library_check_covers_cairnd_and_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::write(dir.path().join("usr/lib/x86_64-linux-gnu/libc.so.6"), b"").unwrap();
        let mut r = RecordingRunner::default();
        // cairnd: no interpreter, libc; libc: nothing; the helper: libvirt, missing.
        for out in [
            "",
            " (NEEDED) Shared library: [libc.so.6]\n",
            "",
            "",
            " (NEEDED) Shared library: [libvirt.so.0]\n",
        ] {
            r.outputs.push(("readelf".into(), out.into()));
        }
        let err = check_libraries(&mut r, dir.path()).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("/usr/libexec/cairn/cairn-virt's shared libraries")
                && text.contains("libvirt.so.0"),
            "{text}"
        );
        let programs: Vec<String> = r
            .lines()
            .into_iter()
            .filter(|c| c.contains(" -l "))
            .collect();
        assert_eq!(programs.len(), 2, "{:?}", r.lines());
        assert!(
            programs[1].ends_with("usr/libexec/cairn/cairn-virt"),
            "{programs:?}"
        );
    }
}
