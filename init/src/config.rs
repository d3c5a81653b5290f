//! Service definition files: the TOML schema, its validation and loading a directory of them.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default stop timeout (SIGTERM → SIGKILL), seconds.
pub const DEFAULT_STOP_TIMEOUT_S: u64 = 10;
/// Default readiness timeout for kinds other than `started`, seconds.
pub const DEFAULT_READY_TIMEOUT_S: u64 = 30;
/// Smallest `limit_nofile`: below this a service cannot even open its stdio and libraries.
pub const MIN_LIMIT_NOFILE: u64 = 64;
/// Largest `limit_nofile`: the kernel's default `fs.nr_open`; above it setrlimit fails.
pub const MAX_LIMIT_NOFILE: u64 = 1 << 20;

/// Where a service's stdin/stdout/stderr go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdio {
    /// journald's stdout stream socket (console until journald accepts connections).
    Journal,
    /// The system console.
    Console,
    /// A device path used for stdin, stdout and stderr.
    Device(PathBuf),
}

/// How a service tells us it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadinessKind {
    /// Ready as soon as the process was spawned.
    Started,
    /// One-shot: ready when it exits with code 0.
    Exited,
    /// Ready when the unix stream socket at this path accepts a connection.
    Socket(PathBuf),
    /// Ready when this TCP port on the loopback address accepts a connection.
    Tcp(u16),
    /// Ready when `READY=1` arrives on the service's notify socket.
    Notify,
}

/// Readiness kind plus the time allowed to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub kind: ReadinessKind,
    pub timeout_s: u64,
}

/// When a service that exited is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Restart policy with its backoff and start limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    pub policy: RestartPolicy,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub start_limit_burst: u32,
    pub start_limit_interval_s: u64,
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::OnFailure,
            backoff_initial_ms: 100,
            backoff_max_ms: 10_000,
            start_limit_burst: 5,
            start_limit_interval_s: 60,
        }
    }
}

/// One validated service definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub name: String,
    pub description: Option<String>,
    pub exec: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
    pub requires: Vec<String>,
    /// At shutdown (or when both are being stopped), stop this service only after these
    /// have stopped. Ordering only: it starts nothing and stops nothing by itself.
    pub stop_after: Vec<String>,
    /// At boot (and at every start), start this service only once these are ready, have
    /// failed or are disabled. Ordering only: unlike `requires`, their failure or restart
    /// neither stops this service nor keeps it from starting. Used so the admin's page
    /// (cairnd) gets the CPU before heavy services it does not need (libvirtd).
    pub start_after: Vec<String>,
    pub stop_timeout_s: u64,
    pub stdio: Stdio,
    pub condition_kernel_cmdline: Option<String>,
    /// Start at boot only if this absolute path exists then (e.g. etcd once the node is in a
    /// cluster). An explicit `cairn-init svc start` starts the service anyway.
    pub condition_path_exists: Option<PathBuf>,
    /// Start at boot only if this absolute path does NOT exist then (e.g. libvirtd, not on a
    /// witness node). An explicit `cairn-init svc start` starts the service anyway.
    pub condition_path_absent: Option<PathBuf>,
    pub readiness: Readiness,
    pub restart: Restart,
    /// The open-files limit (soft and hard `RLIMIT_NOFILE`) set in the child before exec;
    /// `None` keeps PID 1's (1024 soft, 4096 hard).
    pub limit_nofile: Option<u64>,
}

impl ServiceConfig {
    /// A minimal definition (used by tests and as a base for builders).
    pub fn new(name: &str, exec: &str) -> Self {
        ServiceConfig {
            name: name.to_string(),
            description: None,
            exec: PathBuf::from(exec),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: PathBuf::from("/"),
            requires: Vec::new(),
            stop_after: Vec::new(),
            start_after: Vec::new(),
            stop_timeout_s: DEFAULT_STOP_TIMEOUT_S,
            stdio: Stdio::Journal,
            condition_kernel_cmdline: None,
            condition_path_exists: None,
            condition_path_absent: None,
            readiness: Readiness {
                kind: ReadinessKind::Started,
                timeout_s: DEFAULT_READY_TIMEOUT_S,
            },
            restart: Restart::default(),
            limit_nofile: None,
        }
    }

