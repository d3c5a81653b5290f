//! cairnctl: the command-line client of a Cairn node's API.

mod alerts;
mod cli;
mod cluster;
mod config;
mod conn;
mod images;
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
use cli::{Cli, Command, Output};
use std::process::ExitCode;
use target::Target;

fn main() -> ExitCode {
    // A command line that cannot be used, --help and --version: clap prints and exits.
    let cli = Cli::parse_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairnctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let output = cli.output.unwrap_or(Output::Text);
    // `smart check FILE…` judges saved smartctl outputs: no node, no sign-in.
    if let Command::Smart(args) = &cli.command {
        if let smart::SmartCmd::Check(files) = smart::command(args.clone()) {
            return smart::check(&files, output);
        }
    }
    let cfg_dir = config::dir(cli.config_dir.as_deref())?;
    let node = match &cli.node {
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
    match cli.command {
        Command::Login(cli::LoginArgs {
            user,
            fingerprint,
            read_only,
            expires_days,
        }) => rt.block_on(login::run(
            target,
            &cfg_dir,
            &user,
            fingerprint.as_deref(),
            login::TokenOptions {
                read_only,
                expires_days,
            },
            output,
        )),
        Command::Status => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            status::run(&s, output).await
        }),
        Command::Tasks => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            tasks::list(&s, output).await
        }),
        Command::Alerts => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            alerts::list(&s, output).await
        }),
        Command::Task(cli::TaskArgs { id, wait }) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            tasks::show(&s, &id, wait, output).await
        }),
        Command::Shares(c) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            shares::run(&s, shares::verb(c), output).await
        }),
        Command::Storage(c) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            storage::run(&s, storage::verb(c), output).await
        }),
        Command::Smart(a) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            smart::run(&s, smart::command(a), output).await
        }),
        Command::Vms(a) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            vms::run(&s, vms::command(a), output).await
        }),
        Command::Images(a) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            images::run(&s, a.command, output).await
        }),
        Command::Network(a) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            network::run(&s, network::command(a), output).await
        }),
        Command::Cluster(a) => rt.block_on(async {
            let s = session::Session::open(target, &cfg_dir).await?;
            cluster::run(&s, cluster::command(a), output).await
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
