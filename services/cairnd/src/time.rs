//! The node's clock: the time zone link, chrony's sources file, restarting chronyd through
//! cairn-init, and chrony's status (`chronyc -c tracking` / `sources`) parsed.

use cairn_api::system::{ClockStatus, NtpSource};
use cairn_core::command::{run_ok, CommandRunner, Invocation};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The supervised service name of chronyd (`/etc/cairn/services/chronyd.toml`).
pub const CHRONYD: &str = "chronyd";
/// chrony reads `*.sources` here (`sourcedir` in /etc/chrony/chrony.conf), under the state dir.
pub const SOURCES_DIR: &str = "chrony";
/// The file cairnd writes there.
pub const SOURCES_FILE: &str = "cairn.sources";
/// `/etc/localtime` in the image points here (under the state dir, i.e. /var/lib/cairn).
pub const LOCALTIME_LINK: &str = "localtime";
/// How long a request to cairn-init's control socket may take.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the clock settings could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Atomic {
        path: PathBuf,
        #[source]
        source: cairn_core::AtomicWriteError,
    },
    #[error("there is no time zone {zone:?} in {}", dir.display())]
    NoZone { zone: String, dir: PathBuf },
    #[error("cannot restart {service} through cairn-init: {reason}")]
    Restart { service: String, reason: String },
}

impl From<TimeError> for std::io::Error {
    fn from(e: TimeError) -> Self {
        std::io::Error::other(cairn_core::boot::error_chain(&e))
    }
}

/// Restarting a supervised service: cairn-init's control socket, or a recording double.
pub trait ServiceControl: Send + Sync {
    fn restart(&self, name: &str) -> Result<(), String>;
}

/// cairn-init's control socket (`{"cmd":"restart","name":…}`).
pub struct InitSocket {
    pub path: PathBuf,
}

impl ServiceControl for InitSocket {
    fn restart(&self, name: &str) -> Result<(), String> {
        use cairn_init::control::{request, Request};
        let req = Request::Restart {
            name: name.to_string(),
        };
        match request(&self.path, &req, CONTROL_TIMEOUT) {
            Ok(r) if r.ok => Ok(()),
            Ok(r) => Err(r.error.unwrap_or_else(|| "refused".to_string())),
            Err(e) => Err(cairn_core::boot::error_chain(&e)),
        }
    }
}

/// The clock of this node.
pub struct Clock {
    state_dir: PathBuf,
    zoneinfo: PathBuf,
    runner: Arc<dyn CommandRunner>,
    /// None where cairnd does not manage the clock (not a Cairn node): files are written
    /// under the state directory, chronyd is neither restarted nor asked.
    control: Option<Box<dyn ServiceControl>>,
}

impl Clock {
    pub fn new(
        state_dir: &Path,
        zoneinfo: &Path,
        runner: Arc<dyn CommandRunner>,
        control: Option<Box<dyn ServiceControl>>,
    ) -> Self {
        Clock {
            state_dir: state_dir.to_path_buf(),
            zoneinfo: zoneinfo.to_path_buf(),
            runner,
            control,
        }
    }

