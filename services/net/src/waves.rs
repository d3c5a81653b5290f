//! Groups a plan's consecutive, independent netlink operations into waves sent together.
//!
//! Two operations are independent when neither changes a link the other changes or refers
//! to (by kernel name). Deletes (which may take other links with them: a bond's VLANs),
//! MTU changes (a VLAN's or port's MTU is bounded by its parent's) and routes (which need
//! the addresses that make their gateways reachable) run alone. A wave keeps the plan's
//! order: an operation that depends on an earlier one always lands in a later wave.

use crate::plan::Op;
use std::ops::Range;

/// The links an op changes and the ones it only refers to; `None`: it runs alone.
fn footprint(op: &Op) -> Option<(&str, Option<&str>)> {
    match op {
        Op::DeleteLink { .. } | Op::SetMtu { .. } | Op::AddRoute { .. } | Op::DelRoute { .. } => {
            None
        }
        Op::CreateBond { name, .. }
        | Op::SetBondOptions { name, .. }
        | Op::CreateBridge { name, .. }
        | Op::SetStp { name, .. }
        | Op::SetDown { name }
        | Op::SetUp { name }
        | Op::AddAddress { name, .. }
        | Op::DelAddress { name, .. } => Some((name, None)),
        Op::CreateVlan { name, parent, .. } => Some((name, Some(parent))),
        Op::SetMaster { name, master } => Some((name, master.as_deref())),
        Op::SetPrimary { bond, member } => Some((bond, Some(member))),
    }
}

/// Whether `a` and `b` may run in either order.
fn independent(a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
    a.0 != b.0 && Some(a.0) != b.1 && Some(b.0) != a.1
}

/// Consecutive ranges of `ops` whose members are pairwise independent, in plan order.
pub fn waves(ops: &[Op]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    for (i, op) in ops.iter().enumerate() {
        let joins = i > start
            && footprint(op).is_some_and(|f| {
                ops[start..i]
                    .iter()
                    .all(|o| footprint(o).is_some_and(|g| independent(f, g)))
            });
        if !joins && i > start {
            out.push(start..i);
            start = i;
        }
    }
    if start < ops.len() {
        out.push(start..ops.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::Cidr;
    use crate::plan::RouteOp;

    fn vlan(name: &str, parent: &str) -> Op {
        Op::CreateVlan {
            name: name.into(),
            parent: parent.into(),
            id: 10,
            up: true,
        }
    }

    fn bridge(name: &str) -> Op {
        Op::CreateBridge {
            name: name.into(),
            stp: false,
            up: true,
        }
    }

    fn master(name: &str, m: &str) -> Op {
        Op::SetMaster {
            name: name.into(),
            master: Some(m.into()),
        }
    }

    #[test]
    fn a_vlan_bridge_stack_is_sent_in_dependency_levels() {
        let addr = |name: &str| Op::AddAddress {
            name: name.into(),
            cidr: "10.1.0.1/24".parse::<Cidr>().unwrap(),
        };
        let ops = vec![
            vlan("bond0.10", "bond0"),
            vlan("bond0.11", "bond0"),
            bridge("br10"),
            bridge("br11"),
            master("bond0.10", "br10"),
            master("bond0.11", "br11"),
            addr("br10"),
            addr("br11"),
            addr("br11"),
        ];
        assert_eq!(waves(&ops), vec![0..4, 4..6, 6..8, 8..9]);
    }

    #[test]
    fn bond_members_primary_and_parents_keep_their_order() {
        let ops = vec![
            Op::CreateBond {
                name: "bond0".into(),
                options: crate::plan::BondOptions {
                    mode: crate::spec::BondMode::ActiveBackup,
                    miimon: 100,
                    lacp_rate: None,
                    xmit_hash_policy: None,
                },
                up: true,
            },
            Op::SetDown {
                name: "ens4".into(),
            },
            master("ens4", "bond0"),
            Op::SetDown {
                name: "ens5".into(),
            },
            master("ens5", "bond0"),
            Op::SetPrimary {
                bond: "bond0".into(),
                member: "ens4".into(),
            },
            vlan("bond0.10", "bond0"),
        ];
        // ens4's master waits for the bond (it names it); ens5's down joins ens4's master;
        // the primary changes the bond the masters name; the VLAN names the bond again.
        assert_eq!(waves(&ops), vec![0..2, 2..4, 4..5, 5..6, 6..7]);
    }

    #[test]
    fn deletes_mtu_changes_and_routes_run_alone() {
        let route = RouteOp {
            destination: "10.9.0.0/16".parse().unwrap(),
            gateway: "10.1.0.254".parse().unwrap(),
            interface: None,
            metric: None,
        };
        let ops = vec![
            bridge("br1"),
            Op::DeleteLink { name: "br9".into() },
            bridge("br2"),
            Op::SetMtu {
                name: "br3".into(),
                mtu: 9000,
            },
            bridge("br4"),
            Op::AddRoute { route },
            bridge("br5"),
        ];
        assert_eq!(waves(&ops), vec![0..1, 1..2, 2..3, 3..4, 4..5, 5..6, 6..7]);
        assert!(waves(&[]).is_empty());
    }
}
