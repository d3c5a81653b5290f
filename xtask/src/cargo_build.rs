//! Static release build of our boot binaries (cairn-init, cairnd) with glibc crt-static.

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

/// The build command.
pub fn build_command() -> ToolCommand {
    ToolCommand::new(&cargo())
        .args(["build", "--release", "--target", TARGET])
        .args(["-p", "cairn-init", "-p", "cairnd"])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
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
            runner
                .run(&build_command())
                .context("building cairn-init and cairnd")?;
            paths.target().join(TARGET).join("release")
        }
    };
    let bins = Binaries {
        cairn_init: dir.join("cairn-init"),
        cairnd: dir.join("cairnd"),
    };
    for bin in [&bins.cairn_init, &bins.cairnd] {
        if !bin.is_file() {
            bail!("{} was not built", bin.display());
        }
        check_static(runner, bin)?;
    }
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
                "build --release --target x86_64-unknown-linux-gnu -p cairn-init -p cairnd"
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
