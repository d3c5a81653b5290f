//! cairn-image: plans and writes the Cairn raw GPT disk image (see docs/decisions/0001-boot-contract.md).

pub mod error;
pub mod esp;
pub mod layout;
pub mod loader;
pub mod tools;
pub mod writer;

pub use error::ImageError;
pub use layout::{Layout, LayoutSpec, Partition, PartitionRole};
pub use tools::{RecordingTools, SystemTools, ToolCommand, Tools};
pub use writer::{write_image, ImageInputs};