    /// Whether the conditions (if any) hold for this kernel command line and file system.
    pub fn condition_met(&self, cmdline: &str) -> bool {
        self.unmet_condition(cmdline).is_none()
    }

    /// The first condition that does not hold, said for the service's status.
    pub fn unmet_condition(&self, cmdline: &str) -> Option<String> {
        if let Some(word) = &self.condition_kernel_cmdline {
            if !cmdline.split_whitespace().any(|w| w == word) {
                return Some(format!("condition_kernel_cmdline {word:?} not met"));
            }
        }
        if let Some(path) = &self.condition_path_exists {
            if !path.exists() {
                return Some(format!(
                    "condition_path_exists: {} does not exist",
                    path.display()
                ));
            }
        }
        if let Some(path) = &self.condition_path_absent {
            if path.exists() {
                return Some(format!("condition_path_absent: {} exists", path.display()));
            }
        }
        None
    }
}

/// A service file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot list service directory", dir.display())]
    ListDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}:{line}: {field}: {reason}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        field: String,
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    description: Option<String>,
    exec: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    working_dir: Option<String>,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    stop_after: Vec<String>,
    #[serde(default)]
    start_after: Vec<String>,
    stop_timeout_s: Option<u64>,
    stdio: Option<String>,
    condition_kernel_cmdline: Option<String>,
    condition_path_exists: Option<String>,
    condition_path_absent: Option<String>,
    readiness: Option<RawReadiness>,
    restart: Option<RawRestart>,
    limit_nofile: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReadiness {
    kind: Option<String>,
    path: Option<String>,
    port: Option<i64>,
    timeout_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    policy: Option<RestartPolicy>,
    backoff_initial_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    start_limit_burst: Option<u32>,
    start_limit_interval_s: Option<u64>,
}

/// Whether `name` is usable as a service name (it becomes a socket file name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Line of the first `key = …` assignment (or `[key]` table header), 1 if absent.
fn line_of_key(text: &str, key: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') && t.trim_start_matches('[').trim_end().trim_end_matches(']') == key {
            return i + 1;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return i + 1;
            }
        }
    }
    1
}

