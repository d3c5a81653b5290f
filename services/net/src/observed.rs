//! The observed network state (what netlink reports), as plain data the planner reads.

use crate::cidr::Cidr;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The `IFLA_IFALIAS` Cairn sets on the bonds, bridges and VLANs it creates: links with it
/// are Cairn's to delete when the spec drops them; every other link is left alone unless
/// the spec names it.
pub const OWNED_ALIAS: &str = "cairn";

/// Routing protocol number of the routes Cairn adds (`RTPROT_STATIC`, `proto static` in
/// `ip route`); routes with another protocol (kernel, dhcp, boot) are left alone.
pub const ROUTE_PROTOCOL: u8 = 4;

/// Bond settings as the kernel reports them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedBond {
    /// The kernel's mode name (`active-backup`, `802.3ad`, `balance-alb`, …).
    pub mode: String,
    pub miimon: u32,
    /// Interface index of the primary member.
    pub primary: Option<u32>,
    /// Interface index of the active member.
    pub active: Option<u32>,
    /// `slow` or `fast`.
    pub lacp_rate: Option<String>,
    /// `layer2`, `layer2+3`, `layer3+4`, …
    pub xmit_hash_policy: Option<String>,
}

/// One address on a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedAddr {
    pub cidr: Cidr,
    /// Set by an admin or Cairn (no lifetime), as opposed to DHCP/SLAAC.
    pub permanent: bool,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedLink {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: `bond`, `bridge`, `vlan`, `veth`, … (none for most physical NICs).
    pub kind: Option<String>,
    /// The permanent MAC (`IFLA_PERM_ADDRESS`) when the kernel reports one, else the current
    /// one: a bond member's current MAC is the bond's.
    pub mac: Option<String>,
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    pub carrier: bool,
    /// Index of the bond or bridge it is enslaved to.
    pub master: Option<u32>,
    pub alias: Option<String>,
    /// VLAN id and parent index.
    pub vlan: Option<(u16, u32)>,
    pub bond: Option<ObservedBond>,
    /// STP on (bridges only).
    pub stp: Option<bool>,
    pub addresses: Vec<ObservedAddr>,
}

impl ObservedLink {
    /// Whether Cairn created this link.
    pub fn owned(&self) -> bool {
        self.alias.as_deref() == Some(OWNED_ALIAS)
    }

    /// Whether this looks like a physical (or at least not Cairn-made, non-loopback) link a
    /// spec may name.
    pub fn usable_as_link(&self) -> bool {
        !self.owned() && self.name != "lo"
    }
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRoute {
    pub destination: Cidr,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub protocol: u8,
    pub metric: Option<u32>,
}

/// Everything the planner looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Observed {
    pub links: Vec<ObservedLink>,
    pub routes: Vec<ObservedRoute>,
}

impl Observed {
    pub fn by_name(&self, name: &str) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn by_index(&self, index: u32) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.index == index)
    }

    pub fn by_mac(&self, mac: &str) -> Option<&ObservedLink> {
        // A bond or bridge may carry a member's MAC: only links Cairn did not make count.
        self.links.iter().filter(|l| l.usable_as_link()).find(|l| {
            l.mac
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(mac))
        })
    }

    /// The name of the link with this index (`?<index>` when unknown).
    pub fn name_of(&self, index: u32) -> String {
        self.by_index(index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("?{index}"))
    }
}
