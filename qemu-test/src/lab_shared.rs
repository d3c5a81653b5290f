//! What a lab run and its nodes share: the results directory, whether the run failed, and
//! the run's accelerator (its own module so that `lab` and `node` both use it without
//! reaching into each other).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use crate::accel::{self, Decision};
use crate::error::LabError;

/// State shared between a lab and its nodes.
#[derive(Debug)]
pub(crate) struct LabShared {
    pub(crate) dir: PathBuf,
    pub(crate) failed: AtomicBool,
    /// The kernel the accelerator probe boots (the one the nodes boot).
    pub(crate) kernel: PathBuf,
    /// The run's accelerator, once a node needed it.
    pub(crate) accel: OnceLock<Decision>,
}

impl LabShared {
    /// The lab run's accelerator: decided on first use (see `accel::for_run`: forced,
    /// cached for the run, or probed), then the same for every node of this lab.
    pub(crate) fn accel(&self) -> Result<&Decision, LabError> {
        if let Some(d) = self.accel.get() {
            return Ok(d);
        }
        let d = accel::for_run(&self.kernel)?;
        Ok(self.accel.get_or_init(|| d))
    }
}
