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

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tracing::Instrument;

use crate::error::ConnectError;
use crate::hooks::Stage;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::signals::Signals;
use crate::state::{Approval, Next};
use crate::stats::ConnectionInfo;
use crate::unwind::{catch_panic, close_quietly};
use crate::{clock, rt};

pub(crate) async fn run<M: Manager>(pool: Weak<Shared<M>>, signals: Arc<Signals>) {
    loop {
        if signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        let next = {
            let Some(shared) = pool.upgrade() else { return };
            match shared.next_connect() {
                None => return,
                Some(Next::Connect(approval)) => {
                    rt::spawn(connect_one(Arc::clone(&shared), approval));
                    continue;
                }
                Some(next) => next,
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
    // Held until the outcome settles the approval: a task dropped mid-connect (its runtime
    // shut down) gives the approval back.
    let guard = Abandon::new(shared, approval);
    connect_and_settle(guard).instrument(span).await
}

async fn connect_and_settle<M: Manager>(mut guard: Abandon<M>) {
    let shared = Arc::clone(&guard.shared);
    let started = clock::now();
    let limit = shared.config.connect_timeout;
    let result = match rt::timeout(limit, catch_panic(shared.manager.connect())).await {
        Ok(Ok(Ok(conn))) => Ok(conn),
        Ok(Ok(Err(e))) => Err(ConnectError::Backend(Arc::new(e))),
        Ok(Err(message)) => Err(ConnectError::Panicked(message)),
        Err(_) => Err(ConnectError::TimedOut(limit)),
    };
    let result = match result {
        Ok(mut conn) if shared.hooks.has(Stage::AfterConnect) => {
            let now = clock::now().to_tokio();
            // Not numbered yet: the pool numbers it when it is settled.
            let info = ConnectionInfo {
                id: 0,
                created: now,
                last_used: now,
                uses: 0,
            };
            let ran = shared
                .hooks
                .run(
                    Stage::AfterConnect,
                    &shared.name,
                    shared.config.hook_timeout,
                    &mut conn,
                    &info,
                )
                .await;
            match ran {
                Ok(()) => Ok(conn),
                Err(why) => {
                    close_quietly(conn);
                    Err(ConnectError::Hook(why.to_string().into()))
                }
            }
        }
        result => result,
    };
    shared.connect_done(guard.take(), result, started);
}

/// Held by a connect's task until its outcome settles the approval: if the task is dropped
/// first (its runtime shut down mid-connect), the approval is given back on drop, so the pool
/// does not count a connect in flight that nothing runs.
pub(crate) struct Abandon<M: Manager> {
    pub(crate) shared: Arc<Shared<M>>,
    approval: Option<Approval>,
}

impl<M: Manager> Abandon<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, approval: Approval) -> Self {
        Abandon {
            shared,
            approval: Some(approval),
        }
    }

    /// The approval, to settle with the connect's outcome.
    pub(crate) fn take(&mut self) -> Approval {
        self.approval.take().expect("an approval is settled once")
    }
}

impl<M: Manager> Drop for Abandon<M> {
    fn drop(&mut self) {
        if let Some(approval) = self.approval.take() {
            self.shared.connect_abandoned(approval);
        }
    }
}
