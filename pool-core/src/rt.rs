//! The coupling to Tokio's runtime: spawning, timeouts and timers. Time itself (the engine's
//! [`Instant`], the hot path's stamps) is `clock.rs`.

use std::future::Future;
use std::time::Duration;

pub(crate) use tokio::time::error::Elapsed;
pub(crate) use tokio::time::Sleep;

use crate::clock::Instant;

/// Is there a Tokio runtime on this thread to spawn onto?
pub(crate) fn has_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Spawns a background task on the current runtime; without one (it has shut down, or this
/// thread never had one) the task is dropped unrun.
pub(crate) fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        drop(handle.spawn(fut));
    }
}

/// `fut`, or `Err` once `limit` has passed.
pub(crate) async fn timeout<F: Future>(limit: Duration, fut: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(limit, fut).await
}

/// `fut`, or `Err` at `deadline`.
pub(crate) async fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout_at(deadline.to_tokio(), fut).await
}

/// A timer firing at `deadline`.
pub(crate) fn sleep_until(deadline: Instant) -> Sleep {
    tokio::time::sleep_until(deadline.to_tokio())
}