/// Parses and validates one service file's text; `file` names it in errors.
pub fn parse_service(file: &Path, text: &str) -> Result<ServiceConfig, ConfigError> {
    let invalid = |key: &str, field: &str, reason: String| ConfigError::Invalid {
        file: file.to_path_buf(),
        line: line_of_key(text, key),
        field: field.to_string(),
        reason,
    };
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if !valid_name(&name) {
        return Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            line: 1,
            field: "name".into(),
            reason: format!(
                "file stem {name:?} is not a valid service name (letters, digits, - _ . @; at most 64)"
            ),
        });
    }
    let raw: RawService = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_path_buf(),
        line: e.span().map(|s| line_of_offset(text, s.start)).unwrap_or(1),
        reason: e.message().trim().to_string(),
    })?;

    if !raw.exec.starts_with('/') {
        return Err(invalid(
            "exec",
            "exec",
            format!("{:?} is not an absolute path", raw.exec),
        ));
    }
    let working_dir = raw.working_dir.unwrap_or_else(|| "/".into());
    if !working_dir.starts_with('/') {
        return Err(invalid(
            "working_dir",
            "working_dir",
            format!("{working_dir:?} is not an absolute path"),
        ));
    }
    for (k, v) in &raw.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(invalid(
                "env",
                "env",
                format!("{k:?} is not a valid variable"),
            ));
        }
    }
    for r in &raw.requires {
        if !valid_name(r) {
            return Err(invalid(
                "requires",
                "requires",
                format!("{r:?} is not a service name"),
            ));
        }
        if *r == name {
            return Err(invalid(
                "requires",
                "requires",
                "a service cannot require itself".into(),
            ));
        }
    }
    for a in &raw.stop_after {
        let reason = if !valid_name(a) {
            format!("{a:?} is not a service name")
        } else if *a == name {
            "a service cannot stop after itself".into()
        } else if raw.requires.contains(a) {
            format!("{a:?} is also in requires, and a service always stops before what it requires")
        } else {
            continue;
        };
        return Err(invalid("stop_after", "stop_after", reason));
    }
    for a in &raw.start_after {
        let reason = if !valid_name(a) {
            format!("{a:?} is not a service name")
        } else if *a == name {
            "a service cannot start after itself".into()
        } else if raw.requires.contains(a) {
            format!("{a:?} is also in requires, which already starts this service after it")
        } else {
            continue;
        };
        return Err(invalid("start_after", "start_after", reason));
    }
    let stop_timeout_s = raw.stop_timeout_s.unwrap_or(DEFAULT_STOP_TIMEOUT_S);
    if stop_timeout_s == 0 {
        return Err(invalid(
            "stop_timeout_s",
            "stop_timeout_s",
            "must be at least 1".into(),
        ));
    }
    let stdio = match raw.stdio.as_deref() {
        None | Some("journal") => Stdio::Journal,
        Some("console") => Stdio::Console,
        Some(p) if p.starts_with('/') => Stdio::Device(PathBuf::from(p)),
        Some(p) => {
            return Err(invalid(
                "stdio",
                "stdio",
                format!("{p:?} is not \"journal\", \"console\" or an absolute device path"),
            ))
        }
    };
    if let Some(c) = &raw.condition_kernel_cmdline {
        if c.is_empty() || c.contains(char::is_whitespace) {
            return Err(invalid(
                "condition_kernel_cmdline",
                "condition_kernel_cmdline",
                "must be one word without spaces".into(),
            ));
        }
    }
    let absolute = |key: &str, value: &Option<String>| match value {
        None => Ok(None),
        Some(p) if p.starts_with('/') => Ok(Some(PathBuf::from(p))),
        Some(p) => Err(invalid(key, key, format!("{p:?} is not an absolute path"))),
    };
    let condition_path_exists = absolute("condition_path_exists", &raw.condition_path_exists)?;
    let condition_path_absent = absolute("condition_path_absent", &raw.condition_path_absent)?;
    let limit_nofile = match raw.limit_nofile {
        None => None,
        Some(toml::Value::Integer(n)) => match u64::try_from(n) {
            Ok(n) if (MIN_LIMIT_NOFILE..=MAX_LIMIT_NOFILE).contains(&n) => Some(n),
            _ => {
                return Err(invalid(
                    "limit_nofile",
                    "limit_nofile",
                    format!(
                        "{n} is not in {MIN_LIMIT_NOFILE}..={MAX_LIMIT_NOFILE} (open files; the top is the kernel's fs.nr_open)"
                    ),
                ))
            }
        },
        Some(other) => {
            return Err(invalid(
                "limit_nofile",
                "limit_nofile",
                format!("{other} is not a number of open files (e.g. limit_nofile = 65536)"),
            ))
        }
    };
    let readiness = parse_readiness(raw.readiness, &invalid)?;
    let restart = parse_restart(raw.restart, &invalid)?;
    Ok(ServiceConfig {
        name,
        description: raw.description,
        exec: PathBuf::from(raw.exec),
        args: raw.args,
        env: raw.env,
        working_dir: PathBuf::from(working_dir),
        requires: raw.requires,
        stop_after: raw.stop_after,
        start_after: raw.start_after,
        stop_timeout_s,
        stdio,
        condition_kernel_cmdline: raw.condition_kernel_cmdline,
        condition_path_exists,
        condition_path_absent,
        readiness,
        restart,
        limit_nofile,
    })
}

