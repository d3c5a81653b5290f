//! Writes cairnctl's man page (`cairnctl.1`) and shell completions (bash, zsh, fish) to
//! OUT_DIR, from the same command tree the binary parses with.

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
    let mut cmd = cli::Cli::command();
    cmd.build();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    std::fs::write(out.join("cairnctl.1"), page)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "cairnctl", &out)?;
    }
    Ok(())
}
