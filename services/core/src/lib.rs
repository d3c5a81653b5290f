//! cairn-core: pieces shared by cairnd, cairn-init and the tools (atomic files, boot records).

pub mod atomic;
pub mod bless;
pub mod boot;
pub mod cmdline;
pub mod efivar;
pub mod entry;
pub mod esp;
pub mod failures;
pub mod slot;

pub use atomic::{write_atomic, AtomicWriteError};
pub use slot::Slot;
