//! Command-line parsing of cairnctl.

use std::path::PathBuf;

/// Usage text for `--help`.
pub const USAGE: &str = "\
usage: cairnctl [--node HOST[:PORT]] [-o text|json] [--config-dir DIR] COMMAND
commands:
  login [--user NAME] [--fingerprint SHA256:…] [--read-only] [--expires-days N]
                 sign in (password from the terminal, or the first line of stdin), make an
                 API token and keep it; the node's certificate is pinned on first use. The
                 token can do everything and lasts 90 days, unless --read-only (it may only
                 read: GET) or --expires-days N (1 to 3650) say otherwise
  status         the node's health and who you are signed in as
  tasks          the node's long operations
  alerts         active alerts and recent changes
  task ID [--wait]  one task; with --wait, a live progress bar until it ends
  forget         revoke the stored API token on the node, then drop it and the pinned
                 certificate
  smart [VERB …]  SMART health of every disk, one disk's detail, self-tests, saved
                 smartctl outputs checked offline (see `cairnctl smart help`)
  network [VERB …]  config, link status, apply a spec in try mode (countdown), confirm,
                 rollback (see `cairnctl network help`)
  vms [VERB …]   virtual machines: list, create, start, shutdown, off, reboot, clone,
                 snapshot, restore, autostart, delete, console (see `cairnctl vms help`)
flags:
  --node HOST[:PORT]  the node (default: the one last signed in to); port 443 if not given
  -o, --output text|json
  --config-dir DIR    where tokens and pins are kept (default $XDG_CONFIG_HOME/cairn or
                      ~/.config/cairn)
  --help, --version";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Login {
        user: String,
        fingerprint: Option<String>,
        /// A read-only token (GET and HEAD only).
        read_only: bool,
        /// The token's lifetime in days (the node's default, 90, when not given).
        expires_days: Option<u32>,
    },
    Status,
    Forget,
    Tasks,
    Task {
        id: String,
        wait: bool,
    },
    Alerts,
    /// Shares, snapshots, volumes, scrubs (`shares` module): the verb and its arguments.
    Shares(String, Vec<String>),
    /// Disks and pools (`storage` module): the verb and its arguments.
    Storage(String, Vec<String>),
    /// Virtual machines (`vms` module): the words after `vms`.
    Vms(Vec<String>),
    /// SMART (`smart` module): the words after `smart`.
    Smart(Vec<String>),
    /// Network (`network` module): the words after `network`.
    Network(Vec<String>),
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub node: Option<String>,
    pub output: Output,
    pub config_dir: Option<PathBuf>,
    pub command: Command,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Args),
    Help,
    Version,
}

/// A command line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("unknown flag {0:?} (see --help)")]
    UnknownFlag(String),
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("{flag}: {value:?} is not valid: {reason}")]
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("no command given (see --help)")]
    NoCommand,
    #[error("unknown command {0:?} (see --help)")]
    UnknownCommand(String),
}

