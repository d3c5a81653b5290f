//! Command-line flags of cairnd.

use cairn_core::boot::BootPaths;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Usage text for `--help`.
pub const USAGE: &str = "\
usage: cairnd [FLAGS]
  --listen ADDR:PORT       listen here (repeatable; default 0.0.0.0:443 and [::]:443)
  --state-dir DIR          state directory (default /var/lib/cairn)
  --console PATH           where the setup block is printed besides stdout (default /dev/console)
  --address-wait-s N       how long to wait for a network address for the setup block (default 20)
  --cmdline PATH           kernel command line (default /proc/cmdline)
  --efivars-dir DIR        efivarfs (default /sys/firmware/efi/efivars)
  --esp-dir DIR            ESP mount point (default /run/cairn/esp)
  --esp-mount auto|never   mount the ESP (PARTLABEL=cairn-esp) there if needed (default auto)
  --sys-class-block DIR    where partitions are looked up (default /sys/class/block)
  --boot-failures PATH     stage 1 failure records (default /state/boot/failures.jsonl)
  --log auto|journald|stderr  log target (default auto: journald if its socket exists)
  --apply-hostname auto|always|never  set the hostname when setup completes (default auto:
                           only as root on a booted Cairn node: cairn.slot= in /proc/cmdline)
  --zoneinfo-dir DIR       tz database for validating time zones (default /usr/share/zoneinfo)
  --init-socket PATH       cairn-init's control socket, to restart chronyd when the NTP servers
                           change (default /run/cairn/init.sock; used where --apply-hostname
                           applies, i.e. on a Cairn node)
  --help, --version";

/// Whether cairnd mounts the ESP itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspMount {
    Auto,
    Never,
}

/// Where logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Auto,
    Journald,
    Stderr,
}

/// Whether setup may change the running system's hostname.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyHostname {
    Auto,
    Always,
    Never,
}

/// Parsed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub state_dir: PathBuf,
    pub console: PathBuf,
    pub address_wait: Duration,
    pub boot: BootPaths,
    pub esp_mount: EspMount,
    pub sys_class_block: PathBuf,
    pub log: LogTarget,
    pub apply_hostname: ApplyHostname,
    pub zoneinfo: PathBuf,
    pub init_socket: PathBuf,
}

impl Config {
    /// Whether this cairnd runs on a booted Cairn node (`cairn.slot=` on the kernel command
    /// line and cairn-init's control socket present). Domains that change the machine
    /// (disks, network) start only there: a developer's cairnd, the UI tests' and the API
    /// fuzzer's must never touch the host's disks or network; their routes answer 503.
    pub fn on_appliance(&self) -> bool {
        let text = std::fs::read_to_string(&self.boot.cmdline).unwrap_or_default();
        text.split_whitespace()
            .any(|w| w.starts_with("cairn.slot="))
            && self.init_socket.exists()
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// A flag that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("unknown flag {0:?} (see --help)")]
    Unknown(String),
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("flag {flag}: {value:?} is not valid: {reason}")]
    BadValue {
        flag: String,
        value: String,
        reason: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            state_dir: PathBuf::from("/var/lib/cairn"),
            console: PathBuf::from("/dev/console"),
            address_wait: Duration::from_secs(20),
            boot: BootPaths::default(),
            esp_mount: EspMount::Auto,
            sys_class_block: PathBuf::from(cairn_core::esp::DEFAULT_SYS_CLASS_BLOCK),
            log: LogTarget::Auto,
            apply_hostname: ApplyHostname::Auto,
            zoneinfo: PathBuf::from("/usr/share/zoneinfo"),
            init_socket: PathBuf::from("/run/cairn/init.sock"),
        }
    }
}

/// The default listen addresses: every IPv4 and every IPv6 address, port 443.
pub fn default_listen() -> Vec<SocketAddr> {
    vec![
        SocketAddr::from(([0, 0, 0, 0], 443)),
        SocketAddr::from(([0u16; 8], 443)),
    ]
}

