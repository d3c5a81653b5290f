//! The lab's accelerator: KVM where a probe boot shows it works, else TCG; decided once per lab run (decision 0020).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::artifacts::{workspace_root, QEMU};
use crate::deadline::Deadline;
use crate::error::LabError;
use crate::timestamp::now_compact;

/// `CAIRN_LAB_ACCEL=kvm|tcg` forces the accelerator: no probe.
pub const ENV_FORCE: &str = "CAIRN_LAB_ACCEL";
/// Names the lab run whose processes share one probe (set it to group runs outside nextest).
pub const ENV_RUN_ID: &str = "CAIRN_LAB_RUN_ID";
/// What nextest sets in every test process of one `cargo nextest run` (the same UUID).
pub const ENV_NEXTEST_RUN_ID: &str = "NEXTEST_RUN_ID";
/// How long the probe waits for the kernel's first console line under KVM.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(20);
/// The kernel's first console line (`[    0.000000] Linux version 6.1.0-…`).
pub const FIRST_LINE: &str = r"Linux version ";
/// Where the run's decisions and probe logs live, under the workspace.
pub const CACHE_DIR: &str = "build/lab-results/accel-probe";

/// A QEMU accelerator the lab runs nodes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization: `-accel kvm -cpu host` (the host CPU, nested VMX/SVM included
    /// where the host's kvm module allows it).
    Kvm,
    /// QEMU's emulator: `-accel tcg`.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg` (QEMU's and libvirt's name).
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// `KVM` or `TCG` (for people and benchmark lines).
    pub fn label(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        }
    }

    /// `kvm` or `tcg`, as `CAIRN_LAB_ACCEL` takes it (case-insensitive).
    pub fn parse(value: &str) -> Option<Accel> {
        match value.trim().to_ascii_lowercase().as_str() {
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }

    /// QEMU's accelerator and CPU arguments. Under KVM the CPU is the host's (`-cpu host`:
    /// VMX/SVM passed through when nested virtualization is enabled) unless the node asks for
    /// a model; under TCG QEMU's default (`qemu64`) unless the node asks for one.
    pub fn qemu_args(self, cpu_model: Option<&str>) -> Vec<String> {
        let mut a = vec!["-accel".to_string(), self.name().to_string()];
        let cpu = match self {
            Accel::Kvm => Some(cpu_model.unwrap_or("host")),
            Accel::Tcg => cpu_model,
        };
        if let Some(model) = cpu {
            a.push("-cpu".into());
            a.push(model.into());
        }
        a
    }
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// How a probe boot under KVM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The kernel printed its first console line: KVM runs a stock kernel here.
    FirstLine { after: Duration, line: String },
    /// QEMU could not start, or exited before the line (no /dev/kvm, a CPU feature KVM
    /// refuses, …).
    Failed { detail: String },
    /// Nothing on the console by the deadline (a paravirtual KVM hangs a stock kernel).
    Hung { waited: Duration },
}

/// How the accelerator was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// By `CAIRN_LAB_ACCEL`.
    Forced,
    /// By the probe boot.
    Probe,
}

/// The accelerator of one lab run, as recorded in the run's cache and in every node's
/// `accel.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub accel: Accel,
    pub source: Source,
    /// Why, in one line (the probe's outcome, or the variable that forced it).
    pub reason: String,
    /// How long the probe took, start of QEMU to decision (None when forced).
    pub probe_ms: Option<u64>,
    /// The probe's deadline.
    pub deadline_ms: u64,
    /// The lab run this decision belongs to (nextest's run id, or this process).
    pub run: String,
    /// Whether the host's kvm_intel / kvm_amd allows nested virtualization (None: unknown).
    pub nested: Option<bool>,
    /// The host's nested-virtualization setting and what it means for tenant VMs.
    pub nested_note: String,
}

