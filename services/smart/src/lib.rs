//! cairn-smart: the smartctl JSON model, health rules, per-disk history and the self-test schedule.

pub mod action;
pub mod drive_class;
pub mod endurance;
pub mod error;
pub mod history;
pub mod model;
pub mod packed;
pub mod rules;
pub mod schedule;
pub mod self_test;
pub mod service;
pub mod settings;
pub mod smartctl;
mod store;
pub mod verdict;
pub mod views;

pub use endurance::Endurance;
pub use error::SmartError;
pub use model::SmartctlOutput;
pub use rules::{interpret, interpret_saved, Context, DriveClass, Evaluation, Outcome};
pub use schedule::TestKind;
pub use service::{Config, DiskSummary, SmartDetail, SmartService, SmartSummary};
pub use settings::DiskSettings;
pub use verdict::{Counters, Reason, Severity, Verdict};