/// Parse flags (without the program name). `--flag value` and `--flag=value` both work.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let mut cfg = Config::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--help" | "-h" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            _ => {}
        }
        let mut value = || -> Result<String, CliError> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| CliError::MissingValue(flag.to_string())),
            }
        };
        let bad = |value: &str, reason: &str| CliError::BadValue {
            flag: flag.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        match flag {
            "--listen" => {
                let v = value()?;
                let addr = v
                    .parse::<SocketAddr>()
                    .map_err(|_| bad(&v, "expected IP:PORT or [IPv6]:PORT"))?;
                cfg.listen.push(addr);
            }
            "--state-dir" => cfg.state_dir = path(flag, value()?)?,
            "--console" => cfg.console = path(flag, value()?)?,
            "--address-wait-s" => {
                let v = value()?;
                let secs = v
                    .parse::<u64>()
                    .map_err(|_| bad(&v, "expected whole seconds"))?;
                cfg.address_wait = Duration::from_secs(secs);
            }
            "--cmdline" => cfg.boot.cmdline = path(flag, value()?)?,
            "--efivars-dir" => cfg.boot.efivars = path(flag, value()?)?,
            "--esp-dir" => cfg.boot.esp = path(flag, value()?)?,
            "--boot-failures" => cfg.boot.failures = path(flag, value()?)?,
            "--sys-class-block" => cfg.sys_class_block = path(flag, value()?)?,
            "--esp-mount" => {
                let v = value()?;
                cfg.esp_mount = match v.as_str() {
                    "auto" => EspMount::Auto,
                    "never" => EspMount::Never,
                    _ => return Err(bad(&v, "expected auto or never")),
                };
            }
            "--log" => {
                let v = value()?;
                cfg.log = match v.as_str() {
                    "auto" => LogTarget::Auto,
                    "journald" => LogTarget::Journald,
                    "stderr" => LogTarget::Stderr,
                    _ => return Err(bad(&v, "expected auto, journald or stderr")),
                };
            }
            "--apply-hostname" => {
                let v = value()?;
                cfg.apply_hostname = match v.as_str() {
                    "auto" => ApplyHostname::Auto,
                    "always" => ApplyHostname::Always,
                    "never" => ApplyHostname::Never,
                    _ => return Err(bad(&v, "expected auto, always or never")),
                };
            }
            "--zoneinfo-dir" => cfg.zoneinfo = path(flag, value()?)?,
            "--init-socket" => cfg.init_socket = path(flag, value()?)?,
            _ => return Err(CliError::Unknown(arg.clone())),
        }
    }
    if cfg.listen.is_empty() {
        cfg.listen = default_listen();
    }
    Ok(Command::Run(Box::new(cfg)))
}

fn path(flag: &str, v: String) -> Result<PathBuf, CliError> {
    if v.is_empty() {
        return Err(CliError::BadValue {
            flag: flag.to_string(),
            value: v,
            reason: "path is empty".to_string(),
        });
    }
    Ok(PathBuf::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    fn run(s: &[&str]) -> Config {
        match parse(&args(s)).unwrap() {
            Command::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]);
        assert_eq!(c.listen, default_listen());
        assert_eq!(c.listen[1].to_string(), "[::]:443");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/cairn"));
        assert_eq!(c.console, PathBuf::from("/dev/console"));
        assert_eq!(c.boot, BootPaths::default());
        assert_eq!(c.esp_mount, EspMount::Auto);
        assert_eq!(c.log, LogTarget::Auto);
        assert_eq!(c.address_wait, Duration::from_secs(20));
        assert_eq!(c.apply_hostname, ApplyHostname::Auto);
        assert_eq!(c.zoneinfo, PathBuf::from("/usr/share/zoneinfo"));
        assert_eq!(c.init_socket, PathBuf::from("/run/cairn/init.sock"));
    }

    #[test]
    fn every_flag() {
        let c = run(&[
            "--listen",
            "127.0.0.1:8443",
            "--listen=[::1]:8443",
            "--state-dir",
            "/tmp/s",
            "--console",
            "/tmp/c",
            "--address-wait-s",
            "2",
            "--cmdline",
            "/tmp/cmd",
            "--efivars-dir",
            "/tmp/e",
            "--esp-dir",
            "/tmp/esp",
            "--esp-mount",
            "never",
            "--sys-class-block",
            "/tmp/b",
            "--boot-failures",
            "/tmp/f.jsonl",
            "--log",
            "stderr",
            "--apply-hostname",
            "never",
            "--zoneinfo-dir",
            "/tmp/z",
            "--init-socket",
            "/tmp/init.sock",
        ]);
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.listen[1].to_string(), "[::1]:8443");
        assert_eq!(c.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(c.console, PathBuf::from("/tmp/c"));
        assert_eq!(c.address_wait, Duration::from_secs(2));
        assert_eq!(c.boot.cmdline, PathBuf::from("/tmp/cmd"));
        assert_eq!(c.boot.efivars, PathBuf::from("/tmp/e"));
        assert_eq!(c.boot.esp, PathBuf::from("/tmp/esp"));
        assert_eq!(c.boot.failures, PathBuf::from("/tmp/f.jsonl"));
        assert_eq!(c.sys_class_block, PathBuf::from("/tmp/b"));
        assert_eq!(c.esp_mount, EspMount::Never);
        assert_eq!(c.log, LogTarget::Stderr);
        assert_eq!(c.apply_hostname, ApplyHostname::Never);
        assert_eq!(c.zoneinfo, PathBuf::from("/tmp/z"));
        assert_eq!(c.init_socket, PathBuf::from("/tmp/init.sock"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(parse(&args(&["--help"])).unwrap(), Command::Help);
        assert_eq!(parse(&args(&["--version"])).unwrap(), Command::Version);
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            parse(&args(&["--bogus"])).unwrap_err(),
            CliError::Unknown("--bogus".into())
        );
        assert_eq!(
            parse(&args(&["--listen"])).unwrap_err(),
            CliError::MissingValue("--listen".into())
        );
        let e = parse(&args(&["--listen", "localhost:443"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "flag --listen: \"localhost:443\" is not valid: expected IP:PORT or [IPv6]:PORT"
        );
        let e = parse(&args(&["--esp-mount=sometimes"])).unwrap_err();
        assert!(e.to_string().starts_with("flag --esp-mount:"), "{e}");
        let e = parse(&args(&["--state-dir="])).unwrap_err();
        assert!(e.to_string().contains("path is empty"), "{e}");
    }
}
