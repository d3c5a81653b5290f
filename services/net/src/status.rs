//! Observed link status for the API: carrier, speed, duplex, MTU, addresses, bond members
//! (sysfs `bonding_slave/mii_status`) and bridge ports.

use crate::observed::Observed;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One bond member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub name: String,
    /// MII link state the bond sees: `up` or `down`.
    pub mii_status: String,
    pub link_failures: Option<u64>,
    pub active: bool,
}

/// Bond detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondStatus {
    pub mode: String,
    pub miimon: u32,
    pub active: Option<String>,
    pub primary: Option<String>,
    pub members: Vec<MemberStatus>,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub name: String,
    pub index: u32,
    /// `physical`, `bond`, `bridge`, `vlan`, or the kernel's kind.
    pub kind: String,
    pub mac: Option<String>,
    pub mtu: u32,
    pub up: bool,
    pub carrier: bool,
    pub speed_mbps: Option<u32>,
    pub duplex: Option<String>,
    pub addresses: Vec<String>,
    pub master: Option<String>,
    /// Created by Cairn or named in the spec.
    pub managed: bool,
    pub bond: Option<BondStatus>,
    pub bridge_ports: Vec<String>,
    pub vlan_id: Option<u16>,
    pub vlan_parent: Option<String>,
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub destination: String,
    pub gateway: Option<String>,
    pub interface: Option<String>,
    /// `static` (Cairn's), `dhcp`, `kernel`, …
    pub protocol: String,
    pub metric: Option<u32>,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn protocol_name(p: u8) -> String {
    match p {
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        16 => "dhcp".into(),
        9 => "ra".into(),
        n => n.to_string(),
    }
}

/// Build the status of every link (except `lo`) from netlink's view and sysfs (`sys_net` is
/// `/sys/class/net`). `managed` names the links the spec owns.
pub fn link_status(obs: &Observed, sys_net: &Path, managed: &[String]) -> Vec<LinkStatus> {
    let mut out = Vec::new();
    for l in obs.links.iter().filter(|l| l.name != "lo") {
        let dir = sys_net.join(&l.name);
        // speed/duplex read EINVAL on links without carrier: reported as unknown.
        let speed = read_trim(&dir.join("speed"))
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| u32::try_from(s).ok())
            .filter(|s| *s > 0);
        let duplex = read_trim(&dir.join("duplex")).filter(|d| d != "unknown");
        let bond = l.bond.as_ref().map(|b| {
            let members = obs
                .links
                .iter()
                .filter(|m| m.master == Some(l.index))
                .map(|m| {
                    let sdir = sys_net.join(&m.name).join("bonding_slave");
                    MemberStatus {
                        name: m.name.clone(),
                        mii_status: read_trim(&sdir.join("mii_status")).unwrap_or_else(|| {
                            if m.carrier {
                                "up".into()
                            } else {
                                "down".into()
                            }
                        }),
                        link_failures: read_trim(&sdir.join("link_failure_count"))
                            .and_then(|s| s.parse().ok()),
                        active: b.active == Some(m.index),
                    }
                })
                .collect();
            BondStatus {
                mode: b.mode.clone(),
                miimon: b.miimon,
                active: b.active.map(|i| obs.name_of(i)),
                primary: b.primary.map(|i| obs.name_of(i)),
                members,
            }
        });
        let bridge_ports = if l.kind.as_deref() == Some("bridge") {
            obs.links
                .iter()
                .filter(|p| p.master == Some(l.index))
                .map(|p| p.name.clone())
                .collect()
        } else {
            vec![]
        };
        out.push(LinkStatus {
            name: l.name.clone(),
            index: l.index,
            kind: l.kind.clone().unwrap_or_else(|| "physical".into()),
            mac: l.mac.clone(),
            mtu: l.mtu,
            up: l.up,
            carrier: l.carrier,
            speed_mbps: speed,
            duplex,
            addresses: l.addresses.iter().map(|a| a.cidr.to_string()).collect(),
            master: l.master.map(|m| obs.name_of(m)),
            managed: l.owned() || managed.contains(&l.name),
            bond,
            bridge_ports,
            vlan_id: l.vlan.map(|(id, _)| id),
            vlan_parent: l.vlan.map(|(_, p)| obs.name_of(p)),
        });
    }
    out
}

/// The main table's routes, readable.
pub fn route_status(obs: &Observed) -> Vec<RouteStatus> {
    obs.routes
        .iter()
        .filter(|r| r.protocol != 2 || r.gateway.is_some())
        .map(|r| RouteStatus {
            destination: if r.destination.prefix == 0 {
                "default".into()
            } else {
                r.destination.to_string()
            },
            gateway: r.gateway.map(|g| g.to_string()),
            interface: r.oif.map(|i| obs.name_of(i)),
            protocol: protocol_name(r.protocol),
            metric: r.metric,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedBond, ObservedLink};

    #[test]
    fn bond_members_read_sysfs_and_the_active_one_is_marked() {
        let dir = tempfile::tempdir().unwrap();
        for (n, st) in [("ens4", "up"), ("ens5", "down")] {
            let d = dir.path().join(n).join("bonding_slave");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("mii_status"), format!("{st}\n")).unwrap();
            std::fs::write(d.join("link_failure_count"), "2\n").unwrap();
            std::fs::write(dir.path().join(n).join("speed"), "1000\n").unwrap();
            std::fs::write(dir.path().join(n).join("duplex"), "full\n").unwrap();
        }
        let obs = Observed {
            links: vec![
                ObservedLink {
                    index: 3,
                    name: "ens4".into(),
                    master: Some(9),
                    carrier: true,
                    ..Default::default()
                },
                ObservedLink {
                    index: 4,
                    name: "ens5".into(),
                    master: Some(9),
                    ..Default::default()
                },
                ObservedLink {
                    index: 9,
                    name: "bond0".into(),
                    kind: Some("bond".into()),
                    alias: Some("cairn".into()),
                    bond: Some(ObservedBond {
                        mode: "active-backup".into(),
                        miimon: 100,
                        active: Some(3),
                        primary: Some(3),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            routes: vec![],
        };
        let st = link_status(&obs, dir.path(), &["ens4".into()]);
        assert_eq!(st[0].speed_mbps, Some(1000));
        assert_eq!(st[0].duplex.as_deref(), Some("full"));
        assert!(st[0].managed && !st[1].managed && st[2].managed);
        let b = st[2].bond.as_ref().unwrap();
        assert_eq!(b.active.as_deref(), Some("ens4"));
        assert_eq!(b.members.len(), 2);
        assert_eq!(
            (b.members[1].mii_status.as_str(), b.members[1].active),
            ("down", false)
        );
        assert_eq!(b.members[0].link_failures, Some(2));
        assert_eq!(st[2].kind, "bond");
        assert_eq!(st[0].master.as_deref(), Some("bond0"));
    }
}