/// Parse arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Parsed, ArgsError> {
    let mut node = None;
    let mut output = Output::Text;
    let mut config_dir = None;
    let mut command: Option<String> = None;
    let mut user = "admin".to_string();
    let mut fingerprint = None;
    let mut read_only = false;
    let mut expires_days = None;
    let mut wait = false;
    let mut operand: Option<String> = None;
    let mut shares_rest: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, ArgsError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| ArgsError::MissingValue(flag.to_string())),
            }
        };
        match flag {
            "--help" | "-h" => return Ok(Parsed::Help),
            "--version" => return Ok(Parsed::Version),
            "--node" => node = Some(value()?),
            "-o" | "--output" => {
                let v = value()?;
                output = match v.as_str() {
                    "text" => Output::Text,
                    "json" => Output::Json,
                    _ => {
                        return Err(ArgsError::BadValue {
                            flag: flag.to_string(),
                            value: v,
                            reason: "expected text or json".into(),
                        })
                    }
                };
            }
            "--config-dir" => config_dir = Some(PathBuf::from(value()?)),
            "--user" if command.as_deref() == Some("login") => user = value()?,
            "--fingerprint" if command.as_deref() == Some("login") => fingerprint = Some(value()?),
            "--read-only" if command.as_deref() == Some("login") => read_only = true,
            "--expires-days" if command.as_deref() == Some("login") => {
                let v = value()?;
                expires_days = match v.parse::<u32>() {
                    Ok(n @ 1..=3650) => Some(n),
                    _ => {
                        return Err(ArgsError::BadValue {
                            flag: flag.to_string(),
                            value: v,
                            reason: "expected a number of days from 1 to 3650".into(),
                        })
                    }
                };
            }
            "--wait" if command.as_deref() == Some("task") => wait = true,
            f if f.starts_with('-') => return Err(ArgsError::UnknownFlag(arg.clone())),
            c if command.is_none() && crate::storage::VERBS.contains(&c) => {
                command = Some(c.to_string());
                operand = None;
                shares_rest = it.by_ref().cloned().collect();
            }
            "vms" if command.is_none() => {
                command = Some("vms".to_string());
                shares_rest = it.by_ref().cloned().collect();
            }
            "smart" if command.is_none() => {
                command = Some("smart".to_string());
                shares_rest = it.by_ref().cloned().collect();
            }
            "network" if command.is_none() => {
                command = Some("network".to_string());
                shares_rest = it.by_ref().cloned().collect();
            }
            c if command.is_none() && crate::shares::VERBS.contains(&c) => {
                command = Some(c.to_string());
                operand = None;
                shares_rest = it.by_ref().cloned().collect();
            }
            c if command.is_none() => command = Some(c.to_string()),
            c if command.as_deref() == Some("task") && operand.is_none() => {
                operand = Some(c.to_string())
            }
            other => return Err(ArgsError::UnknownCommand(other.to_string())),
        }
    }
    let command = match command.as_deref() {
        None => return Err(ArgsError::NoCommand),
        Some("login") => Command::Login {
            user,
            fingerprint,
            read_only,
            expires_days,
        },
        Some("status") => Command::Status,
        Some("forget") => Command::Forget,
        Some("tasks") => Command::Tasks,
        Some("alerts") => Command::Alerts,
        Some("vms") => Command::Vms(shares_rest),
        Some("smart") => Command::Smart(shares_rest),
        Some("network") => Command::Network(shares_rest),
        Some(v) if crate::shares::VERBS.contains(&v) => Command::Shares(v.to_string(), shares_rest),
        Some(v) if crate::storage::VERBS.contains(&v) => {
            Command::Storage(v.to_string(), shares_rest)
        }
        Some("task") => Command::Task {
            id: operand.ok_or_else(|| ArgsError::MissingValue("task".into()))?,
            wait,
        },
        Some(other) => return Err(ArgsError::UnknownCommand(other.to_string())),
    };
    Ok(Parsed::Run(Args {
        node,
        output,
        config_dir,
        command,
    }))
}

/// The words after a storage or shares verb: positionals, `--flag VALUE` / `--flag=VALUE`,
/// `-o FORMAT`, and, where the verb group takes it, `--yes` / `-y`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerbArgs {
    pub pos: Vec<String>,
    pub flags: Vec<(String, String)>,
    pub output: Option<Output>,
    pub yes: bool,
}

