//! cairnctl's command tree on clap: global flags, every verb with its flags and
//! positionals, and the errors for what clap cannot check itself. `build.rs` includes this
//! module to write the man page and shell completions, so it uses only clap and std.

pub mod cluster;
pub mod images;
pub mod network;
pub mod shares;
pub mod smart;
pub mod storage;
pub mod values;
pub mod vms;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

pub use values::Output;

/// The command-line client of a Cairn node's API.
///
/// Signs in to a node over HTTPS (its certificate pinned on first use), keeps an API token,
/// and runs verbs against the node's API. Long operations show a live progress bar.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "cairnctl", version, arg_required_else_help = true)]
pub struct Cli {
    /// The node; port 443 if not given (default: the one last signed in to).
    #[arg(long, global = true, value_name = "HOST[:PORT]")]
    pub node: Option<String>,
    /// Output format: text for people, json for scripts (default: text).
    #[arg(short = 'o', long, global = true, value_name = "FORMAT", value_parser = values::OutputParser)]
    pub output: Option<Output>,
    /// Where tokens and pins are kept (default $XDG_CONFIG_HOME/cairn or ~/.config/cairn).
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every verb of cairnctl.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// Sign in, make an API token and keep it.
    ///
    /// The password is read from the terminal, or the first line of stdin. The node's
    /// certificate is pinned on first use. The token can do everything and lasts 90 days,
    /// unless --read-only or --expires-days say otherwise.
    Login(LoginArgs),
    /// The node's health and who you are signed in as.
    Status,
    /// The node's long operations.
    Tasks,
    /// Active alerts and recent changes.
    Alerts,
    /// One task; with --wait, a live progress bar until it ends.
    Task(TaskArgs),
    /// Revoke the stored API token on the node, then drop it and the pinned certificate.
    Forget,
    /// Disks and pools.
    #[command(flatten)]
    Storage(storage::StorageCommand),
    /// Shares, snapshots, volumes and scrubs of a pool.
    #[command(flatten)]
    Shares(shares::SharesCommand),
    /// SMART health of every disk, one disk's detail, self-tests, saved smartctl outputs
    /// checked offline.
    Smart(smart::SmartArgs),
    /// Network: config, link status, apply a spec in try mode (countdown), confirm, rollback.
    Network(network::NetworkArgs),
    /// Virtual machines: list, create, start, shutdown, off, reboot, clone, snapshot,
    /// restore, autostart, delete, console, replicate, the replication state, unreplicate and
    /// move-replica.
    Vms(vms::VmsArgs),
    /// The image library of a pool: list, upload (resumable, with progress), delete.
    Images(images::ImagesArgs),
    /// Cluster: status, create, a join token, join, leave, remove a dead node.
    Cluster(cluster::ClusterArgs),
}

/// `cairnctl login`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct LoginArgs {
    /// The user to sign in as.
    #[arg(long, value_name = "NAME", default_value = "admin")]
    pub user: String,
    /// The certificate fingerprint to expect (SHA256:…); without it, the one shown is
    /// pinned on first use.
    #[arg(long, value_name = "SHA256:…")]
    pub fingerprint: Option<String>,
    /// A read-only token: it may only read (GET and HEAD).
    #[arg(long)]
    pub read_only: bool,
    /// The token's lifetime in days, 1 to 3650 (the node's default, 90, when not given).
    #[arg(long, value_name = "N", value_parser = values::expires_days)]
    pub expires_days: Option<u32>,
}

/// `cairnctl task`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TaskArgs {
    /// The task's id (from `cairnctl tasks`).
    pub id: String,
    /// Follow the task with a live progress bar until it ends.
    #[arg(long)]
    pub wait: bool,
}

