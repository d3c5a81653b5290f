//! Stage 2: PID 1 of the running system — setup, the single-threaded poll loop, shutdown.

use crate::clock;
use crate::config;
use crate::control::{self, ControlServer};
use crate::identity;
use crate::log::{self, log};
use crate::mounts::{self, MountOps, RealMountOps};
use crate::node_stop;
use crate::notify::{self, NotifySockets};
use crate::powerbutton::PowerButton;
use crate::process::{RealProcessOps, JOURNAL_STREAM_SOCKET};
use crate::runtime::{Paths, Runtime};
use crate::shutdown::{self, Kind, RealSystemOps};
use crate::supervisor::Supervisor;
use crate::varskel;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Longest poll timeout when nothing is scheduled.
const IDLE_POLL_MS: u64 = 60_000;
/// Extra time allowed for the whole service shutdown beyond the sum of stop timeouts.
const SHUTDOWN_SLACK_MS: u64 = 10_000;

/// Stage 2 settings (environment overrides, for tests and development).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `CAIRN_SERVICES_DIR`, default /etc/cairn/services.
    pub services_dir: PathBuf,
    /// `CAIRN_CONTROL_SOCKET`, default /run/cairn/init.sock.
    pub control_socket: PathBuf,
    /// `CAIRN_NOTIFY_DIR`, default /run/cairn/notify.
    pub notify_dir: PathBuf,
    /// `CAIRN_CONSOLE`, default /dev/console (log lines and console stdio).
    pub console: PathBuf,
    /// False with `CAIRN_INIT_MOUNTS=none`: no mount table, console dup, machine id,
    /// hostname, loopback, power button, /dev/kmsg or unmount at shutdown.
    pub system: bool,
    /// `CAIRN_KERNEL_CMDLINE` (text), else read from /proc/cmdline.
    pub cmdline: Option<String>,
    /// `CAIRN_NODE_STOPPING`, default /run/cairn/node-stopping: written before services
    /// are stopped for a power-off or reboot (see [`node_stop`]).
    pub node_stopping: PathBuf,
}

impl Settings {
    /// Reads the settings through `get` (the environment in production).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Self {
        let path = |k: &str, d: &str| PathBuf::from(get(k).unwrap_or_else(|| d.to_string()));
        Settings {
            services_dir: path("CAIRN_SERVICES_DIR", "/etc/cairn/services"),
            control_socket: path("CAIRN_CONTROL_SOCKET", control::DEFAULT_SOCKET),
            notify_dir: path("CAIRN_NOTIFY_DIR", notify::DEFAULT_DIR),
            console: path("CAIRN_CONSOLE", "/dev/console"),
            system: get("CAIRN_INIT_MOUNTS").as_deref() != Some("none"),
            cmdline: get("CAIRN_KERNEL_CMDLINE"),
            node_stopping: path("CAIRN_NODE_STOPPING", node_stop::DEFAULT_MARKER),
        }
    }

    pub fn from_env() -> Self {
        Self::from_vars(|k| std::env::var(k).ok())
    }
}

#[derive(Clone)]
enum Source {
    Signal,
    Control,
    Notify(String),
    Button,
}

/// Brings the loopback interface up (the tcp readiness probe connects to 127.0.0.1).
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        req.ifr_name[i] = libc::c_char::from_ne_bytes([*b]);
    }
    // SAFETY: SIOCGIFFLAGS reads/writes a struct ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let up = libc::c_short::try_from(libc::IFF_UP | libc::IFF_RUNNING)
        .map_err(|_| std::io::Error::other("IFF_UP | IFF_RUNNING does not fit ifru_flags"))?;
    // SAFETY: after SIOCGIFFLAGS the union holds ifru_flags.
    unsafe {
        req.ifr_ifru.ifru_flags |= up;
    }
    // SAFETY: SIOCSIFFLAGS reads a struct ifreq we own.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn dev_links() {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/log", "/run/systemd/journal/dev-log"),
    ] {
        let _ = std::os::unix::fs::symlink(target, link);
    }
}