impl Decision {
    /// The accelerator tenant VMs inside a node get: TCG under a TCG node (the lab forces
    /// it, the emulated CPU advertises SVM); under KVM, KVM when the host passes VMX/SVM
    /// through, else TCG (the node has no /dev/kvm); None when the host does not say.
    pub fn tenant_accel(&self) -> Option<Accel> {
        match (self.accel, self.nested) {
            (Accel::Tcg, _) => Some(Accel::Tcg),
            (Accel::Kvm, Some(true)) => Some(Accel::Kvm),
            (Accel::Kvm, Some(false)) => Some(Accel::Tcg),
            (Accel::Kvm, None) => None,
        }
    }

    /// One line for people: `TCG (probe 0.11 s: KVM does not work here: …)`.
    pub fn summary(&self) -> String {
        match self.probe_ms {
            Some(ms) => format!(
                "{} (probe {:.2} s: {})",
                self.accel,
                ms as f64 / 1000.0,
                self.reason
            ),
            None => format!("{} ({})", self.accel, self.reason),
        }
    }
}

/// The probe's decision from its outcome: KVM only when the kernel printed its first line.
pub fn decide(outcome: &ProbeOutcome) -> (Accel, String) {
    let kvm = Accel::Kvm.qemu_args(None).join(" ");
    match outcome {
        ProbeOutcome::FirstLine { after, line } => (
            Accel::Kvm,
            format!(
                "a kernel under `{kvm}` printed its first console line after {:.2} s: {}",
                after.as_secs_f64(),
                line.trim().chars().take(80).collect::<String>()
            ),
        ),
        ProbeOutcome::Failed { detail } => (
            Accel::Tcg,
            format!("KVM does not work here: {detail}"),
        ),
        ProbeOutcome::Hung { waited } => (
            Accel::Tcg,
            format!(
                "KVM hangs here: a kernel under `{kvm}` printed nothing in {:.1} s (a paravirtual KVM?)",
                waited.as_secs_f64()
            ),
        ),
    }
}

/// The forced accelerator from `CAIRN_LAB_ACCEL`'s value (unset or empty: none).
pub fn forced(value: Option<&str>) -> Result<Option<Accel>, LabError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => Accel::parse(v).map(Some).ok_or_else(|| LabError::Accel {
            detail: format!("{ENV_FORCE}={v:?} is neither kvm nor tcg"),
        }),
    }
}

/// The run's key from `CAIRN_LAB_RUN_ID`, else nextest's run id (characters outside
/// `[A-Za-z0-9._-]` become `_`, so it is a file name); None outside both.
pub fn run_key(lab_run_id: Option<&str>, nextest_run_id: Option<&str>) -> Option<String> {
    let id = [lab_run_id, nextest_run_id]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|s| !s.is_empty())?;
    Some(
        id.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
    )
}

/// Whether `parameters/nested` of kvm_intel / kvm_amd says nested virtualization is on
/// (`Y`/`N` for kvm_intel, `1`/`0` for kvm_amd).
pub fn parse_nested(text: &str) -> Option<bool> {
    match text.trim() {
        "Y" | "y" | "1" => Some(true),
        "N" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// The host's nested-virtualization setting as (enabled, note), from `sys_module`
/// (normally `/sys/module`).
pub fn host_nested(sys_module: &Path, accel: Accel) -> (Option<bool>, String) {
    if accel == Accel::Tcg {
        return (
            None,
            "tenant VMs in a node run under nested TCG (the lab forces it under TCG)".into(),
        );
    }
    for module in ["kvm_intel", "kvm_amd"] {
        let path = sys_module.join(module).join("parameters/nested");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        return match parse_nested(&text) {
            Some(true) => (
                Some(true),
                format!(
                    "nested virtualization is enabled on the host ({module} nested={}): tenant VMs in a node run under nested KVM",
                    text.trim()
                ),
            ),
            Some(false) => (
                Some(false),
                format!(
                    "nested virtualization is off on the host ({module} nested={}): tenant VMs in a node run under nested TCG (docs/lab.md: enabling it)",
                    text.trim()
                ),
            ),
            None => (None, format!("{module} nested={:?} is not understood", text.trim())),
        };
    }
    (
        None,
        "no kvm_intel or kvm_amd module: whether tenant VMs get nested KVM is unknown".into(),
    )
}

/// Why `/dev/kvm` cannot be used, if it cannot (QEMU opens it read-write).
pub fn kvm_device_problem(dev: &Path) -> Option<String> {
    match OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
            "{} does not exist (no VT-x/AMD-V, or the kvm module is not loaded)",
            dev.display()
        )),
        Err(e) => Some(format!("cannot open {} read-write: {e}", dev.display())),
    }
}

