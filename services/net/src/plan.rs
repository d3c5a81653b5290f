//! The planner: a pure function from spec + observed state to an ordered list of netlink
//! operations. Links the spec does not name (and Cairn did not create) are never touched.

use crate::cidr::Cidr;
use crate::observed::{Observed, ObservedLink, ROUTE_PROTOCOL};
use crate::spec::{BondMode, Kind, LacpRate, NetworkSpec, XmitHashPolicy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// Bond options set at creation and kept in line afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondOptions {
    pub mode: BondMode,
    pub miimon: u32,
    pub lacp_rate: Option<LacpRate>,
    pub xmit_hash_policy: Option<XmitHashPolicy>,
}

/// A route as the planner wants it in the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteOp {
    pub destination: Cidr,
    pub gateway: IpAddr,
    /// Kernel name of the outgoing interface, when the spec fixes it.
    pub interface: Option<String>,
    pub metric: Option<u32>,
}

/// One netlink operation. Names are kernel interface names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    DeleteLink {
        name: String,
    },
    /// `up`: created administratively up (no "set up" of its own).
    CreateBond {
        name: String,
        options: BondOptions,
        #[serde(default)]
        up: bool,
    },
    SetBondOptions {
        name: String,
        options: BondOptions,
    },
    CreateBridge {
        name: String,
        stp: bool,
        #[serde(default)]
        up: bool,
    },
    SetStp {
        name: String,
        stp: bool,
    },
    CreateVlan {
        name: String,
        parent: String,
        id: u16,
        #[serde(default)]
        up: bool,
    },
    SetDown {
        name: String,
    },
    SetMaster {
        name: String,
        master: Option<String>,
    },
    SetPrimary {
        bond: String,
        member: String,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetUp {
        name: String,
    },
    AddAddress {
        name: String,
        cidr: Cidr,
    },
    DelAddress {
        name: String,
        cidr: Cidr,
    },
    AddRoute {
        route: RouteOp,
    },
    DelRoute {
        route: RouteOp,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::DeleteLink { name } => write!(f, "delete {name}"),
            Op::CreateBond { name, options, up } => {
                write!(
                    f,
                    "create bond {name} mode {} miimon {}{}",
                    options.mode.kernel_name(),
                    options.miimon,
                    up_text(*up)
                )
            }
            Op::SetBondOptions { name, options } => {
                write!(f, "set bond {name} miimon {}", options.miimon)
            }
            Op::CreateBridge { name, stp, up } => {
                write!(f, "create bridge {name} stp {}{}", on(*stp), up_text(*up))
            }
            Op::SetStp { name, stp } => write!(f, "set bridge {name} stp {}", on(*stp)),
            Op::CreateVlan {
                name,
                parent,
                id,
                up,
            } => {
                write!(f, "create vlan {name} on {parent} id {id}{}", up_text(*up))
            }
            Op::SetDown { name } => write!(f, "set {name} down"),
            Op::SetMaster {
                name,
                master: Some(m),
            } => write!(f, "set {name} master {m}"),
            Op::SetMaster { name, master: None } => write!(f, "set {name} nomaster"),
            Op::SetPrimary { bond, member } => write!(f, "set bond {bond} primary {member}"),
            Op::SetMtu { name, mtu } => write!(f, "set {name} mtu {mtu}"),
            Op::SetUp { name } => write!(f, "set {name} up"),
            Op::AddAddress { name, cidr } => write!(f, "add address {cidr} dev {name}"),
            Op::DelAddress { name, cidr } => write!(f, "delete address {cidr} dev {name}"),
            Op::AddRoute { route } => write!(f, "add route {}", show_route(route)),
            Op::DelRoute { route } => write!(f, "delete route {}", show_route(route)),
        }
    }
}

fn up_text(up: bool) -> &'static str {
    if up {
        ", up"
    } else {
        ""
    }
}

impl Op {
    /// The link this op creates, if it creates one.
    fn created(&self) -> Option<&str> {
        match self {
            Op::CreateBond { name, .. }
            | Op::CreateBridge { name, .. }
            | Op::CreateVlan { name, .. } => Some(name),
            _ => None,
        }
    }

    fn set_created_up(&mut self) {
        if let Op::CreateBond { up, .. } | Op::CreateBridge { up, .. } | Op::CreateVlan { up, .. } =
            self
        {
            *up = true;
        }
    }
}

