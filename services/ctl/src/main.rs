//! cairnctl: the command-line client of a Cairn node's API.

mod args;
mod config;
mod conn;
mod login;
mod session;
mod status;
mod target;
mod tasks;

use anyhow::Context;
use args::{Command, Parsed};
use std::process::ExitCode;
use target::Target;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairnctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = match args::parse(&argv)? {
        Parsed::Help => {
            println!("{}", args::USAGE);
            return Ok(());
        }
        Parsed::Version => {
            println!("cairnctl {}", cairn_api::VERSION);
            return Ok(());
        }
        Parsed::Run(a) => a,
    };
    let cfg_dir = config::dir(a.config_dir.as_deref())?;
    let node = match &a.node {
        Some(n) => n.clone(),
        None => config::load(&cfg_dir)?
            .current
            .context("which node? give --node HOST[:PORT] (no node signed in to yet)")?,
    };
    let target = Target::parse(&node)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match a.command {
        Command::Login { user, fingerprint } => rt.block_on(login::run(
            target,
            &cfg_dir,
            &user,
            fingerprint.as_deref(),
            a.output,
        )),
        Command::Status => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            status::run(&s, a.output).await
        }),
        Command::Tasks => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            tasks::list(&s, a.output).await
        }),
        Command::Task { id, wait } => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            tasks::show(&s, &id, wait, a.output).await
        }),
        Command::Forget => forget(&target, &cfg_dir),
    }
}

/// Drop the node's stored token and pin (the token stays valid on the node until revoked).
fn forget(target: &Target, cfg_dir: &std::path::Path) -> anyhow::Result<()> {
    let mut cfg = config::load(cfg_dir)?;
    let key = target.key();
    if cfg.nodes.remove(&key).is_none() {
        anyhow::bail!("nothing stored for {key}");
    }
    if cfg.current.as_deref() == Some(key.as_str()) {
        cfg.current = None;
    }
    config::save(cfg_dir, &cfg)?;
    println!("Forgot {key} (its API token still works on the node until revoked there).");
    Ok(())
}
