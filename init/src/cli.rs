//! The `cairn-init svc …` command line: argument parsing, the wait for a settled state, output.

use crate::control::{self, ControlError, Request, Response};
use crate::supervisor::{ServiceStatus, State};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Usage text.
pub const USAGE: &str = "usage: cairn-init svc status [--json] [--socket PATH]
       cairn-init svc start|stop|restart NAME [--no-wait] [--timeout SECS] [--socket PATH]";

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request: Request,
    pub json: bool,
    pub socket: PathBuf,
    pub wait: bool,
    pub timeout_s: u64,
}

/// A failed CLI invocation.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("control request failed")]
    Control(#[source] ControlError),
    #[error("cairn-init refused: {0}")]
    Refused(String),
    #[error("{name}: did not reach {wanted} within {timeout_s}s (state: {state})")]
    Timeout {
        name: String,
        wanted: &'static str,
        timeout_s: u64,
        state: String,
    },
    #[error("{name}: failed: {reason}")]
    Failed { name: String, reason: String },
    #[error("no service named {0:?} in the status reply")]
    Missing(String),
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Invocation, CliError> {
    let mut socket = PathBuf::from(control::DEFAULT_SOCKET);
    let mut json = false;
    let mut wait = true;
    let mut timeout_s = 30;
    let mut pos = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--no-wait" => wait = false,
            "--socket" => {
                let p = it
                    .next()
                    .ok_or_else(|| CliError::Usage("--socket needs a PATH".into()))?;
                socket = PathBuf::from(p);
            }
            "--timeout" => {
                let v = it
                    .next()
                    .ok_or_else(|| CliError::Usage("--timeout needs SECS".into()))?;
                timeout_s = v
                    .parse()
                    .map_err(|_| CliError::Usage(format!("--timeout: {v:?} is not a number")))?;
            }
            s if s.starts_with("--") => return Err(CliError::Usage(format!("unknown option {s}"))),
            _ => pos.push(a.clone()),
        }
    }
    let request = match pos
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["svc", "status"] => Request::Status,
        ["svc", verb @ ("start" | "stop" | "restart"), name] => {
            let name = name.to_string();
            match *verb {
                "start" => Request::Start { name },
                "stop" => Request::Stop { name },
                _ => Request::Restart { name },
            }
        }
        ["svc", "start" | "stop" | "restart"] => {
            return Err(CliError::Usage("missing service NAME".into()))
        }
        [] => return Err(CliError::Usage("missing command".into())),
        other => {
            return Err(CliError::Usage(format!(
                "unknown command {:?}",
                other.join(" ")
            )))
        }
    };
    Ok(Invocation {
        request,
        json,
        socket,
        wait,
        timeout_s,
    })
}