/// Bring a link up in the request that creates it instead of a "set up" of its own, one
/// netlink request fewer per created link (RTM_NEWLINK applies a new link's flags). Only
/// when nothing in between sets it down; a bond, bridge or VLAN being up earlier than
/// planned changes nothing for what follows (enslaving to it, ports, MTU, primary).
fn fold_up_into_create(ops: Vec<Op>) -> Vec<Op> {
    let mut out: Vec<Op> = Vec::with_capacity(ops.len());
    for op in ops {
        if let Op::SetUp { name } = &op {
            if let Some(i) = out.iter().rposition(|o| o.created() == Some(name)) {
                let downed = out[i + 1..]
                    .iter()
                    .any(|o| matches!(o, Op::SetDown { name: n } if n == name));
                if !downed {
                    out[i].set_created_up();
                    continue;
                }
            }
        }
        out.push(op);
    }
    out
}

fn on(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

fn show_route(r: &RouteOp) -> String {
    let mut s = format!("{} via {}", r.destination, r.gateway);
    if let Some(i) = &r.interface {
        s.push_str(&format!(" dev {i}"));
    }
    if let Some(m) = r.metric {
        s.push_str(&format!(" metric {m}"));
    }
    s
}

/// Why no plan could be made (the spec was not validated against this state).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the spec names link {0:?}, which this node does not have")]
    MissingLink(String),
    #[error("{0:?} depends on itself through its ports or parent")]
    Cycle(String),
}

/// The spec's interfaces in creation order: each after what it needs (a bond after its
/// members, a VLAN after its parent, a bridge after its ports). `Err(name)` on a cycle.
pub fn order(spec: &NetworkSpec) -> Result<Vec<String>, String> {
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in spec.ifaces() {
        deps.insert(i.name, vec![]);
    }
    for b in &spec.bonds {
        deps.insert(&b.name, b.members.iter().map(String::as_str).collect());
    }
    for b in &spec.bridges {
        deps.insert(&b.name, b.ports.iter().map(String::as_str).collect());
    }
    for v in &spec.vlans {
        deps.insert(&v.name, vec![v.parent.as_str()]);
    }
    let mut done: Vec<String> = Vec::new();
    let mut visiting = BTreeSet::new();
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        visiting: &mut BTreeSet<&'a str>,
        done: &mut Vec<String>,
    ) -> Result<(), String> {
        if done.iter().any(|d| d == n) {
            return Ok(());
        }
        if !visiting.insert(n) {
            return Err(n.to_string());
        }
        for d in deps.get(n).into_iter().flatten() {
            if deps.contains_key(d) {
                visit(d, deps, visiting, done)?;
            }
        }
        visiting.remove(n);
        done.push(n.to_string());
        Ok(())
    }
    for i in spec.ifaces() {
        visit(i.name, &deps, &mut visiting, &mut done)?;
    }
    Ok(done)
}

/// Maps spec names to kernel names (a link given by MAC may have another kernel name).
pub fn kernel_names(
    spec: &NetworkSpec,
    observed: &Observed,
) -> Result<BTreeMap<String, String>, PlanError> {
    let mut map = BTreeMap::new();
    for l in &spec.links {
        let found = match &l.mac {
            Some(mac) => observed.by_mac(mac),
            None => observed.by_name(&l.name),
        };
        let k = found.ok_or_else(|| PlanError::MissingLink(l.name.clone()))?;
        map.insert(l.name.clone(), k.name.clone());
    }
    for i in spec.ifaces() {
        if i.kind != Kind::Link {
            map.insert(i.name.to_string(), i.name.to_string());
        }
    }
    Ok(map)
}

fn kind_rank(l: &ObservedLink) -> u8 {
    match l.kind.as_deref() {
        Some("vlan") => 0,
        Some("bridge") => 1,
        _ => 2,
    }
}

