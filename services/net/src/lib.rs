//! cairn-net: the declarative network spec, validation, the rtnetlink planner and apply, safe apply.

pub mod action;
pub mod cidr;
pub mod dhcp;
pub mod monitor;
pub mod netlink;
pub mod observed;
pub mod plan;
pub mod service;
pub mod spec;
pub mod status;
pub mod validate;
pub mod waves;

pub use service::{Network, NetworkOptions};
