//! `cargo xtask lab [--full]`: the QEMU lab scenarios (the image first when it is missing); `--full` adds the scenarios outside the CI set and the boot bench, which refreshes docs/benchmarks.md's boot block.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::cargo_build::cargo;
use crate::paths::Paths;
use crate::pipeline::{self, ImageOptions};
use crate::runner::{Runner, SystemRunner, ToolCommand};
use crate::test_cmd::LAB_PHASE;
use crate::timing::Phases;

/// What the image step leaves in build/out that the lab boots.
pub const LAB_ARTIFACTS: [&str; 3] = ["cairn.img", "vmlinuz", "initrd"];

pub use crate::test_cmd::FULL_ONLY_SCENARIOS;

/// The document whose boot block `--full` regenerates (relative to the repository root).
pub const BENCH_DOC: &str = "docs/benchmarks.md";

/// The phase names, in the order they run.
pub const SCENARIOS_PHASE: &str = "lab scenarios (QEMU)";
pub const FULL_ONLY_PHASE: &str = "lab scenarios outside the CI set (QEMU)";
pub const BENCH_PHASE: &str = "boot bench (cairn-lab bench --update-doc)";

/// Options of `cargo xtask lab`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabOptions {
    pub full: bool,
}

/// Parses the options after `lab`.
pub fn parse(rest: &[String]) -> Result<LabOptions> {
    match rest {
        [] => Ok(LabOptions { full: false }),
        [f] if f == "--full" => Ok(LabOptions { full: true }),
        _ => bail!("lab: the only option is --full (got `{}`)", rest.join(" ")),
    }
}

use crate::test_cmd::binaries;

/// The commands `cargo xtask lab` runs after the image step, in order: (phase, command).
/// `full_only` is [`FULL_ONLY_SCENARIOS`] (a parameter so the filters are tested).
pub fn commands(root: &Path, full: bool, full_only: &[&str]) -> Vec<(&'static str, ToolCommand)> {
    let cargo = cargo();
    let mut ci = ToolCommand::new(&cargo).args(LAB_PHASE.1.iter().copied());
    if !full_only.is_empty() {
        ci = ci.args(["-E", &format!("not ({})", binaries(full_only))]);
    }
    let mut out = vec![(SCENARIOS_PHASE, ci)];
    if !full {
        return out;
    }
    if !full_only.is_empty() {
        let extra = ToolCommand::new(&cargo)
            .args(LAB_PHASE.1.iter().copied())
            .args(["-E", &binaries(full_only)]);
        out.push((FULL_ONLY_PHASE, extra));
    }
    let doc = root.join(BENCH_DOC);
    let bench = ToolCommand::new(&cargo)
        .args([
            "run",
            "-p",
            "cairn-lab",
            "--bin",
            "cairn-lab",
            "--",
            "bench",
        ])
        .args([OsStr::new("--update-doc"), doc.as_os_str()]);
    out.push((BENCH_PHASE, bench));
    out
}

/// The first lab artifact missing from `out` (build/out), if any.
pub fn missing_artifact(out: &Path) -> Option<PathBuf> {
    LAB_ARTIFACTS
        .iter()
        .map(|f| out.join(f))
        .find(|p| !p.is_file())
}

/// Runs the lab: the image when an artifact is missing, the scenarios, and with `--full`
/// the rest and the bench. The bench runs even when a scenario failed (it boots its own
/// nodes and measures boot only); the scenario failure is the result then.
pub fn run(runner: &mut dyn Runner, paths: &Paths, opts: LabOptions) -> Result<()> {
    let mut phases = Phases::default();
    let result = run_phases(runner, paths, opts, &mut phases);
    println!("xtask: lab phases:\n{}", phases.summary());
    result
}

