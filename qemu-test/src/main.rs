//! The `cairn-lab` command: `run` boots nodes for a person to use; `bench` prints the boot benchmark.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_lab::bench::{self, BenchOptions};
use cairn_lab::{
    Accel, BootMode, Bus, ClusterOptions, Deadline, Lab, LabCluster, LabNic, NicSpec, Node,
    NodeConfig,
};

const USAGE: &str = "usage:
  cairn-lab run [--nodes N] [--port PORT] [--direct]
                                              boot N nodes (default 1; UEFI) on ports PORT,
                                              PORT+1, … (default 8443) and print their setup
                                              URLs, codes, the accelerator (KVM or TCG) and
                                              their cluster addresses: each node has two
                                              NICs on the lab's cluster bridge (10.77.0.0/24),
                                              one on its replication bridge (10.78.0.0/24),
                                              two spare NICs, three blank data disks and a
                                              watchdog (lab bridges need root)
  cairn-lab bench [--runs N] [--cpus N] [--memory MIB] [--update-doc PATH]
                                              boot timeline, per-service start → ready,
                                              cairnd's domains and memory after setup,
                                              cairn-init vs systemd, each figure beside its
                                              target (issue 12) and the missed ones listed;
                                              --update-doc replaces the block between
                                              <!-- bench:boot:begin --> and
                                              <!-- bench:boot:end --> in PATH
                                              (docs/benchmarks.md) with the results";

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

/// At most this many nodes for `run --nodes` (2 GiB each).
const MAX_RUN_NODES: u16 = 8;

/// The nodes `cairn-lab run` booted: a cluster lab (lab bridges, root), or one plain node
/// when lab bridges cannot be made here.
enum Booted {
    Cluster(Box<LabCluster>),
    Single(Box<Node>),
}

impl Booted {
    fn nodes(&mut self) -> Vec<&mut Node> {
        match self {
            Booted::Cluster(c) => c.nodes().iter_mut().map(|n| n.node()).collect(),
            Booted::Single(n) => vec![n.as_mut()],
        }
    }

    fn finish(self) {
        match self {
            Booted::Cluster(c) => c.finish(),
            Booted::Single(n) => n.finish(),
        }
    }
}

