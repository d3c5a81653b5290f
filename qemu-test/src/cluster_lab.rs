//! The cluster lab: N nodes on a cluster network (two NICs each, for a bond), a replication
//! network and a spare network — lab bridges, never QEMU's user networking — with dnsmasq
//! handing out a known address per MAC; each node with a watchdog, three blank data disks
//! and two spare NICs, and helpers for faults (a pulled link, a node cut off, power off).
//!
//! Address plan (node `i` = 1…9, the design's 5 fit; the lab's own end is `.254`):
//!
//! | NIC (`LabNic`) | network | MAC | address |
//! |---|---|---|---|
//! | `Management` (nic0) | QEMU user net, API forwarded to 127.0.0.1 | `52:54:00:01:0i:01` | 10.0.2.15 (QEMU's) |
//! | `ClusterA` (nic1) | cluster bridge `lan0` | `52:54:00:77:0i:01` | 10.77.0.1i |
//! | `ClusterB` (nic2) | cluster bridge `lan0` | `52:54:00:77:0i:02` | 10.77.0.2i |
//! | `Replication` (nic3) | replication bridge `lan1` | `52:54:00:78:0i:01` | 10.78.0.1i |
//! | `SpareA` (nic4) | spare bridge `lan2` | `52:54:00:79:0i:01` | none (no DHCP there) |
//! | `SpareB` (nic5) | spare bridge `lan2` | `52:54:00:79:0i:02` | none |
//!
//! The MAC's fourth byte names the network (77: cluster, as in 10.77; 78: replication; 79:
//! spare; 01: management), the fifth the node, the sixth the NIC on that network. An
//! active-backup bond of the two cluster NICs takes NIC a's MAC, so DHCP on the bond gets
//! 10.77.0.1i as well.

use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::api_session::ApiSession;
use crate::config::{nic_id, BootMode, Bus, NicSpec, NodeConfig};
use crate::deadline::Deadline;
use crate::error::LabError;
use crate::lab::Lab;
use crate::labdhcp::{DhcpError, DhcpNet, DhcpServer, Lease, DNSMASQ_PATH};
use crate::labnet::{LabNet, LabNetError};
use crate::node::Node;

/// The most nodes the address plan holds (the design needs 5).
pub const MAX_NODES: usize = 9;
/// Lab network index of the cluster bridge.
pub const CLUSTER_NET: usize = 0;
/// Lab network index of the replication bridge.
pub const REPLICATION_NET: usize = 1;
/// Lab network index of the spare bridge.
pub const SPARE_NET: usize = 2;
/// The cluster network (a /24).
pub const CLUSTER_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
/// The replication network (a /24).
pub const REPLICATION_SUBNET: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 0);
/// Host part of the lab's own address on each bridge (the DHCP server's).
pub const LAB_HOST: u8 = 254;
/// Size of each blank data disk (sparse: costs nothing until written).
pub const DATA_DISK_MIB: u64 = 4096;

