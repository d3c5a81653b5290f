//! Validation of a network spec against the links this node has: every error names the field.

use crate::cidr::Cidr;
use crate::observed::Observed;
use crate::spec::{BondMode, Kind, NetworkSpec};
use cairn_core::shown::quoted;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A spec error: the JSON path of the offending field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        field: field.into(),
        reason: reason.into(),
    })
}

/// Smallest and largest MTU accepted.
pub const MTU_RANGE: (u32, u32) = (576, 9216);

fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    if name.is_empty() || name.len() > 15 {
        return err(field, "an interface name has 1 to 15 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return err(field, "use letters, digits, '-', '_' and '.' only");
    }
    if name == "lo" {
        return err(field, "the loopback interface is not configurable");
    }
    Ok(())
}

fn check_mac(field: &str, mac: &str) -> Result<(), FieldError> {
    let parts: Vec<_> = mac.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok())
    {
        return err(
            field,
            format!("{} is not a MAC address (aa:bb:cc:dd:ee:ff)", quoted(mac)),
        );
    }
    Ok(())
}

fn check_domain(field: &str, d: &str) -> Result<(), FieldError> {
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !ok {
        return err(field, format!("{} is not a domain name", quoted(d)));
    }
    Ok(())
}

/// Check `spec` against the links of this node. Returns the first problem found.
pub fn validate(spec: &NetworkSpec, observed: &Observed) -> Result<(), FieldError> {
    let ifaces = spec.ifaces();
    // Names: valid and unique.
    let mut names = BTreeSet::new();
    for i in &ifaces {
        let f = format!("{}.name", i.field());
        check_name(&f, i.name)?;
        if !names.insert(i.name) {
            return err(f, format!("the name {} is used twice", quoted(i.name)));
        }
    }
    // Physical links exist (by MAC or name) and each kernel link is named once.
    let mut kernel_names = BTreeSet::new();
    for (i, l) in spec.links.iter().enumerate() {
        let found = match &l.mac {
            Some(mac) => {
                check_mac(&format!("links[{i}].mac"), mac)?;
                match observed.by_mac(mac) {
                    Some(o) => o,
                    None => {
                        return err(format!("links[{i}].mac"), format!("no link has MAC {mac}"))
                    }
                }
            }
            None => match observed.by_name(&l.name).filter(|o| o.usable_as_link()) {
                Some(o) => o,
                None => {
                    return err(
                        format!("links[{i}].name"),
                        format!("this node has no link named {}", quoted(&l.name)),
                    )
                }
            },
        };
        if !kernel_names.insert(found.name.clone()) {
            return err(
                format!("links[{i}]"),
                format!("the link {} is already in the spec", found.name),
            );
        }
    }
    // MTUs in range.
    for i in &ifaces {
        if let Some(m) = i.mtu {
            if m < MTU_RANGE.0 || m > MTU_RANGE.1 {
                return err(
                    format!("{}.mtu", i.field()),
                    format!("must be between {} and {}", MTU_RANGE.0, MTU_RANGE.1),
                );
            }
        }
    }
    // Enslaved interfaces: each used once, exists, carries no addresses.
    let mut used: BTreeMap<&str, String> = BTreeMap::new();
    let mut enslave = |field: String, name: &str, allowed: &[Kind], owner: &str| {
        let Some(target) = spec.iface(name) else {
            return err(
                field,
                format!("{} is not an interface of this spec", quoted(name)),
            );
        };
        if !allowed.contains(&target.kind) {
            return err(
                field,
                format!("{} cannot be a port of {owner}", quoted(name)),
            );
        }
        if let Some(prev) = used.insert(target.name, owner.to_string()) {
            return err(field, format!("{} is already used by {prev}", quoted(name)));
        }
        if target.ip.dhcp || !target.ip.addresses.is_empty() || target.ip.management {
            return err(
                field,
                format!(
                    "{} is enslaved to {owner}: put its addresses on {owner} instead",
                    quoted(name)
                ),
            );
        }
        Ok(target)
    };
    for (i, b) in spec.bonds.iter().enumerate() {
        if b.members.is_empty() {
            return err(
                format!("bonds[{i}].members"),
                "a bond needs at least one member",
            );
        }
        for (j, m) in b.members.iter().enumerate() {
            let t = enslave(
                format!("bonds[{i}].members[{j}]"),
                m,
                &[Kind::Link],
                &b.name,
            )?;
            if let (Some(bm), Some(mm)) = (b.mtu, t.mtu) {
                if bm != mm {
                    return err(
                        format!("bonds[{i}].members[{j}]"),
                        format!(
                            "{} has MTU {mm} but the bond has {bm}: members take the bond's MTU",
                            quoted(m)
                        ),
                    );
                }
            }
        }
        if let Some(p) = &b.primary {
            if !b.members.contains(p) {
                return err(
                    format!("bonds[{i}].primary"),
                    format!("{} is not a member", quoted(p)),
                );
            }
            if b.mode == BondMode::Lacp {
                return err(
                    format!("bonds[{i}].primary"),
                    "802.3ad bonds have no primary",
                );
            }
        }
        if b.mode != BondMode::Lacp {
            if b.lacp_rate.is_some() {
                return err(
                    format!("bonds[{i}].lacp_rate"),
                    "only 802.3ad bonds have an LACP rate",
                );
            }
            if b.xmit_hash_policy.is_some() {
                return err(
                    format!("bonds[{i}].xmit_hash_policy"),
                    "only 802.3ad bonds take a transmit hash policy here",
                );
            }
        }
        if b.miimon == 0 || b.miimon > 10_000 {
            return err(
                format!("bonds[{i}].miimon"),
                "must be between 1 and 10000 ms",
            );
        }
    }
    for (i, br) in spec.bridges.iter().enumerate() {
        for (j, p) in br.ports.iter().enumerate() {
            let t = enslave(
                format!("bridges[{i}].ports[{j}]"),
                p,
                &[Kind::Link, Kind::Bond, Kind::Vlan],
                &br.name,
            )?;
            if let (Some(bm), Some(pm)) = (br.mtu, t.mtu) {
                if pm < bm {
                    return err(
                        format!("bridges[{i}].ports[{j}]"),
                        format!("{} has MTU {pm}, below the bridge's {bm}", quoted(p)),
                    );
                }
            }
        }
    }
    // VLANs: parent exists, id in range, (parent, id) unique, MTU not above the parent's.
    let mut vids = BTreeSet::new();
    for (i, v) in spec.vlans.iter().enumerate() {
        let Some(parent) = spec.iface(&v.parent) else {
            return err(
                format!("vlans[{i}].parent"),
                format!("{} is not an interface of this spec", quoted(&v.parent)),
            );
        };
        if parent.kind == Kind::Vlan {
            return err(
                format!("vlans[{i}].parent"),
                "a VLAN cannot sit on another VLAN",
            );
        }
        if used.contains_key(parent.name) && parent.kind == Kind::Link {
            return err(
                format!("vlans[{i}].parent"),
                format!(
                    "{:?} is a member of {}: put the VLAN there",
                    v.parent, used[parent.name]
                ),
            );
        }
        if v.id == 0 || v.id > 4094 {
            return err(format!("vlans[{i}].id"), "must be between 1 and 4094");
        }
        if !vids.insert((v.parent.as_str(), v.id)) {
            return err(
                format!("vlans[{i}].id"),
                format!("{} already has VLAN {}", quoted(&v.parent), v.id),
            );
        }
        if let (Some(vm), Some(pm)) = (v.mtu, parent.mtu) {
            if vm > pm {
                return err(
                    format!("vlans[{i}].mtu"),
                    format!("{vm} is above the MTU {pm} of {}", quoted(&v.parent)),
                );
            }
        }
    }
    // Addresses: parse, no duplicates.
    let mut subnets: Vec<(&str, Cidr)> = Vec::new();
    let mut seen: BTreeMap<IpAddr, String> = BTreeMap::new();
    for i in &ifaces {
        for (j, a) in i.ip.addresses.iter().enumerate() {
            let f = format!("{}.addresses[{j}]", i.field());
            let c: Cidr = a.parse().map_err(|reason| FieldError {
                field: f.clone(),
                reason,
            })?;
            if c.addr.is_unspecified() || c.addr.is_multicast() || c.addr.is_loopback() {
                return err(f, format!("{} cannot be an interface address", c.addr));
            }
            if let Some(prev) = seen.insert(c.addr, f.clone()) {
                return err(f, format!("{} is already configured at {prev}", c.addr));
            }
            subnets.push((i.name, c));
        }
    }
    // Routes: destination parses, gateway inside a configured subnet.
    let mut defaults = BTreeSet::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let dest = if r.destination == "default" {
            Cidr::new(
                if r.gateway.is_ipv4() {
                    IpAddr::from([0u8; 4])
                } else {
                    IpAddr::from([0u16; 8])
                },
                0,
            )
        } else {
            r.destination.parse::<Cidr>().map_err(|reason| FieldError {
                field: format!("routes[{i}].destination"),
                reason,
            })?
        };
        if dest.addr.is_ipv4() != r.gateway.is_ipv4() {
            return err(
                format!("routes[{i}].gateway"),
                "the gateway and destination differ in family",
            );
        }
        if !defaults.insert((dest.network(), r.metric)) {
            return err(
                format!("routes[{i}].destination"),
                "this route is listed twice",
            );
        }
        let iface = match &r.interface {
            Some(name) => match spec.iface(name) {
                Some(i) => Some(i),
                None => {
                    return err(
                        format!("routes[{i}].interface"),
                        format!("{} is not an interface of this spec", quoted(name)),
                    )
                }
            },
            None => None,
        };
        if iface.is_some_and(|i| used.contains_key(i.name)) {
            return err(
                format!("routes[{i}].interface"),
                "a bond member or bridge port carries no routes",
            );
        }
        let inside = subnets
            .iter()
            .any(|(n, c)| iface.is_none_or(|i| i.name == *n) && c.contains(&r.gateway));
        // On a DHCP interface the subnet is known only at run time.
        let dhcp_iface = iface.is_some_and(|i| i.ip.dhcp);
        if !inside && !dhcp_iface {
            return err(
                format!("routes[{i}].gateway"),
                format!(
                    "{} is not inside a subnet configured on {}",
                    r.gateway,
                    r.interface.as_deref().unwrap_or("any interface")
                ),
            );
        }
    }
    for (i, d) in spec.dns.search.iter().enumerate() {
        check_domain(&format!("dns.search[{i}]"), d)?;
    }
    if spec.dns.servers.len() > 3 {
        return err("dns.servers", "the resolver uses at most 3 servers");
    }
    // At least one management address.
    let mgmt = ifaces
        .iter()
        .any(|i| i.ip.management && (i.ip.dhcp || !i.ip.addresses.is_empty()));
    if !mgmt {
        let field = ifaces
            .iter()
            .find(|i| i.ip.management)
            .map(|i| format!("{}.addresses", i.field()))
            .unwrap_or_else(|| "links".to_string());
        return err(
            field,
            "the config keeps no management address: mark an interface with an address or DHCP \
             as \"management\": true, or the node would be unreachable",
        );
    }
    // Network roles: an interface of the spec that has an address.
    for (field, name) in [
        ("roles.cluster", &spec.roles.cluster),
        ("roles.replication", &spec.roles.replication),
    ] {
        let Some(name) = name else { continue };
        let Some(i) = ifaces.iter().find(|i| i.name == name.as_str()) else {
            let known: Vec<&str> = ifaces.iter().map(|i| i.name).collect();
            return err(
                field,
                format!(
                    "{} is not an interface of this spec (it has {})",
                    quoted(name),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        };
        if !i.ip.dhcp && i.ip.addresses.is_empty() {
            return err(
                field,
                format!(
                    "{} has no address: give it a static address or DHCP ({})",
                    quoted(name),
                    i.field()
                ),
            );
        }
    }
    // No cycles (a bridge port that is a VLAN on the same bridge, …).
    crate::plan::order(spec).map_err(|name| FieldError {
        field: format!(
            "{}.name",
            spec.iface(&name).map(|i| i.field()).unwrap_or_default()
        ),
        reason: format!(
            "{} depends on itself through its ports or parent",
            quoted(&name)
        ),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::ObservedLink;
    use serde_json::json;

    fn node() -> Observed {
        let link = |i: u32, n: &str, mac: &str| ObservedLink {
            index: i,
            name: n.into(),
            mac: Some(mac.into()),
            mtu: 1500,
            ..Default::default()
        };
        Observed {
            links: vec![
                link(1, "lo", "00:00:00:00:00:00"),
                link(2, "ens3", "52:54:00:00:00:01"),
                link(3, "ens4", "52:54:00:00:00:02"),
                link(4, "ens5", "52:54:00:00:00:03"),
                link(5, "ens6", "52:54:00:00:00:04"),
            ],
            routes: vec![],
        }
    }

    fn spec(v: serde_json::Value) -> NetworkSpec {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "ens4"}, {"name": "ens5"}, {"name": "ens6"}],
            "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["ens4", "ens5"],
                       "primary": "ens4", "addresses": ["10.10.0.2/24"]}],
            "vlans": [{"name": "bond0.20", "parent": "bond0", "id": 20}],
            "bridges": [{"name": "br20", "ports": ["bond0.20"], "addresses": ["10.20.0.2/24"]}],
            "routes": [{"destination": "10.99.0.0/16", "gateway": "10.10.0.1"}]
        })
    }

    fn field_of(v: serde_json::Value) -> String {
        validate(&spec(v), &node()).unwrap_err().field
    }

    #[test]
    fn a_good_spec_passes() {
        validate(&spec(base()), &node()).unwrap();
    }

    #[test]
    fn links_by_mac_resolve_and_unknown_ones_are_named() {
        let mut v = base();
        v["links"][1] = json!({"name": "lan-a", "mac": "52:54:00:00:00:02"});
        v["bonds"][0]["members"] = json!(["lan-a", "ens5"]);
        v["bonds"][0]["primary"] = json!("lan-a");
        validate(&spec(v.clone()), &node()).unwrap();
        v["links"][1]["mac"] = json!("52:54:00:00:00:99");
        assert_eq!(field_of(v), "links[1].mac");
        let mut v = base();
        v["links"][3]["name"] = json!("ens9");
        assert_eq!(field_of(v), "links[3].name");
        let mut v = base();
        v["links"][3] = json!({"name": "x", "mac": "52:54:00:00:00:01"});
        assert_eq!(field_of(v), "links[3]");
    }

    #[test]
    fn members_exist_and_are_used_once() {
        let mut v = base();
        v["bonds"][0]["members"] = json!(["ens4", "nope"]);
        assert_eq!(field_of(v), "bonds[0].members[1]");
        let mut v = base();
        v["bridges"][0]["ports"] = json!(["bond0.20", "ens4"]);
        let e = validate(&spec(v), &node()).unwrap_err();
        assert_eq!(e.field, "bridges[0].ports[1]");
        assert!(e.reason.contains("already used by bond0"), "{e}");
        let mut v = base();
        v["links"][1]["addresses"] = json!(["10.1.1.1/24"]);
        assert_eq!(field_of(v), "bonds[0].members[0]");
        let mut v = base();
        v["bonds"][0]["primary"] = json!("ens6");
        assert_eq!(field_of(v), "bonds[0].primary");
    }

    #[test]
    fn mtus_must_be_consistent() {
        let mut v = base();
        v["bonds"][0]["mtu"] = json!(9000);
        v["links"][1]["mtu"] = json!(1500);
        assert_eq!(field_of(v), "bonds[0].members[0]");
        let mut v = base();
        v["vlans"][0]["mtu"] = json!(9000);
        v["bonds"][0]["mtu"] = json!(1500);
        assert_eq!(field_of(v), "vlans[0].mtu");
        let mut v = base();
        v["links"][3]["mtu"] = json!(100);
        assert_eq!(field_of(v), "links[3].mtu");
    }

    #[test]
    fn gateway_must_be_inside_a_subnet() {
        let mut v = base();
        v["routes"][0]["gateway"] = json!("10.11.0.1");
        let e = validate(&spec(v), &node()).unwrap_err();
        assert_eq!(e.field, "routes[0].gateway");
        assert!(e.reason.contains("not inside a subnet"), "{e}");
        let mut v = base();
        v["routes"][0]["interface"] = json!("br20");
        assert_eq!(field_of(v), "routes[0].gateway");
        // On a DHCP interface it is accepted.
        let mut v = base();
        v["routes"][0] =
            json!({"destination": "default", "gateway": "10.0.2.2", "interface": "ens3"});
        validate(&spec(v), &node()).unwrap();
    }

    #[test]
    fn duplicate_addresses_are_refused() {
        let mut v = base();
        v["bridges"][0]["addresses"] = json!(["10.10.0.2/24"]);
        let e = validate(&spec(v), &node()).unwrap_err();
        assert_eq!(e.field, "bridges[0].addresses[0]");
        assert!(e.reason.contains("bonds[0].addresses[0]"), "{e}");
        let mut v = base();
        v["bridges"][0]["addresses"] = json!(["10.20.0.2"]);
        assert_eq!(field_of(v), "bridges[0].addresses[0]");
    }

    #[test]
    fn a_config_without_management_address_is_refused() {
        let mut v = base();
        v["links"][0] = json!({"name": "ens3"});
        let e = validate(&spec(v), &node()).unwrap_err();
        assert!(e.reason.contains("no management address"), "{e}");
        let mut v = base();
        v["links"][0] = json!({"name": "ens3", "management": true});
        assert_eq!(field_of(v), "links[0].addresses");
    }

    #[test]
    fn vlans_and_names_are_checked() {
        let mut v = base();
        v["vlans"][0]["id"] = json!(4095);
        assert_eq!(field_of(v), "vlans[0].id");
        let mut v = base();
        v["vlans"][0]["parent"] = json!("ens4");
        assert_eq!(field_of(v), "vlans[0].parent");
        let mut v = base();
        v["bridges"][0]["name"] = json!("bond0");
        assert_eq!(field_of(v), "bridges[0].name");
        let mut v = base();
        v["bridges"][0]["name"] = json!("a-very-long-bridge-name");
        assert_eq!(field_of(v), "bridges[0].name");
        let mut v = base();
        v["bonds"][0]["lacp_rate"] = json!("fast");
        assert_eq!(field_of(v), "bonds[0].lacp_rate");
        let mut v = base();
        v["dns"] = json!({"search": ["bad domain"]});
        assert_eq!(field_of(v), "dns.search[0]");
    }

    #[test]
    fn network_roles_name_an_interface_with_an_address() {
        let mut v = base();
        v["roles"] = serde_json::json!({"cluster": "bond0", "replication": "br20"});
        validate(&spec(v.clone()), &node()).unwrap();
        v["roles"] = serde_json::json!({"replication": "nope"});
        let e = validate(&spec(v.clone()), &node()).unwrap_err();
        assert_eq!(e.field, "roles.replication");
        assert!(e.reason.contains("not an interface"), "{e}");
        v["roles"] = serde_json::json!({"cluster": "ens6"});
        let e = validate(&spec(v.clone()), &node()).unwrap_err();
        assert_eq!(e.field, "roles.cluster");
        assert!(e.reason.contains("has no address"), "{e}");
        v["roles"] = serde_json::json!({"cluster": "ens3", "witness": "ens3"});
        assert!(serde_json::from_value::<NetworkSpec>(v).is_err());
    }

    #[test]
    fn a_vlan_on_a_bridge_that_is_its_own_port_is_a_cycle() {
        let mut v = base();
        v["vlans"][0]["parent"] = json!("br20");
        let e = validate(&spec(v), &node()).unwrap_err();
        assert!(e.reason.contains("depends on itself"), "{e}");
    }
}
