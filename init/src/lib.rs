//! cairn-init: PID 1 of a Cairn node (initramfs stage 1, stage 2 init) and its service supervisor.

pub mod blockdev;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod control;
pub mod identity;
pub mod kmod;
pub mod log;
pub mod mounts;
pub mod node_stop;
pub mod notify;
pub mod powerbutton;
pub mod process;
pub mod runtime;
pub mod shutdown;
pub mod stage1;
pub mod stage2;
pub mod supervisor;
pub mod varskel;
