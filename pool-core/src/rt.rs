//! All coupling to the async runtime goes through here: spawning, sleeping and reading the
//! clock. Deadlines are read through `tokio::time::Instant` only, so tests under tokio's paused
//! clock see the pool's timers move with the mocked time.

use std::future::Future;

pub(crate) use tokio::time::Instant;

/// The current instant on the runtime's clock (the mocked one under a paused test clock).
#[inline]
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// Is there a Tokio runtime on this thread to spawn onto?
pub(crate) fn has_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

/// Spawns a background task if a runtime is available; returns whether it did.
pub(crate) fn try_spawn<F>(fut: F) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            drop(handle.spawn(fut));
            true
        }
        Err(_) => false,
    }
}
