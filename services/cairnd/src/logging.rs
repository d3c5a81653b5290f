//! Log setup: journald (SYSLOG_IDENTIFIER=cairnd) when its socket exists, else stderr.

use crate::cli::LogTarget;
use anyhow::Context;
use std::path::Path;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// journald's native protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// The identifier `journalctl -t cairnd` selects.
pub const IDENTIFIER: &str = "cairnd";

/// Whether logs go to journald for this target and socket presence.
pub fn use_journald(target: LogTarget, socket_exists: bool) -> bool {
    match target {
        LogTarget::Journald => true,
        LogTarget::Stderr => false,
        LogTarget::Auto => socket_exists,
    }
}

/// Install the global subscriber. `RUST_LOG` overrides the default level (info).
pub fn init(target: LogTarget) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    if use_journald(target, Path::new(JOURNAL_SOCKET).exists()) {
        let layer = tracing_journald::layer()
            .context("cannot connect to journald")?
            .with_syslog_identifier(IDENTIFIER.to_string());
        registry
            .with(layer)
            .try_init()
            .context("cannot install the log subscriber")?;
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false),
            )
            .try_init()
            .context("cannot install the log subscriber")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_choice() {
        assert!(use_journald(LogTarget::Auto, true));
        assert!(!use_journald(LogTarget::Auto, false));
        assert!(use_journald(LogTarget::Journald, false));
        assert!(!use_journald(LogTarget::Stderr, true));
    }
}
