//! Lab networks: Linux bridges in a network namespace of their own, QEMU tap NICs enslaved
//! to them, and "lab host" peers (one namespace each, a veth into a bridge) to ping from.
//!
//! QEMU runs in the test's namespace (so the management NIC's `hostfwd` stays reachable on
//! 127.0.0.1) and creates its taps there by name (`-netdev tap,ifname=…`, root, no
//! scripts); [`LabNet::attach`] then moves them into the lab namespace and onto their
//! bridges. The taps go away with QEMU, so a relaunch just attaches again. Everything is
//! deleted on drop, even after a failed assertion.

use crate::deadline::Deadline;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A failed `ip` command.
#[derive(Debug, thiserror::Error)]
pub enum LabNetError {
    #[error("cannot run {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd} failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("lab networks need root (CAP_NET_ADMIN) to create namespaces, bridges and taps")]
    NotRoot,
    #[error("QEMU did not create tap {tap} within {waited:?}")]
    NoTap { tap: String, waited: Duration },
    #[error("{tap} is not a tap of this lab network (its taps: {known})")]
    UnknownTap { tap: String, known: String },
    #[error("this lab has {bridges} networks; there is no network {network}")]
    NoNetwork { network: usize, bridges: usize },
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Run a command, failing with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<Output, LabNetError> {
    let cmd = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabNetError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(LabNetError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// A lab-host end: its own namespace with one veth on a lab bridge.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Namespace name (use with `ip netns exec`).
    pub netns: String,
    /// The interface inside it.
    pub ifname: String,
}

impl Peer {
    /// Run `program args…` inside the peer's namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output, LabNetError> {
        let mut all = vec!["netns", "exec", self.netns.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A `Command` for `program` inside the peer's namespace (for long-running ones).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns, program]);
        c
    }
}

/// One lab's networks.
pub struct LabNet {
    /// The namespace holding the bridges.
    pub netns: String,
    prefix: String,
    bridges: Vec<String>,
    /// (tap name, bridge index).
    taps: Vec<(String, usize)>,
    peers: Vec<Peer>,
}

impl LabNet {
    /// A namespace with `networks` bridges (`lan0`, `lan1`, …), up, STP off.
    pub fn new(networks: usize) -> Result<LabNet, LabNetError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(LabNetError::NotRoot);
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("cl{}{n}", std::process::id() % 100_000);
        let netns = format!("{prefix}-lab");
        run("ip", &["netns", "add", &netns])?;
        let mut net = LabNet {
            netns,
            prefix,
            bridges: vec![],
            taps: vec![],
            peers: vec![],
        };
        net.ip(&["link", "set", "lo", "up"])?;
        for i in 0..networks {
            let br = format!("lan{i}");
            net.ip(&[
                "link",
                "add",
                &br,
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
            ])?;
            net.ip(&["link", "set", &br, "up"])?;
            net.bridges.push(br);
        }
        Ok(net)
    }

    /// `ip …` inside the lab namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output, LabNetError> {
        let mut all = vec!["-n", self.netns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// The name of a new tap for a NIC on lab network `network`: pass it as
    /// `NicSpec::Tap`, launch the node, then call [`LabNet::attach`].
    pub fn tap(&mut self, network: usize) -> String {
        let name = format!("{}t{}", self.prefix, self.taps.len());
        self.taps.push((name.clone(), network));
        name
    }

    /// After each launch: wait for QEMU to create every tap in the test's namespace, then
    /// move them into the lab namespace, onto their bridges, up.
    pub fn attach(&mut self, deadline: Deadline) -> Result<(), LabNetError> {
        let all: Vec<String> = self.taps.iter().map(|(t, _)| t.clone()).collect();
        self.attach_taps(&all, deadline)
    }

    /// [`LabNet::attach`] for some taps only: those of one node QEMU relaunched, while the
    /// other nodes' taps stay where they are.
    pub fn attach_taps(&mut self, names: &[String], deadline: Deadline) -> Result<(), LabNetError> {
        for name in names {
            let network = self.network_of(name)?;
            while !Path::new("/sys/class/net").join(name).exists() {
                if deadline.expired() {
                    return Err(LabNetError::NoTap {
                        tap: name.clone(),
                        waited: deadline.total(),
                    });
                }
                // poll for the tap QEMU is creating; the deadline bounds the wait
                std::thread::sleep(Duration::from_millis(20));
            }
            run("ip", &["link", "set", name, "netns", &self.netns])?;
            self.ip(&["link", "set", name, "master", &self.bridges[network]])?;
            self.ip(&["link", "set", name, "up"])?;
        }
        Ok(())
    }

    /// The lab network a tap was made for.
    fn network_of(&self, tap: &str) -> Result<usize, LabNetError> {
        self.taps
            .iter()
            .find(|(t, _)| t == tap)
            .map(|(_, n)| *n)
            .ok_or_else(|| LabNetError::UnknownTap {
                tap: tap.to_string(),
                known: self
                    .taps
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
    }

    /// Sets an attached tap's bridge port up or down (in the lab namespace): down, nothing
    /// passes between the NIC behind it and the bridge, as with a cable pulled at the
    /// switch (the node's NIC keeps its carrier).
    pub fn set_tap_up(&self, tap: &str, up: bool) -> Result<(), LabNetError> {
        self.network_of(tap)?;
        self.ip(&["link", "set", tap, if up { "up" } else { "down" }])?;
        Ok(())
    }

    /// The bridge of lab network `network` (`lan0`, …; inside [`LabNet::netns`]).
    pub fn bridge(&self, network: usize) -> Result<&str, LabNetError> {
        self.bridges
            .get(network)
            .map(String::as_str)
            .ok_or(LabNetError::NoNetwork {
                network,
                bridges: self.bridges.len(),
            })
    }

    /// Gives the bridge of lab network `network` an address (`cidr`, e.g. `10.77.0.254/24`)
    /// in the lab namespace: the lab's own end of that network (its DHCP server's).
    pub fn add_bridge_address(&self, network: usize, cidr: &str) -> Result<(), LabNetError> {
        let br = self.bridge(network)?.to_string();
        self.ip(&["addr", "add", cidr, "dev", &br])?;
        Ok(())
    }

    /// A lab-host peer on network `network` with `cidr` (e.g. `10.10.0.1/24`).
    pub fn peer(&mut self, network: usize, cidr: &str) -> Result<Peer, LabNetError> {
        let k = self.peers.len();
        let netns = format!("{}-p{k}", self.prefix);
        let inner = format!("{}p{k}", self.prefix);
        let outer = format!("{}q{k}", self.prefix);
        run("ip", &["netns", "add", &netns])?;
        let peer = Peer {
            netns: netns.clone(),
            ifname: inner.clone(),
        };
        self.peers.push(peer.clone());
        self.ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &netns,
        ])?;
        self.ip(&["link", "set", &outer, "master", &self.bridges[network]])?;
        self.ip(&["link", "set", &outer, "up"])?;
        run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &netns, "addr", "add", cidr, "dev", &inner])?;
        run("ip", &["-n", &netns, "link", "set", &inner, "up"])?;
        Ok(peer)
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        for p in &self.peers {
            let _ = run("ip", &["netns", "del", &p.netns]);
        }
        // Deleting the namespace deletes the bridges and the taps moved into it; taps of a
        // QEMU that still runs in the test's namespace go when it exits.
        let _ = run("ip", &["netns", "del", &self.netns]);
    }
}

