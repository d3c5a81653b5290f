//! Writes cairnctl's man pages (`cairnctl.1`, and `cairnctl-VERB….1` for every verb) and
//! shell completions (bash, zsh, fish) to OUT_DIR, from the same command tree the binary
//! parses with.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;

// Only the command tree is used here; the parsing helpers are for the binary.
#[allow(dead_code)]
#[path = "src/cli/mod.rs"]
mod cli;

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    clap_mangen::generate_to(cli::Cli::command(), &out)?;
    let mut cmd = cli::Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "cairnctl", &out)?;
    }
    Ok(())
}
