//! The pool's two background tasks (the connector and the housekeeper): starting them, and
//! starting them again when they are gone.
//!
//! # Implementation details
//!
//! A pool is a value, not a task: it can be built outside any runtime (a `static` pool) and
//! used from one Tokio runtime after another (each `#[tokio::test]` has its own). Its tasks
//! live on the runtime that started them and die with it: a runtime that shuts down drops
//! their futures. So each task holds a [`Running`] guard whose `Drop` clears the task's flag
//! in [`Signals`] and wakes every queued caller, whose next poll finds the flag clear and
//! starts the tasks again on its own runtime ([`Shared::ensure_running`]). A caller finds out
//! with one atomic load, and only off the fast path: when it queues, when it is woken without
//! a connection, in `try_get`, `wait_ready` and `resize`. A checkout served by an idle
//! connection and a return never look (a return spawns nothing).
//!
//! A connect whose task is dropped mid-flight gives its approval back, so the
//! pool does not count a connect in flight that no task runs (`connector::Abandon`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::manager::Manager;
use crate::shared::Shared;
use crate::signals::{Signals, Task};
use crate::{connector, housekeeping, rt};

/// Held by a background task's future: dropping it (the task returned, or its runtime shut
/// down and dropped it) marks the task gone and wakes the queued callers, so one of them
/// starts it again on its own runtime.
pub(crate) struct Running<M: Manager> {
    task: Task,
    pool: Weak<Shared<M>>,
    signals: Arc<Signals>,
}

impl<M: Manager> Drop for Running<M> {
    fn drop(&mut self) {
        self.signals
            .alive
            .flag(self.task)
            .store(false, Ordering::Release);
        if self.signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        if let Some(shared) = self.pool.upgrade() {
            shared.background_gone(self.task);
        }
    }
}

impl<M: Manager> Shared<M> {
    /// Starts whichever background task is not running, on the caller's runtime. One atomic
    /// load when both run; nothing outside a runtime or on a closed pool.
    #[inline]
    pub(crate) fn ensure_running(self: &Arc<Self>) {
        if !self.signals.alive.both() {
            self.start_background();
        }
    }

    #[cold]
    #[inline(never)]
    fn start_background(self: &Arc<Self>) {
        if !rt::has_runtime() || self.signals.shutdown.load(Ordering::Acquire) {
            return;
        }
        if self.is_closed() {
            return;
        }
        for task in [Task::Connector, Task::Housekeeper] {
            if self.signals.alive.flag(task).swap(true, Ordering::AcqRel) {
                continue;
            }
            let guard = Running {
                task,
                pool: Arc::downgrade(self),
                signals: Arc::clone(&self.signals),
            };
            let (pool, signals) = (Arc::downgrade(self), Arc::clone(&self.signals));
            match task {
                Task::Connector => rt::spawn(async move {
                    let _guard = guard;
                    connector::run(pool, signals).await;
                }),
                Task::Housekeeper => rt::spawn(async move {
                    let _guard = guard;
                    housekeeping::run(pool, signals).await;
                }),
            }
            tracing::debug!(target: "pool_core", pool = %self.name, ?task, "background task started");
        }
        self.background_started();
        self.signals.connector.notify_one();
        self.signals.housekeeper.notify_one();
    }
}