/// A program whose standard output is a guest's console (QEMU with `-serial` on stdio).
#[derive(Debug, Clone)]
pub struct ProbeCommand {
    pub program: String,
    pub args: Vec<String>,
}

/// QEMU booting `kernel` without an initramfs under the nodes' KVM arguments, its console
/// on standard output.
pub fn probe_command(kernel: &Path) -> ProbeCommand {
    let mut args: Vec<String> = ["-name", "cairn-lab-accel-probe", "-machine", "q35"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(Accel::Kvm.qemu_args(None));
    args.extend(
        [
            "-smp",
            "1",
            "-m",
            "256",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-chardev",
            "stdio,id=con0,signal=off",
            "-serial",
            "chardev:con0",
            "-no-reboot",
            "-kernel",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push(kernel.display().to_string());
    args.push("-append".into());
    args.push("console=ttyS0,115200 panic=-1".into());
    ProbeCommand {
        program: QEMU.into(),
        args,
    }
}

/// Runs `cmd` until a console line matches `first_line`, it exits, or `deadline`; keeps its
/// console in `dir/serial.log` and its stderr in `dir/qemu.log`. Kills its process group.
pub fn probe(
    cmd: &ProbeCommand,
    dir: &Path,
    first_line: &Regex,
    deadline: Deadline,
) -> ProbeOutcome {
    let started = Instant::now();
    let log_path = dir.join("qemu.log");
    let stderr = match File::create(&log_path) {
        Ok(f) => f,
        Err(e) => {
            return ProbeOutcome::Failed {
                detail: format!("cannot create {}: {e}", log_path.display()),
            }
        }
    };
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        // Its own process group, killed as a whole when the probe ends.
        .process_group(0);
    // The probe dies with the thread that started it (a harness killed by a timeout).
    crate::child::die_with_parent(&mut command);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ProbeOutcome::Failed {
                detail: format!("cannot start {}: {e}", cmd.program),
            }
        }
    };
    let Some(stdout) = child.stdout.take() else {
        kill_group(&mut child);
        return ProbeOutcome::Failed {
            detail: "no console pipe".into(),
        };
    };
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::Builder::new()
        .name("accel-probe-console".into())
        .spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(raw) = line else { break };
                let text: String = String::from_utf8_lossy(&raw)
                    .chars()
                    .filter(|&c| c != '\r' && c != '\0')
                    .collect();
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = reader {
        kill_group(&mut child);
        return ProbeOutcome::Failed {
            detail: format!("cannot start a reader thread: {e}"),
        };
    }
    let mut serial = File::create(dir.join("serial.log")).ok();
    let outcome = loop {
        match rx.recv_timeout(deadline.remaining()) {
            Ok(line) => {
                if let Some(f) = serial.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if first_line.is_match(&line) {
                    break ProbeOutcome::FirstLine {
                        after: started.elapsed(),
                        line,
                    };
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                break ProbeOutcome::Hung {
                    waited: started.elapsed(),
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                // The console closed: the program exited (or is exiting).
                let status = wait_exit(&mut child, deadline.capped(Duration::from_secs(2)));
                let said = tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 4);
                break ProbeOutcome::Failed {
                    detail: format!(
                        "{} exited ({}) before the kernel's first line{}",
                        cmd.program,
                        status.map_or("still running".to_string(), |s| s.to_string()),
                        if said.is_empty() {
                            String::new()
                        } else {
                            format!(": {said}")
                        }
                    ),
                };
            }
        }
    };
    kill_group(&mut child);
    outcome
}

/// Waits for `child` to exit until `deadline` (polled; the deadline bounds it).
fn wait_exit(child: &mut Child, deadline: Deadline) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) if !deadline.expired() => {
                // poll interval for the process to exit; the deadline bounds the wait
                std::thread::sleep(Duration::from_millis(20).min(deadline.remaining()))
            }
            _ => return None,
        }
    }
}