fn system_setup(settings: &Settings, mount_problems: Vec<String>) {
    for p in mount_problems {
        log(&p);
    }
    let mut m = RealMountOps;
    let (state, var) = (Path::new("/state"), Path::new("/var"));
    let state_mounted = m.is_mountpoint(state);
    let skel_into = |dest: &Path| {
        let (r, errs) = varskel::copy_missing(Path::new(varskel::DEFAULT_SKEL), dest);
        for e in &errs {
            log(&cairn_base::error_chain(e));
        }
        if r.copied > 0 {
            log(&format!(
                "var skeleton: {} entries copied into {}",
                r.copied,
                dest.display()
            ));
        }
    };
    if state_mounted {
        let state_var = state.join("var");
        match std::fs::create_dir_all(&state_var) {
            Ok(()) => skel_into(&state_var),
            Err(e) => log(&format!("cannot create {}: {e}", state_var.display())),
        }
    }
    for p in mounts::apply_state(&mut m, state, var) {
        log(&p);
    }
    if !state_mounted {
        skel_into(var);
    }
    dev_links();
    if let Err(e) = std::fs::create_dir_all("/run/cairn") {
        log(&format!("cannot create /run/cairn: {e}"));
    }
    let (state, run_id, host_file) = identity::default_paths();
    let id = match identity::ensure_machine_id(&state, &run_id, identity::random_bytes) {
        Ok(m) => {
            if !m.persistent {
                log("machine id is volatile: STATE is not writable");
            }
            m.id
        }
        Err(e) => {
            log(&format!("machine id: {e}"));
            "000000".to_string()
        }
    };
    let (host, why) = identity::choose_hostname(&host_file, &id);
    if let Some(w) = why {
        log(&w);
    }
    match identity::set_hostname(&host) {
        Ok(()) => log(&format!("hostname {host}")),
        Err(e) => log(&e.to_string()),
    }
    if let Err(e) = loopback_up() {
        log(&format!("cannot bring up lo: {e}"));
    }
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        log(&format!("cannot disable ctrl-alt-del reboot: {e}"));
    }
    let _ = settings;
}

