//! What the planner puts out: the netlink operations (shown as `ip`-like lines), the bond
//! and route shapes they carry, and why no plan could be made.

use crate::cidr::Cidr;
use crate::spec::{BondMode, LacpRate, XmitHashPolicy};
use serde::{Deserialize, Serialize};
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
    /// The link (kernel name) this op acts on; `None` for routes.
    pub fn link(&self) -> Option<&str> {
        match self {
            Op::DeleteLink { name }
            | Op::CreateBond { name, .. }
            | Op::SetBondOptions { name, .. }
            | Op::CreateBridge { name, .. }
            | Op::SetStp { name, .. }
            | Op::CreateVlan { name, .. }
            | Op::SetDown { name }
            | Op::SetMaster { name, .. }
            | Op::SetMtu { name, .. }
            | Op::SetUp { name }
            | Op::AddAddress { name, .. }
            | Op::DelAddress { name, .. } => Some(name),
            Op::SetPrimary { bond, .. } => Some(bond),
            Op::AddRoute { .. } | Op::DelRoute { .. } => None,
        }
    }

    /// What the op does to what it names: `create`, `change` or `remove`.
    pub fn change(&self) -> &'static str {
        match self {
            Op::CreateBond { .. }
            | Op::CreateBridge { .. }
            | Op::CreateVlan { .. }
            | Op::AddAddress { .. }
            | Op::AddRoute { .. } => "create",
            Op::DeleteLink { .. } | Op::DelAddress { .. } | Op::DelRoute { .. } => "remove",
            _ => "change",
        }
    }

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
pub(super) fn fold_up_into_create(ops: Vec<Op>) -> Vec<Op> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
