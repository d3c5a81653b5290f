//! The planner: a pure function from spec + observed state to an ordered list of netlink
//! operations, one step per kind (links, bonds, bridges, VLANs, addresses, routes), each in a
//! file of its own. Links the spec does not name (and Cairn did not create) are never
//! touched.

mod addresses;
mod bonds;
mod bridges;
mod context;
mod links;
mod op;
mod routes;
mod vlans;

use crate::observed::Observed;
use crate::spec::{Kind, NetworkSpec};
use context::Context;
pub use links::kernel_names;
pub use op::{BondOptions, Op, PlanError, RouteOp};
pub use routes::route_destination;
use std::collections::{BTreeMap, BTreeSet};

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

/// Compute the operations that take `observed` to `spec`. Applying them and planning again
/// on the resulting state gives an empty plan.
pub fn plan(spec: &NetworkSpec, observed: &Observed) -> Result<Vec<Op>, PlanError> {
    let mut ctx = Context::new(spec, observed, kernel_names(spec, observed)?);
    let order = order(spec).map_err(PlanError::Cycle)?;
    let mut ops = Vec::new();
    // 1. Cairn's links that the spec dropped or that must be recreated.
    ctx.deleted = links::delete_stale(&ctx, &mut ops);
    // 2. Release links from masters they should no longer be in.
    links::release_masters(&ctx, &mut ops);
    // Routes Cairn no longer wants go before the addresses change.
    let want_routes = routes::wanted(&ctx);
    routes::delete_unwanted(&ctx, &want_routes, &mut ops);
    // 3. Create and configure in dependency order.
    for name in &order {
        let iface = spec.iface(name).expect("ordered name is in the spec");
        let kname = ctx.k(name);
        let obs = ctx.present(&kname);
        match iface.kind {
            Kind::Link => links::require(name, obs)?,
            Kind::Bond => bonds::configure(&ctx, name, &kname, obs, &mut ops),
            Kind::Bridge => bridges::configure(&ctx, name, &kname, obs, &mut ops),
            Kind::Vlan => vlans::configure(&ctx, name, &kname, obs, &mut ops),
        }
        links::set_mtu_and_up(&ctx, &iface, &kname, obs, &mut ops);
    }
    // 4. Addresses.
    addresses::configure(&ctx, &mut ops);
    // 5. Missing routes (after the addresses that make their gateways reachable).
    routes::add_missing(&ctx, &want_routes, &mut ops);
    Ok(op::fold_up_into_create(ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{
        ObservedAddr, ObservedBond, ObservedLink, ObservedRoute, OWNED_ALIAS, ROUTE_PROTOCOL,
    };
    use crate::spec::BondMode;
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
