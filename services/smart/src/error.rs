//! Errors of the SMART service.

use cairn_core::command::CommandError;
use cairn_core::AtomicWriteError;
use std::path::PathBuf;

/// Why a SMART operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    /// A request field is not acceptable.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("no disk with id {0} is known to the SMART service")]
    UnknownDisk(String),
    #[error("cannot create the state directory {0}")]
    StateDir(PathBuf, #[source] std::io::Error),
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0} does not hold valid SMART state")]
    Decode(PathBuf, #[source] serde_json::Error),
    #[error("cannot encode the SMART state for {0}")]
    Encode(PathBuf, #[source] serde_json::Error),
    #[error("cannot save {0}")]
    Write(PathBuf, #[source] AtomicWriteError),
    #[error("cannot run smartctl on {disk}")]
    Run {
        disk: String,
        #[source]
        source: CommandError,
    },
    #[error("the drive {disk} refused the {kind} self-test: {reason}")]
    TestRefused {
        disk: String,
        kind: &'static str,
        reason: String,
    },
    #[error("the {kind} self-test on {disk} {reason}")]
    TestFailed {
        disk: String,
        kind: &'static str,
        reason: String,
    },
    #[error("a self-test is already running on {0}")]
    TestRunning(String),
    #[error("SMART is not available on {disk}: {reason}")]
    Unavailable { disk: String, reason: String },
    #[error("the {kind} self-test on {disk} did not finish within {minutes} minutes")]
    TestTimeout {
        disk: String,
        kind: &'static str,
        minutes: u64,
    },
}

impl SmartError {
    /// A field error.
    pub fn invalid(field: &str, reason: impl Into<String>) -> SmartError {
        SmartError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            SmartError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}
