//! cairn-lab: boots Cairn appliance nodes under QEMU (KVM where it works, else TCG), drives them, and checks them.

pub mod accel;
pub mod api_session;
pub mod artifacts;
pub mod bench;
pub mod child;
pub mod cluster_lab;
pub mod config;
pub mod deadline;
pub mod disks;
pub mod error;
pub mod esp;
pub mod ext4;
pub mod gpt;
pub mod health;
pub mod host_disk;
pub mod https;
pub mod lab;
mod lab_shared;
pub mod labdhcp;
pub mod labnet;
pub mod node;
pub mod qmp;
pub mod serial;
pub mod setup;
pub mod shell;
pub mod status;
pub mod timestamp;

pub use accel::{Accel, Decision};
pub use api_session::{ApiSession, LAB_PASSWORD};
pub use cluster_lab::{ClusterNode, ClusterOptions, LabCluster, LabNic};
pub use config::{BootMode, Bus, NicSpec, NodeConfig};
pub use deadline::Deadline;
pub use error::LabError;
pub use lab::Lab;
pub use node::Node;