/// What can go wrong with a cluster lab.
#[derive(Debug, thiserror::Error)]
pub enum ClusterLabError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("lab network")]
    Net(#[from] LabNetError),
    #[error("the lab's DHCP server")]
    Dhcp(#[from] DhcpError),
    #[error("a cluster lab has 1 to {MAX_NODES} nodes, not {0}")]
    NodeCount(usize),
    #[error("the cluster lab has nodes 1 to {count}; there is no node {index}")]
    NoSuchNode { index: usize, count: usize },
    #[error("{node} has not been claimed: call claim (or set_api) first")]
    NotClaimed { node: String },
    #[error("{node} has no interface with MAC {mac} (its interfaces: {seen})")]
    NoInterface {
        node: String,
        mac: String,
        seen: String,
    },
    #[error("{node}'s {nic} ({ifname}) has no {want}/24 after {waited:?}; it shows: {shown}")]
    NoAddress {
        node: String,
        nic: &'static str,
        ifname: String,
        want: Ipv4Addr,
        waited: Duration,
        shown: String,
    },
    #[error("{node}'s {nic} gets no address from the lab's DHCP server")]
    NotPlanned { node: String, nic: &'static str },
    #[error("{node} did not reach {target} within {waited:?}; last ping: {last}")]
    Unreachable {
        node: String,
        target: Ipv4Addr,
        waited: Duration,
        last: String,
    },
}

/// One NIC of a cluster-lab node, in QEMU's order (`nic0` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabNic {
    /// QEMU user networking with the API forwarded to the host (DHCP from QEMU).
    Management,
    /// The first cluster NIC (bond member a).
    ClusterA,
    /// The second cluster NIC, on the same bridge (bond member b).
    ClusterB,
    /// The replication network's NIC.
    Replication,
    /// A spare NIC on the spare bridge (for trying bonds, VLANs, bridges by hand).
    SpareA,
    /// The second spare NIC.
    SpareB,
}

impl LabNic {
    /// Every NIC of a node, in QEMU's order.
    pub const ALL: [LabNic; 6] = [
        LabNic::Management,
        LabNic::ClusterA,
        LabNic::ClusterB,
        LabNic::Replication,
        LabNic::SpareA,
        LabNic::SpareB,
    ];

    /// The NIC's number on the QEMU command line (its device id is `nic<N>`).
    pub fn index(self) -> usize {
        match self {
            LabNic::Management => 0,
            LabNic::ClusterA => 1,
            LabNic::ClusterB => 2,
            LabNic::Replication => 3,
            LabNic::SpareA => 4,
            LabNic::SpareB => 5,
        }
    }

    /// QEMU's device id (for `set_link`).
    pub fn device_id(self) -> String {
        nic_id(self.index())
    }

    /// The lab network (bridge) it is on; None for the management NIC.
    pub fn network(self) -> Option<usize> {
        match self {
            LabNic::Management => None,
            LabNic::ClusterA | LabNic::ClusterB => Some(CLUSTER_NET),
            LabNic::Replication => Some(REPLICATION_NET),
            LabNic::SpareA | LabNic::SpareB => Some(SPARE_NET),
        }
    }

    /// Its MAC on node `node` (1-based): `52:54:00:<network>:<node>:<nic on that network>`.
    pub fn mac(self, node: usize) -> String {
        let (net, k) = match self {
            LabNic::Management => (0x01, 1),
            LabNic::ClusterA => (0x77, 1),
            LabNic::ClusterB => (0x77, 2),
            LabNic::Replication => (0x78, 1),
            LabNic::SpareA => (0x79, 1),
            LabNic::SpareB => (0x79, 2),
        };
        format!("52:54:00:{net:02x}:{:02x}:{k:02x}", node & 0xff)
    }

    /// The address the lab's DHCP server gives it on node `node` (1-based); None for the
    /// management and spare NICs and for a node beyond [`MAX_NODES`].
    pub fn address(self, node: usize) -> Option<Ipv4Addr> {
        if !(1..=MAX_NODES).contains(&node) {
            return None;
        }
        let host = |subnet: Ipv4Addr, base: usize| {
            let o = subnet.octets();
            let last = u8::try_from(base + node).ok()?;
            Some(Ipv4Addr::new(o[0], o[1], o[2], last))
        };
        match self {
            LabNic::ClusterA => host(CLUSTER_SUBNET, 10),
            LabNic::ClusterB => host(CLUSTER_SUBNET, 20),
            LabNic::Replication => host(REPLICATION_SUBNET, 10),
            _ => None,
        }
    }

    /// A short name for people and file names (`cluster-a`, …).
    pub fn label(self) -> &'static str {
        match self {
            LabNic::Management => "management",
            LabNic::ClusterA => "cluster-a",
            LabNic::ClusterB => "cluster-b",
            LabNic::Replication => "replication",
            LabNic::SpareA => "spare-a",
            LabNic::SpareB => "spare-b",
        }
    }
}

/// The lab's own address on a DHCP-served network (`.254`).
pub fn lab_address(subnet: Ipv4Addr) -> Ipv4Addr {
    let o = subnet.octets();
    Ipv4Addr::new(o[0], o[1], o[2], LAB_HOST)
}

/// How the nodes of a cluster lab are made.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub mode: BootMode,
    pub cpus: u8,
    pub memory_mib: u32,
    /// Host port forwarded to node1's API; node i gets this + i - 1 (None: free ports).
    pub first_api_port: Option<u16>,
    /// Size of each of the three blank data disks (virtio, AHCI, NVMe).
    pub data_disk_mib: u64,
    /// Extra kernel command-line words for every node.
    pub cmdline: Vec<String>,
    /// Nodes sized apart from `cpus` and `memory_mib` (e.g. a witness: 1 vCPU, 512 MiB).
    pub node_sizes: Vec<NodeSize>,
}

