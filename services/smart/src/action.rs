//! Typed SMART actions that run as tasks: checked first (the disk is known and no test is
//! running on it), then run with progress.

use crate::error::SmartError;
use crate::schedule::TestKind;
use crate::service::SmartService;
use cairn_core::alert::{Progress, TaskAction};

/// A SMART action that runs as a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmartTask {
    /// Run a drive self-test of `kind` on `disk` and wait for its result.
    SelfTest { disk: String, kind: TestKind },
}

impl SmartTask {
    /// Check the action without starting anything; a refusal says why.
    pub fn check(&self, smart: &SmartService) -> Result<(), SmartError> {
        match self {
            SmartTask::SelfTest { disk, .. } => smart.check_self_test(disk),
        }
    }
}

impl TaskAction for SmartTask {
    type Service = SmartService;
    type Error = SmartError;

    /// The task kind the API and the events show.
    fn kind(&self) -> &'static str {
        match self {
            SmartTask::SelfTest { .. } => "smart.selftest",
        }
    }

    /// The task's first message.
    fn message(&self) -> String {
        match self {
            SmartTask::SelfTest { disk, kind } => format!("{} self-test of {disk}", kind.as_str()),
        }
    }

    /// Run the action (blocks for the test's duration); `Ok` carries the result's summary.
    fn run(self, smart: &SmartService, progress: &dyn Progress) -> Result<String, SmartError> {
        match self {
            SmartTask::SelfTest { disk, kind } => smart.run_self_test(&disk, kind, progress),
        }
    }
}
