//! Carries out the supervisor's actions with real processes and feeds events back into it.

use crate::config::{ReadinessKind, ServiceConfig, Stdio};
use crate::control::{Request, Response};
use crate::log::log;
use crate::notify::NotifySockets;
use crate::process::{ProcessOps, SpawnRequest, StdioPlan, WaitResult};
use crate::supervisor::{Action, Command, Now, Sig, Supervisor};
use std::collections::VecDeque;
use std::path::PathBuf;

/// The base environment every service gets (its `env` is added on top).
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths the runtime uses.
#[derive(Debug, Clone)]
pub struct Paths {
    pub console: PathBuf,
    pub journal_socket: PathBuf,
}

/// The supervisor plus the process side.
pub struct Runtime<P: ProcessOps> {
    pub sup: Supervisor,
    pub ops: P,
    pub notify: NotifySockets,
    paths: Paths,
    orphans_reaped: u64,
}

/// Builds the spawn request for a service (pure).
pub fn spawn_request(cfg: &ServiceConfig, notify: Option<PathBuf>, paths: &Paths) -> SpawnRequest {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), BASE_PATH.into()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (k, v) in &cfg.env {
        env.retain(|(ek, _)| ek != k);
        env.push((k.clone(), v.clone()));
    }
    if let Some(n) = notify {
        env.push(("NOTIFY_SOCKET".into(), n.display().to_string()));
    }
    let stdio = match &cfg.stdio {
        Stdio::Journal => StdioPlan::Journal {
            identifier: cfg.name.clone(),
            socket: paths.journal_socket.clone(),
            console: paths.console.clone(),
        },
        Stdio::Console => StdioPlan::Console(paths.console.clone()),
        Stdio::Device(p) => StdioPlan::Device(p.clone()),
    };
    SpawnRequest {
        name: cfg.name.clone(),
        exec: cfg.exec.clone(),
        args: cfg.args.clone(),
        env,
        working_dir: cfg.working_dir.clone(),
        stdio,
        limit_nofile: cfg.limit_nofile,
    }
}

impl<P: ProcessOps> Runtime<P> {
    pub fn new(sup: Supervisor, ops: P, notify: NotifySockets, paths: Paths) -> Self {
        Runtime {
            sup,
            ops,
            notify,
            paths,
            orphans_reaped: 0,
        }
    }

    /// Adopted orphans reaped so far.
    pub fn orphans_reaped(&self) -> u64 {
        self.orphans_reaped
    }