fn cmd_run(args: &[String]) -> Result<()> {
    check_args(args, &["--port", "--nodes"], &["--direct"])?;
    let port: u16 = opt(args, "--port")?.unwrap_or(8443);
    let nodes: u16 = opt(args, "--nodes")?.unwrap_or(1);
    if !(1..=MAX_RUN_NODES).contains(&nodes) {
        bail!("--nodes must be 1 to {MAX_RUN_NODES}");
    }
    let ports = node_ports(port, nodes)?;
    let mode = if args.iter().any(|a| a == "--direct") {
        BootMode::DirectKernel
    } else {
        BootMode::Uefi
    };
    // Lab bridges need root; one node can do without them (its spare NICs on user networking).
    let no_bridges = LabCluster::unavailable();
    if let (Some(why), true) = (&no_bridges, nodes > 1) {
        bail!("{nodes} nodes need the cluster lab's bridges: {why}");
    }
    install_signal_handlers()?;
    let lab = Lab::new("run").context("preparing the lab")?;
    let accel = lab
        .accel()
        .context("choosing the accelerator (KVM or TCG)")?
        .clone();
    println!("Accelerator: {}", accel.summary());
    if accel.accel == Accel::Kvm {
        println!("  {}", accel.nested_note);
    }
    let mut booted = match &no_bridges {
        None => {
            let opts = ClusterOptions {
                mode,
                cpus: 2,
                memory_mib: 2048,
                first_api_port: Some(port),
                ..ClusterOptions::default()
            };
            Booted::Cluster(Box::new(
                LabCluster::start(&lab, nodes.into(), &opts)
                    .context("starting the nodes on the cluster lab's bridges")?,
            ))
        }
        Some(why) => {
            println!("No lab bridges ({why}): node1's two spare NICs are on QEMU user networking.");
            Booted::Single(Box::new(
                lab.start(single_node_config(mode, port))
                    .context("starting node1")?,
            ))
        }
    };
    for node in booted.nodes() {
        println!(
            "Booting {} under QEMU ({}); console log: {}",
            node.name(),
            accel.accel,
            node.dir().join("serial.log").display()
        );
    }
    let several = nodes > 1;
    for (i, (node, port)) in booted.nodes().into_iter().zip(&ports).enumerate() {
        let setup = node.wait_setup(Deadline::secs(300)).with_context(|| {
            format!(
                "{}: waiting for the CAIRN SETUP block on the console",
                node.name()
            )
        })?;
        node.wait_ready(Deadline::secs(120)).with_context(|| {
            format!(
                "{}: waiting for the API to answer on the forwarded port and its domains to start",
                node.name()
            )
        })?;
        println!(
            "{}",
            setup_url_line(node.name(), *port, accel.accel, several)
        );
        println!("Setup code: {}", setup.code);
        println!("Certificate fingerprint: {}", setup.fingerprint_text);
        println!("(the node's own addresses: {})", setup.urls.join(" "));
        if no_bridges.is_none() {
            println!("{}", cluster_lines(i + 1));
        }
        println!(
            "Data disks (blank): {}",
            cairn_lab::cluster_lab::disk_serials(i + 1).join(", ")
        );
    }
    println!(
        "Press Ctrl-C to power the {} down.",
        if several { "nodes" } else { "node" }
    );
    while !STOP.load(Ordering::SeqCst) {
        for node in booted.nodes() {
            if !node.is_running() {
                bail!(
                    "QEMU of {} exited unexpectedly; see {}",
                    node.name(),
                    node.dir().display()
                );
            }
        }
        // poll the Ctrl-C flag and QEMU's liveness
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("Powering down…");
    for node in booted.nodes() {
        node.qmp()
            .and_then(|q| q.system_powerdown(Deadline::secs(10)))
            .with_context(|| format!("{}: pressing the power button", node.name()))?;
    }
    for node in booted.nodes() {
        node.wait_exit(Deadline::secs(60))
            .with_context(|| format!("{}: powering down (ACPI) within 60 s", node.name()))?;
        println!("{} powered down.", node.name());
    }
    booted.finish();
    Ok(())
}

/// node1 without lab bridges: today's node plus the three blank data disks and two spare
/// NICs every `cairn-lab run` node gets (the spares on QEMU user networking).
fn single_node_config(mode: BootMode, port: u16) -> NodeConfig {
    let mb = cairn_lab::cluster_lab::DATA_DISK_MIB;
    let mut cfg = NodeConfig::new("node1", mode)
        .api_port(port)
        .size(2, 2048)
        .disk(Bus::Virtio, mb)
        .disk(Bus::Ahci, mb)
        .disk(Bus::Nvme, mb)
        .nic(NicSpec::User)
        .nic(NicSpec::User);
    for (d, serial) in cfg
        .disks
        .iter_mut()
        .zip(cairn_lab::cluster_lab::disk_serials(1))
    {
        d.serial = serial;
    }
    cfg
}

/// What `run` prints about node `index`'s lab networks (the cluster lab's address plan).
fn cluster_lines(index: usize) -> String {
    let addr = |nic: LabNic| {
        nic.address(index)
            .map(|a| a.to_string())
            .unwrap_or_else(|| "none".into())
    };
    format!(
        "Cluster address: {} (NIC a {}; NIC b {} {}, for a bond), replication {} ({}), \
         spare NICs {} {} (no DHCP)",
        addr(LabNic::ClusterA),
        LabNic::ClusterA.mac(index),
        addr(LabNic::ClusterB),
        LabNic::ClusterB.mac(index),
        addr(LabNic::Replication),
        LabNic::Replication.mac(index),
        LabNic::SpareA.mac(index),
        LabNic::SpareB.mac(index),
    )
}

/// The forwarded API ports of `nodes` nodes from `first` on.
fn node_ports(first: u16, nodes: u16) -> Result<Vec<u16>> {
    (0..nodes)
        .map(|i| {
            first
                .checked_add(i)
                .with_context(|| format!("--port {first} leaves no port for node{}", i + 1))
        })
        .collect()
}

/// `Setup URL: https://127.0.0.1:PORT/ (KVM)`, with the node's name when there are several.
fn setup_url_line(node: &str, port: u16, accel: Accel, several: bool) -> String {
    let who = if several {
        format!("{node}: ")
    } else {
        String::new()
    };
    format!("{who}Setup URL: https://127.0.0.1:{port}/ (QEMU accelerator: {accel})")
}

fn cmd_bench(args: &[String]) -> Result<()> {
    check_args(args, &["--runs", "--cpus", "--memory", "--update-doc"], &[])?;
    let update_doc: Option<PathBuf> = opt(args, "--update-doc")?;
    if let Some(path) = &update_doc {
        // Checked before an hour of boots, not after: the file and its markers must exist.
        let doc = std::fs::read_to_string(path)
            .with_context(|| format!("--update-doc: reading {}", path.display()))?;
        bench::replace_block(&doc, "")
            .map_err(|e| anyhow::anyhow!("--update-doc {}: {e}", path.display()))?;
    }
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
    let ctx = bench::DocContext {
        when: cairn_lab::timestamp::now_readable(),
        commit: git_commit(),
        command: bench_command_line(args, &cairn_lab::artifacts::workspace_root()),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
    };
    let section = report.doc_section(&ctx);
    println!("{}", report.text());
    println!("Markdown for docs/benchmarks.md:\n");
    println!("{section}");
    std::fs::write(lab.dir().join("bench.md"), &section)
        .with_context(|| format!("writing {}", lab.dir().join("bench.md").display()))?;
    if let Some(path) = &update_doc {
        bench::update_doc(path, &section)?;
        println!("Updated the boot block of {}", path.display());
    }
    println!("{}", report.verdict_summary());
    Ok(())
}

/// The bench's command line as the document shows it: paths under the repository root
/// relative to it (xtask passes an absolute path).
fn bench_command_line(args: &[String], root: &std::path::Path) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            std::path::Path::new(a)
                .strip_prefix(root)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| a.clone())
        })
        .collect();
    format!("cairn-lab bench {}", shown.join(" "))
        .trim_end()
        .to_string()
}

