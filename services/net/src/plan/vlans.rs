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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::Observed;
    use crate::spec::NetworkSpec;
    use std::collections::BTreeMap;

    fn link(index: u32, name: &str, kind: Option<&str>, vlan: Option<(u16, u32)>) -> ObservedLink {
        ObservedLink {
            index,
            name: name.into(),
            kind: kind.map(str::to_string),
            vlan,
            ..Default::default()
        }
    }

    #[test]
    fn a_vlan_with_another_id_or_parent_is_made_again() {
        let spec: NetworkSpec = serde_json::from_value(serde_json::json!({
            "links": [{"name": "ens4"}, {"name": "ens5"}],
            "vlans": [{"name": "v20", "parent": "ens4", "id": 20}],
        }))
        .unwrap();
        let observed = Observed {
            links: vec![link(3, "ens4", None, None), link(4, "ens5", None, None)],
            routes: vec![],
        };
        let ctx = Context::new(&spec, &observed, BTreeMap::new());
        let vlan = |kind, id, parent| link(9, "v20", Some(kind), Some((id, parent)));
        assert!(!must_recreate(&ctx, &vlan("vlan", 20, 3), "v20"));
        assert!(
            must_recreate(&ctx, &vlan("vlan", 21, 3), "v20"),
            "another id"
        );
        assert!(
            must_recreate(&ctx, &vlan("vlan", 20, 4), "v20"),
            "another parent"
        );
        assert!(
            must_recreate(&ctx, &vlan("bridge", 20, 3), "v20"),
            "no VLAN"
        );
    }
}
