//! Process operations behind a narrow trait: spawn, signal, readiness probes and the reaper's wait.

use crate::config::ReadinessKind;
use crate::supervisor::{ExitStatus, Sig};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio as StdStdio};
use std::time::Duration;

/// journald's stdout stream socket.
pub const JOURNAL_STREAM_SOCKET: &str = "/run/systemd/journal/stdout";

/// Where the child's stdio goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdioPlan {
    /// journald stream socket under `identifier`; the console if it cannot be reached.
    Journal {
        identifier: String,
        socket: PathBuf,
        console: PathBuf,
    },
    /// stdout/stderr on the console, stdin from /dev/null.
    Console(PathBuf),
    /// stdin, stdout and stderr on this device; it becomes the controlling terminal.
    Device(PathBuf),
}

/// Everything needed to start one service process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub name: String,
    pub exec: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub stdio: StdioPlan,
    /// Soft and hard `RLIMIT_NOFILE` of the child, set before exec.
    pub limit_nofile: Option<u64>,
}

/// One result of the reaper's non-blocking wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    Exited(i32, ExitStatus),
    /// Children exist, none has exited.
    NoneExited,
    /// No children at all.
    NoChildren,
}

/// The process operations the runtime needs.
pub trait ProcessOps {
    fn spawn(&mut self, req: &SpawnRequest) -> io::Result<i32>;
    fn signal(&mut self, pid: i32, sig: Sig) -> io::Result<()>;
    fn probe(&mut self, kind: &ReadinessKind) -> bool;
    fn wait_any(&mut self) -> WaitResult;
}

/// journald's stream protocol header (systemd journald-stream.c): identifier, unit id,
/// priority, level prefix, forward to syslog, kmsg, console.
pub fn journal_stream_header(identifier: &str) -> String {
    format!("{identifier}\n\n6\n1\n0\n0\n0\n")
}

fn open_console(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
}

fn connect_journal(identifier: &str, socket: &PathBuf) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(socket)?;
    s.set_write_timeout(Some(Duration::from_secs(1)))?;
    s.write_all(journal_stream_header(identifier).as_bytes())?;
    s.set_write_timeout(None)?;
    s.shutdown(std::net::Shutdown::Read)?;
    Ok(s)
}

/// The real implementation (fork/exec through std, kill(2), waitpid(2)).
#[derive(Debug, Default)]
pub struct RealProcessOps;

