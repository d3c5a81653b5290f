//! Shared harness: a temporary machine (state, ESP, EFI variables) and the cairnd binary on it.
#![allow(dead_code)]

use cairn_core::efivar::{
    encode_string, loader_var_path, LOADER_BOOT_COUNT_PATH, LOADER_ENTRY_SELECTED,
};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const READY_DEADLINE: Duration = Duration::from_secs(30);

pub struct Machine {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Machine {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let entries = root.join("esp/loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        std::fs::write(entries.join("cairn-b+2-1.conf"), "title Cairn (slot b)\n").unwrap();
        std::fs::write(entries.join("cairn-a+0-3.conf"), "title Cairn (slot a)\n").unwrap();
        let efivars = root.join("efivars");
        std::fs::create_dir_all(&efivars).unwrap();
        std::fs::write(
            loader_var_path(&efivars, LOADER_BOOT_COUNT_PATH),
            encode_string(r"\loader\entries\cairn-b+2-1.conf"),
        )
        .unwrap();
        std::fs::write(
            loader_var_path(&efivars, LOADER_ENTRY_SELECTED),
            encode_string("cairn-b+2-1.conf"),
        )
        .unwrap();
        std::fs::write(root.join("cmdline"), "console=ttyS0 cairn.slot=b quiet\n").unwrap();
        std::fs::write(
            root.join("failures.jsonl"),
            "{\"time\":1763856000,\"slot\":\"a\",\"reason\":\"root partition cairn-root-a: bad squashfs\"}\n",
        )
        .unwrap();
        Machine { _dir: dir, root }
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr_lines: mpsc::Receiver<String>,
    /// Every line seen so far (the start-up lines included).
    pub seen: Vec<String>,
}

pub fn start(m: &Machine) -> Daemon {
    start_with(m, &[], &[])
}

/// Start cairnd with extra flags and environment.
pub fn start_with(m: &Machine, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
    // Each start gets a fresh console file so the block read is this start's.
    std::fs::write(m.p("console"), "").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairnd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log",
            "stderr",
            "--esp-mount",
            "never",
        ])
        .args(["--address-wait-s", "1"])
        .arg("--state-dir")
        .arg(m.p("state"))
        .arg("--console")
        .arg(m.p("console"))
        .arg("--cmdline")
        .arg(m.p("cmdline"))
        .arg("--efivars-dir")
        .arg(m.p("efivars"))
        .arg("--esp-dir")
        .arg(m.p("esp"))
        .arg("--boot-failures")
        .arg(m.p("failures.jsonl"))
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start cairnd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[cairnd] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + READY_DEADLINE;
    let mut seen = Vec::new();
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!("no `listening on` log line from cairnd within {READY_DEADLINE:?}")
        });
        seen.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest
                .trim()
                .parse::<SocketAddr>()
                .expect("listening address");
        }
    };
    Daemon {
        child,
        addr,
        stderr_lines: rx,
        seen,
    }
}

/// Wait for the complete setup block in the console file; returns (url, fingerprint, code).
pub fn setup_block(console: &Path) -> (String, String, String) {
    let deadline = Instant::now() + READY_DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(console).unwrap();
        if text.contains("CAIRN SETUP END") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no complete CAIRN SETUP block on the console within {READY_DEADLINE:?}; got {text:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("\nCAIRN SETUP\n"), "{text}");
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} line in {text}"))
            .to_string()
    };
    (
        field("URL: "),
        field("Fingerprint: "),
        field("Setup code: "),
    )
}

impl Drop for Daemon {
    /// A test that fails half-way must not leave cairnd running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// SIGTERM, wait for a clean exit, and return every log line cairnd wrote.
pub fn stop(mut d: Daemon) -> Vec<String> {
    let pid = libc::pid_t::try_from(d.child.id()).expect("a child's pid fits in pid_t");
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = d.child.kill();
            panic!("cairnd did not exit within 3 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "cairnd exited with {status}");
    // The reader thread ends at EOF; give it a moment to pass on the last lines.
    let mut lines = std::mem::take(&mut d.seen);
    while let Ok(l) = d.stderr_lines.recv_timeout(Duration::from_secs(2)) {
        lines.push(l);
    }
    assert!(
        lines.iter().any(|l| l.contains("cairnd stopped")),
        "{lines:?}"
    );
    lines
}
