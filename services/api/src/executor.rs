//! The one executor of domain calls: a domain's service looked up, then a call run inline, on a
//! blocking thread, or as a task with progress that answers 202 at once.

use crate::domains::{Domains, Slot};
use crate::error::ApiError;
use crate::request::Ctx;
use crate::response::{json, Body};
use cairn_core::alert::{Progress, TaskAction};
use cairn_core::boot::error_chain;
use hyper::{Response, StatusCode};
use std::sync::Arc;

/// How the API reaches one domain: which service handle, and how its errors become the API's.
pub struct Domain<S: ?Sized + 'static, E: 'static> {
    /// The domain as messages name it ("storage", "VM").
    pub name: &'static str,
    /// The domain's slot (starting, ready, failed or absent).
    pub slot: fn(&Domains) -> &Slot<S>,
    /// The API error (status, code, field) for one of the service's errors.
    pub api_error: fn(E) -> ApiError,
}

/// What a started task says: its kind (`pool.create`) and its first message.
pub struct TaskText<'a> {
    pub kind: &'a str,
    pub message: &'a str,
}

impl<S: ?Sized + Send + Sync + 'static, E: Send + 'static> Domain<S, E> {
    /// The running service, or 503: `starting` (with `Retry-After`) while the daemon is
    /// still starting it, `unavailable` when its start failed or this node does not run it.
    pub fn service(&self, ctx: &Ctx<'_>) -> Result<Arc<S>, ApiError> {
        (self.slot)(&ctx.state.domains).service(self.name)
    }

    /// Run `f` on the async thread (for calls that only read memory).
    pub fn inline<T>(
        &self,
        service: &S,
        f: impl FnOnce(&S) -> Result<T, E>,
    ) -> Result<T, ApiError> {
        f(service).map_err(self.api_error)
    }

    /// Run a blocking call off the async threads (`f` gets the service's `Arc`, for calls
    /// that keep it, like the network's try mode).
    pub async fn blocking<T: Send + 'static>(
        &self,
        service: Arc<S>,
        f: impl FnOnce(&Arc<S>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError> {
        tokio::task::spawn_blocking(move || f(&service))
            .await
            .map_err(|e| ApiError::internal(format!("the {} call did not finish: {e}", self.name)))?
            .map_err(self.api_error)
    }

    /// Start a task that runs `f` on a blocking thread with the task as its progress sink;
    /// answers 202 with the task's view. `f`'s `Ok` is the finished task's message.
    pub fn task(
        &self,
        ctx: &Ctx<'_>,
        service: Arc<S>,
        text: TaskText<'_>,
        f: impl FnOnce(&Arc<S>, &dyn Progress) -> Result<String, E> + Send + 'static,
    ) -> Response<Body>
    where
        E: std::error::Error,
    {
        let handle = ctx.state.tasks.start(text.kind, text.message);
        let id = handle.id();
        let view = ctx
            .state
            .tasks
            .get(id)
            .map(|t| serde_json::to_value(t).unwrap_or_default())
            .unwrap_or_else(|| serde_json::json!({ "id": id }));
        tokio::task::spawn_blocking(move || match f(&service, &handle) {
            Ok(done) => handle.succeed(&done),
            Err(e) => handle.fail(&error_chain(&e)),
        });
        json(StatusCode::ACCEPTED, &view)
    }
}

/// Check `request` on a blocking thread (a refusal answers 4xx and starts nothing), then run
/// the checked action as a task; answers 202 with the task's view.
pub async fn check_then_run<S, E, A>(
    domain: &Domain<S, E>,
    ctx: &Ctx<'_>,
    service: Arc<S>,
    check: impl FnOnce(&Arc<S>) -> Result<A, E> + Send + 'static,
) -> Result<Response<Body>, ApiError>
where
    S: ?Sized + Send + Sync + 'static,
    E: std::error::Error + Send + 'static,
    A: TaskAction<Service = S, Error = E>,
{
    let action = domain.blocking(service.clone(), check).await?;
    let message = action.message();
    Ok(domain.task(
        ctx,
        service,
        TaskText {
            kind: action.kind(),
            message: &message,
        },
        move |s, p| action.run(s, p),
    ))
}