impl Cli {
    /// Parse a command line (with the program name first). Errors and `--help` are clap
    /// errors: `.exit()` prints them in clap's style, help and version on stdout.
    pub fn parse_from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut cmd = Cli::command();
        let matches = cmd.try_get_matches_from_mut(args).map_err(unknown_flag)?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
        cli.check(&mut cmd)?;
        Ok(cli)
    }

    /// What clap cannot say by itself: positionals that must be there, with a message
    /// naming them.
    fn check(&self, cmd: &mut clap::Command) -> Result<(), clap::Error> {
        let missing = match &self.command {
            Command::Smart(smart::SmartArgs {
                command: Some(smart::SmartCommand::Check { files }),
            }) if files.is_empty() => Some((
                ["smart", "check"],
                "smart check needs at least one FILE (or - for stdin)",
            )),
            Command::Network(network::NetworkArgs {
                command: Some(network::NetworkCommand::Apply { file: None, .. }),
            }) => Some((
                ["network", "apply"],
                "network apply needs a FILE with the spec (JSON)",
            )),
            _ => None,
        };
        match missing {
            Some((path, message)) => Err(usage_error(cmd, &path, message)),
            None => Ok(()),
        }
    }
}

/// A missing-argument error with the usage of the subcommand at `path`.
fn usage_error(cmd: &mut clap::Command, path: &[&str], message: &str) -> clap::Error {
    cmd.build();
    let mut sub = cmd;
    for name in path {
        // The path names subcommands defined above; stay on the last one found otherwise.
        if sub.find_subcommand(name).is_none() {
            break;
        }
        sub = sub
            .find_subcommand_mut(name)
            .unwrap_or_else(|| unreachable!("{name} was just found"));
    }
    sub.error(ErrorKind::MissingRequiredArgument, message)
}

