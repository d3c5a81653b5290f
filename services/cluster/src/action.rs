//! Typed cluster actions the API starts as tasks: create, join, leave, remove, recover.

use crate::error::ClusterError;
use crate::service::ClusterService;
use crate::types::{CreateCluster, JoinCluster, RecoverCluster};
use cairn_core::alert::{Progress, TaskAction};

/// A checked cluster action.
#[derive(Debug, Clone)]
pub enum ClusterTask {
    Create(CreateCluster),
    Join(JoinCluster),
    Leave,
    Remove {
        node: String,
    },
    /// Quorum lost for good: a new cluster of one from a snapshot.
    Recover(RecoverCluster),
}

impl ClusterTask {
    /// Check the request before a task starts (422/409 come from here).
    pub fn check(self, service: &ClusterService) -> Result<ClusterTask, ClusterError> {
        match &self {
            ClusterTask::Create(req) => service.check_create(req)?,
            ClusterTask::Join(req) => service.check_join(req)?,
            ClusterTask::Recover(req) => service.check_recover(req)?,
            ClusterTask::Leave => service.check_leave()?,
            ClusterTask::Remove { .. } => service.check_change()?,
        }
        Ok(self)
    }
}

impl TaskAction for ClusterTask {
    type Service = ClusterService;
    type Error = ClusterError;

    fn kind(&self) -> &'static str {
        match self {
            ClusterTask::Create(_) => "cluster.create",
            ClusterTask::Join(_) => "cluster.join",
            ClusterTask::Leave => "cluster.leave",
            ClusterTask::Remove { .. } => "cluster.remove",
            ClusterTask::Recover(_) => "cluster.recover",
        }
    }

    fn message(&self) -> String {
        match self {
            ClusterTask::Create(req) => format!("creating cluster {}", req.name),
            ClusterTask::Join(_) => "joining the cluster".to_string(),
            ClusterTask::Leave => "leaving the cluster".to_string(),
            ClusterTask::Remove { node } => format!("removing node {node}"),
            ClusterTask::Recover(_) => "recovering the cluster on this node".to_string(),
        }
    }

    fn run(
        self,
        service: &ClusterService,
        progress: &dyn Progress,
    ) -> Result<String, ClusterError> {
        match self {
            ClusterTask::Create(req) => service.create(req, progress),
            ClusterTask::Join(req) => service.join(req, progress),
            ClusterTask::Leave => service.leave(progress),
            ClusterTask::Remove { node } => service.remove(&node, progress),
            ClusterTask::Recover(req) => service.recover(req, progress),
        }
    }
}