/// `git rev-parse --short HEAD` here, or `unknown` (not a repository, no git).
fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
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
        let b = v(&["--runs", "3", "--update-doc", "docs/benchmarks.md"]);
        assert_eq!(
            opt::<PathBuf>(&b, "--update-doc").unwrap(),
            Some(PathBuf::from("docs/benchmarks.md"))
        );
        assert!(check_args(&b, &["--runs", "--cpus", "--memory", "--update-doc"], &[]).is_ok());
    }

    #[test]
    fn bench_refuses_a_doc_without_markers_before_booting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.md");
        std::fs::write(&path, "no markers\n").unwrap();
        let err = cmd_bench(&v(&["--update-doc", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("found 0 and 0"), "{err}");
        let err = cmd_bench(&v(&["--update-doc", "/nonexistent/b.md"])).unwrap_err();
        assert!(
            err.to_string().contains("reading /nonexistent/b.md"),
            "{err:#}"
        );
        assert!(!git_commit().is_empty());
        assert_eq!(
            bench_command_line(
                &v(&["--update-doc", "/repo/docs/benchmarks.md"]),
                std::path::Path::new("/repo")
            ),
            "cairn-lab bench --update-doc docs/benchmarks.md"
        );
        assert_eq!(
            bench_command_line(&[], std::path::Path::new("/repo")),
            "cairn-lab bench"
        );
    }

    #[test]
    fn run_prints_the_cluster_plan_and_a_single_node_gets_disks_and_spares() {
        let line = cluster_lines(2);
        assert!(
            line.starts_with("Cluster address: 10.77.0.12 (NIC a 52:54:00:77:02:01; NIC b 10.77.0.22 52:54:00:77:02:02"),
            "{line}"
        );
        assert!(
            line.contains("replication 10.78.0.12 (52:54:00:78:02:01)"),
            "{line}"
        );
        assert!(
            line.contains("spare NICs 52:54:00:79:02:01 52:54:00:79:02:02"),
            "{line}"
        );
        let cfg = single_node_config(BootMode::Uefi, 8443);
        assert_eq!(cfg.api_port, Some(8443));
        assert_eq!(cfg.disks.len(), 3);
        assert_eq!(cfg.disks[0].serial, "NODE1VIRTIO");
        assert_eq!(
            cfg.nics,
            [NicSpec::Management, NicSpec::User, NicSpec::User]
        );
        assert!(cfg.watchdog);
    }

    #[test]
    fn run_ports_and_url_lines() {
        assert_eq!(node_ports(8443, 3).unwrap(), [8443, 8444, 8445]);
        assert!(node_ports(65535, 2).is_err());
        assert_eq!(
            setup_url_line("node1", 8443, Accel::Tcg, false),
            "Setup URL: https://127.0.0.1:8443/ (QEMU accelerator: TCG)"
        );
        assert_eq!(
            setup_url_line("node2", 8444, Accel::Kvm, true),
            "node2: Setup URL: https://127.0.0.1:8444/ (QEMU accelerator: KVM)"
        );
    }
}
