//! Replicated VM disks with DRBD 8.4 (issue 18, decision 0027): numbering, records,
//! configuration, the "who is current" table, the fence-peer answers and `/proc/drbd`.

pub mod alloc;
pub mod apply;
pub mod config;
pub mod controller;
pub mod current;
pub mod enable;
pub mod fence;
pub mod follow;
pub mod handler;
pub mod names;
pub mod proc_status;
pub mod record;
pub mod retire;
pub mod side;
