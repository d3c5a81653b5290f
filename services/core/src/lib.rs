//! cairn-core: pieces shared by cairnd, the domains and the tools (boot records, the command
//! runner, alert and progress sinks, rejected values as messages show them).

pub mod alert;
pub mod bless;
pub mod boot;
pub mod civil;
pub mod command;
pub mod disk;
pub mod efivar;
pub mod entry;
pub mod esp;
pub mod failures;
pub mod shown;
pub mod store;

// The std-only pieces live in cairn-base (cairn-init uses them too); these paths stay for
// the services that reach them through cairn-core.
pub use cairn_base::cmdline;
pub use cairn_base::{write_atomic, AtomicWriteError, Slot};