fn parse_readiness(
    raw: Option<RawReadiness>,
    invalid: &dyn Fn(&str, &str, String) -> ConfigError,
) -> Result<Readiness, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Readiness {
            kind: ReadinessKind::Started,
            timeout_s: DEFAULT_READY_TIMEOUT_S,
        });
    };
    let kind_name = raw.kind.as_deref().unwrap_or("started");
    if raw.path.is_some() && kind_name != "socket" {
        return Err(invalid(
            "path",
            "readiness.path",
            "only valid with kind = \"socket\"".into(),
        ));
    }
    if raw.port.is_some() && kind_name != "tcp" {
        return Err(invalid(
            "port",
            "readiness.port",
            "only valid with kind = \"tcp\"".into(),
        ));
    }
    let kind = match kind_name {
        "started" => ReadinessKind::Started,
        "exited" => ReadinessKind::Exited,
        "notify" => ReadinessKind::Notify,
        "socket" => match raw.path {
            Some(p) if p.starts_with('/') => ReadinessKind::Socket(PathBuf::from(p)),
            Some(p) => {
                return Err(invalid(
                    "path",
                    "readiness.path",
                    format!("{p:?} is not an absolute path"),
                ))
            }
            None => {
                return Err(invalid(
                    "readiness",
                    "readiness.path",
                    "required with kind = \"socket\"".into(),
                ))
            }
        },
        "tcp" => match raw.port {
            Some(p) => match u16::try_from(p) {
                Ok(port) if port >= 1 => ReadinessKind::Tcp(port),
                _ => {
                    return Err(invalid(
                        "port",
                        "readiness.port",
                        format!("{p} is not in 1..=65535"),
                    ))
                }
            },
            None => {
                return Err(invalid(
                    "readiness",
                    "readiness.port",
                    "required with kind = \"tcp\"".into(),
                ))
            }
        },
        other => {
            return Err(invalid(
                "kind",
                "readiness.kind",
                format!("{other:?} is not one of started, exited, socket, tcp, notify"),
            ))
        }
    };
    let timeout_s = raw.timeout_s.unwrap_or(DEFAULT_READY_TIMEOUT_S);
    if timeout_s == 0 {
        return Err(invalid(
            "timeout_s",
            "readiness.timeout_s",
            "must be at least 1".into(),
        ));
    }
    Ok(Readiness { kind, timeout_s })
}

fn parse_restart(
    raw: Option<RawRestart>,
    invalid: &dyn Fn(&str, &str, String) -> ConfigError,
) -> Result<Restart, ConfigError> {
    let d = Restart::default();
    let Some(raw) = raw else { return Ok(d) };
    let r = Restart {
        policy: raw.policy.unwrap_or(d.policy),
        backoff_initial_ms: raw.backoff_initial_ms.unwrap_or(d.backoff_initial_ms),
        backoff_max_ms: raw.backoff_max_ms.unwrap_or(d.backoff_max_ms),
        start_limit_burst: raw.start_limit_burst.unwrap_or(d.start_limit_burst),
        start_limit_interval_s: raw
            .start_limit_interval_s
            .unwrap_or(d.start_limit_interval_s),
    };
    if r.backoff_initial_ms == 0 {
        return Err(invalid(
            "backoff_initial_ms",
            "restart.backoff_initial_ms",
            "must be at least 1".into(),
        ));
    }
    if r.backoff_max_ms < r.backoff_initial_ms {
        return Err(invalid(
            "backoff_max_ms",
            "restart.backoff_max_ms",
            format!(
                "{} is below backoff_initial_ms {}",
                r.backoff_max_ms, r.backoff_initial_ms
            ),
        ));
    }
    if r.start_limit_burst == 0 {
        return Err(invalid(
            "start_limit_burst",
            "restart.start_limit_burst",
            "must be at least 1".into(),
        ));
    }
    Ok(r)
}

