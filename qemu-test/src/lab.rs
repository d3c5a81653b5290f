//! A lab run: one results directory (build/lab-results/<scenario>-<timestamp>/) and the nodes in it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use crate::accel::Decision;
use crate::artifacts::{workspace_root, Artifacts};
use crate::config::NodeConfig;
use crate::error::LabError;
use crate::lab_shared::LabShared;
use crate::node::Node;
use crate::timestamp::now_compact;

/// One lab run.
pub struct Lab {
    scenario: String,
    artifacts: Artifacts,
    shared: Arc<LabShared>,
    next_node: AtomicU32,
}

impl Lab {
    /// A lab for `scenario` using the build outputs of this workspace; errors if they are missing.
    pub fn new(scenario: &str) -> Result<Lab, LabError> {
        let artifacts = Artifacts::under(&workspace_root());
        if let Some(why) = artifacts.missing() {
            return Err(LabError::Unavailable { why });
        }
        Lab::with_artifacts(scenario, artifacts)
    }

    /// A lab for `scenario` from explicit artifacts.
    pub fn with_artifacts(scenario: &str, artifacts: Artifacts) -> Result<Lab, LabError> {
        let base = artifacts.root.join("build/lab-results");
        let mut dir = base.join(format!("{scenario}-{}", now_compact()));
        let mut n = 2;
        while dir.exists() {
            dir = base.join(format!("{scenario}-{}-{n}", now_compact()));
            n += 1;
        }
        std::fs::create_dir_all(&dir).map_err(|source| LabError::Io {
            what: "create the results directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Lab {
            scenario: scenario.to_string(),
            shared: Arc::new(LabShared {
                dir,
                failed: AtomicBool::new(false),
                kernel: artifacts.kernel.clone(),
                accel: OnceLock::new(),
            }),
            artifacts,
            next_node: AtomicU32::new(1),
        })
    }

    /// For scenario tests: the lab, or `None` after printing why it is skipped (no image, no
    /// QEMU, no firmware).
    pub fn for_test(scenario: &str) -> Option<Lab> {
        let artifacts = Artifacts::under(&workspace_root());
        if let Some(why) = artifacts.missing() {
            eprintln!("SKIP lab scenario {scenario}: {why}");
            return None;
        }
        match Lab::with_artifacts(scenario, artifacts) {
            Ok(lab) => Some(lab),
            Err(e) => panic!("lab scenario {scenario}: cannot set up the lab: {e}"),
        }
    }

    /// Results directory of this run.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The accelerator of this lab run (KVM or TCG, and why): decided when first asked or
    /// when the first node launches, once per lab run (decision 0020).
    pub fn accel(&self) -> Result<&Decision, LabError> {
        self.shared.accel()
    }

    /// The build outputs nodes boot from.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// Prepares a node (its own copy of the image, firmware variables, data disks) without
    /// starting it, so a scenario can change its disk first.
    pub fn prepare(&self, cfg: NodeConfig) -> Result<Node, LabError> {
        // The host disk is shared: wait a while for room rather than start a node that QEMU
        // would pause at its first write.
        crate::host_disk::wait_for_room(
            &self.shared.dir,
            crate::host_disk::PREPARE_FREE_BYTES,
            crate::deadline::Deadline::secs(300),
        )?;
        let no = self.next_node.fetch_add(1, Ordering::SeqCst);
        Node::prepare(cfg, no, &self.artifacts, self.shared.clone())
    }

    /// Prepares and starts a node.
    pub fn start(&self, cfg: NodeConfig) -> Result<Node, LabError> {
        let mut node = self.prepare(cfg)?;
        node.launch()?;
        Ok(node)
    }

    /// Marks the run failed (its results are then reported as kept for inspection).
    pub fn mark_failed(&self) {
        self.shared.failed.store(true, Ordering::SeqCst);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.shared.failed.load(Ordering::SeqCst) || std::thread::panicking() {
            eprintln!(
                "cairn-lab: scenario {} FAILED; serial logs, journals and service status kept in {}",
                self.scenario,
                self.shared.dir.display()
            );
        } else {
            eprintln!(
                "cairn-lab: scenario {} passed; logs in {}",
                self.scenario,
                self.shared.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_dirs_are_unique_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::under(dir.path());
        let l1 = Lab::with_artifacts("boot", a.clone()).unwrap();
        let l2 = Lab::with_artifacts("boot", a).unwrap();
        assert_ne!(l1.dir(), l2.dir());
        assert!(l1.dir().starts_with(dir.path().join("build/lab-results")));
        let name = l1.dir().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("boot-20"), "{name}");
    }

    #[test]
    fn missing_image_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = Artifacts::under(dir.path());
        let lab = Lab::with_artifacts("x", a).unwrap();
        // preparing a node copies the image, which is missing
        let err = lab
            .prepare(NodeConfig::new("n1", crate::config::BootMode::DirectKernel))
            .err()
            .unwrap();
        assert!(err.to_string().contains("copy"), "{err}");
    }
}
