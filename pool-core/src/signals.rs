//! What wakes the pool's background tasks, and whether they are alive: shared by the pool and
//! the tasks, which hold only a `Weak` to the pool and this in an `Arc` of its own.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

pub(crate) struct Signals {
    /// Wakes the connector: demand may have changed.
    pub(crate) connector: Notify,
    /// Wakes the housekeeper: configuration, closing, or a waiter whose deadline is earlier
    /// than the housekeeper's next look.
    pub(crate) housekeeper: Notify,
    /// Fires (`notify_waiters`) whenever the pool's size changes.
    pub(crate) size_changed: Notify,
    /// Set when the shared state is gone: background tasks exit.
    pub(crate) shutdown: AtomicBool,
    /// Which background tasks are alive.
    pub(crate) alive: Liveness,
}

/// Which background task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Task {
    Connector,
    Housekeeper,
}

/// Whether each background task is alive (set when spawned, cleared by its `background::Running`
/// guard when its future is dropped, whether it returned or its runtime shut down).
#[derive(Debug, Default)]
pub(crate) struct Liveness {
    connector: AtomicBool,
    housekeeper: AtomicBool,
}

impl Liveness {
    pub(crate) fn flag(&self, task: Task) -> &AtomicBool {
        match task {
            Task::Connector => &self.connector,
            Task::Housekeeper => &self.housekeeper,
        }
    }

    /// Are both tasks alive?
    #[inline]
    pub(crate) fn both(&self) -> bool {
        self.connector.load(Ordering::Acquire) && self.housekeeper.load(Ordering::Acquire)
    }

    /// Is the connector alive?
    pub(crate) fn connector(&self) -> bool {
        self.connector.load(Ordering::Acquire)
    }
}