/// The services caught in a cycle of the stop order, by name (empty if there is none).
///
/// The stop order has an edge "X stops before Y" for every `Y` in X's `requires` (dependents
/// stop first) and for every `X` in Y's `stop_after`. Names of services that do not exist
/// are left out (an unknown `requires` is reported on its own; an unknown `stop_after`
/// orders nothing).
pub fn stop_cycle(configs: &[ServiceConfig]) -> Vec<String> {
    let known: BTreeMap<&str, &ServiceConfig> =
        configs.iter().map(|c| (c.name.as_str(), c)).collect();
    // before[x] = the services that must have stopped before x stops.
    let mut before: BTreeMap<&str, Vec<&str>> = known.keys().map(|n| (*n, Vec::new())).collect();
    for c in configs {
        for r in c.requires.iter().filter(|r| known.contains_key(r.as_str())) {
            if let Some(v) = before.get_mut(r.as_str()) {
                v.push(c.name.as_str());
            }
        }
        for a in c
            .stop_after
            .iter()
            .filter(|a| known.contains_key(a.as_str()))
        {
            if let Some(v) = before.get_mut(c.name.as_str()) {
                v.push(a.as_str());
            }
        }
    }
    // Kahn's algorithm: whatever cannot be ordered is in (or behind) a cycle.
    let mut left = before;
    loop {
        let free: Vec<&str> = left
            .iter()
            .filter(|(_, b)| b.iter().all(|x| !left.contains_key(x)))
            .map(|(n, _)| *n)
            .collect();
        if free.is_empty() {
            break;
        }
        for n in free {
            left.remove(n);
        }
    }
    left.keys().map(|n| n.to_string()).collect()
}