fn fmt_duration(s: u64) -> String {
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Renders the status table.
pub fn render_table(services: &[ServiceStatus]) -> String {
    let rows: Vec<[String; 7]> = services
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.state.as_str().to_string(),
                s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                s.restarts.to_string(),
                s.uptime_s.map(fmt_duration).unwrap_or_else(|| "-".into()),
                match &s.last_exit {
                    Some(e) => match (e.code, e.signal) {
                        (Some(c), _) => format!("code {c}"),
                        (_, Some(sig)) => format!("signal {sig}"),
                        _ => "-".into(),
                    },
                    None => "-".into(),
                },
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATE",
        "PID",
        "RESTARTS",
        "UPTIME",
        "LAST EXIT",
        "REASON",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn status(inv: &Invocation) -> Result<Vec<ServiceStatus>, CliError> {
    let r = control::request(&inv.socket, &Request::Status, Duration::from_secs(10))
        .map_err(CliError::Control)?;
    checked(r).map(|r| r.services.unwrap_or_default())
}

fn checked(r: Response) -> Result<Response, CliError> {
    if r.ok {
        Ok(r)
    } else {
        Err(CliError::Refused(
            r.error.unwrap_or_else(|| "unknown error".into()),
        ))
    }
}

fn find(list: Vec<ServiceStatus>, name: &str) -> Result<ServiceStatus, CliError> {
    list.into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| CliError::Missing(name.to_string()))
}

/// Runs the invocation and returns what to print on stdout.
pub fn execute(inv: &Invocation) -> Result<String, CliError> {
    let (name, wanted) = match &inv.request {
        Request::Status => {
            let r = control::request(&inv.socket, &Request::Status, Duration::from_secs(10))
                .map_err(CliError::Control)?;
            let r = checked(r)?;
            return Ok(if inv.json {
                let mut s = serde_json::to_string_pretty(&r).unwrap_or_default();
                s.push('\n');
                s
            } else {
                render_table(r.services.as_deref().unwrap_or_default())
            });
        }
        Request::Start { name } | Request::Restart { name } => (name.clone(), State::Ready),
        Request::Stop { name } => (name.clone(), State::Stopped),
    };
    let before = if matches!(inv.request, Request::Restart { .. }) && inv.wait {
        find(status(inv)?, &name)?.pid
    } else {
        None
    };
    let r = control::request(&inv.socket, &inv.request, Duration::from_secs(10))
        .map_err(CliError::Control)?;
    checked(r)?;
    if !inv.wait {
        return Ok(String::new());
    }
    let deadline = Instant::now() + Duration::from_secs(inv.timeout_s);
    loop {
        let s = find(status(inv)?, &name)?;
        let fresh = before.is_none() || s.pid != before;
        if s.state == wanted && fresh {
            return Ok(format!("{name}: {}\n", s.state.as_str()));
        }
        if s.state == State::Failed {
            return Err(CliError::Failed {
                name,
                reason: s.reason.unwrap_or_default(),
            });
        }
        if Instant::now() >= deadline {
            return Err(CliError::Timeout {
                name,
                wanted: wanted.as_str(),
                timeout_s: inv.timeout_s,
                state: s.state.as_str().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::LastExit;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_commands() {
        let i = parse(&args("svc status --json")).unwrap();
        assert_eq!(i.request, Request::Status);
        assert!(i.json);
        assert_eq!(i.socket, PathBuf::from("/run/cairn/init.sock"));
        let i = parse(&args("svc restart cairnd --socket /tmp/x.sock --no-wait")).unwrap();
        assert_eq!(
            i.request,
            Request::Restart {
                name: "cairnd".into()
            }
        );
        assert_eq!(i.socket, PathBuf::from("/tmp/x.sock"));
        assert!(!i.wait);
        let i = parse(&args("--timeout 5 svc stop a")).unwrap();
        assert_eq!(i.timeout_s, 5);
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in [
            "",
            "svc",
            "svc start",
            "svc frob x",
            "svc status --bogus",
            "svc status --socket",
        ] {
            let e = parse(&args(bad)).unwrap_err();
            assert!(matches!(e, CliError::Usage(_)), "{bad}: {e}");
        }
        assert!(parse(&args("svc stop a --timeout x"))
            .unwrap_err()
            .to_string()
            .contains("--timeout"));
    }

    #[test]
    fn table_lists_every_column() {
        let t = render_table(&[
            ServiceStatus {
                name: "journald".into(),
                state: State::Ready,
                pid: Some(42),
                restarts: 0,
                uptime_s: Some(75),
                last_exit: None,
                reason: None,
            },
            ServiceStatus {
                name: "cairnd".into(),
                state: State::BackingOff,
                pid: None,
                restarts: 3,
                uptime_s: None,
                last_exit: Some(LastExit {
                    code: None,
                    signal: Some(9),
                    at: 1,
                }),
                reason: Some("killed by signal 9".into()),
            },
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME      STATE        PID  RESTARTS  UPTIME  LAST EXIT  REASON"
        );
        assert_eq!(lines[1], "journald  ready        42   0         1m15s   -");
        assert_eq!(
            lines[2],
            "cairnd    backing-off  -    3         -       signal 9   killed by signal 9"
        );
    }
}