impl ProcessOps for RealProcessOps {
    fn spawn(&mut self, req: &SpawnRequest) -> io::Result<i32> {
        let null = || File::open("/dev/null");
        let (stdin, out, err, ctty): (OwnedFd, OwnedFd, OwnedFd, bool) = match &req.stdio {
            StdioPlan::Journal {
                identifier,
                socket,
                console,
            } => match connect_journal(identifier, socket) {
                Ok(s) => {
                    let s2 = s.try_clone()?;
                    (null()?.into(), s.into(), s2.into(), false)
                }
                Err(_) => {
                    let c = open_console(console)?;
                    (null()?.into(), c.try_clone()?.into(), c.into(), false)
                }
            },
            StdioPlan::Console(p) => {
                let c = open_console(p)?;
                (null()?.into(), c.try_clone()?.into(), c.into(), false)
            }
            StdioPlan::Device(p) => {
                let d = open_console(p)?;
                (d.try_clone()?.into(), d.try_clone()?.into(), d.into(), true)
            }
        };
        let mut cmd = Command::new(&req.exec);
        cmd.args(&req.args)
            .env_clear()
            .envs(
                req.env
                    .iter()
                    .map(|(k, v)| (OsString::from(k), OsString::from(v))),
            )
            .current_dir(&req.working_dir)
            .stdin(StdStdio::from(stdin))
            .stdout(StdStdio::from(out))
            .stderr(StdStdio::from(err));
        let limit_nofile = req.limit_nofile;
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (sigemptyset, sigprocmask, setsid, ioctl, setrlimit)
        // and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                libc::setsid();
                if ctty {
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                }
                if let Some(n) = limit_nofile {
                    use nix::sys::resource::{setrlimit, Resource};
                    setrlimit(Resource::RLIMIT_NOFILE, n, n)?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            // setrlimit's EPERM comes back as the spawn's error: say which it was.
            let over_hard = req.limit_nofile.is_some_and(|n| {
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                    .is_ok_and(|(_, hard)| n > hard)
            });
            if e.raw_os_error() == Some(libc::EPERM) && over_hard {
                io::Error::new(
                    e.kind(),
                    format!(
                        "limit_nofile = {} is above cairn-init's hard limit and cannot be raised: {e}",
                        req.limit_nofile.unwrap_or_default()
                    ),
                )
            } else {
                io::Error::new(e.kind(), format!("exec {}: {e}", req.exec.display()))
            }
        })?;
        // Dropping a std Child neither waits nor kills: the reaper collects it.
        i32::try_from(child.id())
            .map_err(|_| io::Error::other(format!("pid {} does not fit a pid_t", child.id())))
    }

    fn signal(&mut self, pid: i32, sig: Sig) -> io::Result<()> {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let s = match sig {
            Sig::Term => Signal::SIGTERM,
            Sig::Kill => Signal::SIGKILL,
            Sig::Hup => Signal::SIGHUP,
        };
        if sig == Sig::Kill {
            // The service is its own session and process group: take its helpers too.
            let _ = kill(Pid::from_raw(-pid), s);
        }
        kill(Pid::from_raw(pid), s).map_err(io::Error::from)
    }

    fn probe(&mut self, kind: &ReadinessKind) -> bool {
        match kind {
            ReadinessKind::Socket(p) => UnixStream::connect(p).is_ok(),
            ReadinessKind::Tcp(port) => [
                SocketAddr::from((Ipv4Addr::LOCALHOST, *port)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, *port)),
            ]
            .iter()
            .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()),
            _ => false,
        }
    }

    fn wait_any(&mut self) -> WaitResult {
        use nix::errno::Errno;
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        use nix::unistd::Pid;
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    return WaitResult::Exited(pid.as_raw(), ExitStatus::Code(code))
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    return WaitResult::Exited(pid.as_raw(), ExitStatus::Signal(sig as i32))
                }
                Ok(WaitStatus::StillAlive) => return WaitResult::NoneExited,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::ECHILD) => return WaitResult::NoChildren,
                Err(_) => return WaitResult::NoneExited,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn header_matches_journald_protocol() {
        assert_eq!(journal_stream_header("cairnd"), "cairnd\n\n6\n1\n0\n0\n0\n");
    }

    #[test]
    fn journal_stream_header_is_sent() {
        use std::io::Read;
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("stdout");
        let l = UnixListener::bind(&sock).unwrap();
        let s = connect_journal("svc", &sock).unwrap();
        drop(s);
        let (mut c, _) = l.accept().unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "svc\n\n6\n1\n0\n0\n0\n");
    }

    #[test]
    fn spawn_runs_with_env_cwd_and_falls_back_to_console() {
        let d = tempfile::tempdir().unwrap();
        let console = d.path().join("console.log");
        std::fs::write(&console, "").unwrap();
        let mut ops = RealProcessOps;
        let pid = ops
            .spawn(&SpawnRequest {
                name: "t".into(),
                exec: "/bin/sh".into(),
                args: vec!["-c".into(), "echo \"$FOO $(pwd)\"; echo err >&2".into()],
                env: vec![
                    ("FOO".into(), "bar".into()),
                    ("PATH".into(), "/usr/bin:/bin".into()),
                ],
                working_dir: d.path().to_path_buf(),
                stdio: StdioPlan::Journal {
                    identifier: "t".into(),
                    socket: d.path().join("no-journal"),
                    console: console.clone(),
                },
                limit_nofile: None,
            })
            .unwrap();
        let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0)
        );
        let out = std::fs::read_to_string(&console).unwrap();
        assert_eq!(out, format!("bar {}\nerr\n", d.path().display()));
    }

    #[test]
    fn spawn_of_missing_binary_fails() {
        let mut ops = RealProcessOps;
        let e = ops.spawn(&SpawnRequest {
            name: "t".into(),
            exec: "/nonexistent/bin".into(),
            args: vec![],
            env: vec![],
            working_dir: "/".into(),
            stdio: StdioPlan::Console("/dev/null".into()),
            limit_nofile: None,
        });
        assert!(e.is_err());
    }

    #[test]
    fn spawn_sets_the_open_files_limit() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let mut ops = RealProcessOps;
        let pid = ops
            .spawn(&SpawnRequest {
                name: "t".into(),
                exec: "/bin/sh".into(),
                args: vec!["-c".into(), "ulimit -n; ulimit -Hn".into()],
                env: vec![],
                working_dir: "/".into(),
                stdio: StdioPlan::Console(out.clone()),
                limit_nofile: Some(777),
            })
            .unwrap();
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "777\n777\n");
    }

    #[test]
    fn probes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        let mut ops = RealProcessOps;
        assert!(!ops.probe(&ReadinessKind::Socket(p.clone())));
        let _l = UnixListener::bind(&p).unwrap();
        assert!(ops.probe(&ReadinessKind::Socket(p)));
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        assert!(ops.probe(&ReadinessKind::Tcp(port)));
        drop(t);
        assert!(!ops.probe(&ReadinessKind::Tcp(port)));
    }
}
