//! A DHCP server for lab bridges: Debian's dnsmasq (`dnsmasq-base`) inside a lab network's
//! namespace, static leases only (one address per known MAC), no router, no DNS.
//!
//! One dnsmasq serves every bridge given to it: it picks the subnet by the bridge a request
//! arrives on (each bridge holds the lab's own address in its subnet). It runs in the
//! foreground as a child of the harness (killed with it, `PR_SET_PDEATHSIG`), logs every
//! DHCP exchange to `dnsmasq.log` and keeps its leases in `dnsmasq.leases`, both in the
//! results directory.

use std::fs::OpenOptions;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::deadline::Deadline;

/// The DHCP server program (Debian package `dnsmasq-base`).
pub const DNSMASQ: &str = "dnsmasq";
/// Where Debian installs it.
pub const DNSMASQ_PATH: &str = "/usr/sbin/dnsmasq";
/// Lease time handed out (long: a lab run never renews in earnest).
pub const LEASE: &str = "12h";

/// What can go wrong with the lab's DHCP server.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("{DNSMASQ_PATH} is missing: install Debian's dnsmasq-base (./dev installs it)")]
    Missing,
    #[error("cannot start dnsmasq")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {what}: {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dnsmasq exited at start ({status}); its log {}: {tail}", log.display())]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("dnsmasq did not say it serves DHCP within {waited:?}; its log {}: {tail}", log.display())]
    NotStarted {
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("DHCP network {subnet}/24 is given twice")]
    SubnetTwice { subnet: Ipv4Addr },
    #[error("MAC {mac} is given twice (for {first} and {second})")]
    MacTwice {
        mac: String,
        first: Ipv4Addr,
        second: Ipv4Addr,
    },
    #[error("{ip} (for MAC {mac}) is not in any served network")]
    Outside { mac: String, ip: Ipv4Addr },
}

/// One bridge served: its /24 and the fixed address of each MAC on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpNet {
    /// The bridge's name inside the lab namespace.
    pub bridge: String,
    /// The network's first address (`10.77.0.0`); a /24.
    pub subnet: Ipv4Addr,
    /// (MAC, address) of every NIC that gets an address here.
    pub hosts: Vec<(String, Ipv4Addr)>,
}

/// The dnsmasq arguments for `nets` (after `ip netns exec NS dnsmasq`), with its lease
/// file; checks that no subnet or MAC is given twice and every address is inside its net.
pub fn dnsmasq_args(nets: &[DhcpNet], leases: &Path) -> Result<Vec<String>, DhcpError> {
    let mut a: Vec<String> = [
        "--keep-in-foreground",
        // not /etc/dnsmasq.conf or anything else of the host's
        "--conf-file=/dev/null",
        // DHCP only, no DNS
        "--port=0",
        "--bind-interfaces",
        "--except-interface=lo",
        // no default route and no DNS server for the nodes: their management NIC keeps both
        "--dhcp-option=3",
        "--dhcp-option=6",
        // a relaunched node asking for an old lease is answered at once
        "--dhcp-authoritative",
        "--log-dhcp",
        "--log-facility=-",
        // root in a namespace of its own; no dnsmasq user on a host with only dnsmasq-base
        "--user=root",
        "--group=root",
        "--pid-file=",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.push(format!("--dhcp-leasefile={}", leases.display()));
    let mut seen_macs: Vec<(String, Ipv4Addr)> = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        if nets[..i].iter().any(|n| n.subnet == net.subnet) {
            return Err(DhcpError::SubnetTwice { subnet: net.subnet });
        }
        a.push(format!("--interface={}", net.bridge));
        a.push(format!(
            "--dhcp-range={},static,255.255.255.0,{LEASE}",
            net.subnet
        ));
        for (mac, ip) in &net.hosts {
            let mac = mac.to_ascii_lowercase();
            if ip.octets()[..3] != net.subnet.octets()[..3] {
                return Err(DhcpError::Outside { mac, ip: *ip });
            }
            if let Some((_, first)) = seen_macs.iter().find(|(m, _)| *m == mac) {
                return Err(DhcpError::MacTwice {
                    mac,
                    first: *first,
                    second: *ip,
                });
            }
            a.push(format!("--dhcp-host={mac},{ip}"));
            seen_macs.push((mac, *ip));
        }
    }
    Ok(a)
}

/// One lease from dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mac: String,
    pub ip: Ipv4Addr,
}

/// Parses dnsmasq's lease file (`EXPIRY MAC IP HOSTNAME CLIENT-ID` per line).
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _expiry = f.next()?;
            let mac = f.next()?.to_ascii_lowercase();
            let ip = f.next()?.parse().ok()?;
            Some(Lease { mac, ip })
        })
        .collect()
}

/// A running dnsmasq in a lab namespace; killed on drop.
#[derive(Debug)]
pub struct DhcpServer {
    child: Option<Child>,
    log: PathBuf,
    leases: PathBuf,
}

