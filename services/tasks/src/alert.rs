//! Alert changes and active conditions as the API shows and delivery sends them.

use cairn_core::alert::AlertLevel;

/// Whether an alert condition began or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The condition began (or changed level or message).
    Raised,
    /// The condition ended.
    Cleared,
}

/// An alert change, as published by a domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    /// Stable key of the condition (e.g. `disk/WWN/smart`), so raise and clear pair up.
    pub key: String,
    /// For a clear: the level the condition had.
    pub level: AlertLevel,
    /// Raised or cleared.
    pub state: AlertState,
    /// What is wrong (or, for a clear, what is fine again).
    pub message: String,
    /// Seconds since the Unix epoch.
    pub time: u64,
}

/// A condition that is currently wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActiveAlert {
    /// Stable key of the condition.
    pub key: String,
    /// Its level now.
    pub level: AlertLevel,
    /// Its message now.
    pub message: String,
    /// Unix seconds when it was raised.
    pub since: u64,
    /// Unix seconds of the last change (level or message).
    pub updated: u64,
}

/// Order of levels: info < warning < critical.
pub fn severity(l: AlertLevel) -> u8 {
    match l {
        AlertLevel::Info => 0,
        AlertLevel::Warning => 1,
        AlertLevel::Critical => 2,
    }
}
