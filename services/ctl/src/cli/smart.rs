//! The command line of `cairnctl smart`.

use super::values;
use clap::{Args, Subcommand};

/// `cairnctl smart [list|show|test|check]`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct SmartArgs {
    /// Without one: every disk's verdict.
    #[command(subcommand)]
    pub command: Option<SmartCommand>,
}

/// A SMART verb.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SmartCommand {
    /// Every disk: id, verdict, temperature, reasons.
    List,
    /// Attributes / NVMe log, self-test log, history, settings of one disk.
    Show {
        /// The disk's id.
        disk: String,
    },
    /// Run a self-test and follow its progress.
    Test {
        /// The disk's id.
        disk: String,
        /// short or long.
        #[arg(long, value_parser = values::self_test_kind)]
        kind: String,
    },
    /// Judge saved `smartctl --json -x` outputs offline, with the node's own rules.
    ///
    /// Prints verdict, reasons, temperature, endurance used, power-on hours; needs no node
    /// and no sign-in. Exits non-zero when a file cannot be read.
    Check {
        /// The saved outputs (`-` reads stdin).
        #[arg(value_name = "FILE")]
        files: Vec<String>,
    },
}
