//! The file services' error: bad input names its field, the rest say what failed.

use cairn_core::command::CommandError;
use cairn_core::store::StoreError;

/// Why a file-services operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The request is not valid; `field` names the part at fault.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A named thing does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound { kind: &'static str, name: String },
    /// The thing already exists (or its name is taken).
    #[error("{field}: {message}")]
    Conflict { field: String, message: String },
    /// The records could not be read or written.
    #[error("the file-services record")]
    Store(#[from] StoreError),
    /// The record was changed by someone else since it was read.
    #[error("the file-services record changed underneath (revision {expected} expected, {found} found); try again")]
    Stale { expected: u64, found: u64 },
    /// A program (pdbedit, testparm, exportfs, smbcontrol) failed.
    #[error("{what}")]
    Command {
        what: String,
        #[source]
        source: CommandError,
    },
    /// A configuration file could not be written.
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A generated configuration was refused by its checker; nothing was applied.
    #[error("{checker} refused the new configuration, which was not applied: {message}")]
    Refused {
        checker: &'static str,
        message: String,
    },
}

impl FilesError {
    /// A validation error naming `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> FilesError {
        FilesError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// A failed program, saying what we tried to do.
    pub fn command(what: impl Into<String>, source: CommandError) -> FilesError {
        FilesError::Command {
            what: what.into(),
            source,
        }
    }

    /// The field this error names, if it is about bad input.
    pub fn field(&self) -> Option<&str> {
        match self {
            FilesError::Invalid { field, .. } | FilesError::Conflict { field, .. } => Some(field),
            _ => None,
        }
    }
}
