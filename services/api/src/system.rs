//! The narrow trait through which setup touches the running system (hostname, zoneinfo).

use std::path::PathBuf;

/// What setup needs from the system; the daemon decides whether to really apply.
pub trait NodeSystem: Send + Sync + 'static {
    /// Set the running system's hostname (a no-op where cairnd must not change it).
    fn set_hostname(&self, name: &str) -> std::io::Result<()>;
    /// The tz database directory to validate time zones against, if there is one.
    fn zoneinfo_dir(&self) -> Option<PathBuf>;
}
