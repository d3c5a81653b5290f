//! Host integration tests: the built `cairn-init` runs as PID 1 of a new PID + mount
//! namespace (`unshare --pid --mount --fork --mount-proc`) with real service processes.
//! They need root, util-linux `unshare` and /usr/bin/python3; otherwise they print SKIP.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cairn-init");
const PY: &str = "/usr/bin/python3";

/// A long-running test service: records start/stop to a log, becomes ready in one of
/// several ways, exits 0 on SIGTERM.
const SERVE_PY: &str = r#"
import os, signal, socket, sys, time
name, log, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def rec(what):
    with open(log, "a") as f:
        f.write(f"{what} {name}\n")
def term(*_):
    marker = os.environ.get("MARKER")
    if marker and os.path.exists(marker):
        with open(marker) as m, open(marker + ".seen", "a") as f:
            f.write(f"{name}: {m.read()}")
    rec("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
rec("start")
time.sleep(0.3)
keep = None
if mode == "notify":
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"STATUS=starting", os.environ["NOTIFY_SOCKET"])
    s.sendto(b"STATUS=up\nREADY=1\n", os.environ["NOTIFY_SOCKET"])
elif mode == "unix":
    keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(sys.argv[4]):
        os.unlink(sys.argv[4])
    keep.bind(sys.argv[4]); keep.listen(8)
elif mode == "tcp":
    keep = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    keep.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    keep.bind(("127.0.0.1", int(sys.argv[4]))); keep.listen(8)
while True:
    time.sleep(60)
"#;

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new(PY).exists() {
        return Some(format!("{PY} not installed"));
    }
    let ok = Command::new("unshare")
        .args(["--pid", "--mount", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Some("`unshare --pid --mount --fork --mount-proc` unavailable".into());
    }
    None
}

macro_rules! require_env {
    ($name:expr) => {
        if let Some(why) = skip_reason() {
            println!("SKIP {}: {why}", $name);
            return;
        }
    };
}

struct Node {
    dir: tempfile::TempDir,
    child: Option<Child>,
    init_pid: i32,
}

impl Node {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn socket(&self) -> PathBuf {
        self.path("init.sock")
    }

    fn start(services: &[(&str, String)]) -> Node {
        Node::start_env(services, &[])
    }

