//! xtask: the Cairn build pipeline (`cargo xtask image`), the full test run (`cargo xtask test`) and the QEMU lab with its boot bench (`cargo xtask lab`).

mod base;
mod bench_api;
mod cargo_build;
mod elf;
mod fscopy;
mod info;
mod initramfs;
mod lab_cmd;
mod login_flood;
mod module_cycles;
mod modules;
mod paths;
mod pipeline;
mod prune;
mod runner;
mod services;
mod squashfs;
mod stage;
mod stall;
mod test_cmd;
mod timing;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::module_cycles::Scope;
use crate::paths::Paths;
use crate::pipeline::ImageOptions;
use crate::runner::SystemRunner;
use crate::timing::Phases;

const USAGE: &str = "usage: cargo xtask image [--prebuilt DIR] [--rebuild-base]
       cargo xtask test
       cargo xtask lab [--full]
       cargo xtask check-cycles [--with-tests]
       cargo xtask bench-api [--stalled | --login-flood]

image  build cairn-init and cairnd (static), the cached Debian base, the squashfs root,
       the initramfs and build/out/cairn.img (plus vmlinuz, initrd, rootfs.squashfs,
       cairn.img.zst and image-info.json)
test   fmt, the import cycle check, clippy, unit and host tests, the image, then the QEMU
       lab scenarios
lab    the QEMU lab scenarios as `test` runs them (the image first if build/out lacks it);
       --full also runs the scenarios outside the CI set (none yet: later multi-node
       ones) and then the boot bench (`cairn-lab bench --update-doc docs/benchmarks.md`),
       which prints each figure beside its target and replaces the boot block of
       docs/benchmarks.md with its results
check-cycles  list every import cycle between the modules of each workspace crate (every
       `use`, `crate::`/`super::`/`self::` path and re-export); fails if there is one;
       test-only code is left out unless --with-tests
bench-api  wrk against a release cairnd pinned to one core: p50/p99 latency, throughput
       and RSS (docs/benchmarks.md); --stalled: health's p99 with 1,000 stalled
       connections held open from another address against none, and the ratio;
       --login-flood: cairnd's RSS before and after 64 failed logins from 64
       addresses, then 64 more that wait out each Retry-After until checked";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
enum Task {
    Image(ImageOptions),
    Test,
    Lab(lab_cmd::LabOptions),
    CheckCycles(Scope),
    BenchApi,
    BenchApiStalled,
    BenchApiLoginFlood,
    Help,
}

fn parse(args: &[String]) -> Result<Task> {
    let Some((task, rest)) = args.split_first() else {
        return Ok(Task::Help);
    };
    match task.as_str() {
        "image" => {
            let mut opts = ImageOptions::default();
            let mut iter = rest.iter();
            while let Some(arg) = iter.next() {
                match arg.as_str() {
                    "--rebuild-base" => opts.rebuild_base = true,
                    "--prebuilt" => {
                        let dir = iter.next().context("--prebuilt: missing directory")?;
                        opts.prebuilt = Some(PathBuf::from(dir));
                    }
                    other => bail!("image: unknown option `{other}`\n{USAGE}"),
                }
            }
            Ok(Task::Image(opts))
        }
        "test" if rest.is_empty() => Ok(Task::Test),
        "test" => bail!("test: takes no options\n{USAGE}"),
        "lab" => Ok(Task::Lab(
            lab_cmd::parse(rest).map_err(|e| anyhow::anyhow!("{e}\n{USAGE}"))?,
        )),
        "check-cycles" if rest.is_empty() => Ok(Task::CheckCycles(Scope::Code)),
        "check-cycles" if rest == ["--with-tests"] => Ok(Task::CheckCycles(Scope::WithTests)),
        "check-cycles" => bail!("check-cycles: the only option is --with-tests\n{USAGE}"),
        "bench-api" if rest.is_empty() => Ok(Task::BenchApi),
        "bench-api" if rest == ["--stalled"] => Ok(Task::BenchApiStalled),
        "bench-api" if rest == ["--login-flood"] => Ok(Task::BenchApiLoginFlood),
        "bench-api" => bail!("bench-api: the options are --stalled or --login-flood\n{USAGE}"),
        "help" | "--help" | "-h" => Ok(Task::Help),
        other => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let paths = Paths::from_manifest_dir();
    match parse(&args)? {
        Task::Help => println!("{USAGE}"),
        Task::Test => test_cmd::run(&mut SystemRunner, &paths)?,
        Task::Lab(opts) => lab_cmd::run(&mut SystemRunner, &paths, opts)?,
        Task::CheckCycles(scope) => module_cycles::run(&paths.root, scope)?,
        Task::BenchApi => bench_api::run(&paths)?,
        Task::BenchApiStalled => bench_api::run_stalled(&paths)?,
        Task::BenchApiLoginFlood => bench_api::run_login_flood(&paths)?,
        Task::Image(opts) => {
            let mut phases = Phases::default();
            let result = pipeline::run(
                &mut SystemRunner,
                &mut SystemRunner,
                &paths,
                &opts,
                &mut phases,
            );
            println!("xtask: image phases:\n{}", phases.summary());
            let info = result?;
            println!(
                "xtask: built {} (compressed {} MiB), details in {}",
                paths.out().join("cairn.img").display(),
                info.compressed_image_mib,
                paths.out().join("image-info.json").display()
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_tasks_and_options() {
        assert_eq!(parse(&args("")).unwrap(), Task::Help);
        assert_eq!(parse(&args("test")).unwrap(), Task::Test);
        assert_eq!(
            parse(&args("lab")).unwrap(),
            Task::Lab(lab_cmd::LabOptions { full: false })
        );
        assert_eq!(
            parse(&args("lab --full")).unwrap(),
            Task::Lab(lab_cmd::LabOptions { full: true })
        );
        let err = parse(&args("lab --quick")).unwrap_err().to_string();
        assert!(err.contains("--quick") && err.contains("usage:"), "{err}");
        assert_eq!(parse(&args("bench-api")).unwrap(), Task::BenchApi);
        assert_eq!(
            parse(&args("bench-api --stalled")).unwrap(),
            Task::BenchApiStalled
        );
        assert_eq!(
            parse(&args("bench-api --login-flood")).unwrap(),
            Task::BenchApiLoginFlood
        );
        assert!(parse(&args("bench-api --fast")).is_err());
        assert!(parse(&args("bench-api --stalled --login-flood")).is_err());
        assert_eq!(
            parse(&args("image --prebuilt /b --rebuild-base")).unwrap(),
            Task::Image(ImageOptions {
                prebuilt: Some(PathBuf::from("/b")),
                rebuild_base: true
            })
        );
    }

    #[test]
    fn parses_check_cycles() {
        assert_eq!(
            parse(&args("check-cycles")).unwrap(),
            Task::CheckCycles(Scope::Code)
        );
        assert_eq!(
            parse(&args("check-cycles --with-tests")).unwrap(),
            Task::CheckCycles(Scope::WithTests)
        );
        assert!(parse(&args("check-cycles --all")).is_err());
    }

    #[test]
    fn rejects_unknown_input_by_name() {
        let err = parse(&args("image --fast")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("image: unknown option `--fast`"),
            "{err}"
        );
        assert!(parse(&args("deploy"))
            .unwrap_err()
            .to_string()
            .contains("`deploy`"));
        assert!(parse(&args("image --prebuilt")).is_err());
    }
}
