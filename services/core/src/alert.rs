//! How domains report alerts, task progress and tasks of their own without depending on the
//! API or the task runtime.

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    Info,
    Warning,
    Critical,
}

/// Where a domain raises and clears alerts. cairn-tasks' alert registry implements it; it
/// deduplicates (a raise of an already-raised key at the same level is not a change) and
/// delivers changes by mail and webhook.
pub trait AlertSink: Send + Sync {
    /// Raise (or change the level or message of) the condition `key`, e.g. `disk/WWN/smart`.
    /// Returns whether this was a change.
    fn raise(&self, key: &str, level: AlertLevel, message: &str) -> bool;
    /// Clear the condition `key` (a no-op, returning false, when it is not raised).
    fn clear(&self, key: &str, message: &str) -> bool;
}

/// Where a long operation reports progress (a task of cairn-tasks implements it).
pub trait Progress: Send + Sync {
    /// Percent done (0–100) and what is happening now.
    fn progress(&self, percent: u8, message: &str);
}

/// Where a domain starts a long operation of its own (a scheduled scrub) as a task users
/// see beside the ones they started; cairn-tasks' task registry implements it.
pub trait TaskStarter: Send + Sync {
    /// The running side of a started task.
    type Run: TaskRun;
    /// Start a task of `kind` (e.g. `pool.scrub`) with a first message.
    fn start_task(&self, kind: &str, message: &str) -> Self::Run;
}

/// The running side of a task a domain started: progress, then one outcome. Dropping it
/// without an outcome marks the task failed.
pub trait TaskRun: Progress + Send + 'static {
    /// The task succeeded; `message` says with what.
    fn succeed(self, message: &str);
    /// The task failed; `message` says why.
    fn fail(self, message: &str);
}

/// A domain operation that runs as a task the user sees (a typed action the API executes):
/// checked before it starts, then run with the task as its progress sink. The domain owns
/// the type, so its task kinds, messages and done-texts live beside the code that does the
/// work; the API's executor runs any of them the same way.
pub trait TaskAction: Send + 'static {
    /// The service the action runs on.
    type Service: ?Sized + Send + Sync + 'static;
    /// The service's error; its chain becomes the failed task's message.
    type Error: std::error::Error + Send + 'static;
    /// The task kind, e.g. `pool.create`.
    fn kind(&self) -> &'static str;
    /// The task's first message, from what the check found.
    fn message(&self) -> String;
    /// Run the action; `Ok` carries the finished task's message.
    fn run(self, service: &Self::Service, progress: &dyn Progress) -> Result<String, Self::Error>;
}

/// Discards progress (for callers that do not show it).
pub struct NoProgress;

impl Progress for NoProgress {
    fn progress(&self, _percent: u8, _message: &str) {}
}

/// An alert sink that remembers every call, for tests of domains.
#[derive(Default)]
pub struct RecordingAlerts {
    /// Active conditions: key → (level, message).
    pub active: std::sync::Mutex<std::collections::BTreeMap<String, (AlertLevel, String)>>,
    /// Every change, in order: (key, Some(level) for a raise / None for a clear, message).
    pub changes: std::sync::Mutex<Vec<(String, Option<AlertLevel>, String)>>,
}

impl RecordingAlerts {
    /// The level of the active condition `key`, if it is raised.
    pub fn level(&self, key: &str) -> Option<AlertLevel> {
        lock(&self.active).get(key).map(|(l, _)| *l)
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AlertSink for RecordingAlerts {
    fn raise(&self, key: &str, level: AlertLevel, message: &str) -> bool {
        let mut active = lock(&self.active);
        if active.get(key).map(|(l, m)| (*l, m.as_str())) == Some((level, message)) {
            return false;
        }
        active.insert(key.to_string(), (level, message.to_string()));
        lock(&self.changes).push((key.to_string(), Some(level), message.to_string()));
        true
    }

    fn clear(&self, key: &str, message: &str) -> bool {
        if lock(&self.active).remove(key).is_none() {
            return false;
        }
        lock(&self.changes).push((key.to_string(), None, message.to_string()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_sink_deduplicates_and_clears_once() {
        let a = RecordingAlerts::default();
        assert!(a.raise("disk/x", AlertLevel::Warning, "hot"));
        assert!(!a.raise("disk/x", AlertLevel::Warning, "hot"));
        assert!(a.raise("disk/x", AlertLevel::Critical, "hot"));
        assert_eq!(a.level("disk/x"), Some(AlertLevel::Critical));
        assert!(a.clear("disk/x", "cool"));
        assert!(!a.clear("disk/x", "cool"));
        assert_eq!(lock(&a.changes).len(), 3);
    }

    #[test]
    fn levels_serialize_in_snake_case() {
        assert_eq!(
            serde_json::to_string(&AlertLevel::Critical).unwrap(),
            "\"critical\""
        );
    }
}
