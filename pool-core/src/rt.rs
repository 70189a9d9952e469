//! All coupling to the async runtime goes through here: spawning, sleeping, timeouts and the
//! clock. Deadlines are read through `tokio::time::Instant` only, so tests under tokio's paused
//! clock see the pool's timers move with the mocked time.

use std::future::Future;
use std::time::Duration;

pub(crate) use tokio::time::error::Elapsed;
pub(crate) use tokio::time::{Instant, Sleep};

/// The current instant on the runtime's clock (the mocked one under a paused test clock).
#[inline]
pub(crate) fn now() -> Instant {
    Instant::now()
}

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
    tokio::time::timeout_at(deadline, fut).await
}

/// A timer firing at `deadline`.
pub(crate) fn sleep_until(deadline: Instant) -> Sleep {
    tokio::time::sleep_until(deadline)
}