/// One node's vCPUs and memory, apart from the lab's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSize {
    /// The node (1-based, as in `node3`).
    pub index: usize,
    pub cpus: u8,
    pub memory_mib: u32,
}

impl ClusterOptions {
    /// Node `index` gets `cpus` vCPUs and `memory_mib` MiB instead of the lab's default.
    pub fn node_size(mut self, index: usize, cpus: u8, memory_mib: u32) -> ClusterOptions {
        self.node_sizes.retain(|s| s.index != index);
        self.node_sizes.push(NodeSize {
            index,
            cpus,
            memory_mib,
        });
        self
    }

    /// The vCPUs and memory of node `index`.
    pub fn size_of(&self, index: usize) -> (u8, u32) {
        self.node_sizes
            .iter()
            .find(|s| s.index == index)
            .map_or((self.cpus, self.memory_mib), |s| (s.cpus, s.memory_mib))
    }
}

impl Default for ClusterOptions {
    /// Direct-kernel boot, 1 vCPU and 1 GiB per node (several TCG nodes share 2 cores),
    /// free API ports, 4 GiB data disks.
    fn default() -> ClusterOptions {
        ClusterOptions {
            mode: BootMode::DirectKernel,
            cpus: 1,
            memory_mib: 1024,
            first_api_port: None,
            data_disk_mib: DATA_DISK_MIB,
            cmdline: Vec::new(),
            node_sizes: Vec::new(),
        }
    }
}

/// The node configuration of cluster-lab node `index` (1-based) with its taps, in
/// [`LabNic::ALL`] order after the management NIC.
pub fn node_config(index: usize, opts: &ClusterOptions, taps: &[String]) -> NodeConfig {
    let (cpus, memory_mib) = opts.size_of(index);
    let mut cfg = NodeConfig::new(&format!("node{index}"), opts.mode.clone())
        .size(cpus, memory_mib)
        .disk(Bus::Virtio, opts.data_disk_mib)
        .disk(Bus::Ahci, opts.data_disk_mib)
        .disk(Bus::Nvme, opts.data_disk_mib)
        .set_nic_mac(0, &LabNic::Management.mac(index));
    for (d, serial) in cfg.disks.iter_mut().zip(disk_serials(index)) {
        d.serial = serial;
    }
    for (nic, tap) in LabNic::ALL[1..].iter().zip(taps) {
        cfg = cfg.nic_with_mac(NicSpec::Tap(tap.clone()), &nic.mac(index));
    }
    let words: Vec<&str> = opts.cmdline.iter().map(String::as_str).collect();
    cfg = cfg.cmdline(&words);
    if let Some(first) = opts.first_api_port {
        let offset = u16::try_from(index.saturating_sub(1)).unwrap_or(u16::MAX);
        cfg = cfg.api_port(first.saturating_add(offset));
    }
    // The watchdog (i6300esb) is on by default; say so here, where the cluster needs it.
    cfg.watchdog = true;
    cfg
}

/// The serials of node `index`'s three data disks, which say whose disk it is and on
/// which bus: `NODE2VIRTIO`, `NODE2AHCI`, `NODE2NVME`.
pub fn disk_serials(index: usize) -> [String; 3] {
    ["VIRTIO", "AHCI", "NVME"].map(|bus| format!("NODE{index}{bus}"))
}

/// The DHCP plan of `n` nodes: the cluster and replication bridges, every node's
/// addresses by MAC.
pub fn dhcp_plan(net: &LabNet, n: usize) -> Result<Vec<DhcpNet>, LabNetError> {
    let hosts = |nics: &[LabNic]| -> Vec<(String, Ipv4Addr)> {
        (1..=n)
            .flat_map(|i| {
                nics.iter()
                    .filter_map(move |nic| nic.address(i).map(|ip| (nic.mac(i), ip)))
            })
            .collect()
    };
    Ok(vec![
        DhcpNet {
            bridge: net.bridge(CLUSTER_NET)?.to_string(),
            subnet: CLUSTER_SUBNET,
            hosts: hosts(&[LabNic::ClusterA, LabNic::ClusterB]),
        },
        DhcpNet {
            bridge: net.bridge(REPLICATION_NET)?.to_string(),
            subnet: REPLICATION_SUBNET,
            hosts: hosts(&[LabNic::Replication]),
        },
    ])
}

