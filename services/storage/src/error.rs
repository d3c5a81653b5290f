//! Why a storage operation failed: one variant per failure site, each naming what it touched.

use cairn_core::command::CommandError;
use cairn_core::shown::clip;
use cairn_core::AtomicWriteError;
use std::path::PathBuf;

/// An error of the storage domain. Variants that are the caller's fault carry the request
/// field at fault (see [`StorageError::field`]), so the API can name it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A request field is not acceptable; `reason` says why.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// No disk with this id (or kernel name) is present.
    #[error("no disk {}", clip(.0))]
    NoSuchDisk(String),
    /// No pool of that name in our records.
    #[error("no pool {}", clip(.0))]
    NoSuchPool(String),
    /// The pool exists in our records but its array or volume group is not running.
    #[error("pool {name} is not usable: {reason}")]
    PoolUnusable { name: String, reason: String },
    /// Another operation on the same pool or disk is running.
    #[error("{0} is busy with another operation")]
    Busy(String),
    /// An external tool failed.
    #[error("{step}")]
    Command {
        step: String,
        #[source]
        source: CommandError,
    },
    /// A tool's output could not be understood.
    #[error("cannot parse the output of {tool}: {reason}")]
    Parse { tool: String, reason: String },
    /// Reading sysfs, udev data or a state file failed.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// Creating the state directory failed.
    #[error("cannot create {0}")]
    CreateDir(PathBuf, #[source] std::io::Error),
    /// Our pool records are not valid JSON.
    #[error("pool records {0} are corrupt")]
    Records(PathBuf, #[source] serde_json::Error),
    /// Writing our pool records failed.
    #[error("cannot save pool records")]
    Save(#[source] AtomicWriteError),
    /// Waiting for the system (a device node, an array state) ran past its deadline.
    #[error("timed out after {seconds} s waiting for {what}")]
    Timeout { what: String, seconds: u64 },
}

impl StorageError {
    /// `field` is not acceptable because of `reason`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StorageError {
        StorageError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The external tool behind `step` failed.
    pub fn command(step: impl Into<String>, source: CommandError) -> StorageError {
        StorageError::Command {
            step: step.into(),
            source,
        }
    }

    /// The request field at fault, when the error is the caller's.
    pub fn field(&self) -> Option<&str> {
        match self {
            StorageError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_field_and_reason() {
        let e = StorageError::invalid("disks[2]", "is the boot disk");
        assert_eq!(e.field(), Some("disks[2]"));
        assert_eq!(e.to_string(), "disks[2]: is the boot disk");
        assert_eq!(StorageError::NoSuchPool("x".into()).field(), None);
    }
}
