//! Why a share, snapshot, thin-volume, scrub or capacity operation failed.

use crate::error::StorageError;
use cairn_core::command::CommandError;
use cairn_core::shown::clip;
use cairn_core::AtomicWriteError;
use std::path::PathBuf;

/// An error of the data side of storage (shares, snapshots, volumes, scrub). Variants that are
/// the caller's fault carry the request field at fault (see [`DataError::field`]).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A request field is not acceptable; `reason` says why.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The pool is unknown or not usable.
    #[error("pool {pool} is not available")]
    Pool {
        pool: String,
        #[source]
        source: StorageError,
    },
    /// No share of that name in the pool.
    #[error("no share {} in pool {}", clip(share), clip(pool))]
    NoSuchShare { pool: String, share: String },
    /// No snapshot of that name in the share.
    #[error("no snapshot {} of share {}", clip(snapshot), clip(share))]
    NoSuchSnapshot { share: String, snapshot: String },
    /// No thin volume of that name in the pool.
    #[error("no volume {} in pool {}", clip(volume), clip(pool))]
    NoSuchVolume { pool: String, volume: String },
    /// The name is already taken (`what` is `share`, `volume` or `snapshot`).
    #[error("{what} {name} already exists")]
    Exists { what: &'static str, name: String },
    /// An external tool failed during `step`.
    #[error("{step}")]
    Command {
        step: String,
        #[source]
        source: CommandError,
    },
    /// A tool's output could not be understood.
    #[error("cannot parse the output of {tool}: {reason}")]
    Parse { tool: String, reason: String },
    /// Reading a state file or sysfs failed.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// Writing to sysfs failed.
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] std::io::Error),
    /// Creating the state directory failed.
    #[error("cannot create {0}")]
    CreateDir(PathBuf, #[source] std::io::Error),
    /// A state file is not valid JSON.
    #[error("records {0} are corrupt")]
    Records(PathBuf, #[source] serde_json::Error),
    /// Saving a state file failed.
    #[error("cannot save {0}")]
    Save(PathBuf, #[source] AtomicWriteError),
    /// Waiting for the system ran past its deadline.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
}

impl DataError {
    /// `field` is not acceptable because of `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The external tool behind `step` failed.
    pub fn command(step: impl Into<String>, source: CommandError) -> DataError {
        DataError::Command {
            step: step.into(),
            source,
        }
    }

    /// The request field at fault, when the error is the caller's.
    pub fn field(&self) -> Option<&str> {
        match self {
            DataError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether the error means "no such thing" (an API answers 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DataError::NoSuchShare { .. }
                | DataError::NoSuchSnapshot { .. }
                | DataError::NoSuchVolume { .. }
        ) || matches!(
            self,
            DataError::Pool {
                source: StorageError::NoSuchPool(_),
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_the_field_and_not_found_is_recognised() {
        let e = DataError::invalid("size_bytes", "must be at least 256 MiB");
        assert_eq!(e.field(), Some("size_bytes"));
        assert_eq!(e.to_string(), "size_bytes: must be at least 256 MiB");
        assert!(DataError::NoSuchShare {
            pool: "tank".into(),
            share: "x".into()
        }
        .is_not_found());
        assert!(!e.is_not_found());
    }
}