/// One node of a cluster lab: the [`Node`] (it derefs to it: shell, QMP, console, API
/// address) with its place in the address plan, its taps and its API session once claimed.
pub struct ClusterNode {
    index: usize,
    node: Node,
    /// The tap behind each lab-bridge NIC (cluster a, b, replication, spare a, b).
    taps: Vec<(LabNic, String)>,
    api: Option<ApiSession>,
}

impl ClusterNode {
    /// Its number (1-based; its name is `node<index>`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The node.
    pub fn node(&mut self) -> &mut Node {
        &mut self.node
    }

    /// Its cluster addresses: NIC a's (also a bond's, which takes NIC a's MAC) and NIC b's.
    pub fn cluster_addresses(&self) -> [Ipv4Addr; 2] {
        [
            self.address(LabNic::ClusterA),
            self.address(LabNic::ClusterB),
        ]
    }

    /// Its main cluster address (NIC a's, 10.77.0.1i).
    pub fn cluster_address(&self) -> Ipv4Addr {
        self.address(LabNic::ClusterA)
    }

    /// Its replication address (10.78.0.1i).
    pub fn replication_address(&self) -> Ipv4Addr {
        self.address(LabNic::Replication)
    }

    fn address(&self, nic: LabNic) -> Ipv4Addr {
        nic.address(self.index).unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The serials of its three data disks (virtio, AHCI, NVMe; see [`disk_serials`]).
    pub fn disk_serials(&self) -> [String; 3] {
        disk_serials(self.index)
    }

    /// The MAC of one of its NICs.
    pub fn nic_mac(&self, nic: LabNic) -> String {
        nic.mac(self.index)
    }

    /// The tap behind one of its lab-bridge NICs (None for the management NIC).
    pub fn tap(&self, nic: LabNic) -> Option<&str> {
        self.taps
            .iter()
            .find(|(n, _)| *n == nic)
            .map(|(_, t)| t.as_str())
    }

    /// The kernel's name for one of its NICs (e.g. `enp0s4`), found by MAC through the lab
    /// shell (a bond member by its permanent MAC).
    pub fn nic_name(&mut self, nic: LabNic, deadline: Deadline) -> Result<String, ClusterLabError> {
        let out = self.node.shell_check(LIST_MACS, deadline)?;
        let mac = nic.mac(self.index);
        let names = parse_macs(&out);
        names
            .iter()
            .find(|(_, m)| m.eq_ignore_ascii_case(&mac))
            .map(|(n, _)| n.clone())
            .ok_or_else(|| ClusterLabError::NoInterface {
                node: self.node.name().to_string(),
                mac,
                seen: names
                    .iter()
                    .map(|(n, m)| format!("{n}={m}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
    }

    /// Waits until one of its DHCP-served NICs (cluster a/b, replication) has its planned
    /// address (the lab's DHCP lease); returns the NIC's kernel name.
    pub fn wait_address(
        &mut self,
        nic: LabNic,
        deadline: Deadline,
    ) -> Result<String, ClusterLabError> {
        let want = nic
            .address(self.index)
            .ok_or_else(|| ClusterLabError::NotPlanned {
                node: self.node.name().to_string(),
                nic: nic.label(),
            })?;
        let ifname = self.nic_name(nic, deadline)?;
        loop {
            let shown = self
                .node
                .shell_check(&format!("ip -4 -o addr show dev {ifname}"), deadline)?;
            if shown.contains(&format!(" {want}/24 ")) {
                return Ok(ifname);
            }
            if deadline.expired() {
                return Err(ClusterLabError::NoAddress {
                    node: self.node.name().to_string(),
                    nic: nic.label(),
                    ifname,
                    want,
                    waited: deadline.total(),
                    shown: shown.trim().to_string(),
                });
            }
            // poll interval for the DHCP lease; the deadline bounds the wait
            std::thread::sleep(Duration::from_millis(500).min(deadline.remaining()));
        }
    }

    /// Pulls (`up` false) or plugs back one of its NICs' cable: QMP `set_link`, the node's
    /// NIC loses its carrier.
    pub fn set_link(
        &mut self,
        nic: LabNic,
        up: bool,
        deadline: Deadline,
    ) -> Result<(), ClusterLabError> {
        self.node.qmp()?.set_link(&nic.device_id(), up, deadline)?;
        Ok(())
    }

    /// Claims the node through the setup API (as [`Node::claim`], waiting for its domains
    /// first) and keeps the session.
    pub fn claim(&mut self, deadline: Deadline) -> Result<&ApiSession, ClusterLabError> {
        let api = self.node.claim(deadline)?;
        Ok(self.api.insert(api))
    }

    /// Keeps a session made another way (e.g. the setup wizard in a browser).
    pub fn set_api(&mut self, api: ApiSession) {
        self.api = Some(api);
    }

    /// Its API session (after [`ClusterNode::claim`] or [`ClusterNode::set_api`]).
    pub fn api(&self) -> Result<&ApiSession, ClusterLabError> {
        self.api
            .as_ref()
            .ok_or_else(|| ClusterLabError::NotClaimed {
                node: self.node.name().to_string(),
            })
    }

    /// One ping from the node (lab shell) to `target`: true when it answered within 1 s.
    pub fn ping_once(&mut self, target: Ipv4Addr, deadline: Deadline) -> Result<bool, LabError> {
        let out = self
            .node
            .shell_run(&format!("ping -n -c 1 -W 1 {target}"), deadline)?;
        Ok(out.code == 0)
    }

    /// Pings `target` from the node until it answers; returns how long that took.
    pub fn wait_ping(
        &mut self,
        target: Ipv4Addr,
        deadline: Deadline,
    ) -> Result<Duration, ClusterLabError> {
        let start = Instant::now();
        let mut last = String::from("no attempt made");
        while !deadline.expired() {
            let out = self.node.shell_run(
                &format!("ping -n -c 1 -W 1 {target} 2>&1 | tail -n 2"),
                deadline.capped(Duration::from_secs(20)),
            )?;
            // `| tail` hides ping's status: look for the reply itself
            if out.output.contains(" 1 received") {
                return Ok(start.elapsed());
            }
            last = out.output.trim().replace('\n', " ⏎ ");
            // poll interval between pings; the deadline bounds the whole wait
            std::thread::sleep(Duration::from_millis(200).min(deadline.remaining()));
        }
        Err(ClusterLabError::Unreachable {
            node: self.node.name().to_string(),
            target,
            waited: deadline.total(),
            last,
        })
    }
}

impl Deref for ClusterNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl DerefMut for ClusterNode {
    fn deref_mut(&mut self) -> &mut Node {
        &mut self.node
    }
}

/// Lists `NAME MAC` per interface on a node; a bond member's permanent MAC (its own is the
/// bond's).
pub const LIST_MACS: &str = "for d in /sys/class/net/*; do m=$(cat $d/bonding_slave/perm_hwaddr 2>/dev/null || cat $d/address); echo \"${d##*/} $m\"; done";

/// Parses [`LIST_MACS`]' output: (name, MAC) pairs.
pub fn parse_macs(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            let mac = f.next()?;
            (mac.len() == 17 && mac.matches(':').count() == 5)
                .then(|| (name.to_string(), mac.to_ascii_lowercase()))
        })
        .collect()
}

/// N nodes on the cluster, replication and spare bridges, with the DHCP server.
pub struct LabCluster {
    // dropped in this order: the nodes (diagnostics, QEMU killed), dnsmasq, the namespace
    nodes: Vec<ClusterNode>,
    dhcp: DhcpServer,
    net: LabNet,
}

impl LabCluster {
    /// Why a cluster lab cannot run here (not root: no namespaces and taps; no dnsmasq),
    /// if it cannot. Scenarios print it as a SKIP.
    pub fn unavailable() -> Option<String> {
        if !nix::unistd::geteuid().is_root() {
            return Some(
                "the cluster lab needs root (CAP_NET_ADMIN) for its namespace, bridges and taps"
                    .into(),
            );
        }
        if !Path::new(DNSMASQ_PATH).is_file() {
            return Some(DhcpError::Missing.to_string());
        }
        None
    }

    /// Makes the bridges and the DHCP server, then prepares and launches `n` nodes
    /// (`node1` …) and attaches their taps. Returns once every QEMU runs; wait for the
    /// nodes with [`LabCluster::wait_ready`] or [`LabCluster::claim_all`].
    pub fn start(
        lab: &Lab,
        n: usize,
        opts: &ClusterOptions,
    ) -> Result<LabCluster, ClusterLabError> {
        if !(1..=MAX_NODES).contains(&n) {
            return Err(ClusterLabError::NodeCount(n));
        }
        let net = LabNet::new(3)?;
        net.add_bridge_address(CLUSTER_NET, &format!("{}/24", lab_address(CLUSTER_SUBNET)))?;
        net.add_bridge_address(
            REPLICATION_NET,
            &format!("{}/24", lab_address(REPLICATION_SUBNET)),
        )?;
        let dhcp = DhcpServer::start(
            &net.netns,
            &dhcp_plan(&net, n)?,
            lab.dir(),
            Deadline::secs(20),
        )?;
        let mut cluster = LabCluster {
            nodes: Vec::new(),
            dhcp,
            net,
        };
        for index in 1..=n {
            let taps: Vec<(LabNic, String)> = LabNic::ALL[1..]
                .iter()
                .map(|nic| {
                    let network = nic.network().unwrap_or(SPARE_NET);
                    (*nic, cluster.net.tap(network))
                })
                .collect();
            let names: Vec<String> = taps.iter().map(|(_, t)| t.clone()).collect();
            let node = lab.start(node_config(index, opts, &names))?;
            cluster.nodes.push(ClusterNode {
                index,
                node,
                taps,
                api: None,
            });
            cluster.net.attach_taps(&names, Deadline::secs(60))?;
        }
        Ok(cluster)
    }

    /// The nodes, node1 first.
    pub fn nodes(&mut self) -> &mut [ClusterNode] {
        &mut self.nodes
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `index` (1-based, as in `node1`).
    pub fn node(&mut self, index: usize) -> Result<&mut ClusterNode, ClusterLabError> {
        let count = self.nodes.len();
        index
            .checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i))
            .ok_or(ClusterLabError::NoSuchNode { index, count })
    }

    /// The lab networks (namespace, bridges, taps; add peers with [`LabNet::peer`]).
    pub fn net(&mut self) -> &mut LabNet {
        &mut self.net
    }

    /// The leases the DHCP server handed out so far.
    pub fn leases(&self) -> Vec<Lease> {
        self.dhcp.leases()
    }

    /// The DHCP server's log (every exchange).
    pub fn dhcp_log(&self) -> &Path {
        self.dhcp.log()
    }

    /// Waits until every node's API answers and its domains are ready ([`Node::wait_ready`]).
    pub fn wait_ready(&mut self, deadline: Deadline) -> Result<(), ClusterLabError> {
        for n in &mut self.nodes {
            n.node.wait_ready(deadline)?;
        }
        Ok(())
    }

    /// Claims every node through its setup API ([`ClusterNode::claim`]).
    pub fn claim_all(&mut self, deadline: Deadline) -> Result<(), ClusterLabError> {
        for n in &mut self.nodes {
            n.claim(deadline)?;
        }
        Ok(())
    }

    /// Pulls one NIC's cable of node `index` (QMP `set_link` off).
    pub fn pull_link(
        &mut self,
        index: usize,
        nic: LabNic,
        deadline: Deadline,
    ) -> Result<(), ClusterLabError> {
        self.node(index)?.set_link(nic, false, deadline)
    }

    /// Plugs it back (QMP `set_link` on).
    pub fn plug_link(
        &mut self,
        index: usize,
        nic: LabNic,
        deadline: Deadline,
    ) -> Result<(), ClusterLabError> {
        self.node(index)?.set_link(nic, true, deadline)
    }

    /// Cuts node `index` off every lab bridge (its bridge ports down in the lab namespace;
    /// its NICs keep their carrier, as behind a dead switch). Its management NIC, console,
    /// shell and API stay reachable from the host.
    pub fn cut_off(&mut self, index: usize) -> Result<(), ClusterLabError> {
        self.set_ports(index, false)
    }

    /// Takes node `index`'s bridge port of one NIC down (`up` false) or up again in the lab
    /// namespace: that one link is cut as behind a dead switch port, the NIC keeps its
    /// carrier (and its DHCP address), the other networks stay.
    pub fn set_port(&mut self, index: usize, nic: LabNic, up: bool) -> Result<(), ClusterLabError> {
        let tap = self
            .node(index)?
            .tap(nic)
            .ok_or_else(|| ClusterLabError::NotPlanned {
                node: format!("node{index}"),
                nic: nic.label(),
            })?
            .to_string();
        self.net.set_tap_up(&tap, up)?;
        Ok(())
    }

    /// Undoes [`LabCluster::cut_off`].
    pub fn heal(&mut self, index: usize) -> Result<(), ClusterLabError> {
        self.set_ports(index, true)
    }

    fn set_ports(&mut self, index: usize, up: bool) -> Result<(), ClusterLabError> {
        let taps: Vec<String> = self
            .node(index)?
            .taps
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        for tap in taps {
            self.net.set_tap_up(&tap, up)?;
        }
        Ok(())
    }

    /// Powers node `index` off at once (QMP `quit`: no shutdown, like pulling the plug) and
    /// waits for QEMU to exit. Its disks stay for [`LabCluster::relaunch`].
    pub fn power_off(&mut self, index: usize, deadline: Deadline) -> Result<(), ClusterLabError> {
        let node = self.node(index)?;
        node.node.qmp()?.quit(deadline)?;
        node.node.wait_exit(deadline)?;
        Ok(())
    }

    /// Starts node `index` again on the same disks and attaches its taps (QEMU makes them
    /// anew); wait for it with `node.wait_ready` or `common::check_node_up`.
    pub fn relaunch(&mut self, index: usize, deadline: Deadline) -> Result<(), ClusterLabError> {
        let node = self.node(index)?;
        node.node.launch()?;
        let taps: Vec<String> = node.taps.iter().map(|(_, t)| t.clone()).collect();
        self.net.attach_taps(&taps, deadline)?;
        Ok(())
    }

    /// Ends the lab as passed: every node finished (QEMU killed, disk copies deleted), then
    /// dnsmasq and the namespace.
    pub fn finish(self) {
        let LabCluster { nodes, dhcp, net } = self;
        for n in nodes {
            n.node.finish();
        }
        drop(dhcp);
        drop(net);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_can_be_sized_apart() {
        let opts = ClusterOptions::default().node_size(3, 1, 512);
        let taps: Vec<String> = (0..5).map(|i| format!("tap{i}")).collect();
        let witness = node_config(3, &opts, &taps);
        assert_eq!((witness.cpus, witness.memory_mib), (1, 512));
        let full = node_config(1, &opts, &taps);
        assert_eq!((full.cpus, full.memory_mib), (1, 1024));
        // Sizing a node again replaces its size.
        let opts = opts.node_size(3, 2, 768);
        assert_eq!(opts.size_of(3), (2, 768));
        assert_eq!(opts.node_sizes.len(), 1);
    }

    #[test]
    fn the_address_plan_tells_nodes_and_networks_apart() {
        assert_eq!(LabNic::ClusterA.mac(1), "52:54:00:77:01:01");
        assert_eq!(LabNic::ClusterB.mac(2), "52:54:00:77:02:02");
        assert_eq!(LabNic::Replication.mac(3), "52:54:00:78:03:01");
        assert_eq!(LabNic::SpareB.mac(5), "52:54:00:79:05:02");
        assert_eq!(LabNic::Management.mac(4), "52:54:00:01:04:01");
        assert_eq!(LabNic::ClusterA.address(1), Some([10, 77, 0, 11].into()));
        assert_eq!(LabNic::ClusterB.address(3), Some([10, 77, 0, 23].into()));
        assert_eq!(LabNic::Replication.address(5), Some([10, 78, 0, 15].into()));
        assert_eq!(LabNic::SpareA.address(1), None);
        assert_eq!(LabNic::Management.address(1), None);
        assert_eq!(LabNic::ClusterA.address(0), None);
        assert_eq!(LabNic::ClusterA.address(MAX_NODES + 1), None);
        assert_eq!(lab_address(CLUSTER_SUBNET), Ipv4Addr::new(10, 77, 0, 254));
        // all MACs and addresses of the largest lab are distinct
        let mut macs: Vec<String> = (1..=MAX_NODES)
            .flat_map(|i| LabNic::ALL.iter().map(move |n| n.mac(i)))
            .collect();
        let all = macs.len();
        macs.sort();
        macs.dedup();
        assert_eq!(macs.len(), all);
        let mut ips: Vec<Ipv4Addr> = (1..=MAX_NODES)
            .flat_map(|i| LabNic::ALL.iter().filter_map(move |n| n.address(i)))
            .collect();
        let all = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), all);
        assert!(!ips.contains(&lab_address(CLUSTER_SUBNET)));
        for (i, nic) in LabNic::ALL.iter().enumerate() {
            assert_eq!(nic.index(), i);
            assert_eq!(nic.device_id(), format!("nic{i}"));
        }
    }

    #[test]
    fn a_node_has_three_disks_six_nics_and_a_watchdog() {
        let taps: Vec<String> = (0..5).map(|i| format!("tap{i}")).collect();
        let opts = ClusterOptions {
            first_api_port: Some(9000),
            cmdline: vec!["cairn.x=1".into()],
            ..ClusterOptions::default()
        };
        let cfg = node_config(2, &opts, &taps);
        assert_eq!(cfg.name, "node2");
        assert_eq!(cfg.api_port, Some(9001));
        assert!(cfg.watchdog);
        let buses: Vec<Bus> = cfg.disks.iter().map(|d| d.bus).collect();
        assert_eq!(buses, [Bus::Virtio, Bus::Ahci, Bus::Nvme]);
        assert!(cfg
            .disks
            .iter()
            .all(|d| d.size_bytes == DATA_DISK_MIB << 20));
        assert_eq!(cfg.disks[2].serial, "NODE2NVME");
        assert_eq!(cfg.nics.len(), 6);
        assert_eq!(cfg.nics[0], NicSpec::Management);
        assert_eq!(cfg.nics[3], NicSpec::Tap("tap2".into()));
        for nic in LabNic::ALL {
            assert_eq!(cfg.nic_mac(7, nic.index()), nic.mac(2), "{nic:?}");
        }
        assert_eq!(cfg.cmdline, ["cairn.x=1"]);
    }

    #[test]
    fn interface_names_are_found_by_mac() {
        let out = "bond0 52:54:00:77:01:01\nenp0s4 52:54:00:77:01:01\nenp0s5 52:54:00:77:01:02\n\
                   lo 00:00:00:00:00:00\nsit0 0.0.0.0\n";
        let m = parse_macs(out);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[2],
            ("enp0s5".to_string(), "52:54:00:77:01:02".to_string())
        );
    }

