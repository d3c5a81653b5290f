//! One appliance node under QEMU: its disk copy, firmware, sockets, console, shell, QMP and API.

use cairn_base::error_chain;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

use crate::accel::Decision;
use crate::artifacts::{Artifacts, OVMF_CODE, OVMF_VARS, QEMU};
use crate::config::{qemu_args, BootMode, NodeConfig, QemuPaths};
use crate::deadline::Deadline;
use crate::error::LabError;
use crate::esp::Esp;
use crate::ext4::{self, SuperblockState};
use crate::gpt;
use crate::health::{self, Strictness};
use crate::host_disk::{self, HostDiskWatch};
use crate::https::{self, HttpResponse, Trust};
use crate::lab_shared::LabShared;
use crate::qmp::Qmp;
use crate::serial::{Serial, SerialMatch};
use crate::setup::{SetupInfo, SetupParser, BLOCK_LINES, SETUP_MARKER};
use crate::shell::{CommandOutput, Shell};
use crate::status::{self, ServiceState};

/// PARTLABEL of the STATE partition (decision 0001).
pub const STATE_LABEL: &str = "cairn-state";

/// A node of the lab.
pub struct Node {
    cfg: NodeConfig,
    no: u32,
    dir: PathBuf,
    paths: QemuPaths,
    _sockets: tempfile::TempDir,
    lab: Arc<LabShared>,
    api_port: u16,
    child: Option<Child>,
    serial: Option<Serial>,
    qmp: Option<Qmp>,
    host_disk: Option<HostDiskWatch>,
    shell: Option<Shell>,
    setup: Option<SetupInfo>,
    launched_at: Option<Instant>,
    launches: u32,
    finished: bool,
}

