//! Starts the network domain: applies the confirmed spec at boot (or resets the management
//! link to DHCP on `cairn.net=reset`), then watches links for alerts.

use super::shared::{Shared, Start};
use crate::cli::Config;
use anyhow::Context;
use cairn_core::command::{run_ok, CommandRunner, Invocation, SystemRunner};
use cairn_net::dhcp::DhcpPaths;
use cairn_net::netlink::Netlink;
use cairn_net::{Network, NetworkOptions};
use std::sync::Arc;
use std::time::Duration;

/// How long the boot apply waits for the spec's links to appear.
pub const LINK_WAIT: Duration = Duration::from_secs(60);

/// udev's database: the boot apply waits for every physical link's `n<ifindex>` file there.
pub const UDEV_DATA: &str = "/run/udev/data";

/// Kernel modules a network spec may need, loaded once at boot (after the boot apply) so
/// that the first VLAN, bond or bridge an admin applies does not wait ~1 s under load for
/// the module to load. `max_bonds=0`: loading bonding must not create a `bond0` of its own.
pub const PRELOAD: [&[&str]; 2] = [
    &["-q", "-a", "8021q", "bridge"],
    &["-q", "bonding", "max_bonds=0"],
];

/// Kernel command line word that resets the management interface to DHCP at boot.
pub const RESET_WORD: &str = "cairn.net=reset";
/// Kernel command line option setting the try-mode timeout in seconds (`cairn.net.try_s=N`).
pub const TRY_OPTION: &str = "cairn.net.try_s=";

/// Whether the command line says this is a booted Cairn node, whether it asks for a reset,
/// and an optional try timeout.
fn read_cmdline(text: &str) -> (bool, bool, Option<Duration>) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let node = words.iter().any(|w| w.starts_with("cairn.slot="));
    let reset = words.contains(&RESET_WORD);
    let try_s = words
        .iter()
        .find_map(|w| w.strip_prefix(TRY_OPTION))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs);
    (node, reset, try_s)
}

/// Start the network service. Only on a booted Cairn node (`cairn.slot=` on the kernel
/// command line and cairn-init's control socket present): elsewhere (a developer's machine,
/// the UI tests' cairnd) cairnd must not reconfigure the host's network, and the routes
/// answer 503.
pub fn start(shared: &Shared, cfg: &Config) -> anyhow::Result<Start<Network>> {
    let text = std::fs::read_to_string(&cfg.boot.cmdline).unwrap_or_default();
    let (node, reset, try_s) = read_cmdline(&text);
    if !node || !cfg.init_socket.exists() {
        return Ok(Start::Absent(format!(
            "not a booted Cairn node (cairn.slot= on the command line and {} needed); \
             not managing the network",
            cfg.init_socket.display()
        )));
    }
    let mut opts = NetworkOptions::new(cfg.state_dir.join("network"));
    opts.dhcp = Some(DhcpPaths::default());
    opts.udev_data = Some(UDEV_DATA.into());
    if let Some(t) = try_s {
        opts.try_timeout = t;
    }
    let netlink = Netlink::new().context("cannot open netlink")?;
    let net = Network::new(
        Arc::new(netlink),
        Arc::new(SystemRunner),
        Arc::new(shared.alerts.clone()),
        opts,
    )
    .context("cannot load the network config")?;
    if reset {
        tracing::warn!("network: {RESET_WORD} on the kernel command line: resetting the management link to DHCP");
    }
    // Right away, on a thread of its own: the API must not wait for NIC drivers.
    let n = Arc::clone(&net);
    std::thread::Builder::new()
        .name("net-boot".into())
        .spawn(move || {
            match n.boot_when_links_exist(reset, LINK_WAIT) {
                Ok(Some(r)) => tracing::info!(
                    "network: boot config applied ({} operations, {} ms)",
                    r.ops.len(),
                    r.total_ms
                ),
                Ok(None) => tracing::info!("network: no confirmed config yet: factory DHCP"),
                Err(e) => tracing::error!(
                    "network: applying the boot config failed: {}",
                    cairn_core::boot::error_chain(&e)
                ),
            }
            preload_modules(&SystemRunner);
            n.start_monitor();
        })
        .context("cannot start the network boot thread")?;
    Ok(Start::Ready(net))
}

/// `modprobe` the modules of [`PRELOAD`]; a failure is logged (the first apply then loads
/// the module itself, only slower).
fn preload_modules(runner: &dyn CommandRunner) {
    for args in PRELOAD {
        if let Err(e) = run_ok(runner, &Invocation::new("modprobe", args.iter().copied())) {
            tracing::warn!(
                "network: cannot preload {args:?}: {}",
                cairn_core::boot::error_chain(&e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::command::RecordingRunner;

    #[test]
    fn preloads_vlan_bridge_and_bonding_without_a_default_bond() {
        let r = RecordingRunner::new();
        preload_modules(&r);
        assert_eq!(
            r.command_lines(),
            [
                "modprobe -q -a 8021q bridge",
                "modprobe -q bonding max_bonds=0"
            ]
        );
    }

    #[test]
    fn cmdline_words() {
        assert_eq!(read_cmdline("quiet"), (false, false, None));
        assert_eq!(
            read_cmdline("cairn.slot=a cairn.net=reset cairn.net.try_s=15"),
            (true, true, Some(Duration::from_secs(15)))
        );
    }
}
