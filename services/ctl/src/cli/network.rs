//! The command line of `cairnctl network`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `cairnctl network [status|apply|confirm|rollback]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct NetworkArgs {
    /// Without one: the confirmed config and any pending change.
    #[command(subcommand)]
    pub command: Option<NetworkCommand>,
}

/// A network verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum NetworkCommand {
    /// Links: carrier, speed, MTU, addresses, bonds, bridges.
    Status,
    /// Apply a spec (JSON) in try mode; shows the countdown to rollback.
    Apply {
        /// The spec, a JSON file (required; checked after parsing to say so plainly).
        file: Option<PathBuf>,
        /// Keep the change once the node still answers.
        #[arg(long)]
        confirm: bool,
        /// Seconds before an unconfirmed change is rolled back (the node's default when
        /// not given).
        #[arg(long, value_name = "S")]
        timeout: Option<u64>,
    },
    /// Keep the pending change.
    Confirm,
    /// Drop the pending change now.
    Rollback,
}
