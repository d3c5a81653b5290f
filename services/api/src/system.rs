//! The narrow trait through which setup touches the running system (hostname, zoneinfo, clock).

use std::path::PathBuf;

/// What setup needs from the system; the daemon decides whether to really apply.
pub trait NodeSystem: Send + Sync + 'static {
    /// Set the running system's hostname (a no-op where cairnd must not change it).
    fn set_hostname(&self, name: &str) -> std::io::Result<()>;
    /// The tz database directory to validate time zones against, if there is one.
    fn zoneinfo_dir(&self) -> Option<PathBuf>;
    /// Apply the time zone (`/etc/localtime`) and the NTP servers (chrony's sources, then a
    /// chronyd restart). A system that does not manage the clock (a test double, a
    /// developer's machine) applies nothing.
    fn apply_time(&self, timezone: &str, ntp_servers: &[String]) -> std::io::Result<()> {
        let _ = (timezone, ntp_servers);
        Ok(())
    }
    /// What the time service reports (blocking: it may run `chronyc`).
    fn clock_status(&self) -> ClockStatus {
        ClockStatus::default()
    }
}

/// chrony's view of the clock, as `GET /api/v1/time` shows it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClockStatus {
    /// Whether this node runs a time service (chronyd) at all.
    pub managed: bool,
    /// chronyd answered and has selected a source.
    pub synchronized: bool,
    /// The selected source (`chronyc tracking`), if any.
    pub reference: Option<String>,
    pub stratum: Option<u32>,
    /// System clock minus true time, seconds.
    pub offset_s: Option<f64>,
    /// chrony's leap status (`Normal`, `Not synchronised`, …).
    pub leap_status: Option<String>,
    /// Every configured source (`chronyc sources`).
    pub sources: Vec<NtpSource>,
    /// Why the status is incomplete (chronyd not running, …).
    pub error: Option<String>,
}

/// One time source as chronyd sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NtpSource {
    pub address: String,
    /// `selected`, `combined`, `not_combined`, `unreachable`, `falseticker`, `too_variable`.
    pub state: String,
    pub stratum: u32,
    /// Reachability register (last 8 polls, 377 octal = all answered).
    pub reach: u32,
    /// Offset of the last sample, seconds (None before the first).
    pub offset_s: Option<f64>,
}