fn bond_matches(o: &ObservedLink, want: &BondOptions) -> (bool, bool) {
    let Some(b) = &o.bond else {
        return (false, false);
    };
    let mode_ok = b.mode == want.mode.kernel_name();
    let lacp = want.lacp_rate.map(|r| match r {
        LacpRate::Slow => "slow",
        LacpRate::Fast => "fast",
    });
    let hash = want.xmit_hash_policy.map(|h| match h {
        XmitHashPolicy::Layer2 => "layer2",
        XmitHashPolicy::Layer23 => "layer2+3",
        XmitHashPolicy::Layer34 => "layer3+4",
    });
    let opts_ok = b.miimon == want.miimon
        && (lacp.is_none() || b.lacp_rate.as_deref() == lacp)
        && (hash.is_none() || b.xmit_hash_policy.as_deref() == hash);
    (mode_ok, opts_ok)
}

fn is_link_local(c: &Cidr) -> bool {
    match c.addr {
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(a) => a.is_link_local(),
    }
}

/// Compute the operations that take `observed` to `spec`. Applying them and planning again
/// on the resulting state gives an empty plan.
pub fn plan(spec: &NetworkSpec, observed: &Observed) -> Result<Vec<Op>, PlanError> {
    let names = kernel_names(spec, observed)?;
    let k = |n: &str| names.get(n).cloned().unwrap_or_else(|| n.to_string());
    let order = order(spec).map_err(PlanError::Cycle)?;
    let mut ops = Vec::new();

    // Who should be enslaved to whom (kernel names).
    let mut master_of: BTreeMap<String, String> = BTreeMap::new();
    for b in &spec.bonds {
        for m in &b.members {
            master_of.insert(k(m), b.name.clone());
        }
    }
    for b in &spec.bridges {
        for p in &b.ports {
            master_of.insert(k(p), b.name.clone());
        }
    }
    let desired: BTreeSet<String> = spec.ifaces().iter().map(|i| k(i.name)).collect();

    // 1. Cairn's links that the spec dropped or that must be recreated.
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut owned: Vec<&ObservedLink> = observed.links.iter().filter(|l| l.owned()).collect();
    owned.sort_by_key(|l| kind_rank(l));
    let mut explicit: BTreeSet<String> = BTreeSet::new();
    for l in &owned {
        let recreate = match spec.iface(&l.name) {
            None => true,
            Some(i) => match i.kind {
                Kind::Link => true,
                Kind::Bond => {
                    let b = spec.bonds.iter().find(|b| b.name == l.name).expect("bond");
                    let want = bond_options(b);
                    l.kind.as_deref() != Some("bond") || !bond_matches(l, &want).0
                }
                Kind::Bridge => l.kind.as_deref() != Some("bridge"),
                Kind::Vlan => {
                    let v = spec.vlans.iter().find(|v| v.name == l.name).expect("vlan");
                    let parent = observed.by_name(&k(&v.parent)).map(|p| p.index);
                    l.kind.as_deref() != Some("vlan")
                        || l.vlan.is_none_or(|(id, p)| id != v.id || Some(p) != parent)
                }
            },
        };
        if recreate {
            explicit.insert(l.name.clone());
            deleted.insert(l.name.clone());
        }
    }
    // A VLAN (Cairn's or not) goes with its deleted parent: no op of its own.
    loop {
        let more: Vec<String> = observed
            .links
            .iter()
            .filter(|l| !deleted.contains(&l.name))
            .filter(|l| {
                l.vlan
                    .is_some_and(|(_, p)| deleted.contains(&observed.name_of(p)))
            })
            .map(|l| l.name.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        for m in more {
            explicit.remove(&m);
            deleted.insert(m);
        }
    }
    for l in &owned {
        let implicit = l
            .vlan
            .is_some_and(|(_, p)| deleted.contains(&observed.name_of(p)));
        if explicit.contains(&l.name) && !implicit {
            ops.push(Op::DeleteLink {
                name: l.name.clone(),
            });
        }
    }
    // VLANs (owned or not) on deleted parents vanish too.
    let present = |name: &str| -> Option<&ObservedLink> {
        if deleted.contains(name) {
            return None;
        }
        observed.by_name(name)
    };

    // 2. Release links from masters they should no longer be in.
    for l in &observed.links {
        if deleted.contains(&l.name) {
            continue;
        }
        let Some(m) = l.master else { continue };
        let current = observed.name_of(m);
        if deleted.contains(&current) {
            continue;
        }
        let wanted = master_of.get(&l.name);
        let ours = desired.contains(&l.name)
            || observed
                .by_index(m)
                .is_some_and(|ml| ml.owned() || desired.contains(&ml.name));
        if ours && wanted != Some(&current) {
            ops.push(Op::SetMaster {
                name: l.name.clone(),
                master: None,
            });
        }
    }

    // Routes Cairn no longer wants go first: removing an address takes the kernel's routes
    // through it along, so deleting them later would fail. Only routes with Cairn's
    // protocol are Cairn's.
    let want_routes: Vec<RouteOp> = spec
        .routes
        .iter()
        .map(|r| RouteOp {
            destination: route_destination(&r.destination, &r.gateway),
            gateway: r.gateway,
            interface: r.interface.as_deref().map(k),
            metric: r.metric,
        })
        .collect();
    let matches = |w: &RouteOp, o: &crate::observed::ObservedRoute| {
        o.destination == w.destination
            && o.gateway == Some(w.gateway)
            && o.metric.unwrap_or(0) == w.metric.unwrap_or(0)
            && w.interface.as_ref().is_none_or(|i| {
                o.oif
                    .is_some_and(|x| observed.name_of(x) == *i && !deleted.contains(i))
            })
    };
    for o in observed
        .routes
        .iter()
        .filter(|r| r.protocol == ROUTE_PROTOCOL)
    {
        let gone_with_link = o
            .oif
            .is_some_and(|x| deleted.contains(&observed.name_of(x)));
        if gone_with_link || want_routes.iter().any(|w| matches(w, o)) {
            continue;
        }
        if let Some(gw) = o.gateway {
            ops.push(Op::DelRoute {
                route: RouteOp {
                    destination: o.destination,
                    gateway: gw,
                    interface: o.oif.map(|x| observed.name_of(x)),
                    metric: o.metric,
                },
            });
        }
    }
    // 3. Create and configure in dependency order.
    let mut created: BTreeSet<String> = BTreeSet::new();
    for name in &order {
        let iface = spec.iface(name).expect("ordered name is in the spec");
        let kname = k(name);
        let obs = present(&kname);
        match iface.kind {
            Kind::Link => {
                if obs.is_none() {
                    return Err(PlanError::MissingLink(name.clone()));
                }
            }
            Kind::Bond => {
                let b = spec.bonds.iter().find(|b| &b.name == name).expect("bond");
                let want = bond_options(b);
                match obs {
                    None => {
                        ops.push(Op::CreateBond {
                            name: kname.clone(),
                            options: want,
                            up: false,
                        });
                        created.insert(kname.clone());
                    }
                    Some(o) => {
                        if !bond_matches(o, &want).1 {
                            ops.push(Op::SetBondOptions {
                                name: kname.clone(),
                                options: want,
                            });
                        }
                    }
                }
                for m in &b.members {
                    let km = k(m);
                    let mo = present(&km);
                    let enslaved = mo
                        .and_then(|o| o.master)
                        .is_some_and(|idx| obs.is_some_and(|bo| bo.index == idx));
                    if !enslaved {
                        if mo.is_some_and(|o| o.up) {
                            ops.push(Op::SetDown { name: km.clone() });
                        }
                        // No "set up" after: the bond opens a new member itself
                        // (bond_enslave → dev_open).
                        ops.push(Op::SetMaster {
                            name: km.clone(),
                            master: Some(kname.clone()),
                        });
                    }
                }
                if let Some(p) = &b.primary {
                    let kp = k(p);
                    let current = obs.and_then(|o| o.bond.as_ref()).and_then(|bo| bo.primary);
                    let want_idx = present(&kp).map(|o| o.index);
                    if obs.is_none() || current.is_none() || current != want_idx {
                        ops.push(Op::SetPrimary {
                            bond: kname.clone(),
                            member: kp,
                        });
                    }
                }
            }
            Kind::Bridge => {
                let br = spec
                    .bridges
                    .iter()
                    .find(|b| &b.name == name)
                    .expect("bridge");
                match obs {
                    None => {
                        ops.push(Op::CreateBridge {
                            name: kname.clone(),
                            stp: br.stp,
                            up: false,
                        });
                        created.insert(kname.clone());
                    }
                    Some(o) => {
                        if o.stp != Some(br.stp) {
                            ops.push(Op::SetStp {
                                name: kname.clone(),
                                stp: br.stp,
                            });
                        }
                    }
                }
                for p in &br.ports {
                    let kp = k(p);
                    let po = present(&kp);
                    let enslaved = po
                        .and_then(|o| o.master)
                        .is_some_and(|idx| obs.is_some_and(|bo| bo.index == idx));
                    if !enslaved {
                        ops.push(Op::SetMaster {
                            name: kp.clone(),
                            master: Some(kname.clone()),
                        });
                    }
                }
            }
            Kind::Vlan => {
                let v = spec.vlans.iter().find(|v| &v.name == name).expect("vlan");
                if obs.is_none() {
                    ops.push(Op::CreateVlan {
                        name: kname.clone(),
                        parent: k(&v.parent),
                        id: v.id,
                        up: false,
                    });
                    created.insert(kname.clone());
                }
            }
        }
        if let Some(mtu) = iface.mtu {
            if obs.is_none_or(|o| o.mtu != mtu) {
                ops.push(Op::SetMtu {
                    name: kname.clone(),
                    mtu,
                });
            }
        }
        let is_member = spec
            .bonds
            .iter()
            .any(|b| b.members.iter().any(|m| m == name));
        if !is_member && obs.is_none_or(|o| !o.up) {
            ops.push(Op::SetUp {
                name: kname.clone(),
            });
        }
    }

    // 4. Addresses.
    for i in spec.ifaces() {
        let kname = k(i.name);
        let want: BTreeSet<Cidr> =
            i.ip.addresses
                .iter()
                .filter_map(|a| a.parse::<Cidr>().ok())
                .collect();
        let have: Vec<_> = present(&kname)
            .map(|o| o.addresses.clone())
            .unwrap_or_default();
        for a in &have {
            if want.contains(&a.cidr) || is_link_local(&a.cidr) {
                continue;
            }
            // Dynamic addresses belong to dhcpcd on a DHCP interface; on a static one a
            // leftover IPv4 lease goes (IPv6 SLAAC addresses come back by themselves).
            let remove = a.permanent || (!i.ip.dhcp && a.cidr.addr.is_ipv4());
            if remove {
                ops.push(Op::DelAddress {
                    name: kname.clone(),
                    cidr: a.cidr,
                });
            }
        }
        for c in &want {
            if !have.iter().any(|a| a.cidr == *c) {
                ops.push(Op::AddAddress {
                    name: kname.clone(),
                    cidr: *c,
                });
            }
        }
    }

    // 5. Missing routes (after the addresses that make their gateways reachable).
    for w in &want_routes {
        if !observed
            .routes
            .iter()
            .any(|o| o.protocol == ROUTE_PROTOCOL && matches(w, o))
        {
            ops.push(Op::AddRoute { route: w.clone() });
        }
    }
    Ok(fold_up_into_create(ops))
}

/// `default` (per the gateway's family) or the prefix with host bits cleared.
pub fn route_destination(dest: &str, gateway: &IpAddr) -> Cidr {
    if dest == "default" {
        let zero = if gateway.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u16; 8])
        };
        return Cidr::new(zero, 0);
    }
    dest.parse::<Cidr>()
        .map(|c| c.network())
        .unwrap_or(Cidr::new(*gateway, 0))
}

