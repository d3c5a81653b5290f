//! `cairn-virt [URI]`: the libvirt helper of cairnd. Serves cairn-vm's `Hypervisor` over stdin/stdout (newline-delimited JSON, `cairn_vm::protocol`) with the real libvirt connection, so cairnd does not load libvirt's libraries; exits when stdin closes or its parent dies.

use anyhow::{bail, Context, Result};
use cairn_vm::hypervisor::SYSTEM_URI;
use cairn_vm::libvirt::Libvirt;
use nix::sys::signal::Signal;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn-virt: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str =
    "usage: cairn-virt [URI]   (default qemu:///system; requests on stdin, answers on stdout)";

/// The libvirt URI from the arguments.
fn uri(args: &[String]) -> Result<String> {
    match args {
        [] => Ok(SYSTEM_URI.to_string()),
        [a] if a == "-h" || a == "--help" => bail!("{USAGE}"),
        [a] if a.starts_with('-') => bail!("unknown option {a:?}\n{USAGE}"),
        [uri] => Ok(uri.clone()),
        _ => bail!("expected at most one argument, the libvirt URI\n{USAGE}"),
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let uri = uri(&args)?;
    // Dies with cairnd: the kernel sends SIGKILL when the thread that started us ends (cairnd
    // starts us from a thread that lives as long as our stdout is read).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")?;
    if nix::unistd::getppid() == nix::unistd::Pid::from_raw(1) {
        bail!("the parent is already gone");
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .init();
    // Connects at the first request (and again after libvirtd restarts).
    let hv = Libvirt::new(&uri);
    tracing::debug!("serving libvirt at {uri}");
    cairn_vm::serve::serve(&hv, std::io::stdin().lock(), std::io::stdout())
        .context("reading requests from stdin")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_uri_is_the_one_argument_or_the_system_one() {
        assert_eq!(uri(&[]).unwrap(), "qemu:///system");
        assert_eq!(uri(&args(&["test:///default"])).unwrap(), "test:///default");
        let e = uri(&args(&["--verbose"])).unwrap_err().to_string();
        assert!(e.contains("unknown option \"--verbose\""), "{e}");
        assert!(uri(&args(&["a", "b"])).is_err());
    }
}