/// Loads every `*.toml` in `dir` (sorted by name). Files that fail are returned as errors
/// beside the good ones, so one bad file never stops the others.
pub fn load_dir(dir: &Path) -> (Vec<ServiceConfig>, Vec<ConfigError>) {
    let mut services = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            errors.push(ConfigError::ListDir {
                dir: dir.to_path_buf(),
                source,
            });
            return (services, errors);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse_service(&file, &text) {
                Ok(s) => services.push(s),
                Err(e) => errors.push(e),
            },
            Err(source) => errors.push(ConfigError::Read { file, source }),
        }
    }
    (services, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServiceConfig, ConfigError> {
        parse_service(Path::new("/etc/cairn/services/svc.toml"), text)
    }

    #[test]
    fn full_example_parses() {
        let s = parse(
            r#"
description = "Journal service"
exec = "/lib/systemd/systemd-journald"
args = ["--flag"]
env = { SYSTEMD_LOG_LEVEL = "info" }
working_dir = "/"
requires = ["udev"]
stop_timeout_s = 7
stdio = "/dev/ttyS1"
condition_kernel_cmdline = "cairn.lab=1"

[readiness]
kind = "tcp"
port = 443
timeout_s = 12

[restart]
policy = "always"
backoff_initial_ms = 50
backoff_max_ms = 800
start_limit_burst = 3
start_limit_interval_s = 20
"#,
        )
        .unwrap();
        assert_eq!(s.name, "svc");
        assert_eq!(s.args, vec!["--flag"]);
        assert_eq!(s.env["SYSTEMD_LOG_LEVEL"], "info");
        assert_eq!(s.requires, vec!["udev"]);
        assert_eq!(s.stop_timeout_s, 7);
        assert_eq!(s.stdio, Stdio::Device("/dev/ttyS1".into()));
        assert_eq!(s.readiness.kind, ReadinessKind::Tcp(443));
        assert_eq!(s.readiness.timeout_s, 12);
        assert_eq!(s.restart.policy, RestartPolicy::Always);
        assert_eq!(s.restart.backoff_max_ms, 800);
        assert!(s.condition_met("quiet cairn.lab=1"));
        assert!(!s.condition_met("quiet cairn.lab=10"));
    }

    #[test]
    fn condition_path_absent_starts_only_without_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("witness");
        let s = parse(&format!(
            "exec = \"/bin/true\"\ncondition_path_absent = \"{}\"\n",
            marker.display()
        ))
        .unwrap();
        assert!(s.condition_met(""));
        std::fs::write(&marker, "witness\n").unwrap();
        assert_eq!(
            s.unmet_condition(""),
            Some(format!(
                "condition_path_absent: {} exists",
                marker.display()
            ))
        );
        let err = parse("exec = \"/bin/true\"\ncondition_path_absent = \"run/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("condition_path_absent"), "{err}");
        assert!(err.contains("not an absolute path"), "{err}");
    }

    #[test]
    fn condition_path_exists_checks_the_path_at_evaluation() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("etcd.yaml");
        let s = parse(&format!(
            "exec = \"/bin/true\"\ncondition_path_exists = \"{}\"\n",
            marker.display()
        ))
        .unwrap();
        assert_eq!(
            s.unmet_condition(""),
            Some(format!(
                "condition_path_exists: {} does not exist",
                marker.display()
            ))
        );
        std::fs::write(&marker, "x").unwrap();
        assert!(s.condition_met(""));
        let err = parse("exec = \"/bin/true\"\ncondition_path_exists = \"etc/x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("condition_path_exists"), "{err}");
        assert!(err.contains("not an absolute path"), "{err}");
    }

    #[test]
    fn defaults() {
        let s = parse("exec = \"/bin/true\"\n").unwrap();
        assert_eq!(s.stdio, Stdio::Journal);
        assert_eq!(s.readiness.kind, ReadinessKind::Started);
        assert_eq!(s.restart, Restart::default());
        assert_eq!(s.stop_timeout_s, 10);
        assert_eq!(s.working_dir, PathBuf::from("/"));
    }

    #[test]
    fn unknown_key_reports_line() {
        let e = parse("exec = \"/bin/true\"\n\nbogus = 1\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/cairn/services/svc.toml:3: "), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn unknown_key_in_table_is_error() {
        let e = parse("exec = \"/bin/true\"\n[restart]\npolicy = \"always\"\nretries = 3\n")
            .unwrap_err();
        assert!(e.to_string().contains(":4: "), "{e}");
    }

    #[test]
    fn syntax_error_reports_line() {
        let e = parse("exec = \"/bin/true\"\nargs = [\n\"a\" \"b\"]\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { line: 3, .. }), "{e}");
    }

    #[test]
    fn semantic_errors_name_field_and_line() {
        let e = parse("description = \"x\"\nexec = \"bin/true\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/cairn/services/svc.toml:2: exec: \"bin/true\" is not an absolute path"
        );
        let e = parse("exec = \"/bin/true\"\n[readiness]\nkind = \"socket\"\n").unwrap_err();
        assert!(e.to_string().contains("readiness.path: required"), "{e}");
        let e =
            parse("exec = \"/bin/true\"\n[readiness]\nkind = \"tcp\"\nport = 70000\n").unwrap_err();
        assert!(e.to_string().contains(":4: readiness.port"), "{e}");
        let e = parse("exec = \"/bin/true\"\nstdio = \"tty\"\n").unwrap_err();
        assert!(e.to_string().contains("stdio"), "{e}");
        let e = parse("exec = \"/bin/true\"\n[restart]\npolicy = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains(":3: "), "{e}");
        let e = parse(
            "exec = \"/bin/true\"\n[restart]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("restart.backoff_max_ms"), "{e}");
        let e = parse("exec = \"/bin/true\"\nrequires = [\"svc\"]\n").unwrap_err();
        assert!(e.to_string().contains("cannot require itself"), "{e}");
    }

    #[test]
    fn stop_after_parses_and_is_validated() {
        let s = parse("exec = \"/bin/true\"\nstop_after = [\"cairnd\"]\n").unwrap();
        assert_eq!(s.stop_after, vec!["cairnd"]);
        assert!(parse("exec = \"/bin/true\"\n")
            .unwrap()
            .stop_after
            .is_empty());
        let e = parse("exec = \"/bin/true\"\n\nstop_after = [\"svc\"]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/cairn/services/svc.toml:3: stop_after: a service cannot stop after itself"
        );
        let e = parse("exec = \"/bin/true\"\nstop_after = [\"../x\"]\n").unwrap_err();
        assert!(
            e.to_string().contains(":2: stop_after: \"../x\" is not"),
            "{e}"
        );
        let e =
            parse("exec = \"/bin/true\"\nrequires = [\"a\"]\nstop_after = [\"a\"]\n").unwrap_err();
        assert!(e.to_string().contains("also in requires"), "{e}");
        let e = parse("exec = \"/bin/true\"\nstop_after = \"cairnd\"\n").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { line: 2, .. }), "{e}");
    }

    fn named(name: &str, requires: &[&str], stop_after: &[&str]) -> ServiceConfig {
        let mut c = ServiceConfig::new(name, "/bin/true");
        c.requires = requires.iter().map(|s| s.to_string()).collect();
        c.stop_after = stop_after.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn stop_cycle_follows_requires_and_stop_after() {
        // The shipped shape: libvirtd stops after cairnd, virtlogd after libvirtd.
        let ok = [
            named("journald", &[], &[]),
            named("cairnd", &["journald"], &[]),
            named("virtlogd", &["journald"], &["cairnd"]),
            named("libvirtd", &["virtlogd"], &["cairnd", "gone"]),
        ];
        assert!(stop_cycle(&ok).is_empty());
        // Each waits for the other.
        let bad = [
            named("cairnd", &[], &["libvirtd"]),
            named("libvirtd", &[], &["cairnd"]),
            named("other", &[], &[]),
        ];
        assert_eq!(stop_cycle(&bad), ["cairnd", "libvirtd"]);
        // a before b (requires), b before c and c before a (stop_after).
        let mixed = [
            named("a", &["b"], &["c"]),
            named("b", &[], &[]),
            named("c", &[], &["b"]),
        ];
        assert_eq!(stop_cycle(&mixed), ["a", "b", "c"]);
    }

    #[test]
    fn limit_nofile_parses_and_is_validated() {
        assert_eq!(parse("exec = \"/bin/true\"\n").unwrap().limit_nofile, None);
        let s = parse("exec = \"/bin/true\"\nlimit_nofile = 65536\n").unwrap();
        assert_eq!(s.limit_nofile, Some(65536));
        for bad in ["0", "-1", "63", "1048577", "99999999999"] {
            let e = parse(&format!("exec = \"/bin/true\"\n\nlimit_nofile = {bad}\n")).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("/etc/cairn/services/svc.toml:3: limit_nofile: {bad} is not in 64..=1048576 (open files; the top is the kernel's fs.nr_open)")
            );
        }
        let e = parse("exec = \"/bin/true\"\nlimit_nofile = \"lots\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/cairn/services/svc.toml:2: limit_nofile: \"lots\" is not a number of open files (e.g. limit_nofile = 65536)"
        );
    }

    #[test]
    fn start_after_parses_and_is_validated() {
        let s = parse("exec = \"/bin/true\"\nstart_after = [\"cairnd\"]\n").unwrap();
        assert_eq!(s.start_after, vec!["cairnd"]);
        let e = parse("exec = \"/bin/true\"\nstart_after = [\"svc\"]\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/cairn/services/svc.toml:2: start_after: a service cannot start after itself"
        );
        let e =
            parse("exec = \"/bin/true\"\nrequires = [\"a\"]\nstart_after = [\"a\"]\n").unwrap_err();
        assert!(e.to_string().contains("also in requires"), "{e}");
        let e = parse("exec = \"/bin/true\"\nstart_after = [\"../x\"]\n").unwrap_err();
        assert!(
            e.to_string().contains("start_after: \"../x\" is not"),
            "{e}"
        );
    }

    #[test]
    fn missing_exec_is_error() {
        let e = parse("args = []\n").unwrap_err();
        assert!(e.to_string().contains("exec"), "{e}");
    }

    #[test]
    fn load_dir_keeps_good_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "exec = \"/bin/true\"\n").unwrap();
        std::fs::write(dir.path().join("b.toml"), "exec = \n").unwrap();
        std::fs::write(dir.path().join("c.toml"), "exec = \"/bin/false\"\n").unwrap();
        std::fs::write(dir.path().join("README"), "not a service").unwrap();
        let (ok, errs) = load_dir(dir.path());
        let names: Vec<_> = ok.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["a", "c"]);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("b.toml:1: "), "{}", errs[0]);
    }

    #[test]
    fn missing_dir_is_reported() {
        let (ok, errs) = load_dir(Path::new("/nonexistent/cairn/services"));
        assert!(ok.is_empty());
        assert!(matches!(errs[0], ConfigError::ListDir { .. }));
    }
}
