//! The system access setup uses: sethostname(2) and chronyd only on the appliance, the tz
//! database, and the node's clock settings.

use crate::cli::{ApplyHostname, Config};
use crate::time::{Clock, InitSocket, ServiceControl};
use cairn_api::system::{ClockStatus, NodeSystem};
use cairn_core::command::SystemRunner;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The real system, with the hostname and chronyd touched only when allowed.
pub struct System {
    apply_hostname: bool,
    zoneinfo: PathBuf,
    clock: Clock,
}

impl System {
    /// On a Cairn node (`on_node`) the hostname is set and chronyd is restarted through
    /// cairn-init's control socket; elsewhere only files under the state directory change.
    pub fn new(on_node: bool, cfg: &Config) -> Self {
        let control: Option<Box<dyn ServiceControl>> = on_node.then(|| {
            Box::new(InitSocket {
                path: cfg.init_socket.clone(),
            }) as Box<dyn ServiceControl>
        });
        System {
            apply_hostname: on_node,
            zoneinfo: cfg.zoneinfo.clone(),
            clock: Clock::new(
                &cfg.state_dir,
                &cfg.zoneinfo,
                Arc::new(SystemRunner),
                control,
            ),
        }
    }
}

/// Whether to call sethostname(2): `auto` means running as root on a booted Cairn node
/// (the kernel command line names a slot), never on a developer's machine.
pub fn should_apply_hostname(mode: ApplyHostname, is_root: bool, cmdline: &str) -> bool {
    match mode {
        ApplyHostname::Always => true,
        ApplyHostname::Never => false,
        ApplyHostname::Auto => {
            is_root
                && cmdline
                    .split_whitespace()
                    .any(|w| w.starts_with("cairn.slot="))
        }
    }
}

/// The running kernel's command line. Deliberately not `--cmdline`: tests point that at a
/// fake one naming a slot, and must never change the hostname of the machine they run on.
pub const PROC_CMDLINE: &str = "/proc/cmdline";

/// Decide from the process and the running kernel's command line.
pub fn decide(mode: ApplyHostname) -> bool {
    let cmdline = std::fs::read_to_string(Path::new(PROC_CMDLINE)).unwrap_or_default();
    should_apply_hostname(mode, nix::unistd::geteuid().is_root(), &cmdline)
}

impl NodeSystem for System {
    fn set_hostname(&self, name: &str) -> std::io::Result<()> {
        if !self.apply_hostname {
            tracing::info!(
                hostname = name,
                "not applying the hostname here (not a Cairn node)"
            );
            return Ok(());
        }
        nix::unistd::sethostname(name).map_err(std::io::Error::from)?;
        tracing::info!(hostname = name, "hostname set");
        Ok(())
    }

    fn zoneinfo_dir(&self) -> Option<PathBuf> {
        self.zoneinfo.is_dir().then(|| self.zoneinfo.clone())
    }

    fn apply_time(&self, timezone: &str, ntp_servers: &[String]) -> std::io::Result<()> {
        self.clock.apply(timezone, ntp_servers).map_err(Into::into)
    }

    fn clock_status(&self) -> ClockStatus {
        self.clock.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_applies_only_as_root_on_a_cairn_boot() {
        let cairn = "console=ttyS0 cairn.slot=a quiet";
        assert!(should_apply_hostname(ApplyHostname::Auto, true, cairn));
        assert!(!should_apply_hostname(ApplyHostname::Auto, false, cairn));
        assert!(!should_apply_hostname(
            ApplyHostname::Auto,
            true,
            "root=/dev/sda1 quiet"
        ));
        assert!(!should_apply_hostname(ApplyHostname::Never, true, cairn));
        assert!(should_apply_hostname(ApplyHostname::Always, false, ""));
    }

    #[test]
    fn disabled_system_leaves_the_hostname_alone() {
        let before = crate::node::hostname();
        let cfg = Config {
            zoneinfo: PathBuf::from("/nonexistent"),
            state_dir: tempfile::tempdir().unwrap().keep(),
            ..Config::default()
        };
        let s = System::new(false, &cfg);
        s.set_hostname("cairn-test-not-applied").unwrap();
        assert_eq!(crate::node::hostname(), before);
        assert_eq!(s.zoneinfo_dir(), None);
    }
}
