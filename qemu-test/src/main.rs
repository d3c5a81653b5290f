//! The `cairn-lab` command: `run` boots one node for a person to use; `bench` prints the boot benchmark.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_lab::bench::{self, BenchOptions};
use cairn_lab::{BootMode, Deadline, Lab, NodeConfig};

const USAGE: &str = "usage:
  cairn-lab run [--port PORT] [--direct]      boot one node (UEFI) and print its setup URL and code
  cairn-lab bench [--runs N] [--cpus N] [--memory MIB]
                                              boot timeline and RSS, cairn-init vs systemd";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("bench") => cmd_bench(&args[1..]),
        Some("-h") | Some("--help") | Some("help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// Value of `--name VALUE` in `args`.
fn opt<T: std::str::FromStr>(args: &[String], name: &str) -> Result<Option<T>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args
                .get(i + 1)
                .with_context(|| format!("{name} needs a value"))?;
            v.parse()
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{name}: {v:?} is not valid"))
        }
    }
}

fn check_args(args: &[String], known_values: &[&str], known_flags: &[&str]) -> Result<()> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if known_values.contains(&a) {
            i += 2;
        } else if known_flags.contains(&a) {
            i += 1;
        } else {
            bail!("unknown argument {a:?}\n{USAGE}");
        }
    }
    Ok(())
}

fn install_signal_handlers() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }
            .with_context(|| format!("installing a {sig} handler"))?;
    }
    Ok(())
}

fn cmd_run(args: &[String]) -> Result<()> {
    check_args(args, &["--port"], &["--direct"])?;
    let port: u16 = opt(args, "--port")?.unwrap_or(8443);
    let mode = if args.iter().any(|a| a == "--direct") {
        BootMode::DirectKernel
    } else {
        BootMode::Uefi
    };
    install_signal_handlers()?;
    let lab = Lab::new("run").context("preparing the lab")?;
    let cfg = NodeConfig::new("node1", mode).api_port(port).size(2, 2048);
    let mut node = lab.start(cfg).context("starting the node")?;
    println!(
        "Booting Cairn under QEMU (TCG); console log: {}",
        node.dir().join("serial.log").display()
    );
    let setup = node
        .wait_setup(Deadline::secs(300))
        .context("waiting for the CAIRN SETUP block on the console")?;
    node.wait_health(Deadline::secs(120))
        .context("waiting for the API to answer on the forwarded port")?;
    println!("Setup URL: https://127.0.0.1:{port}/");
    println!("Setup code: {}", setup.code);
    println!("Certificate fingerprint: {}", setup.fingerprint_text);
    println!("(the node's own addresses: {})", setup.urls.join(" "));
    println!("Press Ctrl-C to power the node down.");
    while !STOP.load(Ordering::SeqCst) {
        if !node.is_running() {
            bail!("QEMU exited unexpectedly; see {}", node.dir().display());
        }
        // poll the Ctrl-C flag and QEMU's liveness
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("Powering down…");
    node.powerdown(Deadline::secs(60))
        .context("powering the node down (ACPI) within 60 s")?;
    println!("Node powered down.");
    node.finish();
    Ok(())
}

fn cmd_bench(args: &[String]) -> Result<()> {
    check_args(args, &["--runs", "--cpus", "--memory"], &[])?;
    let defaults = BenchOptions::default();
    let options = BenchOptions {
        runs: opt(args, "--runs")?.unwrap_or(defaults.runs),
        cpus: opt(args, "--cpus")?.unwrap_or(defaults.cpus),
        memory_mib: opt(args, "--memory")?.unwrap_or(defaults.memory_mib),
    };
    if options.runs == 0 || !(1..=2).contains(&options.cpus) {
        bail!("--runs must be ≥ 1 and --cpus 1 or 2");
    }
    let lab = Lab::new("bench").context("preparing the lab")?;
    let report = bench::run(&lab, &options, |line| eprintln!("{line}"))
        .inspect_err(|_| lab.mark_failed())?;
    println!("{}", report.text());
    println!("Markdown for docs/benchmarks.md:\n");
    println!("{}", report.markdown());
    std::fs::write(lab.dir().join("bench.md"), report.markdown())
        .with_context(|| format!("writing {}", lab.dir().join("bench.md").display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse() {
        let a = v(&["--runs", "5", "--cpus", "2"]);
        assert_eq!(opt::<usize>(&a, "--runs").unwrap(), Some(5));
        assert_eq!(opt::<u8>(&a, "--cpus").unwrap(), Some(2));
        assert_eq!(opt::<u32>(&a, "--memory").unwrap(), None);
        assert!(opt::<usize>(&v(&["--runs"]), "--runs").is_err());
        assert!(opt::<usize>(&v(&["--runs", "x"]), "--runs").is_err());
        assert!(check_args(&a, &["--runs", "--cpus"], &[]).is_ok());
        assert!(check_args(&v(&["--bogus"]), &["--runs"], &[]).is_err());
    }
}
