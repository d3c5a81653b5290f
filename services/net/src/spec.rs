//! The declarative network spec: links, bonds, bridges, VLANs, addresses, routes and DNS.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The whole desired network configuration of a node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Physical links, by kernel name or by MAC.
    #[serde(default)]
    pub links: Vec<LinkSpec>,
    #[serde(default)]
    pub bonds: Vec<BondSpec>,
    #[serde(default)]
    pub bridges: Vec<BridgeSpec>,
    #[serde(default)]
    pub vlans: Vec<VlanSpec>,
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    #[serde(default)]
    pub dns: DnsSpec,
    /// Which interfaces carry the cluster and the replication network (issue 16 item 8).
    #[serde(default, skip_serializing_if = "NetworkRoles::is_empty")]
    pub roles: NetworkRoles,
}

/// The cluster's networks on this node, each an interface of the spec (by name) that has an
/// address (static or DHCP).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRoles {
    /// The interface that carries the cluster network (etcd, the cluster port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The interface that carries the replication network (disk replication, migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<String>,
}

impl NetworkRoles {
    /// Neither role is named.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_none() && self.replication.is_none()
    }
}

/// Layer-3 settings shared by every kind of interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpSpec {
    /// Get an address by DHCP (dhcpcd).
    #[serde(default)]
    pub dhcp: bool,
    /// Static addresses in CIDR form, e.g. `192.0.2.10/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// This interface carries the API (the management address).
    #[serde(default)]
    pub management: bool,
}

/// A physical link. `name` is how the rest of the spec refers to it; when `mac` is given the
/// link is found by its MAC address whatever the kernel named it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(flatten)]
    pub ip: IpSpec,
}

/// Bonding modes Cairn supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BondMode {
    #[serde(rename = "active-backup")]
    ActiveBackup,
    #[serde(rename = "802.3ad")]
    Lacp,
    #[serde(rename = "balance-alb")]
    BalanceAlb,
}

impl BondMode {
    /// The kernel's name of the mode (as in `/sys/class/net/<bond>/bonding/mode`).
    pub fn kernel_name(self) -> &'static str {
        match self {
            BondMode::ActiveBackup => "active-backup",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceAlb => "balance-alb",
        }
    }
}

/// LACP rate (802.3ad only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LacpRate {
    Slow,
    Fast,
}

/// Transmit hash policy (802.3ad only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XmitHashPolicy {
    #[serde(rename = "layer2")]
    Layer2,
    #[serde(rename = "layer2+3")]
    Layer23,
    #[serde(rename = "layer3+4")]
    Layer34,
}

/// The default MII link monitoring interval (ms).
pub const DEFAULT_MIIMON: u32 = 100;

fn default_miimon() -> u32 {
    DEFAULT_MIIMON
}

/// A bond of physical links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BondSpec {
    pub name: String,
    pub mode: BondMode,
    /// Spec names of physical links.
    pub members: Vec<String>,
    #[serde(default = "default_miimon")]
    pub miimon: u32,
    /// The preferred member (active-backup and balance-alb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lacp_rate: Option<LacpRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xmit_hash_policy: Option<XmitHashPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(flatten)]
    pub ip: IpSpec,
}

/// A Linux bridge (for VMs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSpec {
    pub name: String,
    /// Names of links, bonds or VLANs enslaved to the bridge.
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub stp: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(flatten)]
    pub ip: IpSpec,
}

/// An 802.1Q VLAN on a link, bond or bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanSpec {
    pub name: String,
    pub parent: String,
    pub id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(flatten)]
    pub ip: IpSpec,
}

/// A static route. `destination` is `default` or a CIDR prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub destination: String,
    pub gateway: IpAddr,
    /// The interface (by spec name); found from the gateway's subnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// Resolver settings written to `/etc/resolv.conf` (→ `/run/resolv.conf`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    #[serde(default)]
    pub servers: Vec<IpAddr>,
    #[serde(default)]
    pub search: Vec<String>,
}

/// What kind of interface a spec entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Link,
    Bond,
    Bridge,
    Vlan,
}

/// A uniform view of one interface of the spec.
#[derive(Debug, Clone, Copy)]
pub struct Iface<'a> {
    pub kind: Kind,
    pub name: &'a str,
    pub mtu: Option<u32>,
    pub ip: &'a IpSpec,
    /// Where in the spec it is, for error fields (`bonds[0]`).
    pub index: usize,
}