/// Kills the child's whole process group and reaps the child.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads
        // (process_group(0)); it touches no memory.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` non-empty lines of `text`, joined with ` ⏎ `.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" ⏎ ")
}

/// The run's decision from `cache/<key>/decision.json`, else from `probe` (run in
/// `cache/<key>/`, timed, written there), with `cache/<key>/lock` held so that the
/// processes of one run probe once. A forced accelerator probes nothing.
pub fn resolve(
    cache: &Path,
    key: &str,
    forced: Option<Accel>,
    nested: impl Fn(Accel) -> (Option<bool>, String),
    probe: impl FnOnce(&Path) -> ProbeOutcome,
) -> Result<Decision, LabError> {
    if let Some(accel) = forced {
        let (nested, nested_note) = nested(accel);
        return Ok(Decision {
            accel,
            source: Source::Forced,
            reason: format!("forced by {ENV_FORCE}={}", accel.name()),
            probe_ms: None,
            deadline_ms: millis(PROBE_DEADLINE),
            run: key.to_string(),
            nested,
            nested_note,
        });
    }
    let dir = cache.join(key);
    std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
        what: "create the accelerator probe's directory",
        path: dir.clone(),
        source,
    })?;
    // Another process of the run may be probing: it holds the lock for at most the probe's
    // deadline (its QEMU dies with it), so this wait is bounded.
    let _lock = lock(&dir.join("lock"), Deadline::after(PROBE_DEADLINE * 2))?;
    let file = dir.join("decision.json");
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(d) = serde_json::from_str::<Decision>(&text) {
            return Ok(d);
        }
    }
    let started = Instant::now();
    let outcome = probe(&dir);
    let probe_ms = millis(started.elapsed());
    let (accel, reason) = decide(&outcome);
    let (nested, nested_note) = nested(accel);
    let d = Decision {
        accel,
        source: Source::Probe,
        reason,
        probe_ms: Some(probe_ms),
        deadline_ms: millis(PROBE_DEADLINE),
        run: key.to_string(),
        nested,
        nested_note,
    };
    write_atomic(&file, &to_json(&d))?;
    Ok(d)
}

fn to_json(d: &Decision) -> String {
    serde_json::to_string_pretty(d).unwrap_or_default() + "\n"
}

/// An exclusive flock(2) on `path`, polled until `deadline`; released when dropped.
fn lock(path: &Path, deadline: Deadline) -> Result<File, LabError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| LabError::Io {
            what: "open the accelerator probe's lock",
            path: path.to_path_buf(),
            source,
        })?;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns; it touches no memory.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(f);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::WouldBlock {
            return Err(LabError::Io {
                what: "lock the accelerator probe",
                path: path.to_path_buf(),
                source: err,
            });
        }
        if deadline.expired() {
            return Err(LabError::Accel {
                detail: format!(
                    "another process of this run held {} for {:?} (its probe should take at most {:?})",
                    path.display(),
                    deadline.total(),
                    PROBE_DEADLINE
                ),
            });
        }
        // poll interval for the lock; the deadline bounds the wait
        std::thread::sleep(Duration::from_millis(50).min(deadline.remaining()));
    }
}

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, text: &str) -> Result<(), LabError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| LabError::Io {
            what: "write the accelerator decision",
            path: path.to_path_buf(),
            source,
        })
}

/// This process's decision, once made.
static RUN: Mutex<Option<Decision>> = Mutex::new(None);

