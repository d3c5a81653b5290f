//! Bridges: created with their STP setting, STP kept in line, ports enslaved.

use super::context::Context;
use super::op::Op;
use crate::observed::ObservedLink;

/// Whether Cairn's link `l`, which the spec names as a bridge, must be deleted and made
/// again: it is no bridge.
pub(super) fn must_recreate(l: &ObservedLink) -> bool {
    l.kind.as_deref() != Some("bridge")
}

/// Create bridge `name` (kernel name `kname`, observed as `obs`) or set its STP, and
/// enslave its ports.
pub(super) fn configure(
    ctx: &Context<'_>,
    name: &str,
    kname: &str,
    obs: Option<&ObservedLink>,
    ops: &mut Vec<Op>,
) {
    let br = ctx
        .spec
        .bridges
        .iter()
        .find(|b| b.name == name)
        .expect("bridge");
    match obs {
        None => {
            ops.push(Op::CreateBridge {
                name: kname.to_string(),
                stp: br.stp,
                up: false,
            });
        }
        Some(o) => {
            if o.stp != Some(br.stp) {
                ops.push(Op::SetStp {
                    name: kname.to_string(),
                    stp: br.stp,
                });
            }
        }
    }
    for p in &br.ports {
        let kp = ctx.k(p);
        let po = ctx.present(&kp);
        let enslaved = po
            .and_then(|o| o.master)
            .is_some_and(|idx| obs.is_some_and(|bo| bo.index == idx));
        if !enslaved {
            ops.push(Op::SetMaster {
                name: kp.clone(),
                master: Some(kname.to_string()),
            });
        }
    }
}