fn run_phases(
    runner: &mut dyn Runner,
    paths: &Paths,
    opts: LabOptions,
    phases: &mut Phases,
) -> Result<()> {
    if let Some(missing) = missing_artifact(&paths.out()) {
        println!(
            "xtask: {} is missing: building the image first",
            missing.display()
        );
        pipeline::run(
            runner,
            &mut SystemRunner,
            paths,
            &ImageOptions::default(),
            phases,
        )?;
    }
    let mut first_failure = None;
    for (name, cmd) in commands(&paths.root, opts.full, FULL_ONLY_SCENARIOS) {
        let is_bench = name == BENCH_PHASE;
        match phases.run(name, || runner.run(&cmd)) {
            Ok(()) if is_bench => println!(
                "xtask: updated the boot block of {} (between <!-- bench:boot:begin --> and <!-- bench:boot:end -->)",
                paths.root.join(BENCH_DOC).display()
            ),
            Ok(()) => {}
            Err(e) if is_bench => return Err(first_failure.unwrap_or(e)),
            Err(e) => {
                if !opts.full {
                    return Err(e);
                }
                println!("xtask: {name} failed; the boot bench still runs: {e:#}");
                first_failure.get_or_insert(e);
            }
        }
    }
    match first_failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RecordingRunner;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_options() {
        assert_eq!(parse(&[]).unwrap(), LabOptions { full: false });
        assert_eq!(parse(&args("--full")).unwrap(), LabOptions { full: true });
        let err = parse(&args("--fast")).unwrap_err();
        assert!(err.to_string().contains("`--fast`"), "{err}");
        assert!(parse(&args("--full --full")).is_err());
    }

    fn lines(cmds: &[(&str, ToolCommand)]) -> Vec<String> {
        cmds.iter()
            .map(|(n, c)| format!("{n}: {}", c.display()))
            .collect()
    }

    #[test]
    fn the_ci_set_is_the_test_lab_phase() {
        let c = commands(Path::new("/repo"), false, FULL_ONLY_SCENARIOS);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, SCENARIOS_PHASE);
        let filter = format!("not ({})", binaries(FULL_ONLY_SCENARIOS));
        let want: Vec<std::ffi::OsString> = LAB_PHASE
            .1
            .iter()
            .copied()
            .chain(["-E", filter.as_str()])
            .map(std::ffi::OsString::from)
            .collect();
        assert_eq!(c[0].1.args, want);
    }

    #[test]
    fn full_adds_the_bench_with_the_doc() {
        let c = lines(&commands(Path::new("/repo"), true, &[]));
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(
            c[1].starts_with(BENCH_PHASE)
                && c[1].ends_with(
                    "run -p cairn-lab --bin cairn-lab -- bench --update-doc /repo/docs/benchmarks.md"
                ),
            "{c:?}"
        );
    }

    #[test]
    fn full_only_scenarios_leave_the_ci_set_and_run_with_full() {
        let only = ["cluster", "migrate"];
        let ci = lines(&commands(Path::new("/r"), false, &only));
        assert_eq!(ci.len(), 1);
        assert!(
            ci[0].ends_with("--no-fail-fast -E not (binary(=cluster) | binary(=migrate))"),
            "{ci:?}"
        );
        let full = lines(&commands(Path::new("/r"), true, &only));
        assert_eq!(full.len(), 3);
        assert!(full[1].starts_with(FULL_ONLY_PHASE), "{full:?}");
        assert!(
            full[1].ends_with("--no-fail-fast -E binary(=cluster) | binary(=migrate)"),
            "{full:?}"
        );
        assert!(full[2].starts_with(BENCH_PHASE));
    }

    fn with_artifacts() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: dir.path().to_path_buf(),
        };
        std::fs::create_dir_all(paths.out()).unwrap();
        assert!(missing_artifact(&paths.out()).is_some());
        for f in LAB_ARTIFACTS {
            std::fs::write(paths.out().join(f), b"x").unwrap();
        }
        assert_eq!(missing_artifact(&paths.out()), None);
        (dir, paths)
    }

    #[test]
    fn runs_the_scenarios_then_the_bench_without_rebuilding_a_present_image() {
        let (_dir, paths) = with_artifacts();
        let mut r = RecordingRunner::default();
        run(&mut r, &paths, LabOptions { full: true }).unwrap();
        let l = r.lines();
        assert_eq!(l.len(), 3, "{l:?}");
        assert!(l[0].contains("nextest run -p cairn-lab --run-ignored only"));
        assert!(l[1].contains("-E binary(=cluster_lab)"), "{l:?}");
        assert!(l[2].contains("-- bench --update-doc"), "{l:?}");

        let mut r = RecordingRunner::default();
        run(&mut r, &paths, LabOptions { full: false }).unwrap();
        assert_eq!(r.lines().len(), 1);
    }

    #[test]
    fn a_failed_scenario_still_lets_full_run_the_bench() {
        let (_dir, paths) = with_artifacts();
        let mut r = RecordingRunner {
            fail: Some(cargo()),
            ..Default::default()
        };
        let err = run(&mut r, &paths, LabOptions { full: true }).unwrap_err();
        assert!(err.to_string().contains("nextest"), "{err}");
        assert_eq!(r.calls.len(), 3, "the bench ran after the failures");
        let mut r = RecordingRunner {
            fail: Some(cargo()),
            ..Default::default()
        };
        assert!(run(&mut r, &paths, LabOptions { full: false }).is_err());
        assert_eq!(r.calls.len(), 1);
    }
}