/// clap's "unexpected argument '--x' found" for a flag, said as cairnctl always said it:
/// "unknown flag --x", with clap's suggestion and usage kept.
fn unknown_flag(e: clap::Error) -> clap::Error {
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    if e.kind() != ErrorKind::UnknownArgument || !arg.starts_with('-') || arg == "-" {
        return e;
    }
    let mut message = format!("unknown flag {arg}");
    if let Some(ContextValue::String(s)) = e.get(ContextKind::SuggestedArg) {
        message.push_str(&format!(" (a similar flag exists: {s})"));
    }
    if let Some(ContextValue::StyledStr(usage)) = e.get(ContextKind::Usage) {
        message.push_str(&format!("\n\n{usage}"));
    }
    message.push_str("\n\nFor more information, try '--help'.\n");
    clap::Error::raw(ErrorKind::UnknownArgument, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_from_args(std::iter::once("cairnctl").chain(s.iter().copied()))
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn login_with_flags() {
        let a = p(&[
            "--node",
            "nas:8443",
            "login",
            "--user=root",
            "--fingerprint",
            "SHA256:AB",
        ])
        .unwrap();
        assert_eq!(a.node.as_deref(), Some("nas:8443"));
        assert_eq!(
            a.command,
            Command::Login(LoginArgs {
                user: "root".into(),
                fingerprint: Some("SHA256:AB".into()),
                read_only: false,
                expires_days: None,
            })
        );
        let a = p(&["login", "--read-only", "--expires-days=7"]).unwrap();
        assert_eq!(
            a.command,
            Command::Login(LoginArgs {
                user: "admin".into(),
                fingerprint: None,
                read_only: true,
                expires_days: Some(7),
            })
        );
        for bad in ["0", "3651", "soon"] {
            assert_eq!(
                p(&["login", "--expires-days", bad]).unwrap_err().kind(),
                ErrorKind::ValueValidation,
                "{bad}"
            );
        }
        assert_eq!(a.output.unwrap_or(Output::Text), Output::Text);
    }

    #[test]
    fn status_json_and_config_dir() {
        let a = p(&["-o", "json", "--config-dir", "/tmp/c", "status"]).unwrap();
        assert_eq!((a.output, a.command), (Some(Output::Json), Command::Status));
        assert_eq!(a.config_dir, Some(PathBuf::from("/tmp/c")));
        // The global flags may also follow the verb.
        let a = p(&["status", "--output=json", "--node", "nas"]).unwrap();
        assert_eq!(
            (a.output, a.node.as_deref()),
            (Some(Output::Json), Some("nas"))
        );
    }

    #[test]
    fn task_commands() {
        let a = p(&["task", "12", "--wait"]).unwrap();
        assert_eq!(
            a.command,
            Command::Task(TaskArgs {
                id: "12".into(),
                wait: true
            })
        );
        assert_eq!(p(&["tasks"]).unwrap().command, Command::Tasks);
        assert_eq!(
            p(&["task"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert!(p(&["tasks", "--wait"]).is_err());
    }

    #[test]
    fn errors() {
        assert_eq!(
            p(&[]).unwrap_err().kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(
            p(&["fly"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
        let e = p(&["status", "--user", "x"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert!(e.to_string().contains("unknown flag --user"), "{e}");
        let e = p(&["-o", "yaml", "status"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("expected text or json"), "{e}");
        assert_eq!(p(&["--node"]).unwrap_err().kind(), ErrorKind::InvalidValue);
        assert_eq!(p(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(
            p(&["--version"]).unwrap_err().kind(),
            ErrorKind::DisplayVersion
        );
    }

    /// The spellings the docs, the README and the lab scenarios use.
    #[test]
    fn documented_command_lines_parse() {
        for line in [
            "--node 10.0.2.15 login",
            "login --user admin --fingerprint SHA256:AB --read-only --expires-days 30",
            "status",
            "-o json status",
            "tasks",
            "task 7 --wait",
            "alerts",
            "forget",
            "disks",
            "-o json disks",
            "disks show virtio-A",
            "disks wipe virtio-A --serial S1",
            "pools",
            "pools show tank",
            "pools create tank --level raid5 a b c --yes",
            "pools create tank --level single a -y",
            "pools replace tank old new",
            "pools add tank d",
            "pools add tank d --yes",
            "pools destroy tank --confirm tank",
            "shares tank",
            "shares mirror -o json",
            "shares list mirror",
            "shares create tank docs --size 10G",
            "shares create mirror docs --size 256M",
            "shares resize tank docs --size 20G",
            "shares delete tank docs --confirm docs",
            "snapshots tank docs",
            "snapshot create tank docs before-upgrade",
            "snapshot delete tank docs before-upgrade",
            "snapshot list mirror docs -o json",
            "snapshot schedule tank docs --hourly 24 --daily 7 --weekly 4",
            "restore tank docs before-upgrade docs-old",
            "volumes tank",
            "volume create tank base --size 8G",
            "volume clone tank base web1",
            "volume snapshot tank base s1",
            "volume delete tank web1",
            "scrub tank",
            "scrub tank --interval 7",
            "capacity tank",
            "smart",
            "smart -o json",
            "smart list",
            "smart show nvme-X",
            "smart show nvme-X -o json",
            "smart test ata-X --kind short",
            "smart check a.json - -o json",
            "network",
            "network status",
            "network apply n.json --confirm --timeout 30",
            "network confirm",
            "network rollback",
            "images list --pool tank",
            "images upload a.iso --pool tank",
            "images upload a.iso --pool tank --name b.iso",
            "images delete a.iso --pool tank",
            "vms",
            "-o json vms",
            "vms show guest",
            "vms create guest --vcpus 1 --memory 32 --machine pc --disk tank:1:ide \
             --iso tank/isos/d.iso --boot disk,cdrom",
            "vms start guest",
            "vms off r1",
            "vms shutdown guest --timeout 3",
            "vms reboot guest --force",
            "vms clone guest c1 c2 --snapshot s1",
            "vms snapshot guest s1",
            "vms restore guest s1 r1",
            "vms autostart guest on",
            "vms delete r1 --yes --delete-disks",
            "vms console guest",
            "vms replicate guest",
            "vms replicate guest --to node2",
            "vms replication guest",
            "-o json vms replication guest",
            "vms unreplicate guest --keep node1",
            "vms unreplicate guest --keep=node1",
            "vms move-replica guest --to node3",
            "vms move-replica guest --to=node3",
        ] {
            let words = line.split_whitespace();
            if let Err(e) = p(&words.collect::<Vec<_>>()) {
                panic!("{line}: {e}");
            }
        }
    }

    #[test]
    fn every_verb_has_help() {
        fn walk(cmd: &clap::Command, path: &mut Vec<String>) {
            let mut argv = vec!["cairnctl".to_string()];
            argv.extend(path.iter().cloned());
            argv.push("--help".into());
            let e = Cli::parse_from_args(&argv).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{argv:?}");
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                path.push(sub.get_name().to_string());
                walk(sub, path);
                path.pop();
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, &mut Vec::new());
    }
}
