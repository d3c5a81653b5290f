//! Bonds: recreated when their mode changed, created with their options, options kept in
//! line, members enslaved (set down first), the primary member set.

use super::context::Context;
use super::op::{BondOptions, Op};
use crate::observed::ObservedLink;
use crate::spec::{BondSpec, LacpRate, XmitHashPolicy};

/// The options the spec wants for bond `b`.
pub(super) fn bond_options(b: &BondSpec) -> BondOptions {
    BondOptions {
        mode: b.mode,
        miimon: b.miimon,
        lacp_rate: b.lacp_rate,
        xmit_hash_policy: b.xmit_hash_policy,
    }
}

/// Whether observed bond `o` has the mode of `want`, and whether it has its other options.
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

/// Whether Cairn's link `l`, which the spec names as bond `name`, must be deleted and made
/// again: it is no bond, or one of another mode (the kernel cannot change a bond's mode).
pub(super) fn must_recreate(ctx: &Context<'_>, l: &ObservedLink, name: &str) -> bool {
    let b = ctx
        .spec
        .bonds
        .iter()
        .find(|b| b.name == name)
        .expect("bond");
    let want = bond_options(b);
    l.kind.as_deref() != Some("bond") || !bond_matches(l, &want).0
}

/// Create bond `name` (kernel name `kname`, observed as `obs`) or set its options, enslave
/// its members and set its primary.
pub(super) fn configure(
    ctx: &Context<'_>,
    name: &str,
    kname: &str,
    obs: Option<&ObservedLink>,
    ops: &mut Vec<Op>,
) {
    let b = ctx
        .spec
        .bonds
        .iter()
        .find(|b| b.name == name)
        .expect("bond");
    let want = bond_options(b);
    match obs {
        None => {
            ops.push(Op::CreateBond {
                name: kname.to_string(),
                options: want,
                up: false,
            });
        }
        Some(o) => {
            if !bond_matches(o, &want).1 {
                ops.push(Op::SetBondOptions {
                    name: kname.to_string(),
                    options: want,
                });
            }
        }
    }
    for m in &b.members {
        let km = ctx.k(m);
        let mo = ctx.present(&km);
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
                master: Some(kname.to_string()),
            });
        }
    }
    if let Some(p) = &b.primary {
        let kp = ctx.k(p);
        let current = obs.and_then(|o| o.bond.as_ref()).and_then(|bo| bo.primary);
        let want_idx = ctx.present(&kp).map(|o| o.index);
        if obs.is_none() || current.is_none() || current != want_idx {
            ops.push(Op::SetPrimary {
                bond: kname.to_string(),
                member: kp,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::ObservedBond;
    use crate::spec::BondMode;

    fn observed(mode: &str, miimon: u32, lacp: Option<&str>) -> ObservedLink {
        ObservedLink {
            name: "bond0".into(),
            kind: Some("bond".into()),
            bond: Some(ObservedBond {
                mode: mode.into(),
                miimon,
                lacp_rate: lacp.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_mode_and_the_other_options_are_told_apart() {
        let want = BondOptions {
            mode: BondMode::Lacp,
            miimon: 100,
            lacp_rate: Some(LacpRate::Fast),
            xmit_hash_policy: None,
        };
        assert_eq!(
            bond_matches(&observed("802.3ad", 100, Some("fast")), &want),
            (true, true)
        );
        // Another miimon or LACP rate is changed in place; another mode is not.
        assert_eq!(
            bond_matches(&observed("802.3ad", 200, Some("fast")), &want),
            (true, false)
        );
        assert_eq!(
            bond_matches(&observed("802.3ad", 100, Some("slow")), &want),
            (true, false)
        );
        assert!(!bond_matches(&observed("active-backup", 100, Some("fast")), &want).0);
        // A link that is no bond matches nothing.
        assert_eq!(
            bond_matches(&ObservedLink::default(), &want),
            (false, false)
        );
    }
}
