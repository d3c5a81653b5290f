//! The daemon's life: state, certificate, listeners, blessing, setup block, shutdown.

use crate::addrs::{usable, AddressSource, SystemAddresses};
use crate::certificate::{self, TlsFiles};
use crate::cli::{self, Command, Config};
use crate::{
    boot_record, console, domains, listen, logging, node, node_stop, notify, setup_code, system,
};
use anyhow::Context;
use cairn_api::{ApiState, Server};
use cairn_core::bless::RealEspFs;
use cairn_core::esp::RealMounter;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How long in-flight connections may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// How long exit waits for background blocking work (blessing) after the server stopped.
pub const BLOCKING_EXIT_GRACE: Duration = Duration::from_millis(300);

/// Parse flags and run until SIGTERM or SIGINT.
pub fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match cli::parse(&args)? {
        Command::Help => {
            println!("{}", cli::USAGE);
            return Ok(());
        }
        Command::Version => {
            println!("cairnd {}", cairn_api::VERSION);
            return Ok(());
        }
        Command::Run(cfg) => *cfg,
    };
    logging::init(cfg.log)?;
    // cairn-init sets the open-files limit from cairnd.toml's limit_nofile; started some
    // other way, take at least the hard limit. The API fits its connection cap to it.
    match cairn_api::conn::raise_open_files_limit() {
        Ok((before, after)) if before < after => {
            tracing::info!("open-files limit raised from {before} to {after}");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-files limit: {e}"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Blocking work: storage tools, libvirt calls, blessing, password hashing. A small
        // cap still, but not so small that two stuck tools (a mount on bad media, a hung
        // `lvs`) starve every request that needs one.
        .max_blocking_threads(8)
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(serve(cfg));
    // A blocking task (e.g. a mount stuck on bad media) must not hold up the exit.
    runtime.shutdown_timeout(BLOCKING_EXIT_GRACE);
    result
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.state_dir)
        .with_context(|| format!("cannot create state directory {}", cfg.state_dir.display()))?;
    let hostname = node::hostname();
    let node_ips = usable(SystemAddresses.addresses().unwrap_or_else(|e| {
        tracing::warn!("cannot list network addresses for the certificate: {e}");
        Vec::new()
    }));
    let cert = certificate::load_or_create(&TlsFiles::under(&cfg.state_dir), &hostname, &node_ips)?;
    if cert.created {
        tracing::info!("made a new self-signed certificate {}", cert.fingerprint);
    }
    let setup = setup_code::setup_state(&cfg.state_dir)?;

    let boot = Arc::new(RwLock::new(boot_record::initial_status(
        &cfg.boot, &RealEspFs,
    )));
    let listeners = listen::bind_all(&cfg.listen)?;
    let apply_hostname = system::decide(cfg.apply_hostname);
    let mut state = ApiState::open(
        Arc::new(node::Node::new(boot.clone())),
        Arc::new(system::System::new(apply_hostname, &cfg)),
        &cfg.state_dir,
    )
    .context("cannot load the API state")?;
    // The domains start after the API serves (decision 0023); until each is ready its
    // routes answer 503 `starting` and health says `starting`.
    state.domains = cairn_api::domains::Domains::starting();
    let shared = domains::Shared {
        alerts: state.alerts.clone(),
        tasks: state.tasks.clone(),
        domains: state.domains.clone(),
    };
    let console_path = cfg.console.clone();
    // A setup code that replaces the shown one (after too many wrong entries) is printed.
    let new_codes = state.identity.setup().new_codes();
    // Alert changes go out by mail and webhook as configured; ends when the server stops.
    let delivery = cairn_alert_delivery::spawn_delivery(state.channels.clone(), &state.events);
    let server = Server::new(listeners, cert.config.clone(), state)?;
    let bound = server.local_addrs();
    let shown: Vec<String> = bound.iter().map(|a| a.to_string()).collect();
    tracing::info!(
        "cairnd {} listening on {}",
        cairn_api::VERSION,
        shown.join(", ")
    );
    // READY for cairn-init means "serving TLS": the domains have not started yet.
    notify::ready();
    // Each on a thread of its own; returns at once.
    domains::start(&shared, &cfg);

    // Blessing: the API is being served, so this boot is good.
    let paths = cfg.boot.clone();
    let esp_mount = cfg.esp_mount;
    let sys_class_block = cfg.sys_class_block.clone();
    let boot_task = tokio::task::spawn_blocking(move || {
        let mounter = RealMounter { sys_class_block };
        let status = boot_record::bless_and_read(&paths, esp_mount, &mounter, &RealEspFs);
        match boot.write() {
            Ok(mut b) => *b = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
    });

    // The setup block, once an address is known (DHCP may still be running).
    let setup_task = match setup {
        setup_code::SetupState::Claimed => {
            tracing::info!("node is set up; no setup block");
            None
        }
        setup_code::SetupState::Unclaimed(code) => Some(tokio::spawn({
            let fingerprint = cert.fingerprint.to_string();
            let code = code.code().to_string();
            let console_path = cfg.console.clone();
            let wait = cfg.address_wait;
            let state_dir = cfg.state_dir.clone();
            async move {
                let (addresses, urls, gave_up) =
                    console::wait_for_urls(&SystemAddresses, &bound, wait).await;
                let mut new_codes = new_codes;
                let code = new_codes.borrow_and_update().clone().unwrap_or(code);
                let info = console::SetupInfo {
                    hostname: node::hostname(),
                    addresses,
                    urls,
                    fingerprint,
                    code,
                    gave_up_after: gave_up.then_some(wait),
                };
                console::print(&console_path, &console::format_block(&info));
                tracing::info!(
                    "setup block printed (node not set up yet): {}",
                    info.urls.join(" ")
                );
                let shown = info.addresses.clone();
                let info = std::sync::Mutex::new(info);
                let claimed = || {
                    matches!(
                        setup_code::setup_state(&state_dir),
                        Ok(setup_code::SetupState::Claimed)
                    )
                };
                let addresses_changed =
                    console::watch_addresses(&SystemAddresses, &bound, shown, |addresses, urls| {
                        if claimed() {
                            return; // set up meanwhile: the code is no longer shown
                        }
                        let mut info = info.lock().unwrap_or_else(|e| e.into_inner());
                        info.addresses = addresses;
                        info.urls = urls;
                        info.gave_up_after = None;
                        console::print(&console_path, &console::format_block(&info));
                        tracing::info!(
                            "network addresses changed; setup block printed again: {}",
                            info.urls.join(" ")
                        );
                    });
                let code_changed = console::watch_codes(new_codes, |code| {
                    if claimed() {
                        return;
                    }
                    let mut info = info.lock().unwrap_or_else(|e| e.into_inner());
                    info.code = code;
                    console::print(&console_path, &console::format_block(&info));
                    tracing::info!("setup code replaced; setup block printed again");
                });
                tokio::join!(addresses_changed, code_changed);
            }
        })),
    };

    let summary = server.run(shutdown_signal()?, SHUTDOWN_GRACE).await;
    if let Some(t) = setup_task {
        t.abort();
    }
    delivery.abort();
    // The API no longer serves; if cairn-init is stopping the node (not just cairnd), shut
    // the VMs down while libvirtd still runs (it stops after cairnd: stop_after).
    // The VM service, if it became ready.
    node_stop::before_exit(
        shared.domains.vms.get(),
        Path::new(cairn_init::node_stop::DEFAULT_MARKER),
        Path::new(system::PROC_CMDLINE),
        &console_path,
    )
    .await;
    if !boot_task.is_finished() {
        tracing::warn!("exiting while the boot record task is still running");
    }
    if summary.drained {
        tracing::info!("cairnd stopped");
    } else {
        tracing::info!("cairnd stopped (open connections were cut)");
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    })
}
