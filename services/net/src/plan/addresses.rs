//! Addresses: the spec's addresses added, others removed, except link-local ones, dynamic
//! ones on a DHCP interface, and IPv6 SLAAC addresses on a static one.

use super::context::Context;
use super::op::Op;
use crate::cidr::Cidr;
use std::collections::BTreeSet;
use std::net::IpAddr;

fn is_link_local(c: &Cidr) -> bool {
    match c.addr {
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(a) => a.is_link_local(),
    }
}

/// Add and remove addresses on every interface of the spec.
pub(super) fn configure(ctx: &Context<'_>, ops: &mut Vec<Op>) {
    for i in ctx.spec.ifaces() {
        let kname = ctx.k(i.name);
        let want: BTreeSet<Cidr> =
            i.ip.addresses
                .iter()
                .filter_map(|a| a.parse::<Cidr>().ok())
                .collect();
        let have: Vec<_> = ctx
            .present(&kname)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_addresses_are_told_apart() {
        let ll = |s: &str| is_link_local(&s.parse().unwrap());
        assert!(ll("fe80::1/64"));
        assert!(ll("169.254.3.4/16"));
        assert!(!ll("10.20.0.2/24"));
        assert!(!ll("2001:db8::1/64"));
    }
}
