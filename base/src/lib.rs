//! cairn-base: std-only pieces that cairn-init (PID 1, static) and cairn-core both use.
#![warn(missing_docs)]

pub mod atomic;
pub mod cmdline;
pub mod error_chain;
pub mod slot;

pub use atomic::{write_atomic, AtomicWriteError};
pub use cmdline::{CmdlineError, KernelCmdline};
pub use error_chain::error_chain;
pub use slot::{BadSlot, Slot};
