//! cairnctl: the command-line client of a Cairn node's API.

mod alerts;
mod args;
mod config;
mod conn;
mod login;
mod network;
mod session;
mod shares;
mod smart;
mod status;
mod storage;
mod target;
mod tasks;
mod vms;

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
            println!("shares, snapshots, volumes and scrubs:\n{}", shares::USAGE);
            println!("disks and pools:\n{}", storage::USAGE);
            return Ok(());
        }
        Parsed::Version => {
            println!("cairnctl {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Parsed::Run(a) => a,
    };
    // `smart check FILE…` judges saved smartctl outputs: no node, no sign-in (nor for help).
    if let Command::Smart(words) = &a.command {
        if words.first().map(String::as_str) == Some("help") {
            println!("{}", smart::USAGE);
            return Ok(());
        }
        if words.first().map(String::as_str) == Some("check") {
            let (cmd, out) = smart::parse(words)?;
            if let smart::SmartCmd::Check(files) = cmd {
                return smart::check(&files, out.unwrap_or(a.output));
            }
        }
    }
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
        Command::Login {
            user,
            fingerprint,
            read_only,
            expires_days,
        } => rt.block_on(login::run(
            target,
            &cfg_dir,
            &user,
            fingerprint.as_deref(),
            login::TokenOptions {
                read_only,
                expires_days,
            },
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
        Command::Alerts => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            alerts::list(&s, a.output).await
        }),
        Command::Task { id, wait } => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            tasks::show(&s, &id, wait, a.output).await
        }),
        Command::Shares(verb, rest) => rt.block_on(async {
            let (v, out) = shares::parse(&verb, &rest).map_err(anyhow::Error::msg)?;
            let s = session::Session::open(target, &cfg_dir).await?;
            shares::run(&s, v, out.unwrap_or(a.output)).await
        }),
        Command::Storage(verb, rest) => rt.block_on(async {
            let (v, out) = storage::parse(&verb, &rest).map_err(anyhow::Error::msg)?;
            let s = session::Session::open(target, &cfg_dir).await?;
            storage::run(&s, v, out.unwrap_or(a.output)).await
        }),
        Command::Smart(words) => rt.block_on(async {
            if words.first().map(String::as_str) == Some("help") {
                println!("{}", smart::USAGE);
                return Ok(());
            }
            let (cmd, out) = smart::parse(&words)?;
            let s = session::Session::open(target, &cfg_dir).await?;
            smart::run(&s, cmd, out.unwrap_or(a.output)).await
        }),
        Command::Vms(words) => rt.block_on(async {
            if words.first().map(String::as_str) == Some("help") {
                println!("{}", vms::USAGE);
                return Ok(());
            }
            let cmd = vms::parse(&words)?;
            let s = session::Session::open(target, &cfg_dir).await?;
            vms::run(&s, cmd, a.output).await
        }),
        Command::Network(words) => rt.block_on(async {
            if words.first().map(String::as_str) == Some("help") {
                println!("{}", network::USAGE);
                return Ok(());
            }
            let cmd = network::parse(&words)?;
            let s = session::Session::open(target, &cfg_dir).await?;
            network::run(&s, cmd, a.output).await
        }),
        Command::Forget => rt.block_on(forget(target, &cfg_dir)),
    }
}

/// Revoke the node's API token there (when reachable), then drop the stored token and pin.
async fn forget(target: Target, cfg_dir: &std::path::Path) -> anyhow::Result<()> {
    let mut cfg = config::load(cfg_dir)?;
    let key = target.key();
    let Some(entry) = cfg.nodes.get(&key).cloned() else {
        anyhow::bail!("nothing stored for {key}");
    };
    if let Some(id) = entry.token_id.as_deref().filter(|_| entry.token.is_some()) {
        let revoked = async {
            let s = session::Session::open(target, cfg_dir).await?;
            let req = s.authed(hyper::Method::DELETE, &format!("/api/v1/auth/tokens/{id}"))?;
            let r = s.conn.send(req).await?;
            match r.status.as_u16() {
                204 | 401 | 404 => Ok(()),
                _ => Err(conn::api_error("cannot revoke the API token", &r)),
            }
        }
        .await;
        if let Err(e) = revoked {
            eprintln!(
                "cairnctl: warning: the API token {id} could not be revoked on the node ({e:#}); \
                 revoke it there"
            );
        }
    }
    cfg.nodes.remove(&key);
    if cfg.current.as_deref() == Some(key.as_str()) {
        cfg.current = None;
    }
    config::save(cfg_dir, &cfg)?;
    println!("Forgot {key}.");
    Ok(())
}
