//! `status()` and `stats()` snapshots.

use std::time::Duration;

/// A snapshot of the pool's size and queue, taken under the pool's lock.
///
/// Eventually consistent: it was true at the instant it was taken and may be stale by the time
/// it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Status {
    /// Open connections: idle plus in use.
    pub size: usize,
    /// Connections waiting in the pool, ready to hand out.
    pub idle: usize,
    /// Connections checked out (including ones handed to a waiter that has not yet run).
    pub in_use: usize,
    /// Callers queued for a connection.
    pub waiting: usize,
    /// Connects in flight in the background.
    pub connecting: usize,
    /// The floor the pool keeps open.
    pub min_size: usize,
    /// The ceiling the pool never exceeds.
    pub max_size: usize,
    /// The ceiling in effect: `max_size`, or lower while the server refuses connects for being
    /// full (see [`Config::adaptive_ceiling`](crate::Config::adaptive_ceiling)).
    pub ceiling: usize,
}

/// What the pool knows about one connection ([`Object::info`](crate::Object::info),
/// [`Pool::retain`](crate::Pool::retain)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The pool's number for it: 1 for the first connection opened, and so on.
    pub id: u64,
    /// When it was opened.
    pub created: tokio::time::Instant,
    /// When it was last checked out (for an idle connection), or when the current checkout
    /// began. Like every hot-path stamp, it may trail the runtime's clock by up to about two
    /// ticks of the kernel's coarse clock (8 ms on common Linux kernels; exact under Tokio's
    /// paused clock).
    pub last_used: tokio::time::Instant,
    /// Checkouts so far, the current one included.
    pub uses: u64,
}

/// Cumulative counters since the pool was built, named like psycopg_pool's `get_stats()`.
///
/// Eventually consistent, like [`Status`]. The durations are measured between hot-path
/// stamps, which read the kernel's coarse clock on Linux (a few nanoseconds, updated at each
/// tick, 4 ms on common kernels): each hold or wait is off by up to about two ticks, and over
/// many of them the errors average out. Under Tokio's paused clock they are exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Connections requested (`get()` calls).
    pub requests_num: u64,
    /// Requests that had to wait in the queue.
    pub requests_queued: u64,
    /// Total time callers spent waiting, in milliseconds (summed in microseconds, so waits
    /// shorter than a millisecond count), counted when each waiter is handed its
    /// connection.
    pub requests_wait_ms: u64,
    /// Requests that ended in an error (timeout, fatal backend error, closed, shed), counted
    /// when the error is handed to the caller.
    pub requests_errors: u64,
    /// Of those, timeouts.
    pub requests_timeouts: u64,
    /// Total time connections spent checked out, in milliseconds (summed in microseconds, so
    /// holds shorter than a millisecond count).
    pub usage_ms: u64,
    /// Connections returned broken (`has_broken`) and closed.
    pub returns_bad: u64,
    /// Connections opened.
    pub connections_num: u64,
    /// Total time spent opening connections, in milliseconds.
    pub connections_ms: u64,
    /// Failed connect attempts.
    pub connections_errors: u64,
    /// Of those, errors classified fatal.
    pub connections_errors_fatal: u64,
    /// Of those, refusals because the server was full.
    pub connections_errors_full: u64,
    /// Connections found dead at checkout (`has_broken`, or a failed or timed-out health
    /// check) and discarded.
    pub connections_lost: u64,
    /// Connections closed by the pool for any reason (idle shrink, lifetime, broken, failed
    /// check, resize, close). A connection detached with `Object::take` is not counted: the
    /// pool did not close it.
    pub connections_closed: u64,
    /// Of those, closed by the idle shrink (`max_idle`).
    pub closed_idle: u64,
    /// Of those, retired at `max_lifetime`.
    pub closed_lifetime: u64,
    /// Of those, retired at `max_uses`.
    pub closed_max_uses: u64,
    /// Of those, closed by `retain`.
    pub closed_retain: u64,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
