//! cairn-core: pieces shared by cairnd, the domains and the tools (atomic files, boot records,
//! the command runner, alert and progress sinks, rejected values as messages show them).

pub mod alert;
pub mod atomic;
pub mod bless;
pub mod boot;
pub mod civil;
pub mod cmdline;
pub mod command;
pub mod disk;
pub mod efivar;
pub mod entry;
pub mod esp;
pub mod failures;
pub mod shown;
pub mod slot;
pub mod store;

pub use atomic::{write_atomic, AtomicWriteError};
pub use slot::Slot;