impl DhcpServer {
    /// Starts dnsmasq in namespace `netns` for `nets`, with its log and leases in `dir`,
    /// and waits (within `deadline`) until it says it serves every network.
    pub fn start(
        netns: &str,
        nets: &[DhcpNet],
        dir: &Path,
        deadline: Deadline,
    ) -> Result<DhcpServer, DhcpError> {
        if !Path::new(DNSMASQ_PATH).is_file() {
            return Err(DhcpError::Missing);
        }
        let log = dir.join("dnsmasq.log");
        let leases = dir.join("dnsmasq.leases");
        let args = dnsmasq_args(nets, &leases)?;
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| DhcpError::Io {
                what: "open the dnsmasq log",
                path: log.clone(),
                source,
            })?;
        let err = out.try_clone().map_err(|source| DhcpError::Io {
            what: "open the dnsmasq log",
            path: log.clone(),
            source,
        })?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, DNSMASQ_PATH])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        // `ip netns exec` execs dnsmasq in the same process, so dnsmasq dies with the harness
        // thread that started it.
        crate::child::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| DhcpError::Spawn { source })?;
        let mut server = DhcpServer {
            child: Some(child),
            log,
            leases,
        };
        server.wait_serving(nets.len(), deadline)?;
        Ok(server)
    }

    /// Waits for one `DHCP, static leases only on …` line per network in the log.
    fn wait_serving(&mut self, nets: usize, deadline: Deadline) -> Result<(), DhcpError> {
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.matches("DHCP, static leases only on").count() >= nets {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(DhcpError::Exited {
                        status: status.to_string(),
                        log: self.log.clone(),
                        tail: tail(&text),
                    });
                }
            }
            if deadline.expired() {
                return Err(DhcpError::NotStarted {
                    waited: deadline.total(),
                    log: self.log.clone(),
                    tail: tail(&text),
                });
            }
            // poll dnsmasq's log for its start lines; the deadline bounds the wait
            std::thread::sleep(Duration::from_millis(50).min(deadline.remaining()));
        }
    }

    /// The leases handed out so far.
    pub fn leases(&self) -> Vec<Lease> {
        parse_leases(&std::fs::read_to_string(&self.leases).unwrap_or_default())
    }

    /// dnsmasq's log (every DHCP exchange).
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for DhcpServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last lines of a log, on one line.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" ⏎ ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(bridge: &str, subnet: [u8; 4], hosts: &[(&str, [u8; 4])]) -> DhcpNet {
        DhcpNet {
            bridge: bridge.into(),
            subnet: subnet.into(),
            hosts: hosts
                .iter()
                .map(|(m, ip)| (m.to_string(), (*ip).into()))
                .collect(),
        }
    }

    #[test]
    fn arguments_serve_each_bridge_with_static_leases_only() {
        let nets = [
            net(
                "lan0",
                [10, 77, 0, 0],
                &[
                    ("52:54:00:77:01:01", [10, 77, 0, 11]),
                    ("52:54:00:77:01:02", [10, 77, 0, 21]),
                ],
            ),
            net(
                "lan1",
                [10, 78, 0, 0],
                &[("52:54:00:78:01:01", [10, 78, 0, 11])],
            ),
        ];
        let a = dnsmasq_args(&nets, Path::new("/r/dnsmasq.leases"))
            .unwrap()
            .join(" ");
        for want in [
            "--keep-in-foreground",
            "--port=0",
            "--interface=lan0 --dhcp-range=10.77.0.0,static,255.255.255.0,12h",
            "--dhcp-host=52:54:00:77:01:01,10.77.0.11 --dhcp-host=52:54:00:77:01:02,10.77.0.21",
            "--interface=lan1 --dhcp-range=10.78.0.0,static,255.255.255.0,12h",
            "--dhcp-host=52:54:00:78:01:01,10.78.0.11",
            "--dhcp-option=3 --dhcp-option=6",
            "--dhcp-leasefile=/r/dnsmasq.leases",
        ] {
            assert!(a.contains(want), "{want} missing in {a}");
        }
    }

    #[test]
    fn bad_plans_are_refused() {
        let twice = [
            net("lan0", [10, 77, 0, 0], &[]),
            net("lan1", [10, 77, 0, 0], &[]),
        ];
        assert!(matches!(
            dnsmasq_args(&twice, Path::new("/l")),
            Err(DhcpError::SubnetTwice { .. })
        ));
        let outside = [net(
            "lan0",
            [10, 77, 0, 0],
            &[("52:54:00:00:00:01", [10, 78, 0, 1])],
        )];
        let e = dnsmasq_args(&outside, Path::new("/l")).unwrap_err();
        assert!(e.to_string().contains("10.78.0.1"), "{e}");
        let mac_twice = [
            net(
                "lan0",
                [10, 77, 0, 0],
                &[("52:54:00:00:00:01", [10, 77, 0, 1])],
            ),
            net(
                "lan1",
                [10, 78, 0, 0],
                &[("52:54:00:00:00:01", [10, 78, 0, 1])],
            ),
        ];
        assert!(matches!(
            dnsmasq_args(&mac_twice, Path::new("/l")),
            Err(DhcpError::MacTwice { .. })
        ));
    }

    #[test]
    fn leases_are_parsed() {
        let text = "1765200000 52:54:00:77:01:01 10.77.0.11 node1 01:52:54:00:77:01:01\n\
                    garbage\n\
                    1765200000 52:54:00:78:02:01 10.78.0.12 * *\n";
        assert_eq!(
            parse_leases(text),
            vec![
                Lease {
                    mac: "52:54:00:77:01:01".into(),
                    ip: [10, 77, 0, 11].into()
                },
                Lease {
                    mac: "52:54:00:78:02:01".into(),
                    ip: [10, 78, 0, 12].into()
                },
            ]
        );
    }
}
