//! VLANs: created on their parent with their id; one whose id or parent changed is made
//! again (the kernel cannot change either).

use super::context::Context;
use super::op::Op;
use crate::observed::ObservedLink;

/// Whether Cairn's link `l`, which the spec names as VLAN `name`, must be deleted and made
/// again: it is no VLAN, or one with another id or parent.
pub(super) fn must_recreate(ctx: &Context<'_>, l: &ObservedLink, name: &str) -> bool {
    let v = ctx
        .spec
        .vlans
        .iter()
        .find(|v| v.name == name)
        .expect("vlan");
    let parent = ctx.observed.by_name(&ctx.k(&v.parent)).map(|p| p.index);
    l.kind.as_deref() != Some("vlan")
        || l.vlan.is_none_or(|(id, p)| id != v.id || Some(p) != parent)
}

/// Create VLAN `name` (kernel name `kname`) unless it exists (`obs`).
pub(super) fn configure(
    ctx: &Context<'_>,
    name: &str,
    kname: &str,
    obs: Option<&ObservedLink>,
    ops: &mut Vec<Op>,
) {
    let v = ctx
        .spec
        .vlans
        .iter()
        .find(|v| v.name == name)
        .expect("vlan");
    if obs.is_none() {
        ops.push(Op::CreateVlan {
            name: kname.to_string(),
            parent: ctx.k(&v.parent),
            id: v.id,
            up: false,
        });
    }
}
