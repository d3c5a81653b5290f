//! Errors of the image planner and writer.

use std::path::PathBuf;

/// Everything that can go wrong while planning or writing a disk image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("layout: {field} must be at least {min_mib} MiB, got {got_mib} MiB")]
    PartitionTooSmall {
        field: &'static str,
        min_mib: u64,
        got_mib: u64,
    },
    #[error("{what} ({path}) is {size} bytes and does not fit its {capacity}-byte partition")]
    ContentTooLarge {
        what: &'static str,
        path: PathBuf,
        size: u64,
        capacity: u64,
    },
    #[error("input {what} ({path}) cannot be read")]
    InputMissing {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start `{program}`")]
    ToolSpawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot feed stdin of `{program}`")]
    ToolStdin {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for `{program}`")]
    ToolWait {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}: {stderr}")]
    ToolFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot create the scratch directory {path}")]
    CreateWorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the boot loader file {path}")]
    WriteLoaderConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the image file {path}")]
    CreateImage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the old file {path}")]
    RemoveOld {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
