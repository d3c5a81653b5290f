//! `GET /api/v1/tasks` and `GET /api/v1/tasks/{id}` over the node's task registry.

use crate::error::ApiError;
use crate::response::{json, Body};
pub use cairn_tasks::{Task, TaskHandle, TaskRegistry, TaskState};
use hyper::{Response, StatusCode};

#[derive(serde::Serialize)]
struct TaskList {
    tasks: Vec<Task>,
}

/// Handle `GET /api/v1/tasks`.
pub fn list(reg: &TaskRegistry) -> Response<Body> {
    json(StatusCode::OK, &TaskList { tasks: reg.list() })
}

/// Handle `GET /api/v1/tasks/{id}`.
pub fn get(reg: &TaskRegistry, id: &str) -> Result<Response<Body>, ApiError> {
    let task = id
        .parse::<u64>()
        .ok()
        .and_then(|n| reg.get(n))
        .ok_or_else(|| ApiError::not_found(&format!("/api/v1/tasks/{id}")))?;
    Ok(json(StatusCode::OK, &task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_tasks::EventBus;

    #[test]
    fn unknown_or_bad_id_is_not_found() {
        let reg = TaskRegistry::new(EventBus::new());
        assert_eq!(get(&reg, "99").unwrap_err().code, "not_found");
        assert_eq!(get(&reg, "abc").unwrap_err().code, "not_found");
    }
}
