//! Release build of our binaries: cairn-init static (glibc crt-static; it runs in the initramfs), cairnd and the libvirt helper cairn-virt dynamic against the rootfs's Debian libraries.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::elf::parse_interpreter;
use crate::paths::Paths;
use crate::runner::{Runner, ToolCommand};
use crate::stage::Binaries;

/// The target triple the binaries are built for (explicit, so RUSTFLAGS skip build scripts).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The cargo profile of the binaries in the image (`[profile.appliance]` in the root
/// Cargo.toml: release with fat LTO, one codegen unit, size-optimised; issue 12).
pub const PROFILE: &str = "appliance";

/// The cargo of this toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The build command of cairn-init: static, for the explicit target (so RUSTFLAGS skip
/// build scripts).
pub fn build_command() -> ToolCommand {
    ToolCommand::new(&cargo())
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .args(["-p", "cairn-init"])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
}

/// The build command of cairnd: an ordinary dynamic release build. The build host and the
/// rootfs are both Debian 12, so the libraries it links (glibc) are the rootfs's;
/// `stage` checks that every one of them is in the staged root.
pub fn daemon_build_command() -> ToolCommand {
    dynamic_build_command("cairnd")
}

/// The build command of the libvirt helper cairn-virt, dynamic like cairnd (it links
/// libvirt). A cargo run of its own: built together, cargo would unify cairn-vm's features
/// and cairnd would get the `libvirt` feature too.
pub fn helper_build_command() -> ToolCommand {
    dynamic_build_command("cairn-virt")
}

fn dynamic_build_command(package: &str) -> ToolCommand {
    ToolCommand::new(&cargo())
        .args(["build", "--profile", PROFILE, "--target", TARGET])
        .args(["-p", package])
        .env("RUSTFLAGS", "")
}

/// Fails unless `binary` has no program interpreter (is statically linked).
pub fn check_static(runner: &mut dyn Runner, binary: &Path) -> Result<()> {
    let headers = runner.output(
        &ToolCommand::new("readelf")
            .args(["-l", "--wide"])
            .arg(binary),
    )?;
    if let Some(interp) = parse_interpreter(&headers) {
        bail!(
            "{} is dynamically linked (interpreter {interp}); it must be static",
            binary.display()
        );
    }
    Ok(())
}

/// Builds (or, with `prebuilt`, takes from that directory) and checks the binaries.
pub fn binaries(
    runner: &mut dyn Runner,
    paths: &Paths,
    prebuilt: Option<&Path>,
) -> Result<Binaries> {
    let dir: PathBuf = match prebuilt {
        Some(dir) => dir.to_path_buf(),
        None => {
            // cairn-init goes to its own target dir: the same target triple with other
            // RUSTFLAGS would otherwise rebuild every shared dependency on each alternation
            // (and cairn-init has few).
            let static_dir = paths.target().join("static");
            runner
                .run(&build_command().env("CARGO_TARGET_DIR", &static_dir.to_string_lossy()))
                .context("building cairn-init (static)")?;
            let init = static_dir.join(TARGET).join(PROFILE).join("cairn-init");
            runner
                .run(&daemon_build_command())
                .context("building cairnd")?;
            runner
                .run(&helper_build_command())
                .context("building cairn-virt")?;
            let release = paths.target().join(TARGET).join(PROFILE);
            return checked(
                runner,
                Binaries {
                    cairn_init: init,
                    cairnd: release.join("cairnd"),
                    cairn_virt: release.join("cairn-virt"),
                },
            );
        }
    };
    checked(
        runner,
        Binaries {
            cairn_init: dir.join("cairn-init"),
            cairnd: dir.join("cairnd"),
            cairn_virt: dir.join("cairn-virt"),
        },
    )
}

/// Every binary exists and cairn-init is static.
fn checked(runner: &mut dyn Runner, bins: Binaries) -> Result<Binaries> {
    for bin in [&bins.cairn_init, &bins.cairnd, &bins.cairn_virt] {
        if !bin.is_file() {
            bail!("{} was not built", bin.display());
        }
    }
    check_static(runner, &bins.cairn_init)?;
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RecordingRunner;

    #[test]
    fn builds_static_for_the_explicit_target() {
        let cmd = build_command();
        let line = cmd.display();
        assert!(
            line.ends_with(
                "build --profile appliance --target x86_64-unknown-linux-gnu -p cairn-init"
            ),
            "{line}"
        );
        assert_eq!(
            cmd.env,
            [(
                "RUSTFLAGS".to_string(),
                "-C target-feature=+crt-static".to_string()
            )]
        );
    }

    #[test]
    fn the_daemon_and_the_helper_build_dynamically_each_on_its_own() {
        let cmd = daemon_build_command();
        assert!(cmd.display().ends_with("-p cairnd"), "{}", cmd.display());
        assert_eq!(cmd.env, [("RUSTFLAGS".to_string(), String::new())]);
        let cmd = helper_build_command();
        let line = cmd.display();
        assert!(
            line.ends_with(
                "build --profile appliance --target x86_64-unknown-linux-gnu -p cairn-virt"
            ),
            "{line}"
        );
        assert!(!line.contains("cairnd"), "{line}");
        assert_eq!(cmd.env, [("RUSTFLAGS".to_string(), String::new())]);
    }

    #[test]
    fn the_build_runs_init_cairnd_then_the_helper() {
        let mut r = RecordingRunner::default();
        // Nothing is built (the runner records): whether the check then finds files depends
        // on earlier real builds in target/, so only the commands are checked.
        let _ = binaries(&mut r, &Paths::from_manifest_dir(), None);
        let lines = r.lines();
        let builds: Vec<&String> = lines.iter().filter(|c| c.contains(" build ")).collect();
        assert_eq!(builds.len(), 3, "{lines:?}");
        assert!(builds[0].ends_with("-p cairn-init"), "{builds:?}");
        assert!(builds[1].ends_with("-p cairnd"), "{builds:?}");
        assert!(builds[2].ends_with("-p cairn-virt"), "{builds:?}");
    }

    #[test]
    fn dynamic_binaries_are_refused() {
        let mut r = RecordingRunner::default();
        r.outputs.push((
            "readelf".into(),
            "[Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]".into(),
        ));
        let err = check_static(&mut r, Path::new("/x/cairnd")).unwrap_err();
        assert!(
            err.to_string().contains("/x/cairnd is dynamically linked"),
            "{err}"
        );
        assert!(check_static(&mut r, Path::new("/x/cairnd")).is_ok());
    }

    #[test]
    fn prebuilt_directory_must_hold_all_three() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cairn-init"), b"").unwrap();
        let mut r = RecordingRunner::default();
        let err = binaries(&mut r, &Paths::from_manifest_dir(), Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("cairnd was not built"), "{err}");
        std::fs::write(dir.path().join("cairnd"), b"").unwrap();
        let err = binaries(&mut r, &Paths::from_manifest_dir(), Some(dir.path())).unwrap_err();
        assert!(
            err.to_string().contains("cairn-virt was not built"),
            "{err}"
        );
        std::fs::write(dir.path().join("cairn-virt"), b"").unwrap();
        let bins = binaries(&mut r, &Paths::from_manifest_dir(), Some(dir.path())).unwrap();
        assert_eq!(bins.cairn_virt, dir.path().join("cairn-virt"));
    }
}