    fn start_env(services: &[(&str, String)], env: &[(&str, &Path)]) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let svc = dir.path().join("services");
        fs::create_dir(&svc).unwrap();
        fs::write(dir.path().join("serve.py"), SERVE_PY).unwrap();
        for (name, text) in services {
            fs::write(svc.join(format!("{name}.toml")), text).unwrap();
        }
        fs::write(dir.path().join("console.log"), "").unwrap();
        let out = fs::File::create(dir.path().join("init.out")).unwrap();
        let child = Command::new("unshare")
            .args(["--pid", "--mount", "--fork", "--mount-proc", "--", BIN])
            .env_clear()
            .env("CAIRN_SERVICES_DIR", &svc)
            .env("CAIRN_CONTROL_SOCKET", dir.path().join("init.sock"))
            .env("CAIRN_NOTIFY_DIR", dir.path().join("notify"))
            .env("CAIRN_CONSOLE", dir.path().join("console.log"))
            .env("CAIRN_INIT_MOUNTS", "none")
            .env("CAIRN_KERNEL_CMDLINE", "quiet cairn.lab=1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let upid = child.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        let init_pid = loop {
            let kids = fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(p) = kids.split_whitespace().next() {
                break p.parse().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "unshare did not fork cairn-init within 10s"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Node {
            dir,
            child: Some(child),
            init_pid,
        }
    }

    fn console(&self) -> String {
        fs::read_to_string(self.path("console.log")).unwrap_or_default()
    }

    fn wait_console(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.console().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "waited {secs}s for console line {needle:?}; console:\n{}\ninit output:\n{}",
                self.console(),
                fs::read_to_string(self.path("init.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.cli(&["svc", "status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn service(&self, name: &str) -> serde_json::Value {
        self.status()["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    fn wait_state(&self, name: &str, state: &str, secs: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.service(name);
            if s["state"] == state {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited {secs}s for {name} to be {state}: {s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Children of our PID 1 (host pids) and their states from /proc/PID/stat.
    fn children_states(&self) -> Vec<(i32, char)> {
        let mut out = Vec::new();
        let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", self.init_pid)) else {
            return out;
        };
        for t in tasks.flatten() {
            let kids = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace() {
                let pid: i32 = k.parse().unwrap();
                if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
                    let state = stat
                        .rsplit(')')
                        .next()
                        .unwrap()
                        .trim()
                        .chars()
                        .next()
                        .unwrap();
                    out.push((pid, state));
                }
            }
        }
        out
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on a pid we started; no memory is involved.
        unsafe { libc::kill(self.init_pid, sig) };
    }

    fn wait_exit(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "cairn-init did not exit within {secs}s; console:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Killing a namespace's PID 1 kills every process in it.
            self.signal(libc::SIGKILL);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn serve(dir: &Path, name: &str, mode: &[&str], extra: &str) -> String {
    let mut args = vec![
        dir.join("serve.py").display().to_string(),
        name.to_string(),
        dir.join("order.log").display().to_string(),
    ];
    args.extend(mode.iter().map(|s| s.to_string()));
    format!(
        "exec = \"{PY}\"\nargs = {}\nstop_timeout_s = 5\n{extra}",
        serde_json::to_string(&args).unwrap()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn poweroff_status(st: ExitStatus) -> bool {
    // reboot(RB_POWER_OFF) in a PID namespace ends its init with SIGINT; unshare passes
    // that on by re-raising it or as exit code 128+2.
    st.signal() == Some(libc::SIGINT) || st.code() == Some(128 + libc::SIGINT)
}

#[test]
fn supervises_readiness_control_orphans_and_ordered_shutdown() {
    require_env!("supervises_readiness_control_orphans_and_ordered_shutdown");
    // Service files refer to paths in the node's temp dir, which exists only after start:
    // use a placeholder and rewrite.
    let placeholder = Path::new("/@DIR@");
    let port = free_port();
    let sock_path = "/@DIR@/app.sock";
    let services = vec![
        ("base", serve(placeholder, "base", &["notify"], "[readiness]\nkind = \"notify\"\ntimeout_s = 10\n")),
        (
            "app",
            serve(
                placeholder,
                "app",
                &["unix", sock_path],
                "requires = [\"base\"]\n[readiness]\nkind = \"socket\"\npath = \"/@DIR@/app.sock\"\n",
            ),
        ),
        (
            "web",
            serve(
                placeholder,
                "web",
                &["tcp", &port.to_string()],
                &format!("requires = [\"app\"]\n[readiness]\nkind = \"tcp\"\nport = {port}\n"),
            ),
        ),
        (
            "setup",
            "exec = \"/bin/sh\"\nargs = [\"-c\", \"echo setup-ran >> /@DIR@/setup.log\"]\n[readiness]\nkind = \"exited\"\n".to_string(),
        ),
        (
            "forker",
            // The inner shell backgrounds a sleep and exits: the sleep is orphaned, adopted
            // by PID 1 and must be reaped when it exits.
            "exec = \"/bin/sh\"\nargs = [\"-c\", \"sh -c 'sleep 1 &'; exec sleep 1000\"]\n".to_string(),
        ),
        ("broken", "exec = \"/bin/true\"\nbogus_key = 1\n".to_string()),
        (
            // Records whether the node-stopping marker existed at its SIGTERM; stops only
            // after base (stop_after), though nothing requires anything of it.
            "late",
            serve(
                placeholder,
                "late",
                &["plain"],
                "stop_after = [\"base\"]\nenv = { MARKER = \"/@DIR@/node-stopping\" }\n",
            ),
        ),
        (
            "lab",
            "exec = \"/bin/sleep\"\nargs = [\"1000\"]\ncondition_kernel_cmdline = \"cairn.lab=1\"\n".to_string(),
        ),
        (
            "nolab",
            "exec = \"/bin/sleep\"\nargs = [\"1000\"]\ncondition_kernel_cmdline = \"cairn.lab=2\"\n".to_string(),
        ),
    ];
    // Start with a temp dir first so paths can be filled in.
    let pre = tempfile::tempdir().unwrap();
    let d = pre.path().display().to_string();
    let services: Vec<(&str, String)> = services
        .into_iter()
        .map(|(n, t)| (n, t.replace("/@DIR@", &d)))
        .collect();
    fs::write(pre.path().join("serve.py"), SERVE_PY).unwrap();
    let marker = pre.path().join("node-stopping");
    // A leftover marker from an earlier run is removed at start.
    fs::write(&marker, "poweroff stale\n").unwrap();
    let mut node = Node::start_env(&services, &[("CAIRN_NODE_STOPPING", &marker)]);
    let order_log = pre.path().join("order.log");
    let seen = pre.path().join("node-stopping.seen");

    node.wait_console("cairn-init: stage 2 (pid 1)", 10);
    node.wait_console("cairn-init: all services ready", 30);
    let console = node.console();
    assert!(
        console.contains("broken.toml:2: unknown field `bogus_key`"),
        "{console}"
    );
    assert!(fs::read_to_string(pre.path().join("setup.log"))
        .unwrap()
        .contains("setup-ran"));

    // Dependencies: each started only after the previous one was ready.
    let pos = |s: &str| {
        console
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} missing:\n{console}"))
    };
    assert!(pos("cairn-init: base ready") < pos("cairn-init: starting app"));
    assert!(pos("cairn-init: app ready") < pos("cairn-init: starting web"));
    let read_order = || -> Vec<String> {
        fs::read_to_string(&order_log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    let mut started = read_order();
    started.sort();
    assert_eq!(
        started,
        vec!["start app", "start base", "start late", "start web"]
    );
    assert!(!marker.exists(), "the leftover marker was not removed");

    let status = node.status();
    let names: Vec<&str> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["app", "base", "forker", "lab", "late", "nolab", "setup", "web"]
    );
    let web = node.service("web");
    assert_eq!(web["state"], "ready");
    assert!(web["pid"].as_i64().unwrap() > 1);
    assert_eq!(node.service("setup")["last_exit"]["code"], 0);
    assert_eq!(node.service("lab")["state"], "ready");
    assert_eq!(node.service("nolab")["state"], "stopped");

    // Orphan adopted and reaped, no zombie left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.status()["orphans_reaped"].as_u64().unwrap() < 1 {
        assert!(
            Instant::now() < deadline,
            "orphan not reaped within 10s: {}",
            node.console()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let zombies: Vec<_> = node
        .children_states()
        .into_iter()
        .filter(|(_, s)| *s == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombie children of PID 1: {zombies:?}");
    assert!(node.console().contains("reaped orphan pid"));

    // Control: stop, start, restart (dependents follow).
    let out = node.cli(&["svc", "stop", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web: stopped\n");
    assert_eq!(node.service("web")["state"], "stopped");
    let out = node.cli(&["svc", "start", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.service("web")["state"], "ready");
    let old_app = node.service("app")["pid"].as_i64().unwrap();
    let old_web = node.service("web")["pid"].as_i64().unwrap();
    let out = node.cli(&["svc", "restart", "app"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(node.service("app")["pid"].as_i64().unwrap(), old_app);
    let web = node.wait_state("web", "ready", 10);
    assert_ne!(web["pid"].as_i64().unwrap(), old_web);
    let out = node.cli(&["svc", "stop", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no service named \"nope\""));
    let table = String::from_utf8_lossy(&node.cli(&["svc", "status"]).stdout).to_string();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("web "), "{table}");
    // A restart is not a node stop: no marker.
    let out = node.cli(&["svc", "restart", "late"]);
    assert!(out.status.success());
    assert!(!marker.exists() && !seen.exists());
    // `late` has no readiness: the restart returns once it is spawned, so wait until the
    // new process has logged its start (on a loaded machine that can take a moment) before
    // the log is cleared for the shutdown order.
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_order().iter().filter(|l| *l == "start late").count() < 2 {
        assert!(Instant::now() < deadline, "late did not start again");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Ordered shutdown on SIGTERM: the marker first, then dependents first, stop_after
    // after the service it names.
    fs::write(&order_log, "").unwrap();
    node.signal(libc::SIGTERM);
    let st = node.wait_exit(40);
    assert!(
        poweroff_status(st),
        "unexpected exit {st:?}; console:\n{}",
        node.console()
    );
    let order = read_order();
    assert_eq!(
        order,
        vec!["stop web", "stop app", "stop base", "stop late"],
        "console:\n{}",
        node.console()
    );
    assert_eq!(
        fs::read_to_string(&seen).unwrap(),
        "late: poweroff SIGTERM\n"
    );
    let console = node.console();
    let pos = |s: &str| {
        console
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} missing:\n{console}"))
    };
    assert!(pos("cairn-init: stopping web") < pos("cairn-init: stopping app"));
    assert!(pos("cairn-init: stopped app") < pos("cairn-init: stopping base"));
    assert!(console.contains("cairn-init: reached shutdown, powering off"));
}

#[test]
fn restart_backoff_grows_until_start_limit() {
    require_env!("restart_backoff_grows_until_start_limit");
    let pre = tempfile::tempdir().unwrap();
    let runs = pre.path().join("runs.log");
    let svc = format!(
        "exec = \"/bin/sh\"\nargs = [\"-c\", \"date +%s%N >> {}; exit 3\"]\n\
         [restart]\npolicy = \"on-failure\"\nbackoff_initial_ms = 200\nbackoff_max_ms = 800\n\
         start_limit_burst = 5\nstart_limit_interval_s = 60\n",
        runs.display()
    );
    let mut node = Node::start(&[
        ("crashy", svc),
        (
            "steady",
            "exec = \"/bin/sleep\"\nargs = [\"1000\"]\n".into(),
        ),
    ]);
    node.wait_console(
        "cairn-init: crashy failed: start limit hit (5 starts within 60s)",
        30,
    );
    let times: Vec<u128> = fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 5);
    let gaps: Vec<u128> = times
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .collect();
    // Delays 200, 400, 800, 800 ms (capped) plus process start overhead: each gap is at
    // least its delay, and the last stays below the uncapped 1600 ms.
    for (gap, want) in gaps.iter().zip([200u128, 400, 800, 800]) {
        assert!(*gap >= want, "gaps {gaps:?}");
    }
    assert!(gaps[3] < 1600, "backoff not capped: gaps {gaps:?}");
    let s = node.service("crashy");
    assert_eq!(s["state"], "failed");
    assert_eq!(s["restarts"], 4);
    assert_eq!(s["last_exit"]["code"], 3);
    // An explicit start resets the limit.
    let out = node.cli(&["svc", "start", "crashy", "--no-wait"]);
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(&runs).unwrap().lines().count() < 6 {
        assert!(Instant::now() < deadline, "crashy not started again");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGINT = reboot: PID 1 of the namespace ends with SIGHUP (RB_AUTOBOOT).
    node.signal(libc::SIGINT);
    let st = node.wait_exit(30);
    assert!(
        st.signal() == Some(libc::SIGHUP) || st.code() == Some(128 + libc::SIGHUP),
        "unexpected exit {st:?}; console:\n{}",
        node.console()
    );
    assert!(node
        .console()
        .contains("cairn-init: reached shutdown, rebooting"));
}

#[test]
fn stop_timeout_escalates_to_sigkill() {
    require_env!("stop_timeout_escalates_to_sigkill");
    let svc = "exec = \"/bin/sh\"\nargs = [\"-c\", \"trap '' TERM; while :; do sleep 0.1; done\"]\nstop_timeout_s = 1\n";
    let mut node = Node::start(&[("stubborn", svc.to_string())]);
    node.wait_console("cairn-init: all services ready", 15);
    let t = Instant::now();
    node.signal(libc::SIGTERM);
    let st = node.wait_exit(30);
    assert!(poweroff_status(st), "{st:?}");
    let console = node.console();
    assert!(
        console.contains("stubborn did not stop within 1s, sending SIGKILL"),
        "{console}"
    );
    assert!(
        console.contains("stopped stubborn (killed by signal 9)"),
        "{console}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn service_gets_its_open_files_limit() {
    require_env!("service_gets_its_open_files_limit");
    let pre = tempfile::tempdir().unwrap();
    let out = pre.path().join("limits");
    let probe = |name: &str, extra: &str| {
        format!(
            "exec = \"/bin/sh\"\nargs = [\"-c\", \"echo {name} $(ulimit -n) $(ulimit -Hn) >> {}\"]\n{extra}[readiness]\nkind = \"exited\"\n",
            out.display()
        )
    };
    let mut node = Node::start(&[
        // Below this test's own hard limit: raising the hard limit needs CAP_SYS_RESOURCE,
        // which a container may not grant (cairn-init on a node has it).
        ("wide", probe("wide", "limit_nofile = 4321\n")),
        ("plain", probe("plain", "")),
        ("bad", probe("bad", "limit_nofile = 10\n")),
    ]);
    node.wait_console("cairn-init: all services ready", 30);
    let mut lines: Vec<String> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    // `plain` keeps what cairn-init itself has (inherited from this test's process here).
    let (soft, hard) = {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass; no other memory is involved.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
        (l.rlim_cur, l.rlim_max)
    };
    assert_eq!(
        lines,
        vec![format!("plain {soft} {hard}"), "wide 4321 4321".to_string()]
    );
    assert!(
        node.console()
            .contains("bad.toml:3: limit_nofile: 10 is not in 64..=1048576"),
        "{}",
        node.console()
    );
    node.signal(libc::SIGTERM);
    let st = node.wait_exit(30);
    assert!(poweroff_status(st), "{st:?}");
}
