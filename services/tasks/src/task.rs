//! A task as the API shows it: what runs, where it is, how it ended.

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Its worker is still at it.
    Running,
    /// It ended well; the message says with what.
    Succeeded,
    /// It ended badly (or its worker went away); the message says why.
    Failed,
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// Numbered from 1 in start order on this node.
    pub id: u64,
    /// What kind of operation, e.g. `pool.create`.
    pub kind: String,
    /// Running, succeeded or failed.
    pub state: TaskState,
    /// 0–100.
    pub progress: u8,
    /// What the task is doing now, or how it ended.
    pub message: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Seconds since the Unix epoch of the last change.
    pub updated: u64,
}
