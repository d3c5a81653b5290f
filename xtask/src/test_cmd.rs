//! `cargo xtask test`: format, the import cycle check, lint, unit and host tests, browser and
//! API-vs-spec tests, the image, then the QEMU lab scenarios.

use anyhow::Result;

use crate::cargo_build::cargo;
use crate::module_cycles;
use crate::paths::Paths;
use crate::pipeline::{self, ImageOptions};
use crate::runner::{Runner, SystemRunner, ToolCommand};
use crate::timing::Phases;

/// The cargo phases before the image, in order: (name, cargo arguments).
pub const FAST_PHASES: &[(&str, &[&str])] = &[
    ("fmt", &["fmt", "--all", "--", "--check"]),
    (
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ),
    ("unit + host tests", &["nextest", "run", "--workspace"]),
];

/// The import cycle check (`cargo xtask check-cycles`), run in-process right after `fmt`: it
/// takes a second, so it fails before clippy and the tests take their minutes.
pub const CYCLES_PHASE: &str = "import cycles";

/// The browser test of the web UI (Debian's Chromium driven by playwright-core against a
/// local cairnd), relative to the repository root; it installs what it is missing.
pub const UI_PHASE: (&str, &str) = ("web UI (Chromium)", "services/api/ui-tests/run.sh");

/// schemathesis against the OpenAPI spec on a local debug cairnd, unclaimed and then set up
/// with an API token: no 5xx, every response as the spec says (relative to the root).
pub const FUZZ_PHASE: (&str, &str) = ("API vs spec (schemathesis)", "services/api/schemathesis.sh");

/// The lab phase after the image: every scenario runs, so one failure does not hide others;
/// nextest's `ci` profile (.config/nextest.toml) runs a failed scenario once more and reports
/// it FLAKY with the failed attempt's output.
pub const LAB_PHASE: (&str, &[&str]) = (
    "lab scenarios (QEMU)",
    &[
        "nextest",
        "run",
        "-p",
        "cairn-lab",
        "--run-ignored",
        "only",
        "--profile",
        "ci",
        "--no-fail-fast",
    ],
);

/// Runs every phase, stopping at the first failure; prints the timing table either way.
pub fn run(runner: &mut dyn Runner, paths: &Paths) -> Result<()> {
    let mut phases = Phases::default();
    let result = run_phases(runner, paths, &mut phases);
    println!("xtask: test phases:\n{}", phases.summary());
    result
}

fn cargo_phase(
    runner: &mut dyn Runner,
    phases: &mut Phases,
    (name, args): (&str, &[&str]),
) -> Result<()> {
    phases.run(name, || {
        runner.run(&ToolCommand::new(&cargo()).args(args.iter().copied()))
    })
}

fn run_phases(runner: &mut dyn Runner, paths: &Paths, phases: &mut Phases) -> Result<()> {
    for phase in FAST_PHASES {
        cargo_phase(runner, phases, *phase)?;
        if phase.0 == "fmt" {
            phases.run(CYCLES_PHASE, || {
                module_cycles::run(&paths.root, module_cycles::Scope::Code)
            })?;
        }
    }
    let ui_script = paths.root.join(UI_PHASE.1);
    phases.run(UI_PHASE.0, || {
        runner.run(&ToolCommand::new(&ui_script.display().to_string()))
    })?;
    let fuzz_script = paths.root.join(FUZZ_PHASE.1);
    phases.run(FUZZ_PHASE.0, || {
        runner.run(&ToolCommand::new(&fuzz_script.display().to_string()))
    })?;
    let info = pipeline::run(
        runner,
        &mut SystemRunner,
        paths,
        &ImageOptions::default(),
        phases,
    )?;
    println!("xtask: compressed image: {} MiB", info.compressed_image_mib);
    // The lab's disk images live on the host disk, which other work shares: print its room,
    // so a scenario that QEMU paused for a full disk can be read against it.
    let build = paths.root.join("build").display().to_string();
    if let Err(e) = runner.run(&ToolCommand::new("df").args(["-h", build.as_str()])) {
        println!("xtask: df: {e:#}");
    }
    // CI runs every scenario but the full-only ones (`cargo xtask lab --full` runs those).
    let filter = format!("not ({})", binaries(FULL_ONLY_SCENARIOS));
    phases.run(LAB_PHASE.0, || {
        runner.run(
            &ToolCommand::new(&cargo())
                .args(LAB_PHASE.1.iter().copied())
                .args(["-E", filter.as_str()]),
        )
    })
}

/// Scenario test binaries (`qemu-test/tests/NAME.rs`) that CI leaves out and only
/// `cargo xtask lab --full` runs. CI keeps the single-node scenarios and `cluster_form`;
/// `cluster_lab` (the lab's own smoke test, 1.5–3.5 min of both cores) is covered by it;
/// `cluster_witness` (two nodes and a witness, a power-off), `cluster_faults` and
/// `cluster_replace` (three nodes each, with faults), `replication` (two nodes, a VM, a cut
/// replication link, a reboot) and `replication_move` (three nodes) are a full run's.
pub const FULL_ONLY_SCENARIOS: &[&str] = &[
    "cluster_lab",
    "cluster_witness",
    "cluster_faults",
    "cluster_replace",
    "replication",
    "replication_move",
];

/// A nextest filterset naming these test binaries.
pub fn binaries(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("binary(={n})"))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::RecordingRunner;

    #[test]
    fn fast_phases_run_in_order_and_stop_at_the_first_failure() {
        let mut r = RecordingRunner {
            fail: Some(cargo()),
            ..Default::default()
        };
        let err = run(&mut r, &Paths::from_manifest_dir()).unwrap_err();
        assert!(err.to_string().contains("fmt --all -- --check"), "{err}");
        assert_eq!(r.calls.len(), 1);
    }

    #[test]
    fn lab_phase_runs_only_the_ignored_lab_tests() {
        assert_eq!(
            LAB_PHASE.1,
            [
                "nextest",
                "run",
                "-p",
                "cairn-lab",
                "--run-ignored",
                "only",
                "--profile",
                "ci",
                "--no-fail-fast"
            ]
        );
        assert_eq!(FAST_PHASES.len(), 3);
        assert!(Paths::from_manifest_dir().root.join(UI_PHASE.1).is_file());
        assert!(Paths::from_manifest_dir().root.join(FUZZ_PHASE.1).is_file());
        assert!(FAST_PHASES[1].1.ends_with(&["-D", "warnings"]));
    }
}