fn signal_fd() -> nix::Result<SignalFd> {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGPWR,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

/// The most the orderly service shutdown may take before what is left is killed: every
/// service's `stop_timeout_s` in a row, the worst case of a chain ordered by `requires` and
/// `stop_after` (each stop begins only when the one before it ended). The caller adds
/// [`SHUTDOWN_SLACK_MS`].
pub fn stop_budget_ms(configs: &[config::ServiceConfig]) -> u64 {
    configs
        .iter()
        .map(|c| c.stop_timeout_s.saturating_mul(1000))
        .fold(0u64, u64::saturating_add)
}

/// Runs stage 2. Never returns: ends in reboot(2) (in a PID namespace, that ends PID 1).
pub fn run(settings: Settings) -> ! {
    if settings.system {
        // Stage 1 executes us as /sbin/init; name the process after what it is, so
        // `ps` and /proc/1/comm say cairn-init.
        let _ = nix::sys::prctl::set_name(c"cairn-init");
    }
    let mount_problems = if settings.system {
        let p = mounts::apply(&mut RealMountOps, &mounts::table(mounts::booted_with_efi()));
        let _ = crate::console::setup(&settings.console);
        p
    } else {
        Vec::new()
    };
    log::init(&settings.console, settings.system);
    log("stage 2 (pid 1)");
    let kind = main_loop(&settings, mount_problems);
    final_phase(&settings, kind)
}

/// Kills what is left, unmounts, reboots; if reboot(2) fails, stays alive reaping.
pub fn final_phase(settings: &Settings, kind: Kind) -> ! {
    let mut m = RealMountOps;
    let mounts: Option<&mut dyn mounts::MountOps> =
        if settings.system { Some(&mut m) } else { None };
    let err = shutdown::finish(&mut RealSystemOps, mounts, kind);
    log(&format!("reboot(2) failed: {err}; staying up"));
    loop {
        // Nothing is left to supervise; block in wait(2) so stray children are still reaped.
        if nix::sys::wait::wait().is_err() {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

fn main_loop(settings: &Settings, mount_problems: Vec<String>) -> Kind {
    let sfd = match signal_fd() {
        Ok(s) => Some(s),
        Err(e) => {
            log(&format!("signalfd: {e}; signals will not be handled"));
            None
        }
    };
    if settings.system {
        system_setup(settings, mount_problems);
    }
    let cmdline = settings
        .cmdline
        .clone()
        .unwrap_or_else(|| std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    // /run is a fresh tmpfs on a node; a development run may find one from an earlier run.
    match node_stop::clear(&settings.node_stopping) {
        Ok(true) => log(&format!(
            "removed a leftover {}",
            settings.node_stopping.display()
        )),
        Ok(false) => {}
        Err(e) => log(&cairn_base::error_chain(&e)),
    }
    let (configs, errors) = config::load_dir(&settings.services_dir);
    for e in &errors {
        log(&cairn_base::error_chain(e));
    }
    log(&format!(
        "{} services from {}",
        configs.len(),
        settings.services_dir.display()
    ));
    let total_stop_ms = stop_budget_ms(&configs);
    let sup = Supervisor::new(configs, &cmdline);
    let mut rt = Runtime::new(
        sup,
        RealProcessOps,
        NotifySockets::new(&settings.notify_dir),
        Paths {
            console: settings.console.clone(),
            journal_socket: PathBuf::from(JOURNAL_STREAM_SOCKET),
        },
    );
    let mut control = match ControlServer::bind(&settings.control_socket) {
        Ok(c) => Some(c),
        Err(e) => {
            log(&cairn_base::error_chain(&e));
            None
        }
    };
    let mut button = settings
        .system
        .then(|| PowerButton::new(Path::new("/sys/class/input"), Path::new("/dev/input")));
    let now = clock::now();
    let acts = rt.sup.boot(now);
    rt.execute(acts, now);

    let mut shutdown: Option<(Kind, u64)> = None;
    let request = |rt: &mut Runtime<RealProcessOps>,
                   kind: Kind,
                   why: &str,
                   shutdown: &mut Option<(Kind, u64)>| {
        if shutdown.is_some() {
            return;
        }
        let now = clock::now();
        log(&format!("{why}: {}", kind.verb()));
        // Before any service gets SIGTERM: cairnd reads it to shut the VMs down first.
        if let Err(e) = node_stop::write(&settings.node_stopping, kind, why) {
            log(&cairn_base::error_chain(&e));
        }
        *shutdown = Some((kind, now.mono_ms + total_stop_ms + SHUTDOWN_SLACK_MS));
        let acts = rt.sup.shutdown(now);
        rt.execute(acts, now);
    };
    loop {
        let now = clock::now();
        rt.tick(now);
        if let Some(b) = button.as_mut() {
            for ev in b.scan(now.mono_ms) {
                log(&format!("power button on /dev/input/{ev}"));
            }
        }
        if let Some((kind, deadline)) = shutdown {
            if rt.sup.shutdown_complete() {
                return kind;
            }
            if now.mono_ms >= deadline {
                log(&format!(
                    "services still running at the shutdown deadline: {}",
                    rt.sup.alive().join(", ")
                ));
                return kind;
            }
        }
        let deadlines = [
            rt.sup.next_deadline(),
            control.as_ref().and_then(|c| c.next_deadline()),
            button.as_ref().and_then(|b| b.next_deadline()),
            shutdown.map(|(_, d)| d),
        ];
        let next = deadlines.iter().flatten().min().copied();
        let timeout_ms = next
            .map(|d| d.saturating_sub(now.mono_ms))
            .unwrap_or(IDLE_POLL_MS)
            .min(IDLE_POLL_MS);

        let ready: Vec<Source> = {
            let mut sources: Vec<(Source, BorrowedFd<'_>)> = Vec::new();
            if let Some(s) = sfd.as_ref() {
                sources.push((Source::Signal, s.as_fd()));
            }
            if let Some(c) = control.as_ref() {
                sources.extend(c.fds().into_iter().map(|fd| (Source::Control, fd)));
            }
            sources.extend(
                rt.notify
                    .fds()
                    .into_iter()
                    .map(|(n, fd)| (Source::Notify(n), fd)),
            );
            if let Some(b) = button.as_ref() {
                sources.extend(b.fds().into_iter().map(|fd| (Source::Button, fd)));
            }
            let mut pfds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|(_, fd)| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            let t = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX);
            match poll(&mut pfds, t) {
                Ok(_) => pfds
                    .iter()
                    .zip(sources.iter())
                    .filter(|(p, _)| p.revents().is_some_and(|r| !r.is_empty()))
                    .map(|(_, (s, _))| s.clone())
                    .collect(),
                Err(_) => Vec::new(),
            }
        };
        let now = clock::now();
        let mut control_done = false;
        for src in ready {
            match src {
                Source::Signal => {
                    while let Some(Ok(Some(info))) = sfd.as_ref().map(|s| s.read_signal()) {
                        match i32::try_from(info.ssi_signo)
                            .map_err(|_| nix::errno::Errno::EINVAL)
                            .and_then(Signal::try_from)
                        {
                            Ok(Signal::SIGINT) => {
                                request(&mut rt, Kind::Reboot, "SIGINT", &mut shutdown)
                            }
                            Ok(Signal::SIGTERM) => {
                                request(&mut rt, Kind::Poweroff, "SIGTERM", &mut shutdown)
                            }
                            Ok(Signal::SIGPWR) => {
                                request(&mut rt, Kind::Poweroff, "SIGPWR", &mut shutdown)
                            }
                            _ => {}
                        }
                    }
                }
                Source::Control if !control_done => {
                    control_done = true;
                    if let Some(c) = control.as_mut() {
                        c.service(now.mono_ms, &mut |req| rt.handle(req, now));
                    }
                }
                Source::Control => {}
                Source::Notify(name) => rt.on_notify(&name, now),
                Source::Button => {
                    if button.as_mut().is_some_and(|b| b.read_pressed()) {
                        request(&mut rt, Kind::Poweroff, "power button", &mut shutdown);
                    }
                }
            }
        }
        if let Some(c) = control.as_mut() {
            if !control_done && c.next_deadline().is_some_and(|d| d <= now.mono_ms) {
                c.service(now.mono_ms, &mut |req| rt.handle(req, now));
            }
        }
        rt.reap(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn settings_defaults_and_overrides() {
        let s = Settings::from_vars(|_| None);
        assert_eq!(s.services_dir, PathBuf::from("/etc/cairn/services"));
        assert_eq!(s.control_socket, PathBuf::from("/run/cairn/init.sock"));
        assert_eq!(s.notify_dir, PathBuf::from("/run/cairn/notify"));
        assert_eq!(s.console, PathBuf::from("/dev/console"));
        assert!(s.system);
        let vars: BTreeMap<&str, &str> = [
            ("CAIRN_SERVICES_DIR", "/t/svc"),
            ("CAIRN_CONTROL_SOCKET", "/t/init.sock"),
            ("CAIRN_NOTIFY_DIR", "/t/notify"),
            ("CAIRN_CONSOLE", "/t/console.log"),
            ("CAIRN_INIT_MOUNTS", "none"),
            ("CAIRN_KERNEL_CMDLINE", "cairn.lab=1"),
        ]
        .into_iter()
        .collect();
        let s = Settings::from_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(s.services_dir, PathBuf::from("/t/svc"));
        assert_eq!(s.control_socket, PathBuf::from("/t/init.sock"));
        assert!(!s.system);
        assert_eq!(s.cmdline.as_deref(), Some("cairn.lab=1"));
        assert_eq!(s.node_stopping, PathBuf::from("/run/cairn/node-stopping"));
        let s = Settings::from_vars(|k| (k == "CAIRN_NODE_STOPPING").then(|| "/t/stop".into()));
        assert_eq!(s.node_stopping, PathBuf::from("/t/stop"));
    }

    #[test]
    fn stop_budget_covers_every_stop_in_a_row() {
        let mut cairnd = config::ServiceConfig::new("cairnd", "/usr/sbin/cairnd");
        cairnd.stop_timeout_s = 90;
        let mut libvirtd = config::ServiceConfig::new("libvirtd", "/bin/sh");
        libvirtd.stop_timeout_s = 30;
        libvirtd.stop_after = vec!["cairnd".into()];
        let journald = config::ServiceConfig::new("journald", "/x");
        assert_eq!(stop_budget_ms(&[cairnd, libvirtd, journald]), 130_000);
        assert_eq!(stop_budget_ms(&[]), 0);
    }
}
