//! Routes: the spec's routes with Cairn's protocol; those Cairn no longer wants are deleted
//! before addresses change (removing an address takes the routes through it along), the
//! missing ones added after the addresses that make their gateways reachable.

use super::context::Context;
use super::op::{Op, RouteOp};
use crate::cidr::Cidr;
use crate::observed::{ObservedRoute, ROUTE_PROTOCOL};
use std::net::IpAddr;

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

/// The spec's routes as the kernel should have them.
pub(super) fn wanted(ctx: &Context<'_>) -> Vec<RouteOp> {
    ctx.spec
        .routes
        .iter()
        .map(|r| RouteOp {
            destination: route_destination(&r.destination, &r.gateway),
            gateway: r.gateway,
            interface: r.interface.as_deref().map(|i| ctx.k(i)),
            metric: r.metric,
        })
        .collect()
}

/// Whether observed route `o` is wanted route `w` (on a link that stays).
fn matches(ctx: &Context<'_>, w: &RouteOp, o: &ObservedRoute) -> bool {
    o.destination == w.destination
        && o.gateway == Some(w.gateway)
        && o.metric.unwrap_or(0) == w.metric.unwrap_or(0)
        && w.interface.as_ref().is_none_or(|i| {
            o.oif
                .is_some_and(|x| ctx.observed.name_of(x) == *i && !ctx.deleted.contains(i))
        })
}

/// Delete Cairn's routes (its protocol) that are not in `want`, except those that go with
/// a deleted link.
pub(super) fn delete_unwanted(ctx: &Context<'_>, want: &[RouteOp], ops: &mut Vec<Op>) {
    let observed = ctx.observed;
    for o in observed
        .routes
        .iter()
        .filter(|r| r.protocol == ROUTE_PROTOCOL)
    {
        let gone_with_link = o
            .oif
            .is_some_and(|x| ctx.deleted.contains(&observed.name_of(x)));
        if gone_with_link || want.iter().any(|w| matches(ctx, w, o)) {
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
}

/// Add the routes of `want` that Cairn has not.
pub(super) fn add_missing(ctx: &Context<'_>, want: &[RouteOp], ops: &mut Vec<Op>) {
    for w in want {
        if !ctx
            .observed
            .routes
            .iter()
            .any(|o| o.protocol == ROUTE_PROTOCOL && matches(ctx, w, o))
        {
            ops.push(Op::AddRoute { route: w.clone() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_networks_and_default_follows_the_gateway() {
        let v4: IpAddr = "10.20.0.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            route_destination("default", &v4),
            "0.0.0.0/0".parse().unwrap()
        );
        assert_eq!(route_destination("default", &v6), "::/0".parse().unwrap());
        assert_eq!(
            route_destination("10.99.1.7/16", &v4),
            "10.99.0.0/16".parse().unwrap()
        );
    }
}