/// The accelerator of this lab run: decided by `CAIRN_LAB_ACCEL`, or read from the run's
/// cache, or probed by booting `kernel` under KVM (at most [`PROBE_DEADLINE`]); printed to
/// stderr once per process.
pub fn for_run(kernel: &Path) -> Result<Decision, LabError> {
    let mut run = RUN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = run.as_ref() {
        return Ok(d.clone());
    }
    let forced = forced(std::env::var(ENV_FORCE).ok().as_deref())?;
    let key = run_key(
        std::env::var(ENV_RUN_ID).ok().as_deref(),
        std::env::var(ENV_NEXTEST_RUN_ID).ok().as_deref(),
    )
    .unwrap_or_else(|| format!("process-{}-{}", now_compact(), std::process::id()));
    let cache = cache_dir();
    let first_line = Regex::new(FIRST_LINE).map_err(|source| LabError::Regex {
        pattern: FIRST_LINE.into(),
        source,
    })?;
    let d = resolve(
        &cache,
        &key,
        forced,
        |a| host_nested(Path::new("/sys/module"), a),
        |dir| {
            if let Some(why) = kvm_device_problem(Path::new("/dev/kvm")) {
                return ProbeOutcome::Failed { detail: why };
            }
            probe(
                &probe_command(kernel),
                dir,
                &first_line,
                Deadline::after(PROBE_DEADLINE),
            )
        },
    )?;
    eprintln!(
        "cairn-lab: accelerator {} for this lab run ({}); {}",
        d.summary(),
        match d.source {
            Source::Forced => "no probe".to_string(),
            Source::Probe => format!("probe logs in {}", cache.join(&key).display()),
        },
        d.nested_note
    );
    *run = Some(d.clone());
    Ok(d)
}

/// Where the runs' decisions live: `<workspace>/build/lab-results/accel-probe`.
pub fn cache_dir() -> PathBuf {
    workspace_root().join(CACHE_DIR)
}

/// This process's accelerator label once decided (`KVM`/`TCG`), for benchmark lines.
pub fn current_label() -> &'static str {
    match RUN.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        Some(d) => d.accel.label(),
        None => "accelerator undecided",
    }
}

/// `d` in whole milliseconds (a probe's times are seconds; `u64::MAX` only past 584 million years).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Prints a benchmark line to stdout: `BENCH [TCG] <text>` (the run's accelerator, so figures
/// from KVM and TCG are never mixed).
#[macro_export]
macro_rules! bench_println {
    ($($arg:tt)*) => {
        println!("BENCH [{}] {}", $crate::accel::current_label(), format_args!($($arg)*))
    };
}

