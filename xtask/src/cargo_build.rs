//! Release build of our binaries: cairn-init static (glibc crt-static; it runs in the
//! initramfs), cairnd dynamic against the rootfs's Debian libraries (it links libvirt).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::elf::parse_interpreter;
use crate::paths::Paths;
use crate::runner::{Runner, ToolCommand};
use crate::stage::Binaries;

/// The target triple the binaries are built for (explicit, so RUSTFLAGS skip build scripts).
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The cargo of this toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The build command of cairn-init: static, for the explicit target (so RUSTFLAGS skip
/// build scripts).
pub fn build_command() -> ToolCommand {
    ToolCommand::new(&cargo())
        .args(["build", "--release", "--target", TARGET])
        .args(["-p", "cairn-init"])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
}

/// The build command of cairnd: an ordinary dynamic release build. The build host and the
/// rootfs are both Debian 12, so the libraries it links (glibc, libvirt) are the rootfs's;
/// `stage` checks that every one of them is in the staged root.
pub fn daemon_build_command() -> ToolCommand {
    ToolCommand::new(&cargo())
        .args(["build", "--release", "--target", TARGET])
        .args(["-p", "cairnd"])
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

/// Builds (or, with `prebuilt`, takes from that directory) and checks both binaries.
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
            let init = static_dir.join(TARGET).join("release").join("cairn-init");
            runner
                .run(&daemon_build_command())
                .context("building cairnd")?;
            let daemon = paths.target().join(TARGET).join("release").join("cairnd");
            return checked(runner, init, daemon);
        }
    };
    checked(runner, dir.join("cairn-init"), dir.join("cairnd"))
}

/// Both binaries exist and cairn-init is static.
fn checked(runner: &mut dyn Runner, cairn_init: PathBuf, cairnd: PathBuf) -> Result<Binaries> {
    for bin in [&cairn_init, &cairnd] {
        if !bin.is_file() {
            bail!("{} was not built", bin.display());
        }
    }
    check_static(runner, &cairn_init)?;
    Ok(Binaries { cairn_init, cairnd })
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
            line.ends_with("build --release --target x86_64-unknown-linux-gnu -p cairn-init"),
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
    fn the_daemon_builds_dynamically() {
        let cmd = daemon_build_command();
        assert!(cmd.display().ends_with("-p cairnd"), "{}", cmd.display());
        assert_eq!(cmd.env, [("RUSTFLAGS".to_string(), String::new())]);
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
    fn prebuilt_directory_must_hold_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cairn-init"), b"").unwrap();
        let mut r = RecordingRunner::default();
        let err = binaries(&mut r, &Paths::from_manifest_dir(), Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("cairnd was not built"), "{err}");
    }
}
