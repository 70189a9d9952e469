//! Code the pool calls may panic: the few helpers that keep a panic where it belongs.

use std::any::Any;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

/// Runs `fut`, turning a panic in it into `Err` with the panic's message.
pub(crate) async fn catch_panic<F: Future>(fut: F) -> Result<F::Output, Arc<str>> {
    let mut fut = pin!(fut);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(panic) => Poll::Ready(Err(Arc::from(panic_message(&*panic)))),
        },
    )
    .await
}

/// The message of a caught panic, if it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(a panic without a message)"
    }
}

/// Closes (drops) a connection; a panic in its `Drop` is logged, not passed on.
pub(crate) fn close_quietly<T>(conn: T) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(conn))) {
        tracing::warn!(
            target: "pool_core",
            panic = %panic_message(&*panic),
            "a connection panicked while the pool closed it"
        );
    }
}