impl Node {
    pub(crate) fn prepare(
        cfg: NodeConfig,
        no: u32,
        art: &Artifacts,
        lab: Arc<LabShared>,
    ) -> Result<Node, LabError> {
        let dir = lab.dir.join(&cfg.name);
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            what: "create the node directory",
            path: dir.clone(),
            source,
        })?;
        let sockets = tempfile::Builder::new()
            .prefix("cairn-lab-")
            .tempdir()
            .map_err(|source| LabError::TempFile { source })?;
        let paths = QemuPaths {
            disk: dir.join("disk.img"),
            vars: dir.join("OVMF_VARS.fd"),
            data_disks: (0..cfg.disks.len())
                .map(|i| dir.join(format!("data{i}.img")))
                .collect(),
            serial_sock: sockets.path().join("serial.sock"),
            shell_sock: sockets.path().join("shell.sock"),
            qmp_sock: sockets.path().join("qmp.sock"),
            qmp_watch_sock: sockets.path().join("qmp-watch.sock"),
            kernel: art.kernel.clone(),
            initrd: art.initrd.clone(),
            ovmf_code: PathBuf::from(OVMF_CODE),
        };
        copy_sparse(&art.image, &paths.disk)?;
        if cfg.mode == BootMode::Uefi {
            std::fs::copy(OVMF_VARS, &paths.vars).map_err(|source| LabError::Io {
                what: "copy the OVMF variable store",
                path: paths.vars.clone(),
                source,
            })?;
            let mut words = vec!["cairn.lab=1".to_string()];
            words.extend(cfg.cmdline.iter().cloned());
            Esp::open(&paths.disk)?.append_options(&words.join(" "))?;
        }
        for (path, spec) in paths.data_disks.iter().zip(&cfg.disks) {
            File::create(path)
                .and_then(|f| f.set_len(spec.size_bytes))
                .map_err(|source| LabError::Io {
                    what: "create a data disk",
                    path: path.clone(),
                    source,
                })?;
        }
        let api_port = match cfg.api_port {
            Some(p) => p,
            None => free_port()?,
        };
        Ok(Node {
            cfg,
            no,
            dir,
            paths,
            _sockets: sockets,
            lab,
            api_port,
            child: None,
            serial: None,
            qmp: None,
            host_disk: None,
            shell: None,
            setup: None,
            launched_at: None,
            launches: 0,
            finished: false,
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The node's results directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's own copy of the disk image.
    pub fn disk(&self) -> &Path {
        &self.paths.disk
    }

    /// Adds a kernel command-line word for the next [`Node::launch`] (direct-kernel boot).
    pub fn add_cmdline(&mut self, word: &str) {
        self.cfg.cmdline.push(word.to_string());
    }

    /// The MAC address of NIC number `nic` (as given to QEMU).
    pub fn mac(&self, nic: usize) -> String {
        self.cfg.nic_mac(self.no, nic)
    }

    /// Where the node's API is reachable from the host.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// When QEMU was last started.
    pub fn launched_at(&self) -> Option<Instant> {
        self.launched_at
    }

    /// Starts QEMU (again, after it exited: same disk, same firmware variables).
    pub fn launch(&mut self) -> Result<(), LabError> {
        if self.is_running() {
            return Err(LabError::AlreadyRunning {
                node: self.cfg.name.clone(),
            });
        }
        self.qmp = None;
        self.host_disk = None;
        self.shell = None;
        self.serial = None;
        // `setup` is kept: the certificate lives on STATE, so a later boot of this disk
        // presents the same one (and may not print the block again).
        for s in [
            &self.paths.serial_sock,
            &self.paths.shell_sock,
            &self.paths.qmp_sock,
            &self.paths.qmp_watch_sock,
        ] {
            let _ = std::fs::remove_file(s);
        }
        self.launches += 1;
        let serial_log = self.dir.join("serial.log");
        let qemu_log = self.dir.join("qemu.log");
        let mut marker = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&serial_log)
            .map_err(|source| LabError::Io {
                what: "open serial log",
                path: serial_log.clone(),
                source,
            })?;
        let _ = writeln!(
            marker,
            "\n==== cairn-lab: boot {} of {} ====",
            self.launches, self.cfg.name
        );
        drop(marker);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&qemu_log)
            .map_err(|source| LabError::Io {
                what: "open QEMU log",
                path: qemu_log.clone(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| LabError::Io {
            what: "open QEMU log",
            path: qemu_log.clone(),
            source,
        })?;
        let decision = self.lab.accel()?.clone();
        self.record_accel(&decision);
        let args = qemu_args(
            &self.cfg,
            self.no,
            &self.paths,
            self.api_port,
            decision.accel,
        );
        let _ = std::fs::write(
            self.dir.join(format!("qemu-cmdline-{}.txt", self.launches)),
            format!("{QEMU} {}\n", args.join(" ")),
        );
        let started = Instant::now();
        let mut cmd = Command::new(QEMU);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Its own process group: a Ctrl-C meant for the harness must not kill QEMU.
            .process_group(0);
        // QEMU dies with the thread that started it: no guest outlives a killed harness.
        crate::child::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| LabError::Spawn {
            program: QEMU.into(),
            source,
        })?;
        self.child = Some(child);
        self.launched_at = Some(started);
        let serial = Serial::attach(&self.paths.serial_sock, &serial_log, Deadline::secs(30));
        match serial {
            Ok(s) => {
                self.serial = Some(s);
                let mut images = vec![self.paths.disk.clone(), self.dir.clone()];
                images.extend(self.paths.data_disks.iter().cloned());
                self.host_disk = Some(HostDiskWatch::start(
                    &self.cfg.name,
                    &self.paths.qmp_watch_sock,
                    images,
                    self.dir.join("host-disk.log"),
                ));
            }
            Err(e) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                self.kill();
                return Err(match status {
                    Some(st) => LabError::QemuExited {
                        node: self.cfg.name.clone(),
                        status: st.to_string(),
                        log: qemu_log,
                    },
                    None => e,
                });
            }
        }
        Ok(())
    }

    /// The accelerator this node runs under (the lab run's; decided at its first launch).
    pub fn accel(&self) -> Result<&Decision, LabError> {
        self.lab.accel()
    }

    /// Writes `accel.json` in the node's directory: the run's decision and the QEMU
    /// arguments it gives this node.
    fn record_accel(&self, decision: &Decision) {
        let mut v = serde_json::to_value(decision).unwrap_or_default();
        v["qemu_args"] = Value::from(
            decision
                .accel
                .qemu_args(self.cfg.cpu_model.as_deref())
                .join(" "),
        );
        let _ = std::fs::write(
            self.dir.join("accel.json"),
            serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
        );
    }

    /// Whether QEMU is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The console of the current QEMU run.
    pub fn serial(&self) -> Result<&Serial, LabError> {
        self.serial.as_ref().ok_or_else(|| LabError::NotRunning {
            node: self.cfg.name.clone(),
        })
    }

    /// Waits for a console line matching `pattern` (a regex) in this QEMU run.
    pub fn wait_serial(&self, pattern: &str, deadline: Deadline) -> Result<SerialMatch, LabError> {
        self.wait_serial_from(pattern, 0, deadline)
    }

    /// Waits for a console line matching `pattern` at line index ≥ `from`.
    pub fn wait_serial_from(
        &self,
        pattern: &str,
        from: usize,
        deadline: Deadline,
    ) -> Result<SerialMatch, LabError> {
        let re = regex(pattern)?;
        self.serial()?
            .wait_from(&re, from, deadline)
            .map_err(|e| self.explain_exit(e))
    }

    /// Adds QEMU's own last words to an error caused by QEMU having exited.
    fn explain_exit(&self, e: LabError) -> LabError {
        match e {
            LabError::SerialClosed { .. } => {
                let log = std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                LabError::NodeExited {
                    node: self.cfg.name.clone(),
                    qemu_says: tail.into_iter().rev().collect::<Vec<_>>().join(" ⏎ "),
                    source: Box::new(e),
                }
            }
            other => other,
        }
    }

    /// Waits for the `CAIRN SETUP` block and parses it.
    pub fn wait_setup(&mut self, deadline: Deadline) -> Result<SetupInfo, LabError> {
        if let Some(s) = &self.setup {
            return Ok(s.clone());
        }
        let serial = self.serial()?;
        let start = serial.wait_from(&regex(SETUP_MARKER)?, 0, deadline)?;
        let mut parser = SetupParser::default();
        let any = regex("")?;
        for i in start.index + 1..start.index + 1 + BLOCK_LINES {
            let line = serial
                .wait_from(&any, i, deadline)
                .map_err(|e| LabError::SetupBlock {
                    detail: format!("incomplete after line {i}: {e}"),
                })?;
            parser.feed(&line.text);
            if let Some(info) = parser.finish() {
                self.setup = Some(info.clone());
                return Ok(info);
            }
        }
        Err(LabError::SetupBlock {
            detail: format!(
                "no fingerprint and setup code within {BLOCK_LINES} lines after `{SETUP_MARKER}`"
            ),
        })
    }

    /// The node's configuration, to change for its next launch (e.g. a disk left out).
    pub(crate) fn config_mut(&mut self) -> &mut NodeConfig {
        &mut self.cfg
    }

    /// The node's QEMU files (data disk images are added by hot-plugging).
    pub(crate) fn qemu_paths_mut(&mut self) -> &mut QemuPaths {
        &mut self.paths
    }

    /// The QMP connection (connected on first use).
    pub fn qmp(&mut self) -> Result<&mut Qmp, LabError> {
        if self.qmp.is_none() {
            if !self.is_running() {
                return Err(LabError::NotRunning {
                    node: self.cfg.name.clone(),
                });
            }
            self.qmp = Some(Qmp::connect(&self.paths.qmp_sock, Deadline::secs(10))?);
        }
        self.qmp.as_mut().ok_or_else(|| LabError::NotRunning {
            node: self.cfg.name.clone(),
        })
    }

    /// Pauses of this QEMU run for a full host disk, as the watcher saw them (see
    /// `host_disk.rs`).
    pub fn host_disk_pauses(&self) -> Vec<host_disk::Pause> {
        self.host_disk
            .as_ref()
            .map(|w| w.record().pauses.clone())
            .unwrap_or_default()
    }

    /// Runs `cmd` in the node's lab shell (connecting first if needed, within the same deadline).
    pub fn shell_run(&mut self, cmd: &str, deadline: Deadline) -> Result<CommandOutput, LabError> {
        if self.shell.is_none() {
            self.shell = Some(Shell::connect(&self.paths.shell_sock, deadline)?);
        }
        let shell = self.shell.as_mut().ok_or_else(|| LabError::NotRunning {
            node: self.cfg.name.clone(),
        })?;
        let out = shell.run(cmd, deadline);
        if out.is_err() {
            // the stream may hold a half-read answer: reconnect next time
            self.shell = None;
        }
        out
    }

    /// Runs `cmd` in the lab shell and fails unless it exits 0; returns its output.
    pub fn shell_check(&mut self, cmd: &str, deadline: Deadline) -> Result<String, LabError> {
        let out = self.shell_run(cmd, deadline)?;
        if out.code != 0 {
            return Err(LabError::ShellFailed {
                cmd: cmd.to_string(),
                code: out.code,
                output: out.output.chars().take(2000).collect(),
            });
        }
        Ok(out.output)
    }

    /// `cairn-init svc status --json`, parsed.
    pub fn services(&mut self, deadline: Deadline) -> Result<Vec<ServiceState>, LabError> {
        let out = self.shell_check("cairn-init svc status --json", deadline)?;
        status::parse(&out).map_err(|detail| LabError::ServiceStatus { detail })
    }

    /// One HTTPS GET of `path` with the certificate pinned to the setup block's fingerprint.
    pub fn get(&mut self, path: &str, deadline: Deadline) -> Result<HttpResponse, LabError> {
        let setup = self.wait_setup(deadline)?;
        https::get(
            self.api_addr(),
            path,
            Trust::Pinned(setup.fingerprint),
            deadline,
        )
    }

    /// Polls `GET /api/v1/health` (pinned) until it answers 200 with JSON; returns the JSON.
    pub fn wait_health(&mut self, deadline: Deadline) -> Result<Value, LabError> {
        let setup = self.wait_setup(deadline)?;
        let addr = self.api_addr();
        let mut last = String::from("no attempt made");
        while !deadline.expired() {
            if !self.is_running() {
                return Err(LabError::NotRunning {
                    node: self.cfg.name.clone(),
                });
            }
            let attempt = deadline.capped(Duration::from_secs(10));
            match https::get(
                addr,
                "/api/v1/health",
                Trust::Pinned(setup.fingerprint),
                attempt,
            ) {
                Ok(r) if r.status == 200 => {
                    return serde_json::from_str(&r.body).map_err(|source| LabError::HealthJson {
                        body: r.body.clone(),
                        source,
                    })
                }
                Ok(r) => last = format!("HTTP {}: {}", r.status, r.body),
                Err(e) => last = error_chain(&e),
            }
            // poll interval; the deadline bounds the whole wait
            std::thread::sleep(Duration::from_millis(250).min(deadline.remaining()));
        }
        Err(LabError::ApiTimeout {
            addr,
            waited: deadline.total(),
            last,
        })
    }

    /// Waits until the API answers ([`Node::wait_health`]) and cairnd's domains have
    /// finished starting (health's `"ready": true`; see `health.rs`): what every use of a
    /// domain route waits for, also after a reboot or a restart of cairnd. A `failed`
    /// domain fails at once with its reason; on timeout the error names the domains still
    /// starting. Returns the health JSON.
    pub fn wait_ready(&mut self, deadline: Deadline) -> Result<Value, LabError> {
        let addr = self.api_addr();
        health::wait_domains(addr, deadline, Strictness::FailOnFailed, |d| {
            self.wait_health(d)
        })
    }

    /// Waits for QEMU to exit; returns its exit status.
    pub fn wait_exit(&mut self, deadline: Deadline) -> Result<ExitStatus, LabError> {
        loop {
            let child = self.child.as_mut().ok_or_else(|| LabError::NotRunning {
                node: self.cfg.name.clone(),
            })?;
            match child.try_wait() {
                Ok(Some(st)) => {
                    self.qmp = None;
                    self.shell = None;
                    if let Some(s) = &self.serial {
                        s.wait_closed(Deadline::secs(5));
                    }
                    return Ok(st);
                }
                Ok(None) if deadline.expired() => {
                    return Err(LabError::StillRunning {
                        node: self.cfg.name.clone(),
                        waited: deadline.total(),
                    })
                }
                Ok(None) => {
                    // poll interval for the process to exit; the deadline bounds the wait
                    std::thread::sleep(Duration::from_millis(50).min(deadline.remaining()))
                }
                Err(source) => {
                    return Err(LabError::Wait {
                        node: self.cfg.name.clone(),
                        source,
                    })
                }
            }
        }
    }

    /// ACPI power button through QMP, then waits for QEMU to exit.
    pub fn powerdown(&mut self, deadline: Deadline) -> Result<ExitStatus, LabError> {
        self.qmp()?.system_powerdown(deadline)?;
        self.wait_exit(deadline)
    }

    /// Kills QEMU at once (power loss) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.qmp = None;
        self.shell = None;
        if let Some(s) = &self.serial {
            s.wait_closed(Deadline::secs(5));
        }
    }

    /// The ESP of the node's disk (only consistent while QEMU is stopped).
    pub fn esp(&self) -> Result<Esp, LabError> {
        Esp::open(&self.paths.disk)
    }

    /// The STATE filesystem's superblock state in the node's disk.
    pub fn state_superblock(&self) -> Result<SuperblockState, LabError> {
        let part = gpt::find(&self.paths.disk, STATE_LABEL)?;
        ext4::read_state(&self.paths.disk, part.offset)
    }

    /// Saves the journal and service status (when the node is up) next to serial.log and
    /// prints where they are.
    pub fn collect_diagnostics(&mut self) {
        self.lab.failed.store(true, Ordering::SeqCst);
        let mut notes = String::new();
        // A node paused for a full host disk looks hung: say so first.
        if let Some(summary) = self.host_disk.as_ref().and_then(|w| w.record().summary()) {
            notes.push_str(&summary);
            notes.push('\n');
        }
        match host_disk::fs_space(&self.dir) {
            Ok((free, total)) if !host_disk::has_room(free, total) => notes.push_str(&format!(
                "the host disk is nearly full: {} MiB free of {} MiB in {}\n",
                free >> 20,
                total >> 20,
                self.dir.display()
            )),
            _ => {}
        }
        let paused_for_space = self
            .host_disk
            .as_ref()
            .is_some_and(|w| w.record().pauses.iter().any(|p| p.resumed_after.is_none()));
        if paused_for_space {
            // Its shell cannot answer while QEMU is paused.
            self.shell = None;
        }
        if self.is_running() && self.shell.is_none() && !paused_for_space {
            match Shell::connect(&self.paths.shell_sock, Deadline::secs(20)) {
                Ok(sh) => self.shell = Some(sh),
                Err(e) => notes.push_str(&format!("no lab shell, so no journal: {e}\n")),
            }
        }
        if self.shell.is_some() {
            // one deadline for all three, so a stuck node costs at most this long
            let deadline = Deadline::secs(90);
            for (cmd, file) in [
                ("cairn-init svc status", "svc-status.txt"),
                ("cairn-init svc status --json", "svc-status.json"),
                ("journalctl --no-pager -o short-precise", "journal.txt"),
            ] {
                match self.shell_run(cmd, deadline) {
                    Ok(out) => {
                        let _ = std::fs::write(
                            self.dir.join(file),
                            format!("# {cmd} (exit {})\n{}\n", out.code, out.output),
                        );
                    }
                    Err(e) => notes.push_str(&format!("{cmd}: {e}\n")),
                }
            }
        } else if !self.is_running() {
            notes.push_str("node was not running: no journal or service status collected\n");
        }
        if !notes.is_empty() {
            let _ = std::fs::write(self.dir.join("diagnostics-errors.txt"), &notes);
        }
        eprintln!(
            "cairn-lab: node {} failed; serial.log, journal.txt, svc-status.txt in {}",
            self.cfg.name,
            self.dir.display()
        );
        // CI keeps only what the test prints: the ends of the logs go to stderr too.
        for (file, lines) in [
            ("serial.log", 60),
            ("svc-status.txt", 30),
            ("journal.txt", 60),
            ("diagnostics-errors.txt", 10),
        ] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(file)) {
                eprintln!(
                    "---- {}: last {lines} lines of {file} ----\n{}",
                    self.cfg.name,
                    tail(&text, lines)
                );
            }
        }
    }

    /// Ends the node as passed: kills QEMU if it still runs and deletes the disk copies
    /// (kept when `CAIRN_LAB_KEEP_DISKS=1`).
    pub fn finish(mut self) {
        self.finished = true;
        self.kill();
        self.remove_disks();
    }

    /// Deletes the disk copies (kept when `CAIRN_LAB_KEEP_DISKS=1`). A failed scenario keeps
    /// its logs but not its disks by default: they are gigabytes each, and on the shared
    /// host disk they would crowd out the scenarios still to run.
    fn remove_disks(&self) {
        if std::env::var_os("CAIRN_LAB_KEEP_DISKS").is_none() {
            let _ = std::fs::remove_file(&self.paths.disk);
            let _ = std::fs::remove_file(&self.paths.vars);
            for d in &self.paths.data_disks {
                let _ = std::fs::remove_file(d);
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.finished {
            self.collect_diagnostics();
        }
        self.kill();
        if !self.finished {
            self.remove_disks();
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn regex(pattern: &str) -> Result<Regex, LabError> {
    Regex::new(pattern).map_err(|source| LabError::Regex {
        pattern: pattern.to_string(),
        source,
    })
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, LabError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| LabError::FreePort { source })
}

/// `cp --sparse=always --reflink=auto`.
fn copy_sparse(from: &Path, to: &Path) -> Result<(), LabError> {
    let out = Command::new("cp")
        .arg("--sparse=always")
        .arg("--reflink=auto")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|source| LabError::Spawn {
            program: "cp".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabError::ToolFailed {
            program: format!("cp (copy {} to {})", from.display(), to.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_bindable() {
        let p = free_port().unwrap();
        assert!(p > 0);
        assert!(TcpListener::bind(("127.0.0.1", p)).is_ok());
    }

    #[test]
    fn sparse_copy_keeps_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let f = File::create(&a).unwrap();
        f.set_len(8 << 20).unwrap();
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        copy_sparse(&a, &b).unwrap();
        assert_eq!(std::fs::metadata(&b).unwrap().len(), 8 << 20);
        assert!(copy_sparse(&dir.path().join("nope"), &b).is_err());
    }
}