    #[test]
    fn node_counts_are_checked_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let lab = Lab::with_artifacts("x", crate::artifacts::Artifacts::under(dir.path())).unwrap();
        for n in [0, MAX_NODES + 1] {
            let e = LabCluster::start(&lab, n, &ClusterOptions::default())
                .err()
                .unwrap();
            assert!(matches!(e, ClusterLabError::NodeCount(c) if c == n), "{e}");
        }
    }

    #[test]
    fn dnsmasq_serves_the_plan_in_a_lab_namespace() {
        if let Some(why) = LabCluster::unavailable() {
            eprintln!("SKIP: {why}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut net = LabNet::new(3).unwrap();
        net.add_bridge_address(CLUSTER_NET, "10.77.0.254/24")
            .unwrap();
        net.add_bridge_address(REPLICATION_NET, "10.78.0.254/24")
            .unwrap();
        let plan = dhcp_plan(&net, 3).unwrap();
        assert_eq!(plan[0].hosts.len(), 6);
        assert_eq!(plan[1].hosts.len(), 3);
        let dhcp = DhcpServer::start(&net.netns, &plan, dir.path(), Deadline::secs(20)).unwrap();
        // a lab-host peer with node2's cluster-b MAC asks for a lease (busybox's udhcpc)
        let busybox = Path::new("/bin/busybox");
        if busybox.is_file() {
            let peer = net.peer(CLUSTER_NET, "169.254.9.9/16").unwrap();
            crate::labnet::run(
                "ip",
                &[
                    "-n",
                    &peer.netns,
                    "link",
                    "set",
                    &peer.ifname,
                    "address",
                    &LabNic::ClusterB.mac(2),
                ],
            )
            .unwrap();
            let out = peer
                .exec(
                    "/bin/busybox",
                    &[
                        "udhcpc",
                        "-i",
                        &peer.ifname,
                        "-n",
                        "-q",
                        "-f",
                        "-t",
                        "5",
                        "-T",
                        "1",
                        "-s",
                        "/bin/true",
                    ],
                )
                .unwrap();
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("10.77.0.22"), "{text}");
            assert!(
                dhcp.leases()
                    .iter()
                    .any(|l| l.ip == Ipv4Addr::new(10, 77, 0, 22)),
                "{:?}",
                dhcp.leases()
            );
        }
        let log = std::fs::read_to_string(dhcp.log()).unwrap();
        assert!(log.contains("static leases only on 10.77.0.0"), "{log}");
    }
}