    /// Point the localtime link at the zone, write chrony's sources, restart chronyd.
    pub fn apply(&self, timezone: &str, servers: &[String]) -> Result<(), TimeError> {
        let zone = self.zoneinfo.join(timezone);
        if !zone.is_file() && self.zoneinfo.is_dir() {
            return Err(TimeError::NoZone {
                zone: timezone.to_string(),
                dir: self.zoneinfo.clone(),
            });
        }
        let dir = self.state_dir.join(SOURCES_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| TimeError::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(SOURCES_FILE);
        cairn_core::write_atomic(&path, sources_file(servers).as_bytes(), 0o644)
            .map_err(|source| TimeError::Atomic { path, source })?;
        let link = self.state_dir.join(LOCALTIME_LINK);
        symlink_atomic(&zone, &link).map_err(|source| TimeError::Write { path: link, source })?;
        tracing::info!(timezone, servers = ?servers, "time settings written");
        if let Some(control) = &self.control {
            control
                .restart(CHRONYD)
                .map_err(|reason| TimeError::Restart {
                    service: CHRONYD.to_string(),
                    reason,
                })?;
            tracing::info!("chronyd restarted with the new sources");
        }
        Ok(())
    }

    /// chrony's view: tracking and sources (`chronyc -n -c`).
    pub fn status(&self) -> ClockStatus {
        if self.control.is_none() {
            return ClockStatus::default();
        }
        let mut status = ClockStatus {
            managed: true,
            ..ClockStatus::default()
        };
        let run = |what: &str| {
            run_ok(
                self.runner.as_ref(),
                &Invocation::new("chronyc", ["-n", "-c", what]),
            )
            .map(|o| o.stdout_text())
            .map_err(|e| cairn_core::boot::error_chain(&e))
        };
        match run("tracking") {
            Ok(text) => apply_tracking(&mut status, &text),
            Err(e) => status.error = Some(format!("chronyd does not answer: {e}")),
        }
        match run("sources") {
            Ok(text) => status.sources = parse_sources(&text),
            Err(e) if status.error.is_none() => {
                status.error = Some(format!("chronyd does not answer: {e}"))
            }
            Err(_) => {}
        }
        status
    }
}

/// chrony's sources file: one `server NAME iburst` line per server.
pub fn sources_file(servers: &[String]) -> String {
    let mut s = String::from("# Written by cairnd from the node's NTP servers; do not edit.\n");
    for server in servers {
        s.push_str(&format!("server {server} iburst\n"));
    }
    s
}

/// Replace `link` by a symlink to `target`: a new link beside it, renamed over it.
pub fn symlink_atomic(target: &Path, link: &Path) -> std::io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Fill the tracking fields from `chronyc -c tracking` (one CSV line: ref id, name,
/// stratum, ref time, system offset, …, leap status last).
pub fn apply_tracking(status: &mut ClockStatus, text: &str) {
    let Some(line) = text.lines().find(|l| !l.trim().is_empty()) else {
        status.error = Some("chronyc printed no tracking line".to_string());
        return;
    };
    let f: Vec<&str> = line.split(',').collect();
    if f.len() < 14 {
        status.error = Some(format!("unexpected chronyc tracking line: {line:?}"));
        return;
    }
    let leap = f[13].trim().to_string();
    let stratum = f[2].parse::<u32>().ok();
    let reference = f[1].trim();
    status.synchronized =
        leap != "Not synchronised" && stratum.is_some_and(|s| s > 0) && !reference.is_empty();
    status.reference = (!reference.is_empty()).then(|| reference.to_string());
    status.stratum = stratum;
    // Field 4 is "system time": how far the clock is from true time (positive: fast).
    status.offset_s = f[4].parse::<f64>().ok();
    status.leap_status = Some(leap);
}

/// Parse `chronyc -c sources` (mode, state, name, stratum, poll, reach (octal), last rx,
/// adjusted offset, measured offset, error).
pub fn parse_sources(text: &str) -> Vec<NtpSource> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 10 {
                return None;
            }
            let state = match f[1] {
                "*" => "selected",
                "+" => "combined",
                "-" => "not_combined",
                "?" => "unreachable",
                "x" => "falseticker",
                "~" => "too_variable",
                _ => "unknown",
            };
            let reach = u32::from_str_radix(f[5], 8).unwrap_or(0);
            Some(NtpSource {
                address: f[2].to_string(),
                state: state.to_string(),
                stratum: f[3].parse().unwrap_or(0),
                reach,
                offset_s: if reach == 0 {
                    None
                } else {
                    f[7].parse::<f64>().ok()
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::command::{CommandOutput, RecordingRunner};
    use std::sync::Mutex;

    /// Records restarts; fails them when told to.
    #[derive(Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<String>>>, Option<String>);

    impl ServiceControl for Recorder {
        fn restart(&self, name: &str) -> Result<(), String> {
            self.0.lock().unwrap().push(name.to_string());
            match &self.1 {
                Some(e) => Err(e.clone()),
                None => Ok(()),
            }
        }
    }

    fn zoneinfo() -> tempfile::TempDir {
        let z = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(z.path().join("Europe")).unwrap();
        std::fs::write(z.path().join("Europe/Berlin"), b"TZif2").unwrap();
        std::fs::write(z.path().join("UTC"), b"TZif2").unwrap();
        z
    }

    #[test]
    fn apply_writes_sources_links_the_zone_and_restarts_chronyd() {
        let state = tempfile::tempdir().unwrap();
        let z = zoneinfo();
        let rec = Recorder::default();
        let clock = Clock::new(
            state.path(),
            z.path(),
            Arc::new(RecordingRunner::new()),
            Some(Box::new(rec.clone())),
        );
        let servers = vec!["10.0.2.2".to_string(), "pool.ntp.org".to_string()];
        clock.apply("Europe/Berlin", &servers).unwrap();
        let sources = std::fs::read_to_string(state.path().join("chrony/cairn.sources")).unwrap();
        assert!(sources.ends_with("server 10.0.2.2 iburst\nserver pool.ntp.org iburst\n"));
        let link = std::fs::read_link(state.path().join(LOCALTIME_LINK)).unwrap();
        assert_eq!(link, z.path().join("Europe/Berlin"));
        assert_eq!(*rec.0.lock().unwrap(), vec!["chronyd".to_string()]);

        // A later change replaces both; no temporary files are left behind.
        clock.apply("UTC", &servers[..1]).unwrap();
        let link = std::fs::read_link(state.path().join(LOCALTIME_LINK)).unwrap();
        assert_eq!(link, z.path().join("UTC"));
        let names: Vec<String> = std::fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
        assert_eq!(rec.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn unknown_zone_and_failed_restart_are_errors() {
        let state = tempfile::tempdir().unwrap();
        let z = zoneinfo();
        let failing = Recorder(Arc::default(), Some("no such service".into()));
        let clock = Clock::new(
            state.path(),
            z.path(),
            Arc::new(RecordingRunner::new()),
            Some(Box::new(failing)),
        );
        let e = clock.apply("Mars/Olympus", &[]).unwrap_err();
        assert!(
            e.to_string().contains("no time zone \"Mars/Olympus\""),
            "{e}"
        );
        assert!(
            !state.path().join(LOCALTIME_LINK).exists(),
            "nothing written"
        );
        let e = clock.apply("UTC", &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot restart chronyd through cairn-init: no such service"
        );
    }

    #[test]
    fn unmanaged_clock_writes_files_but_restarts_nothing() {
        let state = tempfile::tempdir().unwrap();
        let z = zoneinfo();
        let runner = Arc::new(RecordingRunner::new());
        let clock = Clock::new(state.path(), z.path(), runner.clone(), None);
        clock.apply("UTC", &["a.org".to_string()]).unwrap();
        assert!(state.path().join("chrony/cairn.sources").exists());
        assert_eq!(clock.status(), ClockStatus::default());
        assert!(runner.calls().is_empty(), "chronyc not run");
    }

    #[test]
    fn status_parses_chronyc() {
        let runner = RecordingRunner::new();
        runner.expect(
            "chronyc",
            &["-n", "-c", "tracking"],
            CommandOutput::ok(
                "0A000202,10.0.2.2,3,1795395762.123456789,-0.000012345,0.000001000,0.000020000,-3.456,0.001,0.045,0.012345678,0.000987654,64.5,Normal\n",
            ),
        );
        runner.expect(
            "chronyc",
            &["-n", "-c", "sources"],
            CommandOutput::ok(
                "^,*,10.0.2.2,2,6,377,35,-0.000012000,-0.000015000,0.000100000\n^,?,192.0.2.1,0,6,0,-,0.000000000,0.000000000,0.000000000\n",
            ),
        );
        let clock = Clock::new(
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            Arc::new(runner),
            Some(Box::new(Recorder::default())),
        );
        let s = clock.status();
        assert!(s.managed && s.synchronized, "{s:?}");
        assert_eq!(s.reference.as_deref(), Some("10.0.2.2"));
        assert_eq!(s.stratum, Some(3));
        assert_eq!(s.offset_s, Some(-0.000012345));
        assert_eq!(s.leap_status.as_deref(), Some("Normal"));
        assert_eq!(s.error, None);
        assert_eq!(s.sources.len(), 2);
        assert_eq!(
            s.sources[0],
            NtpSource {
                address: "10.0.2.2".into(),
                state: "selected".into(),
                stratum: 2,
                reach: 255,
                offset_s: Some(-0.000012),
            }
        );
        assert_eq!(
            (s.sources[1].state.as_str(), s.sources[1].offset_s),
            ("unreachable", None)
        );
    }

    #[test]
    fn status_explains_a_silent_chronyd() {
        let runner = RecordingRunner::new();
        for what in ["tracking", "sources"] {
            runner.expect(
                "chronyc",
                &["-n", "-c", what],
                CommandOutput::failed(1, "506 Cannot talk to daemon\n"),
            );
        }
        let clock = Clock::new(
            Path::new("/nonexistent"),
            Path::new("/nonexistent"),
            Arc::new(runner),
            Some(Box::new(Recorder::default())),
        );
        let s = clock.status();
        assert!(s.managed && !s.synchronized);
        let e = s.error.unwrap();
        assert!(
            e.starts_with("chronyd does not answer") && e.contains("506"),
            "{e}"
        );
        let mut t = ClockStatus::default();
        apply_tracking(
            &mut t,
            "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n",
        );
        assert!(!t.synchronized && t.reference.is_none());
    }
}