fn bond_options(b: &crate::spec::BondSpec) -> BondOptions {
    BondOptions {
        mode: b.mode,
        miimon: b.miimon,
        lacp_rate: b.lacp_rate,
        xmit_hash_policy: b.xmit_hash_policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedAddr, ObservedBond, ObservedRoute, OWNED_ALIAS};
    use serde_json::json;

    fn phys(i: u32, n: &str) -> ObservedLink {
        ObservedLink {
            index: i,
            name: n.into(),
            mac: Some(format!("52:54:00:00:00:{i:02x}")),
            mtu: 1500,
            up: true,
            carrier: true,
            ..Default::default()
        }
    }

    fn node() -> Observed {
        let mut mgmt = phys(2, "ens3");
        mgmt.addresses.push(ObservedAddr {
            cidr: "10.0.2.15/24".parse().unwrap(),
            permanent: false,
        });
        let mut down = phys(6, "ens7");
        down.up = false;
        Observed {
            links: vec![
                phys(1, "lo"),
                mgmt,
                phys(3, "ens4"),
                phys(4, "ens5"),
                phys(5, "ens6"),
                down,
            ],
            routes: vec![ObservedRoute {
                destination: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("10.0.2.2".parse().unwrap()),
                oif: Some(2),
                protocol: 16,
                metric: Some(1002),
            }],
        }
    }

    fn spec() -> NetworkSpec {
        serde_json::from_value(json!({
            "links": [{"name": "ens3", "dhcp": true, "management": true},
                      {"name": "ens4"}, {"name": "ens5"}],
            "bonds": [{"name": "bond0", "mode": "active-backup", "members": ["ens4", "ens5"],
                       "primary": "ens4", "mtu": 1500}],
            "vlans": [{"name": "bond0.20", "parent": "bond0", "id": 20}],
            "bridges": [{"name": "br20", "ports": ["bond0.20"], "addresses": ["10.20.0.2/24"]}],
            "routes": [{"destination": "10.99.0.0/16", "gateway": "10.20.0.1"}]
        }))
        .unwrap()
    }

    /// A tiny kernel model: applies ops to an observed state, as netlink would.
    fn apply(obs: &mut Observed, ops: &[Op]) {
        let next_index = |o: &Observed| o.links.iter().map(|l| l.index).max().unwrap_or(0) + 1;
        for op in ops {
            match op {
                Op::DeleteLink { name } => {
                    let idx = obs.by_name(name).unwrap().index;
                    obs.links
                        .retain(|l| l.index != idx && l.vlan.is_none_or(|(_, p)| p != idx));
                    for l in &mut obs.links {
                        if l.master == Some(idx) {
                            l.master = None;
                        }
                    }
                    obs.routes.retain(|r| r.oif != Some(idx));
                }
                Op::CreateBond { name, options, up } => {
                    let index = next_index(obs);
                    obs.links.push(ObservedLink {
                        index,
                        name: name.clone(),
                        up: *up,
                        kind: Some("bond".into()),
                        mtu: 1500,
                        alias: Some(OWNED_ALIAS.into()),
                        bond: Some(ObservedBond {
                            mode: options.mode.kernel_name().into(),
                            miimon: options.miimon,
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }
                Op::SetBondOptions { name, options } => {
                    let l = obs.links.iter_mut().find(|l| &l.name == name).unwrap();
                    l.bond.as_mut().unwrap().miimon = options.miimon;
                }
                Op::CreateBridge { name, stp, up } => {
                    let index = next_index(obs);
                    obs.links.push(ObservedLink {
                        index,
                        name: name.clone(),
                        up: *up,
                        kind: Some("bridge".into()),
                        mtu: 1500,
                        alias: Some(OWNED_ALIAS.into()),
                        stp: Some(*stp),
                        ..Default::default()
                    });
                }
                Op::SetStp { name, stp } => {
                    obs.links.iter_mut().find(|l| &l.name == name).unwrap().stp = Some(*stp)
                }
                Op::CreateVlan {
                    name,
                    parent,
                    id,
                    up,
                } => {
                    let index = next_index(obs);
                    let p = obs.by_name(parent).unwrap().index;
                    obs.links.push(ObservedLink {
                        index,
                        name: name.clone(),
                        up: *up,
                        kind: Some("vlan".into()),
                        mtu: 1500,
                        alias: Some(OWNED_ALIAS.into()),
                        vlan: Some((*id, p)),
                        ..Default::default()
                    });
                }
                Op::SetDown { name } => {
                    obs.links.iter_mut().find(|l| &l.name == name).unwrap().up = false
                }
                Op::SetUp { name } => {
                    obs.links.iter_mut().find(|l| &l.name == name).unwrap().up = true
                }
                Op::SetMaster { name, master } => {
                    let m = master.as_ref().map(|m| obs.by_name(m).unwrap());
                    // Like the kernel: enslaving to a bond opens the member.
                    let bond = m.is_some_and(|m| m.kind.as_deref() == Some("bond"));
                    let m = m.map(|m| m.index);
                    let l = obs.links.iter_mut().find(|l| &l.name == name).unwrap();
                    l.master = m;
                    l.up |= bond;
                }
                Op::SetPrimary { bond, member } => {
                    let m = obs.by_name(member).unwrap().index;
                    let b = obs.links.iter_mut().find(|l| &l.name == bond).unwrap();
                    b.bond.as_mut().unwrap().primary = Some(m);
                }
                Op::SetMtu { name, mtu } => {
                    obs.links.iter_mut().find(|l| &l.name == name).unwrap().mtu = *mtu
                }
                Op::AddAddress { name, cidr } => obs
                    .links
                    .iter_mut()
                    .find(|l| &l.name == name)
                    .unwrap()
                    .addresses
                    .push(ObservedAddr {
                        cidr: *cidr,
                        permanent: true,
                    }),
                Op::DelAddress { name, cidr } => obs
                    .links
                    .iter_mut()
                    .find(|l| &l.name == name)
                    .unwrap()
                    .addresses
                    .retain(|a| a.cidr != *cidr),
                Op::AddRoute { route } => {
                    // The kernel picks the link whose subnet holds the gateway.
                    let oif = match &route.interface {
                        Some(i) => Some(obs.by_name(i).unwrap().index),
                        None => obs
                            .links
                            .iter()
                            .find(|l| l.addresses.iter().any(|a| a.cidr.contains(&route.gateway)))
                            .map(|l| l.index),
                    };
                    obs.routes.push(ObservedRoute {
                        destination: route.destination,
                        gateway: Some(route.gateway),
                        oif,
                        protocol: ROUTE_PROTOCOL,
                        metric: route.metric,
                    })
                }
                Op::DelRoute { route } => obs.routes.retain(|r| {
                    !(r.destination == route.destination && r.gateway == Some(route.gateway))
                }),
            }
        }
    }

    fn lines(ops: &[Op]) -> Vec<String> {
        ops.iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn set_up_folds_into_the_create_unless_the_link_is_set_down_in_between() {
        let create = |name: &str| Op::CreateBridge {
            name: name.into(),
            stp: false,
            up: false,
        };
        let up = |name: &str| Op::SetUp { name: name.into() };
        let ops = fold_up_into_create(vec![
            create("br1"),
            create("br2"),
            Op::SetDown { name: "br2".into() },
            up("br1"),
            up("br2"),
            up("ens4"),
        ]);
        assert_eq!(
            lines(&ops),
            vec![
                "create bridge br1 stp off, up",
                "create bridge br2 stp off",
                "set br2 down",
                "set br2 up",
                "set ens4 up",
            ]
        );
    }

    #[test]
    fn first_plan_builds_the_stack_in_order() {
        let ops = plan(&spec(), &node()).unwrap();
        assert_eq!(
            lines(&ops),
            vec![
                "create bond bond0 mode active-backup miimon 100, up",
                "set ens4 down",
                "set ens4 master bond0",
                "set ens5 down",
                "set ens5 master bond0",
                "set bond bond0 primary ens4",
                "set bond0 mtu 1500",
                "create vlan bond0.20 on bond0 id 20, up",
                "create bridge br20 stp off, up",
                "set bond0.20 master br20",
                "add address 10.20.0.2/24 dev br20",
                "add route 10.99.0.0/16 via 10.20.0.1",
            ]
        );
    }

    #[test]
    fn same_spec_on_the_resulting_state_is_an_empty_plan() {
        let mut obs = node();
        let ops = plan(&spec(), &obs).unwrap();
        apply(&mut obs, &ops);
        assert_eq!(plan(&spec(), &obs).unwrap(), vec![]);
    }

    #[test]
    fn links_the_spec_does_not_own_are_left_alone() {
        let mut obs = node();
        // A bridge someone made by hand, with an address, and ens6 in it.
        obs.links.push(ObservedLink {
            index: 50,
            name: "handmade".into(),
            kind: Some("bridge".into()),
            mtu: 1500,
            up: true,
            stp: Some(true),
            addresses: vec![ObservedAddr {
                cidr: "192.168.9.1/24".parse().unwrap(),
                permanent: true,
            }],
            ..Default::default()
        });
        obs.links
            .iter_mut()
            .find(|l| l.name == "ens6")
            .unwrap()
            .master = Some(50);
        obs.routes.push(ObservedRoute {
            destination: "192.168.0.0/16".parse().unwrap(),
            gateway: Some("192.168.9.254".parse().unwrap()),
            oif: Some(50),
            protocol: 3,
            metric: None,
        });
        let ops = plan(&spec(), &obs).unwrap();
        for op in &ops {
            let s = op.to_string();
            assert!(
                !s.contains("handmade")
                    && !s.contains("ens6")
                    && !s.contains("ens7")
                    && !s.contains("192.168"),
                "{s}"
            );
        }
        apply(&mut obs, &ops);
        assert_eq!(plan(&spec(), &obs).unwrap(), vec![]);
    }

    #[test]
    fn dropping_parts_of_the_spec_removes_only_cairns_links() {
        let mut obs = node();
        let ops = plan(&spec(), &obs).unwrap();
        apply(&mut obs, &ops);
        let mut smaller = spec();
        smaller.bridges.clear();
        smaller.vlans.clear();
        smaller.routes.clear();
        smaller.bonds[0].ip.addresses = vec!["10.20.0.2/24".into()];
        let ops = plan(&smaller, &obs).unwrap();
        assert_eq!(
            lines(&ops),
            vec![
                "delete bond0.20",
                "delete br20",
                "add address 10.20.0.2/24 dev bond0"
            ]
        );
        apply(&mut obs, &ops);
        assert_eq!(plan(&smaller, &obs).unwrap(), vec![]);
        // Back to a plain DHCP link: the bond goes, its members are free but untouched.
        let plain = NetworkSpec::dhcp_on("ens3");
        let ops = plan(&plain, &obs).unwrap();
        assert_eq!(lines(&ops), vec!["delete bond0"]);
        apply(&mut obs, &ops);
        assert!(obs.by_name("ens4").unwrap().master.is_none());
        assert_eq!(plan(&plain, &obs).unwrap(), vec![]);
    }

    #[test]
    fn a_changed_bond_mode_recreates_and_miimon_changes_in_place() {
        let mut obs = node();
        let ops = plan(&spec(), &obs).unwrap();
        apply(&mut obs, &ops);
        let mut s = spec();
        s.bonds[0].miimon = 50;
        assert_eq!(
            lines(&plan(&s, &obs).unwrap()),
            vec!["set bond bond0 miimon 50"]
        );
        s.bonds[0].mode = BondMode::BalanceAlb;
        s.bonds[0].primary = None;
        let ops = plan(&s, &obs).unwrap();
        assert_eq!(
            ops[0],
            Op::DeleteLink {
                name: "bond0".into()
            }
        );
        assert!(ops.contains(&Op::CreateVlan {
            name: "bond0.20".into(),
            parent: "bond0".into(),
            id: 20,
            up: true
        }));
        apply(&mut obs, &ops);
        assert_eq!(plan(&s, &obs).unwrap(), vec![]);
    }

    #[test]
    fn static_addresses_replace_old_ones_and_a_wrong_route_is_swapped() {
        let mut obs = node();
        let mut s = spec();
        s.links[2].ip = Default::default();
        let ops = plan(&s, &obs).unwrap();
        apply(&mut obs, &ops);
        s.bridges[0].ip.addresses = vec!["10.20.0.3/24".into()];
        s.routes[0].gateway = "10.20.0.254".parse().unwrap();
        let ops = plan(&s, &obs).unwrap();
        assert_eq!(
            lines(&ops),
            vec![
                "delete route 10.99.0.0/16 via 10.20.0.1 dev br20",
                "delete address 10.20.0.2/24 dev br20",
                "add address 10.20.0.3/24 dev br20",
                "add route 10.99.0.0/16 via 10.20.0.254",
            ]
        );
    }

    #[test]
    fn links_by_mac_use_the_kernel_name() {
        let mut s = spec();
        s.links[1].name = "lan-a".into();
        s.links[1].mac = Some("52:54:00:00:00:03".into());
        s.bonds[0].members[0] = "lan-a".into();
        s.bonds[0].primary = Some("lan-a".into());
        let ops = plan(&s, &node()).unwrap();
        assert!(ops.contains(&Op::SetMaster {
            name: "ens4".into(),
            master: Some("bond0".into())
        }));
        assert!(ops.contains(&Op::SetPrimary {
            bond: "bond0".into(),
            member: "ens4".into()
        }));
        s.links[1].mac = Some("52:54:00:00:00:99".into());
        assert_eq!(
            plan(&s, &node()),
            Err(PlanError::MissingLink("lan-a".into()))
        );
    }
}
