//! The registry of tasks: start one, report progress, end it; the running side fails the
//! task if dropped unfinished, and every change is published on the event bus.

use crate::clock::now_s;
use crate::events::{EventBus, EventKind};
use crate::task::{Task, TaskState};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many finished tasks are kept for listing.
pub const KEEP_FINISHED: usize = 200;

#[derive(Default)]
struct Inner {
    next: u64,
    tasks: BTreeMap<u64, Task>,
}

/// All tasks of this node; cloning shares the registry.
#[derive(Clone)]
pub struct TaskRegistry {
    inner: Arc<Mutex<Inner>>,
    bus: EventBus,
}

/// The running side of a task: report progress, then succeed or fail. Dropping it unfinished
/// marks the task failed, so a task never stays "running" after its worker is gone.
pub struct TaskHandle {
    id: u64,
    registry: TaskRegistry,
    finished: bool,
}

impl TaskRegistry {
    /// A registry publishing every change on `bus`.
    pub fn new(bus: EventBus) -> Self {
        TaskRegistry {
            inner: Arc::new(Mutex::new(Inner {
                next: 1,
                tasks: BTreeMap::new(),
            })),
            bus,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a task of `kind` with a first message.
    pub fn start(&self, kind: &str, message: &str) -> TaskHandle {
        let now = now_s();
        let task = {
            let mut inner = self.lock();
            let id = inner.next;
            inner.next += 1;
            let task = Task {
                id,
                kind: kind.to_string(),
                state: TaskState::Running,
                progress: 0,
                message: message.to_string(),
                created: now,
                updated: now,
            };
            inner.tasks.insert(id, task.clone());
            task
        };
        let id = task.id;
        self.bus.publish(EventKind::Task(task));
        TaskHandle {
            id,
            registry: self.clone(),
            finished: false,
        }
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Task)) {
        let changed = {
            let mut inner = self.lock();
            let Some(t) = inner.tasks.get_mut(&id) else {
                return;
            };
            f(t);
            t.updated = now_s();
            let t = t.clone();
            prune(&mut inner);
            t
        };
        self.bus.publish(EventKind::Task(changed));
    }

    /// Every kept task, newest first.
    pub fn list(&self) -> Vec<Task> {
        self.lock().tasks.values().rev().cloned().collect()
    }

    /// One task.
    pub fn get(&self, id: u64) -> Option<Task> {
        self.lock().tasks.get(&id).cloned()
    }
}

/// Drop the oldest finished tasks beyond [`KEEP_FINISHED`]; running ones always stay.
fn prune(inner: &mut Inner) {
    let finished: Vec<u64> = inner
        .tasks
        .values()
        .filter(|t| t.state != TaskState::Running)
        .map(|t| t.id)
        .collect();
    if finished.len() > KEEP_FINISHED {
        for id in &finished[..finished.len() - KEEP_FINISHED] {
            inner.tasks.remove(id);
        }
    }
}

impl TaskHandle {
    /// The task's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Report progress (clamped to 100) and what is being done.
    pub fn progress(&self, percent: u8, message: &str) {
        self.registry.update(self.id, |t| {
            t.progress = percent.min(100);
            t.message = message.to_string();
        });
    }

    /// The task succeeded.
    pub fn succeed(mut self, message: &str) {
        self.finished = true;
        self.registry.update(self.id, |t| {
            t.state = TaskState::Succeeded;
            t.progress = 100;
            t.message = message.to_string();
        });
    }

    /// The task failed; `message` says why.
    pub fn fail(mut self, message: &str) {
        self.finished = true;
        self.registry.update(self.id, |t| {
            t.state = TaskState::Failed;
            t.message = message.to_string();
        });
    }
}

/// Domains report the progress of long operations through this trait.
impl cairn_core::alert::Progress for TaskHandle {
    fn progress(&self, percent: u8, message: &str) {
        TaskHandle::progress(self, percent, message)
    }
}

/// Domains end the tasks they started themselves through this trait.
impl cairn_core::alert::TaskRun for TaskHandle {
    fn succeed(self, message: &str) {
        TaskHandle::succeed(self, message)
    }

    fn fail(self, message: &str) {
        TaskHandle::fail(self, message)
    }
}

/// Domains start tasks of their own (scheduled scrubs) through this trait.
impl cairn_core::alert::TaskStarter for TaskRegistry {
    type Run = TaskHandle;

    fn start_task(&self, kind: &str, message: &str) -> TaskHandle {
        self.start(kind, message)
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if !self.finished {
            self.registry.update(self.id, |t| {
                t.state = TaskState::Failed;
                t.message = format!("stopped without a result (last: {})", t.message);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_events() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe();
        let reg = TaskRegistry::new(bus);
        let h = reg.start("pool.create", "checking disks");
        let id = h.id();
        h.progress(150, "writing");
        assert_eq!(reg.get(id).unwrap().progress, 100, "clamped");
        h.progress(40, "syncing");
        let t = reg.get(id).unwrap();
        assert_eq!(
            (t.state, t.progress, t.message.as_str()),
            (TaskState::Running, 40, "syncing")
        );
        h.succeed("pool ready");
        let t = reg.get(id).unwrap();
        assert_eq!((t.state, t.progress), (TaskState::Succeeded, 100));
        let mut seen = Vec::new();
        while let Ok(ev) = sub.events.try_recv() {
            match ev.kind {
                EventKind::Task(t) => seen.push((t.progress, t.state)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            seen,
            vec![
                (0, TaskState::Running),
                (100, TaskState::Running),
                (40, TaskState::Running),
                (100, TaskState::Succeeded)
            ]
        );
    }

    #[test]
    fn dropped_handle_fails_the_task() {
        let reg = TaskRegistry::new(EventBus::new());
        let id = {
            let h = reg.start("scrub", "reading");
            h.id()
        };
        let t = reg.get(id).unwrap();
        assert_eq!(t.state, TaskState::Failed);
        assert!(t.message.contains("reading"), "{}", t.message);
        let h = reg.start("x", "y");
        h.fail("disk vanished");
        assert_eq!(reg.list()[0].message, "disk vanished");
    }

    #[test]
    fn keeps_running_tasks_and_prunes_old_finished() {
        let reg = TaskRegistry::new(EventBus::new());
        let running = reg.start("long", "going");
        for _ in 0..KEEP_FINISHED + 5 {
            reg.start("short", "x").succeed("done");
        }
        assert!(reg.get(running.id()).is_some());
        assert_eq!(reg.list().len(), KEEP_FINISHED + 1);
        assert!(reg.get(2).is_none(), "oldest finished pruned");
    }
}
