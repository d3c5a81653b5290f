//! cairn-tasks: long operations as tasks, alerts raised once per change, and the event bus
//! that carries both to the API's event stream and to alert delivery (no HTTP here).

#![warn(missing_docs)]

pub mod alert;
pub mod alerts;
pub mod clock;
pub mod events;
pub mod stream;
pub mod task;
pub mod tasks;

pub use alert::{severity, ActiveAlert, Alert, AlertState};
pub use alerts::AlertRegistry;
pub use cairn_core::alert::AlertLevel;
pub use clock::now_s;
pub use events::{Event, EventBus, EventKind, Subscription};
pub use stream::{stream, TooManyStreams};
pub use task::{Task, TaskState};
pub use tasks::{TaskHandle, TaskRegistry};