/// Prints a benchmark line to stderr: `BENCH [TCG] <text>`.
#[macro_export]
macro_rules! bench_eprintln {
    ($($arg:tt)*) => {
        eprintln!("BENCH [{}] {}", $crate::accel::current_label(), format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn no_nested(_: Accel) -> (Option<bool>, String) {
        (None, "test".into())
    }

    fn sh(script: &str) -> ProbeCommand {
        ProbeCommand {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    fn first_line() -> Regex {
        Regex::new(FIRST_LINE).unwrap()
    }

    #[test]
    fn the_first_line_means_kvm_anything_else_tcg() {
        let (a, why) = decide(&ProbeOutcome::FirstLine {
            after: Duration::from_millis(420),
            line: "[    0.000000] Linux version 6.1.0-57-cloud-amd64".into(),
        });
        assert_eq!(a, Accel::Kvm);
        assert!(why.contains("after 0.42 s"), "{why}");
        assert!(why.contains("-accel kvm -cpu host"), "{why}");
        let (a, why) = decide(&ProbeOutcome::Failed {
            detail: "qemu exited (exit status: 1): failed to set MSR 0x10a".into(),
        });
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("failed to set MSR"), "{why}");
        let (a, why) = decide(&ProbeOutcome::Hung {
            waited: Duration::from_secs(20),
        });
        assert_eq!(a, Accel::Tcg);
        assert!(why.contains("printed nothing in 20.0 s"), "{why}");
    }

    #[test]
    fn scripted_first_line_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = sh(
            "echo 'SeaBIOS noise'; echo '[    0.000000] Linux version 6.1.0 (x)'; exec sleep 30",
        );
        let t = Instant::now();
        let out = probe(&cmd, dir.path(), &first_line(), Deadline::secs(10));
        assert!(
            matches!(&out, ProbeOutcome::FirstLine { line, .. } if line.contains("Linux version 6.1.0")),
            "{out:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "did not wait for the sleep"
        );
        let log = std::fs::read_to_string(dir.path().join("serial.log")).unwrap();
        assert!(log.starts_with("SeaBIOS noise\n"), "{log}");
    }

    #[test]
    fn scripted_error_is_a_failure_with_qemus_words() {
        let dir = tempfile::tempdir().unwrap();
        let cmd =
            sh("echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2; exit 1");
        let out = probe(&cmd, dir.path(), &first_line(), Deadline::secs(10));
        let ProbeOutcome::Failed { detail } = &out else {
            panic!("{out:?}")
        };
        assert!(detail.contains("exit status: 1"), "{detail}");
        assert!(detail.contains("failed to set MSR 0x10a"), "{detail}");
        assert_eq!(decide(&out).0, Accel::Tcg);
        let missing = ProbeCommand {
            program: "/nonexistent/qemu".into(),
            args: vec![],
        };
        let out = probe(&missing, dir.path(), &first_line(), Deadline::secs(10));
        assert!(
            matches!(&out, ProbeOutcome::Failed { detail } if detail.contains("cannot start /nonexistent/qemu")),
            "{out:?}"
        );
    }

    #[test]
    fn scripted_hang_ends_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        // prints lines, but never the kernel's first one, then hangs
        let cmd = sh("echo 'firmware'; exec sleep 30");
        let t = Instant::now();
        let out = probe(
            &cmd,
            dir.path(),
            &first_line(),
            Deadline::after(Duration::from_millis(400)),
        );
        let took = t.elapsed();
        assert!(
            matches!(out, ProbeOutcome::Hung { waited } if waited >= Duration::from_millis(400)),
            "{out:?}"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert_eq!(decide(&out).0, Accel::Tcg);
    }

    #[test]
    fn forced_choices() {
        assert_eq!(forced(None).unwrap(), None);
        assert_eq!(forced(Some("")).unwrap(), None);
        assert_eq!(forced(Some("kvm")).unwrap(), Some(Accel::Kvm));
        assert_eq!(forced(Some("TCG")).unwrap(), Some(Accel::Tcg));
        let err = forced(Some("hvf")).unwrap_err().to_string();
        assert!(err.contains("CAIRN_LAB_ACCEL=\"hvf\""), "{err}");
        // a forced choice probes nothing and is not cached
        let dir = tempfile::tempdir().unwrap();
        for a in [Accel::Kvm, Accel::Tcg] {
            let d = resolve(dir.path(), "r1", Some(a), no_nested, |_| {
                panic!("forced: no probe")
            })
            .unwrap();
            assert_eq!((d.accel, d.source, d.probe_ms), (a, Source::Forced, None));
            assert_eq!(d.reason, format!("forced by CAIRN_LAB_ACCEL={}", a.name()));
        }
        assert!(!dir.path().join("r1/decision.json").exists());
    }

    #[test]
    fn a_run_probes_once_and_reads_its_cache_after() {
        let dir = tempfile::tempdir().unwrap();
        let probes = Cell::new(0);
        let hang = |_: &Path| {
            probes.set(probes.get() + 1);
            ProbeOutcome::Hung {
                waited: PROBE_DEADLINE,
            }
        };
        let d1 = resolve(dir.path(), "run-a", None, no_nested, hang).unwrap();
        assert_eq!((d1.accel, d1.source), (Accel::Tcg, Source::Probe));
        assert!(d1.probe_ms.is_some());
        assert_eq!(d1.run, "run-a");
        let d2 = resolve(dir.path(), "run-a", None, no_nested, |_| {
            panic!("the run's decision is cached")
        })
        .unwrap();
        assert_eq!(d1, d2);
        assert_eq!(probes.get(), 1);
        // another run probes again
        let d3 = resolve(dir.path(), "run-b", None, no_nested, |_| {
            ProbeOutcome::FirstLine {
                after: Duration::from_millis(300),
                line: "Linux version".into(),
            }
        })
        .unwrap();
        assert_eq!(d3.accel, Accel::Kvm);
        let text = std::fs::read_to_string(dir.path().join("run-b/decision.json")).unwrap();
        assert!(text.contains("\"accel\": \"kvm\""), "{text}");
    }

    #[test]
    fn a_held_lock_is_waited_for_within_a_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = lock(&path, Deadline::secs(1)).unwrap();
        let err = lock(&path, Deadline::after(Duration::from_millis(100)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("held"), "{err}");
        drop(held);
        assert!(lock(&path, Deadline::secs(1)).is_ok());
    }

    #[test]
    fn qemu_arguments_per_accelerator() {
        assert_eq!(
            Accel::Kvm.qemu_args(None),
            ["-accel", "kvm", "-cpu", "host"]
        );
        assert_eq!(
            Accel::Kvm.qemu_args(Some("max")),
            ["-accel", "kvm", "-cpu", "max"]
        );
        assert_eq!(Accel::Tcg.qemu_args(None), ["-accel", "tcg"]);
        assert_eq!(
            Accel::Tcg.qemu_args(Some("max")),
            ["-accel", "tcg", "-cpu", "max"]
        );
        let p = probe_command(Path::new("/b/out/vmlinuz")).args.join(" ");
        assert!(p.contains("-machine q35 -accel kvm -cpu host "), "{p}");
        assert!(
            p.contains("-kernel /b/out/vmlinuz -append console=ttyS0,115200 panic=-1"),
            "{p}"
        );
        assert!(p.contains("-serial chardev:con0"), "{p}");
        assert!(!p.contains("-initrd"), "{p}");
    }

    #[test]
    fn run_keys() {
        assert_eq!(run_key(None, None), None);
        assert_eq!(run_key(Some(""), Some("abc-1")).as_deref(), Some("abc-1"));
        assert_eq!(run_key(Some("mine"), Some("abc")).as_deref(), Some("mine"));
        assert_eq!(run_key(None, Some("a/b c")).as_deref(), Some("a_b_c"));
    }

    #[test]
    fn nested_settings() {
        assert_eq!(parse_nested("Y\n"), Some(true));
        assert_eq!(parse_nested("1"), Some(true));
        assert_eq!(parse_nested("N"), Some(false));
        assert_eq!(parse_nested("0\n"), Some(false));
        assert_eq!(parse_nested("maybe"), None);
        let sys = tempfile::tempdir().unwrap();
        let (n, note) = host_nested(sys.path(), Accel::Kvm);
        assert_eq!(n, None);
        assert!(note.contains("no kvm_intel or kvm_amd"), "{note}");
        std::fs::create_dir_all(sys.path().join("kvm_amd/parameters")).unwrap();
        std::fs::write(sys.path().join("kvm_amd/parameters/nested"), "1\n").unwrap();
        let (n, note) = host_nested(sys.path(), Accel::Kvm);
        assert_eq!(n, Some(true));
        assert!(note.contains("kvm_amd nested=1"), "{note}");
        std::fs::write(sys.path().join("kvm_amd/parameters/nested"), "0\n").unwrap();
        assert_eq!(host_nested(sys.path(), Accel::Kvm).0, Some(false));
        assert_eq!(host_nested(sys.path(), Accel::Tcg).0, None);
    }

    #[test]
    fn tenant_accelerators() {
        let d = |accel, nested| Decision {
            accel,
            source: Source::Probe,
            reason: String::new(),
            probe_ms: Some(1),
            deadline_ms: 20_000,
            run: "r".into(),
            nested,
            nested_note: String::new(),
        };
        assert_eq!(d(Accel::Tcg, Some(true)).tenant_accel(), Some(Accel::Tcg));
        assert_eq!(d(Accel::Kvm, Some(true)).tenant_accel(), Some(Accel::Kvm));
        assert_eq!(d(Accel::Kvm, Some(false)).tenant_accel(), Some(Accel::Tcg));
        assert_eq!(d(Accel::Kvm, None).tenant_accel(), None);
        assert_eq!(
            d(Accel::Tcg, None).summary(),
            "TCG (probe 0.00 s: )".to_string()
        );
    }

    #[test]
    fn missing_kvm_device_is_explained() {
        let why = kvm_device_problem(Path::new("/nonexistent/kvm")).unwrap();
        assert!(why.contains("does not exist"), "{why}");
    }
}
