//! Links: spec names as kernel names, Cairn's links that the spec dropped or that must be
//! made again deleted (with the VLANs on them), links released from masters they should no
//! longer be in, and every interface's MTU and admin state.

use super::context::Context;
use super::op::{Op, PlanError};
use super::{bonds, bridges, vlans};
use crate::observed::{Observed, ObservedLink};
use crate::spec::{Iface, Kind, NetworkSpec};
use std::collections::{BTreeMap, BTreeSet};

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

/// Deletion order of Cairn's links: VLANs first, then bridges, then the rest.
fn kind_rank(l: &ObservedLink) -> u8 {
    match l.kind.as_deref() {
        Some("vlan") => 0,
        Some("bridge") => 1,
        _ => 2,
    }
}

/// Delete Cairn's links that the spec dropped or that must be made again; returns the
/// links that go, with the VLANs (Cairn's or not) that go with a deleted parent (no op of
/// their own).
pub(super) fn delete_stale(ctx: &Context<'_>, ops: &mut Vec<Op>) -> BTreeSet<String> {
    let (spec, observed) = (ctx.spec, ctx.observed);
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut owned: Vec<&ObservedLink> = observed.links.iter().filter(|l| l.owned()).collect();
    owned.sort_by_key(|l| kind_rank(l));
    let mut explicit: BTreeSet<String> = BTreeSet::new();
    for l in &owned {
        let recreate = match spec.iface(&l.name) {
            None => true,
            Some(i) => match i.kind {
                Kind::Link => true,
                Kind::Bond => bonds::must_recreate(ctx, l, &l.name),
                Kind::Bridge => bridges::must_recreate(l),
                Kind::Vlan => vlans::must_recreate(ctx, l, &l.name),
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
    deleted
}

/// Release links from masters they should no longer be in (only links the spec names, or
/// in a master that is Cairn's or the spec's).
pub(super) fn release_masters(ctx: &Context<'_>, ops: &mut Vec<Op>) {
    let (spec, observed, deleted) = (ctx.spec, ctx.observed, &ctx.deleted);
    // Who should be enslaved to whom (kernel names).
    let mut master_of: BTreeMap<String, String> = BTreeMap::new();
    for b in &spec.bonds {
        for m in &b.members {
            master_of.insert(ctx.k(m), b.name.clone());
        }
    }
    for b in &spec.bridges {
        for p in &b.ports {
            master_of.insert(ctx.k(p), b.name.clone());
        }
    }
    let desired: BTreeSet<String> = spec.ifaces().iter().map(|i| ctx.k(i.name)).collect();
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
}

/// A physical link the spec names must exist (`obs`): the planner cannot make one.
pub(super) fn require(name: &str, obs: Option<&ObservedLink>) -> Result<(), PlanError> {
    if obs.is_none() {
        return Err(PlanError::MissingLink(name.to_string()));
    }
    Ok(())
}

/// Set interface `iface`'s MTU when the spec fixes one, and set it up unless it is a bond
/// member (the bond opens its members itself).
pub(super) fn set_mtu_and_up(
    ctx: &Context<'_>,
    iface: &Iface<'_>,
    kname: &str,
    obs: Option<&ObservedLink>,
    ops: &mut Vec<Op>,
) {
    if let Some(mtu) = iface.mtu {
        if obs.is_none_or(|o| o.mtu != mtu) {
            ops.push(Op::SetMtu {
                name: kname.to_string(),
                mtu,
            });
        }
    }
    let is_member = ctx
        .spec
        .bonds
        .iter()
        .any(|b| b.members.iter().any(|m| m == iface.name));
    if !is_member && obs.is_none_or(|o| !o.up) {
        ops.push(Op::SetUp {
            name: kname.to_string(),
        });
    }
}