    /// Carries out actions (and the ones they lead to).
    pub fn execute(&mut self, acts: Vec<Action>, now: Now) {
        let mut queue: VecDeque<Action> = acts.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Log(line) => log(&line),
                Action::Spawn(name) => {
                    let Some(cfg) = self.sup.config(&name).cloned() else {
                        continue;
                    };
                    let notify = if cfg.readiness.kind == ReadinessKind::Notify {
                        match self.notify.prepare(&name) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                let msg = format!("notify socket: {e}");
                                queue.extend(self.sup.spawn_failed(&name, &msg, now));
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let req = spawn_request(&cfg, notify, &self.paths);
                    let more = match self.ops.spawn(&req) {
                        Ok(pid) => self.sup.spawned(&name, pid, now),
                        Err(e) => self.sup.spawn_failed(&name, &e.to_string(), now),
                    };
                    queue.extend(more);
                }
                Action::Signal { name, pid, sig } => {
                    if let Err(e) = self.ops.signal(pid, sig) {
                        log(&format!("cannot signal {name} (pid {pid}): {e}"));
                    }
                    let on_tty = self
                        .sup
                        .config(&name)
                        .is_some_and(|c| matches!(c.stdio, Stdio::Device(_)));
                    if sig == Sig::Term && on_tty {
                        let _ = self.ops.signal(pid, Sig::Hup);
                    }
                }
                Action::Probe(name) => {
                    let kind = self.sup.config(&name).map(|c| c.readiness.kind.clone());
                    if let Some(kind) = kind {
                        if self.ops.probe(&kind) {
                            queue.extend(self.sup.ready(&name, now));
                        }
                    }
                }
            }
        }
    }

    /// The one reaper: collects every exited child; returns true when no child is left.
    pub fn reap(&mut self, now: Now) -> bool {
        loop {
            match self.ops.wait_any() {
                WaitResult::Exited(pid, status) => match self.sup.exited(pid, status, now) {
                    Some(acts) => self.execute(acts, now),
                    None => {
                        self.orphans_reaped += 1;
                        log(&format!("reaped orphan pid {pid} ({status})"));
                    }
                },
                WaitResult::NoneExited => return false,
                WaitResult::NoChildren => return true,
            }
        }
    }

    /// A notify socket is readable.
    pub fn on_notify(&mut self, name: &str, now: Now) {
        if self.notify.drain(name) {
            let acts = self.sup.ready(name, now);
            self.execute(acts, now);
        }
    }

    /// Runs the timers that are due.
    pub fn tick(&mut self, now: Now) {
        let acts = self.sup.tick(now);
        self.execute(acts, now);
    }

    /// Answers one control request.
    pub fn handle(&mut self, req: Result<Request, String>, now: Now) -> Response {
        let (cmd, name) = match req {
            Err(e) => return Response::error(e),
            Ok(Request::Status) => {
                return Response {
                    services: Some(self.sup.status(now)),
                    orphans_reaped: Some(self.orphans_reaped),
                    ..Response::ok()
                }
            }
            Ok(Request::Start { name }) => (Command::Start, name),
            Ok(Request::Stop { name }) => (Command::Stop, name),
            Ok(Request::Restart { name }) => (Command::Restart, name),
        };
        match self.sup.command(cmd, &name, now) {
            Ok(acts) => {
                log(&format!("control: {cmd:?} {name}").to_lowercase());
                self.execute(acts, now);
                Response::ok()
            }
            Err(e) => Response::error(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{ExitStatus, State};
    use std::io;

    #[derive(Default)]
    struct Recorder {
        spawns: Vec<SpawnRequest>,
        signals: Vec<(i32, Sig)>,
        probe_ok: bool,
        exits: VecDeque<(i32, ExitStatus)>,
        fail_spawn: bool,
        next_pid: i32,
    }

    impl ProcessOps for Recorder {
        fn spawn(&mut self, req: &SpawnRequest) -> io::Result<i32> {
            self.spawns.push(req.clone());
            if self.fail_spawn {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            self.next_pid += 1;
            Ok(1000 + self.next_pid)
        }
        fn signal(&mut self, pid: i32, sig: Sig) -> io::Result<()> {
            self.signals.push((pid, sig));
            Ok(())
        }
        fn probe(&mut self, _kind: &ReadinessKind) -> bool {
            self.probe_ok
        }
        fn wait_any(&mut self) -> WaitResult {
            match self.exits.pop_front() {
                Some((p, s)) => WaitResult::Exited(p, s),
                None => WaitResult::NoChildren,
            }
        }
    }

    fn now() -> Now {
        Now {
            mono_ms: 0,
            unix_s: 1,
        }
    }

    fn paths() -> Paths {
        Paths {
            console: "/dev/console".into(),
            journal_socket: "/run/systemd/journal/stdout".into(),
        }
    }

    fn runtime(cfgs: Vec<ServiceConfig>, dir: &std::path::Path) -> Runtime<Recorder> {
        Runtime::new(
            Supervisor::new(cfgs, ""),
            Recorder::default(),
            NotifySockets::new(&dir.join("notify")),
            paths(),
        )
    }

    #[test]
    fn spawn_request_env_and_stdio() {
        let mut c = ServiceConfig::new("journald", "/lib/systemd/systemd-journald");
        c.env.insert("PATH".into(), "/opt".into());
        c.env.insert("X".into(), "1".into());
        let r = spawn_request(&c, Some("/run/cairn/notify/journald".into()), &paths());
        assert_eq!(
            r.env,
            vec![
                ("LANG".to_string(), "C.UTF-8".to_string()),
                ("PATH".to_string(), "/opt".to_string()),
                ("X".to_string(), "1".to_string()),
                (
                    "NOTIFY_SOCKET".to_string(),
                    "/run/cairn/notify/journald".to_string()
                ),
            ]
        );
        assert_eq!(
            r.stdio,
            StdioPlan::Journal {
                identifier: "journald".into(),
                socket: "/run/systemd/journal/stdout".into(),
                console: "/dev/console".into()
            }
        );
        c.stdio = Stdio::Device("/dev/ttyS1".into());
        assert_eq!(
            spawn_request(&c, None, &paths()).stdio,
            StdioPlan::Device("/dev/ttyS1".into())
        );
    }

    #[test]
    fn notify_service_gets_socket_and_becomes_ready() {
        let d = tempfile::tempdir().unwrap();
        let mut c = ServiceConfig::new("j", "/bin/j");
        c.readiness.kind = ReadinessKind::Notify;
        let mut rt = runtime(vec![c], d.path());
        let acts = rt.sup.boot(now());
        rt.execute(acts, now());
        let sock = d.path().join("notify/j");
        assert!(rt.ops.spawns[0]
            .env
            .contains(&("NOTIFY_SOCKET".to_string(), sock.display().to_string())));
        assert_eq!(rt.sup.state("j"), Some(State::Starting));
        std::os::unix::net::UnixDatagram::unbound()
            .unwrap()
            .send_to(b"READY=1", &sock)
            .unwrap();
        rt.on_notify("j", now());
        assert_eq!(rt.sup.state("j"), Some(State::Ready));
    }

    #[test]
    fn probe_success_marks_ready_and_reaper_routes_exits() {
        let d = tempfile::tempdir().unwrap();
        let mut c = ServiceConfig::new("api", "/bin/api");
        c.readiness.kind = ReadinessKind::Tcp(443);
        let mut rt = runtime(vec![c], d.path());
        rt.ops.probe_ok = true;
        let acts = rt.sup.boot(now());
        rt.execute(acts, now());
        assert_eq!(rt.sup.state("api"), Some(State::Ready));
        rt.ops.exits.push_back((4242, ExitStatus::Code(0)));
        rt.ops.exits.push_back((1001, ExitStatus::Signal(9)));
        assert!(rt.reap(now()));
        assert_eq!(rt.orphans_reaped(), 1);
        assert_eq!(rt.sup.state("api"), Some(State::BackingOff));
    }

    #[test]
    fn control_requests() {
        let d = tempfile::tempdir().unwrap();
        let mut rt = runtime(vec![ServiceConfig::new("a", "/bin/a")], d.path());
        let acts = rt.sup.boot(now());
        rt.execute(acts, now());
        let r = rt.handle(Ok(Request::Stop { name: "a".into() }), now());
        assert!(r.ok);
        assert_eq!(rt.ops.signals, vec![(1001, Sig::Term)]);
        let r = rt.handle(Ok(Request::Start { name: "zz".into() }), now());
        assert_eq!(r.error.as_deref(), Some("no service named \"zz\""));
        let r = rt.handle(Ok(Request::Status), now());
        let s = &r.services.unwrap()[0];
        assert_eq!(s.state, State::Stopping);
        assert_eq!(r.orphans_reaped, Some(0));
        let r = rt.handle(Err("bad request: x".into()), now());
        assert!(!r.ok);
    }

    #[test]
    fn tty_services_also_get_sighup_on_stop() {
        let d = tempfile::tempdir().unwrap();
        let mut shell = ServiceConfig::new("lab-shell", "/bin/sh");
        shell.stdio = Stdio::Device("/dev/ttyS1".into());
        let mut rt = runtime(vec![shell, ServiceConfig::new("b", "/bin/b")], d.path());
        let acts = rt.sup.boot(now());
        rt.execute(acts, now());
        let acts = rt.sup.shutdown(now());
        rt.execute(acts, now());
        let mut sigs = rt.ops.signals.clone();
        sigs.sort_by_key(|(p, _)| *p);
        // "b" sorts first and got pid 1001; lab-shell got 1002.
        assert_eq!(
            sigs,
            vec![(1001, Sig::Term), (1002, Sig::Term), (1002, Sig::Hup)]
        );
    }

    #[test]
    fn spawn_failure_is_reported_to_supervisor() {
        let d = tempfile::tempdir().unwrap();
        let mut rt = runtime(vec![ServiceConfig::new("a", "/bin/a")], d.path());
        rt.ops.fail_spawn = true;
        let acts = rt.sup.boot(now());
        rt.execute(acts, now());
        assert_eq!(rt.sup.state("a"), Some(State::BackingOff));
    }
}