impl VerbArgs {
    /// Splits `rest`; with `allow_yes`, `--yes` and `-y` are a switch, otherwise `--yes`
    /// is a flag like any other (and needs a value).
    pub fn parse(rest: &[String], allow_yes: bool) -> Result<VerbArgs, String> {
        let mut out = VerbArgs::default();
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            if allow_yes && (a == "--yes" || a == "-y") {
                out.yes = true;
            } else if let Some(f) = a
                .strip_prefix("--")
                .or_else(|| (a == "-o").then_some("output"))
            {
                let (name, inline) = match f.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (f.to_string(), None),
                };
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or(format!("--{name} needs a value"))?,
                };
                if name == "output" {
                    out.output = Some(match value.as_str() {
                        "json" => Output::Json,
                        "text" => Output::Text,
                        _ => return Err(format!("-o: {value:?} is not text or json")),
                    });
                } else {
                    out.flags.push((name, value));
                }
            } else {
                out.pos.push(a.clone());
            }
        }
        Ok(out)
    }

    /// The value of flag `--name`, if given.
    pub fn flag(&self, name: &str) -> Option<String> {
        self.flags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// An error naming the first flag that `verb` does not take.
    pub fn known(&self, verb: &str, allowed: &[&str]) -> Result<(), String> {
        match self
            .flags
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            Some((k, _)) => Err(format!("{verb}: unknown flag --{k}")),
            None => Ok(()),
        }
    }

    /// An error with the verb's usage unless there are exactly `n` positionals.
    pub fn want(&self, n: usize, verb: &str, shape: &str) -> Result<(), String> {
        if self.pos.len() == n {
            Ok(())
        } else {
            Err(format!("usage: cairnctl {verb} {shape}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Parsed, ArgsError> {
        parse(&s.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn login_with_flags() {
        let Parsed::Run(a) = p(&[
            "--node",
            "nas:8443",
            "login",
            "--user=root",
            "--fingerprint",
            "SHA256:AB",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.node.as_deref(), Some("nas:8443"));
        assert_eq!(
            a.command,
            Command::Login {
                user: "root".into(),
                fingerprint: Some("SHA256:AB".into()),
                read_only: false,
                expires_days: None,
            }
        );
        let Parsed::Run(a) = p(&["login", "--read-only", "--expires-days=7"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            a.command,
            Command::Login {
                user: "admin".into(),
                fingerprint: None,
                read_only: true,
                expires_days: Some(7),
            }
        );
        for bad in ["0", "3651", "soon"] {
            assert!(
                matches!(
                    p(&["login", "--expires-days", bad]),
                    Err(ArgsError::BadValue { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(a.output, Output::Text);
    }

    #[test]
    fn status_json_and_config_dir() {
        let Parsed::Run(a) = p(&["-o", "json", "--config-dir", "/tmp/c", "status"]).unwrap() else {
            panic!()
        };
        assert_eq!((a.output, a.command), (Output::Json, Command::Status));
        assert_eq!(a.config_dir, Some(PathBuf::from("/tmp/c")));
    }

    #[test]
    fn task_commands() {
        let Parsed::Run(a) = p(&["task", "12", "--wait"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            a.command,
            Command::Task {
                id: "12".into(),
                wait: true
            }
        );
        let Parsed::Run(a) = p(&["tasks"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.command, Command::Tasks);
        assert_eq!(
            p(&["task"]).unwrap_err(),
            ArgsError::MissingValue("task".into())
        );
        assert!(p(&["tasks", "--wait"]).is_err());
    }

    #[test]
    fn errors() {
        assert_eq!(p(&[]).unwrap_err(), ArgsError::NoCommand);
        assert_eq!(
            p(&["fly"]).unwrap_err(),
            ArgsError::UnknownCommand("fly".into())
        );
        assert_eq!(
            p(&["status", "--user", "x"]).unwrap_err(),
            ArgsError::UnknownFlag("--user".into())
        );
        assert!(matches!(
            p(&["-o", "yaml", "status"]).unwrap_err(),
            ArgsError::BadValue { .. }
        ));
        assert_eq!(
            p(&["--node"]).unwrap_err(),
            ArgsError::MissingValue("--node".into())
        );
        assert_eq!(p(&["--help"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn verb_args_split_positionals_flags_output_and_yes() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = VerbArgs::parse(
            &w(&[
                "create",
                "tank",
                "--level=raid1",
                "-o",
                "json",
                "vda",
                "-y",
                "--size",
                "1G",
            ]),
            true,
        )
        .unwrap();
        assert_eq!(a.pos, w(&["create", "tank", "vda"]));
        assert_eq!(a.flag("level").as_deref(), Some("raid1"));
        assert_eq!(a.flag("size").as_deref(), Some("1G"));
        assert_eq!(a.output, Some(Output::Json));
        assert!(a.yes);
        assert_eq!(
            a.known("pools", &["level"]).unwrap_err(),
            "pools: unknown flag --size"
        );
        assert!(a.known("pools", &["level", "size"]).is_ok());
        assert_eq!(
            a.want(2, "pools", "create NAME").unwrap_err(),
            "usage: cairnctl pools create NAME"
        );
        assert!(a.want(3, "pools", "x").is_ok());
        // without allow_yes, --yes is an ordinary flag and needs a value
        assert_eq!(
            VerbArgs::parse(&w(&["--yes"]), false).unwrap_err(),
            "--yes needs a value"
        );
        assert_eq!(
            VerbArgs::parse(&w(&["-o", "xml"]), true).unwrap_err(),
            "-o: \"xml\" is not text or json"
        );
    }
}