/// Parse `ping -i 0.01 -c N` output: (transmitted, received).
pub fn ping_counts(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line.split(',').map(|p| {
        p.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
    });
    let tx = nums.next()??;
    let rx = nums.next()??;
    Some((tx, rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_summary_is_parsed() {
        let out = "PING 10.10.0.2 ...\n--- 10.10.0.2 ping statistics ---\n\
                   1000 packets transmitted, 987 received, 1.3% packet loss, time 12000ms\n";
        assert_eq!(ping_counts(out), Some((1000, 987)));
        assert_eq!(ping_counts("nothing"), None);
    }

    #[test]
    fn namespace_bridges_taps_and_peers_are_made_and_removed() {
        let mut net = match LabNet::new(1) {
            Ok(n) => n,
            Err(LabNetError::NotRoot) => {
                eprintln!("SKIP: lab networks need root");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let ns = net.netns.clone();
        let a = net.peer(0, "10.77.0.1/24").unwrap();
        let b = net.peer(0, "10.77.0.2/24").unwrap();
        // A tap as QEMU would make it, attached and removed with the namespace.
        let tap = net.tap(0);
        run("ip", &["tuntap", "add", "dev", &tap, "mode", "tap"]).unwrap();
        net.attach(Deadline::secs(5)).unwrap();
        assert!(net.ip(&["link", "show", &tap]).is_ok());
        // its bridge port down and up again; an unknown tap or network is refused
        net.set_tap_up(&tap, false).unwrap();
        let shown = net.ip(&["-o", "link", "show", &tap]).unwrap();
        assert!(
            !String::from_utf8_lossy(&shown.stdout).contains(",UP"),
            "{shown:?}"
        );
        net.set_tap_up(&tap, true).unwrap();
        assert!(matches!(
            net.set_tap_up("nosuchtap", false),
            Err(LabNetError::UnknownTap { .. })
        ));
        assert!(matches!(
            net.attach_taps(&["nosuchtap".to_string()], Deadline::secs(1)),
            Err(LabNetError::UnknownTap { .. })
        ));
        assert!(matches!(
            net.add_bridge_address(3, "10.1.2.3/24"),
            Err(LabNetError::NoNetwork { network: 3, .. })
        ));
        net.add_bridge_address(0, "10.77.0.254/24").unwrap();
        let out = a
            .exec("ping", &["-c", "1", "-W", "5", "10.77.0.254"])
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 received"));
        let out = a
            .exec("ping", &["-c", "1", "-W", "5", "10.77.0.2"])
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 received"));
        drop(net);
        let list =
            String::from_utf8_lossy(&run("ip", &["netns", "list"]).unwrap().stdout).into_owned();
        assert!(!list.contains(&ns) && !list.contains(&b.netns), "{list}");
        assert!(
            run("ip", &["link", "show", &tap]).is_err(),
            "tap {tap} left behind"
        );
    }
}
