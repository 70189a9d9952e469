//! The background connector: the only place connections are opened.
//!
//! # Implementation details
//!
//! One task per pool, holding only a `Weak` to the shared state, so it never keeps a dropped
//! pool alive. It sleeps on `Signals::connector` and, when woken, asks the state for an
//! approval ([`State::approve_connect`](crate::state::State::approve_connect)): the demand is
//! re-checked just before every connect, so a burst that returns connections faster than a
//! connect takes opens nothing more. Each connect runs in its own task (at most
//! `connect_concurrency` at once), bounded by `connect_timeout`, and is never cancelled by a
//! caller giving up; its outcome settles the approval. A `connect` that panics is a failed
//! connect like any other (its error, [`ConnectError::Panicked`], carries the message). After a failure the next attempt waits
//! for a full-jitter exponential backoff.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Poll;

use tracing::Instrument;

use crate::error::ConnectError;
use crate::manager::Manager;
use crate::rt;
use crate::shared::{panic_message, Shared, Signals};
use crate::state::{Approval, Next};

pub(crate) async fn run<M: Manager>(pool: Weak<Shared<M>>, signals: Arc<Signals>) {
    loop {
        if signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        let next = {
            let Some(shared) = pool.upgrade() else { return };
            let mut st = shared.state.lock();
            if st.is_closed() {
                return;
            }
            match st.approve_connect(rt::now()) {
                Next::Connect(approval) => {
                    drop(st);
                    rt::spawn(connect_one(Arc::clone(&shared), approval));
                    continue;
                }
                next => next,
            }
        };
        match next {
            Next::WaitUntil(t) => {
                let _ = rt::timeout_at(t, signals.connector.notified()).await;
            }
            _ => signals.connector.notified().await,
        }
    }
}

async fn connect_one<M: Manager>(shared: Arc<Shared<M>>, approval: Approval) {
    let span = tracing::debug_span!(target: "pool_core", "pool.connect", pool = %shared.name);
    connect_and_settle(shared, approval).instrument(span).await
}

async fn connect_and_settle<M: Manager>(shared: Arc<Shared<M>>, approval: Approval) {
    let started = rt::now();
    let limit = shared.config.connect_timeout;
    let result = match rt::timeout(limit, catch_panic(shared.manager.connect())).await {
        Ok(Ok(Ok(conn))) => Ok(conn),
        Ok(Ok(Err(e))) => Err(ConnectError::Backend(Arc::new(e))),
        Ok(Err(message)) => Err(ConnectError::Panicked(message)),
        Err(_) => Err(ConnectError::TimedOut(limit)),
    };
    let result = match (result, &shared.hooks.after_connect) {
        (Ok(mut conn), Some(hook)) => {
            let hook_limit = shared.config.hook_timeout;
            let span = tracing::debug_span!(target: "pool_core", "pool.after_connect", pool = %shared.name);
            match rt::timeout(hook_limit, catch_panic(hook(&mut conn)))
                .instrument(span)
                .await
            {
                Ok(Ok(Ok(()))) => Ok(conn),
                failed => {
                    let why: Arc<str> = match failed {
                        Ok(Ok(Err(e))) => format!("failed: {e}").into(),
                        Ok(Err(message)) => format!("panicked: {message}").into(),
                        _ => format!("timed out after {hook_limit:?}").into(),
                    };
                    close_quietly_raw(conn);
                    Err(ConnectError::Hook(why))
                }
            }
        }
        (result, _) => result,
    };
    shared.connect_done(approval, result, started);
}

/// Closes a connection the pool never counted; a panic in its `Drop` is logged.
fn close_quietly_raw<C>(conn: C) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(move || drop(conn))) {
        tracing::warn!(
            target: "pool_core",
            panic = %panic_message(&*panic),
            "a connection panicked while the pool closed it"
        );
    }
}

/// Runs `fut`, turning a panic in it into `Err` with the panic's message, so the approval is
/// always settled and the connector carries on.
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