impl Iface<'_> {
    /// The JSON path of this entry, e.g. `bonds[1]`.
    pub fn field(&self) -> String {
        let list = match self.kind {
            Kind::Link => "links",
            Kind::Bond => "bonds",
            Kind::Bridge => "bridges",
            Kind::Vlan => "vlans",
        };
        format!("{list}[{}]", self.index)
    }
}

impl NetworkSpec {
    /// Every interface of the spec, in dependency order (links, bonds, VLANs, bridges —
    /// bridges last so a bridge may have a VLAN port; a VLAN on a bridge is handled by the
    /// planner's ordering).
    pub fn ifaces(&self) -> Vec<Iface<'_>> {
        let mut out = Vec::new();
        for (i, l) in self.links.iter().enumerate() {
            out.push(Iface {
                kind: Kind::Link,
                name: &l.name,
                mtu: l.mtu,
                ip: &l.ip,
                index: i,
            });
        }
        for (i, b) in self.bonds.iter().enumerate() {
            out.push(Iface {
                kind: Kind::Bond,
                name: &b.name,
                mtu: b.mtu,
                ip: &b.ip,
                index: i,
            });
        }
        for (i, v) in self.vlans.iter().enumerate() {
            out.push(Iface {
                kind: Kind::Vlan,
                name: &v.name,
                mtu: v.mtu,
                ip: &v.ip,
                index: i,
            });
        }
        for (i, b) in self.bridges.iter().enumerate() {
            out.push(Iface {
                kind: Kind::Bridge,
                name: &b.name,
                mtu: b.mtu,
                ip: &b.ip,
                index: i,
            });
        }
        out
    }

    /// The interface named `name`.
    pub fn iface(&self, name: &str) -> Option<Iface<'_>> {
        self.ifaces().into_iter().find(|i| i.name == name)
    }

    /// Names of interfaces that get DHCP.
    pub fn dhcp_interfaces(&self) -> Vec<String> {
        self.ifaces()
            .iter()
            .filter(|i| i.ip.dhcp)
            .map(|i| i.name.to_string())
            .collect()
    }

    /// The default spec of a node that was never configured, and what a reset goes back
    /// to: DHCP on the given physical link, which carries the management address.
    pub fn dhcp_on(link: &str) -> NetworkSpec {
        NetworkSpec {
            links: vec![LinkSpec {
                name: link.to_string(),
                mac: None,
                mtu: None,
                ip: IpSpec {
                    dhcp: true,
                    addresses: vec![],
                    management: true,
                },
            }],
            ..NetworkSpec::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_spec_with_flattened_ip_settings() {
        let spec: NetworkSpec = serde_json::from_value(serde_json::json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "lan1", "mac": "52:54:00:00:00:01"}],
            "bonds": [{"name": "bond0", "mode": "802.3ad", "members": ["lan1"],
                       "lacp_rate": "fast", "xmit_hash_policy": "layer3+4",
                       "addresses": ["10.1.0.2/24"]}],
            "bridges": [{"name": "br0", "ports": ["bond0"], "stp": true}],
            "vlans": [{"name": "vlan10", "parent": "bond0", "id": 10}],
            "routes": [{"destination": "default", "gateway": "10.1.0.1"}],
            "dns": {"servers": ["10.1.0.1"], "search": ["example.org"]}
        }))
        .unwrap();
        assert_eq!(spec.bonds[0].miimon, DEFAULT_MIIMON);
        assert_eq!(spec.bonds[0].mode, BondMode::Lacp);
        assert_eq!(spec.bonds[0].ip.addresses, vec!["10.1.0.2/24"]);
        assert_eq!(spec.dhcp_interfaces(), vec!["ens3"]);
        let names: Vec<_> = spec.ifaces().iter().map(|i| i.name).collect();
        assert_eq!(names, vec!["ens3", "lan1", "bond0", "vlan10", "br0"]);
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<NetworkSpec>(back).unwrap(), spec);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<NetworkSpec, _> =
            serde_json::from_value(serde_json::json!({"links": [{"name": "a", "speed": 1}]}));
        assert!(r.is_err());
    }
}
