//! The pool's state and every transition it makes.
//!
//! # Implementation details
//!
//! [`State`] is what the pool's one lock guards (see [`crate::shared`]): the idle connections,
//! the waiter queue, the size counters, the connect backoff, the statistics and the leak
//! watch. Its fields are private; each method is one transition, taken under the lock, that
//! returns what the caller must do once the lock is released (wake a task, close a
//! connection, wake the connector or the timer, log). Nothing here awaits, calls the
//! [`Manager`](crate::Manager), reads the clock or wakes a task, so every transition is tested
//! without a runtime, beside it.
//!
//! The fields and the types every transition shares live here; the transitions live in the
//! children, which see the private fields: `admit.rs` (callers: the fast path, the queue,
//! `try_get`, a caller's own timer, a caller leaving), `release.rs` (connections coming back or
//! leaving for good, and the leak watch), `connect.rs` (demand, approvals and their outcomes,
//! the backoff, the adaptive ceiling, why nothing connects) and `housekeep.rs` (idle shrink,
//! lifetime, the waiters' deadlines, the idle sweep, `resize`, `close`).
//!
//! Invariants (kept by the methods of this folder alone):
//! - `size` counts open connections: `idle.len()` plus the checked-out ones, including
//!   connections sitting in a waiter's seat. `size + connecting <= max_size` whenever a
//!   connect is approved; `size` may exceed `max_size` only after [`State::resize`] lowered
//!   it, until enough connections come back to be closed.
//! - While `waiters` is non-empty, `idle` is empty: a connection that becomes available goes
//!   to the oldest waiter (direct hand-off), so a fresh `get()` never barges past the queue.
//! - `connecting` counts approved connects: [`State::approve_connect`] hands out an
//!   [`Approval`] and only [`State::settle_connect`], which consumes it, gives it back.
//! - `timer_at` is no later than the moment the timer task will next look at the queue; a
//!   waiter whose deadline is earlier asks for the timer to be woken.
//! - Every closed connection is counted once in `connections_closed`; a detached one
//!   (`Object::take`) leaves `size` without being counted as closed.

use std::panic::Location;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::clock::Instant;
use crate::config::{Config, QueueMode};
use crate::conn::{Conn, Record};
use crate::error::{ConnectError, PoolError, Stalled, TimeoutError};
use crate::idle::Idle;
use crate::manager::ErrorClass;
use crate::seats::Seat;
use crate::slab::Slab;
use crate::stats::{millis, Stats, Status};
use crate::waiters::{Out, Queued, Waiters};

/// A checkout watched for leaks (only with `leak_threshold` set).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkout {
    pub(crate) caller: &'static Location<'static>,
    pub(crate) since: Instant,
    /// Reported already (each checkout is reported once).
    warned: bool,
}

/// What a waiter is handed: a connection or the error that ends its wait.
pub(crate) type Handed<C, E> = Result<Conn<C>, Box<PoolError<E>>>;

/// A popped waiter's seat and the connection to fill it with, outside the lock.
pub(crate) type Fill<C, E> = (Seat<Handed<C, E>>, Conn<C>);

/// The configuration the transitions need, fixed when the pool is built.
struct Rules {
    queue_mode: QueueMode,
    max_waiting: Option<usize>,
    connect_concurrency: usize,
    backoff_base: Duration,
    backoff_cap: Duration,
    max_idle: Option<Duration>,
    max_lifetime: Option<Duration>,
    max_uses: Option<u64>,
    leak_threshold: Option<Duration>,
    adaptive_ceiling: bool,
}

/// The first wait before probing above a lowered ceiling; it doubles while probes are
/// refused, up to [`PROBE_CAP`].
pub(crate) const PROBE_BASE: Duration = Duration::from_secs(10);
pub(crate) const PROBE_CAP: Duration = Duration::from_secs(120);
/// Successful connects in a row after which the configured ceiling comes back.
pub(crate) const RESTORE_AFTER: u32 = 3;
/// While callers wait, the longest gap between connect attempts after failures (see
/// `State::backoff_delay`); a caller arriving during a longer backoff brings the next attempt
/// forward to within this.
pub(crate) const WAITING_CAP: Duration = Duration::from_secs(1);

/// An episode of the server being full: the effective ceiling is lowered.
#[derive(Debug, Clone, Copy)]
struct Full {
    /// When the next probe above the ceiling may start.
    probe_at: Instant,
    /// The wait before the probe after a refused one.
    interval: Duration,
    /// Successful connects since the last refusal.
    successes: u32,
    /// A probe is in flight.
    probing: bool,
}

#[repr(C)]
pub(crate) struct State<C, E> {
    // Declared hot first (`repr(C)` keeps the order; `hot_fields_share_the_locks_two_lines`
    // keeps it so). The lock's own cache line (`sync::Mutex` is line-aligned) holds what every
    // checkout and return *write*: the counters and the idle list, whose newest connection
    // is inline (`Idle`), so a return followed by a checkout passes the connection through
    // this line and not through a heap slot. The next line holds what they only read while
    // nobody queues (`closed`, the queue's count), which both cores can then keep a copy of:
    // a checkout or return with nobody queued moves one line between cores, not three. A
    // hand-off also writes the second (the queue's front and `wait_us`). `size` and
    // `max_size`, read by a return, follow the queue on the third.
    /// `Stats::requests_num` and `Stats::usage_ms` (in microseconds, so holds shorter than a
    /// millisecond add up), the counters every checkout and return add to, kept beside the
    /// idle list rather than with the rest of the statistics a few cache lines on.
    requests_num: u64,
    usage_us: u64,
    idle: Idle<C>,
    closed: bool,
    last_error_fatal: bool,
    /// `Stats::requests_wait_ms`, in microseconds: every hand-off adds to it, beside the
    /// queue's front (the queue's next ticket and latest deadline, which only an arrival
    /// writes, are on the third line).
    wait_us: u64,
    waiters: Waiters<Handed<C, E>>,
    size: usize,
    max_size: usize,
    /// When the timer task next looks at the queue (`None`: it is not sleeping on a deadline).
    timer_at: Option<Instant>,
    stats: Stats,
    rules: Rules,
    connecting: usize,
    min_size: usize,
    /// The effective ceiling while the server is full (`full` is set); else `max_size`.
    ceiling: usize,
    full: Option<Full>,
    /// Idle connections past their lifetime, kept until a replacement keeps the floor.
    retire_pending: usize,
    /// Idle connections out of the list for the idle sweep's look, still counted in `size`.
    sweeping: usize,
    /// `try_get()` calls that found nothing idle since the last connect settled: demand for
    /// the connector, without anyone queued.
    tries: usize,
    /// Consecutive failed connects.
    failures: u32,
    /// No connect starts before this.
    retry_at: Option<Instant>,
    last_error: Option<ConnectError<E>>,
    rng: u64,
    /// The last connection id handed out.
    last_id: u64,
    /// `Pool::retain` calls so far.
    retain_epoch: u64,
    checkouts: Slab<Checkout>,
    /// The background connector is not running (never started, or gone with its runtime):
    /// a timeout with nothing connecting says so.
    connector_down: bool,
}

/// How a caller comes to [`State::admit`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arrival {
    /// A new `get()`.
    New,
    /// The same `get()` again after its connection failed the check at checkout; it keeps
    /// its place in line if it had one.
    Again { ticket: Option<u64> },
}

/// What [`State::admit`] decided.
pub(crate) enum Admit<C, E> {
    /// An idle connection, with nobody queued ahead.
    Idle(Conn<C>),
    /// Queued with its waker; wake the connector and/or the timer as flagged.
    Queued {
        queued: Queued<Handed<C, E>>,
        wake_connector: bool,
        wake_timer: bool,
    },
    /// Refused at once (closed pool, full queue).
    Refused(PoolError<E>),
}

/// How a connection comes back to the pool. One verb, [`State::release`], for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// In working order: to the oldest waiter, or idle.
    Healthy,
    /// Returned by its holder and found broken (`has_broken`): closed, counted in
    /// `returns_bad`.
    Broken,
    /// Found dead before it reached a caller (`has_broken` at checkout, a failed or timed-out
    /// check): closed, counted in `connections_lost`.
    Lost,
    /// Closed on purpose (`Object::discard`, a check cancelled halfway).
    Discarded,
}

/// What to do once the lock is released: the one value every transition hands back (beside
/// its result, if it has one) or fills (the housekeeper's, reused pass after pass), applied in
/// one place, `Shared::apply`. The common case (a return, a hand-off) is a few words with
/// nothing to drop; what only the rare transitions produce (many connections to close, tasks
/// to wake, leak reports) sits in a boxed [`Bulk`], allocated by the first transition that
/// needs it.
#[must_use]
pub(crate) struct After<C, E> {
    /// The oldest waiter's seat, popped from the queue, and the connection to fill it with.
    pub(crate) fill: Option<Fill<C, E>>,
    /// A connection to close.
    pub(crate) close: Option<Conn<C>>,
    /// A checkout reported as a possible leak has come back.
    pub(crate) leak_returned: Option<Checkout>,
    /// The pool wants a connection opened (a replacement for the waiters or the floor).
    pub(crate) wake_connector: bool,
    /// The housekeeper should look again (a new deadline, a new configuration).
    pub(crate) wake_housekeeper: bool,
    /// The pool's size changed.
    pub(crate) size_changed: bool,
    /// The rest, when there is any.
    pub(crate) bulk: Option<Box<Bulk<C>>>,
}

/// What only the rare transitions leave to do: kept apart so a return's [`After`] stays small.
pub(crate) struct Bulk<C> {
    /// Connections to close.
    pub(crate) close: Vec<Conn<C>>,
    /// Tasks to wake (waiters handed a connection or an error by the transition itself).
    pub(crate) wake: Vec<Waker>,
    /// Checkouts held past the leak threshold, to report.
    pub(crate) leaks: Vec<(&'static Location<'static>, Duration)>,
    /// Waiters timed out by the pool-wide timer, to log.
    pub(crate) expired: usize,
}

impl<C, E> After<C, E> {
    /// Nothing to do.
    #[inline]
    pub(crate) const fn new() -> Self {
        After {
            fill: None,
            close: None,
            leak_returned: None,
            wake_connector: false,
            wake_housekeeper: false,
            size_changed: false,
            bulk: None,
        }
    }

    /// The bulk part, allocated the first time.
    pub(crate) fn bulk(&mut self) -> &mut Bulk<C> {
        self.bulk.get_or_insert_with(|| {
            Box::new(Bulk {
                close: Vec::new(),
                wake: Vec::new(),
                leaks: Vec::new(),
                expired: 0,
            })
        })
    }

    /// Connections it closes.
    #[cfg(test)]
    pub(crate) fn closing(&self) -> usize {
        usize::from(self.close.is_some()) + self.bulk.as_ref().map_or(0, |b| b.close.len())
    }

    /// Tasks it wakes.
    pub(crate) fn waking(&self) -> usize {
        self.bulk.as_ref().map_or(0, |b| b.wake.len())
    }

    /// Waiters it reports as timed out.
    #[cfg(test)]
    pub(crate) fn expired(&self) -> usize {
        self.bulk.as_ref().map_or(0, |b| b.expired)
    }
}

/// The right to run one connect, from [`State::approve_connect`] to
/// [`State::settle_connect`], which consumes it.
#[must_use = "an approved connect must be settled"]
#[derive(Debug)]
pub(crate) struct Approval(());

/// What the connector should do next.
pub(crate) enum Next {
    Connect(Approval),
    /// Backing off after a failure: look again then.
    WaitUntil(Instant),
    /// No demand: wait to be woken.
    Sleep,
}

/// A failed connect, for the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    pub(crate) attempt: u32,
    pub(crate) retry_in: Duration,
    pub(crate) waiting: usize,
}

/// Connections a sweep took out and closed (the caller closes them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gone {
    /// Found broken: counted in `connections_lost`.
    pub(crate) lost: usize,
    /// Closed by `retain`.
    pub(crate) retired: usize,
}

/// The housekeeper's buffers, kept and reused, so a pass allocates nothing once warm.
pub(crate) struct Chores<C, E> {
    /// Idle connections out for the sweep's `has_broken` look.
    pub(crate) sweep: Vec<Conn<C>>,
    /// What the pass found to do once unlocked (drained by `Shared::apply`).
    pub(crate) after: After<C, E>,
}

impl<C, E> Chores<C, E> {
    pub(crate) fn new() -> Self {
        Chores {
            sweep: Vec::new(),
            after: After::new(),
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<C, E> State<C, E> {
    pub(crate) fn new(config: &Config, seed: u64) -> Self {
        State {
            rules: Rules {
                queue_mode: config.queue_mode,
                max_waiting: config.max_waiting,
                connect_concurrency: config.connect_concurrency,
                backoff_base: config.backoff_base,
                backoff_cap: config.backoff_cap,
                max_idle: config.max_idle,
                max_lifetime: config.max_lifetime,
                max_uses: config.max_uses,
                leak_threshold: config.leak_threshold,
                adaptive_ceiling: config.adaptive_ceiling,
            },
            idle: Idle::with_capacity(config.max_size),
            requests_num: 0,
            usage_us: 0,
            wait_us: 0,
            waiters: Waiters::new(),
            size: 0,
            connecting: 0,
            min_size: config.min_size,
            max_size: config.max_size,
            ceiling: config.max_size,
            full: None,
            closed: false,
            retire_pending: 0,
            sweeping: 0,
            tries: 0,
            failures: 0,
            retry_at: None,
            last_error: None,
            last_error_fatal: false,
            timer_at: None,
            rng: seed | 1,
            last_id: 0,
            retain_epoch: 0,
            stats: Stats::default(),
            checkouts: Slab::new(),
            connector_down: true,
        }
    }

    // ---- snapshots ----

    pub(crate) fn status(&self) -> Status {
        let idle = self.idle.len() + self.sweeping;
        Status {
            size: self.size,
            idle,
            in_use: self.size - idle,
            waiting: self.waiters.len(),
            connecting: self.connecting,
            min_size: self.min_size,
            max_size: self.max_size,
            ceiling: self.ceiling(),
        }
    }

    /// The ceiling in effect.
    pub(crate) fn ceiling(&self) -> usize {
        if self.full.is_some() {
            self.ceiling.min(self.max_size)
        } else {
            self.max_size
        }
    }

    /// Is the effective ceiling lowered (the server refused connects for being full)?
    pub(crate) fn server_full(&self) -> bool {
        self.full.is_some()
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            requests_num: self.requests_num,
            usage_ms: self.usage_us / 1000,
            requests_wait_ms: self.wait_us / 1000,
            requests_queued: self.waiters.tickets_issued(),
            ..self.stats
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Has the pool opened its floor?
    pub(crate) fn is_ready(&self) -> bool {
        self.size >= self.min_size
    }

    /// `wait_ready` begins: after a fatal error the floor gets an attempt of its own now (as a
    /// new caller does). Returns the fatal errors counted so far, for [`State::fatal_since`],
    /// and whether the connector should look.
    pub(crate) fn begin_wait_ready(&mut self) -> (u64, After<C, E>) {
        if self.last_error_fatal {
            self.retry_at = None;
        }
        let after = After {
            wake_connector: self.wants_connect(),
            ..After::new()
        };
        (self.stats.connections_errors_fatal, after)
    }

    /// The fatal connect error that ended a wait for the floor: one counted after `seen`
    /// (from [`State::begin_wait_ready`]) and still the last connect error.
    pub(crate) fn fatal_since(&self, seen: u64) -> Option<Arc<E>> {
        if self.stats.connections_errors_fatal <= seen || !self.last_error_fatal {
            return None;
        }
        match &self.last_error {
            Some(ConnectError::Backend(e)) => Some(Arc::clone(e)),
            _ => None,
        }
    }

    /// Are all connections closed and no connect in flight?
    pub(crate) fn is_drained(&self) -> bool {
        self.size == 0 && self.connecting == 0
    }

    /// The error for a wait that began at `since` and ends now.
    pub(crate) fn timeout_error(&self, since: Instant, now: Instant) -> PoolError<E> {
        PoolError::Timeout(TimeoutError {
            waited: now.saturating_duration_since(since),
            status: self.status(),
            last_connect_error: self.last_error.clone(),
            stalled: self.stalled(now),
        })
    }

    /// Why no connect is in flight, if none is: what a timeout reports beside the figures.
    pub(crate) fn stalled(&self, now: Instant) -> Option<Stalled> {
        if self.connecting > 0 {
            return None;
        }
        if self.closed {
            return Some(Stalled::Closed);
        }
        if self.connector_down {
            return Some(Stalled::NoBackgroundTask);
        }
        if let Some(t) = self.retry_at.filter(|&t| t > now) {
            return Some(Stalled::BackingOff {
                retry_in: t.saturating_duration_since(now),
            });
        }
        if self.full.is_some() && self.size >= self.ceiling() {
            return Some(Stalled::ServerFull {
                ceiling: self.ceiling(),
            });
        }
        if self.size >= self.max_size {
            return Some(Stalled::AtCeiling);
        }
        None
    }
}

mod admit;
mod connect;
mod housekeep;
mod release;
#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    /// What every checkout and return write under the lock sits in the lock's own cache line
    /// (the lock word, the two hot counters, the idle list with its inline newest); what they
    /// only read while nobody queues, and what a hand-off writes, in the next (`closed`, the
    /// wait counter, the front of the queue), with `Mutex` aligned to a line. The sizes a
    /// return reads sit on the third (a flag on the second to spare that read measured no
    /// gain in C or D).
    #[test]
    fn hot_fields_share_the_locks_two_lines() {
        use std::mem::{offset_of, size_of};
        type St = S;
        type Locked = crate::sync::Mutex<St>;
        assert_eq!(std::mem::align_of::<Locked>(), 64);
        // Where the lock puts the state, and so its lock word: the state first would leave
        // the word past the state's end, lines away from its hot fields.
        let locked = crate::sync::Mutex::new(state(1, 2));
        let head = std::ptr::from_ref(&locked) as usize;
        let data = std::ptr::from_ref(&*locked.lock()) as usize - head;
        assert_eq!(data, 8, "the state sits one word after the lock word");
        let at = |offset: usize| data + offset;
        let end = |offset: usize, size: usize| at(offset) + size;
        for (field, offset, size) in [
            ("requests_num", offset_of!(St, requests_num), 8),
            ("usage_us", offset_of!(St, usage_us), 8),
            ("idle", offset_of!(St, idle), size_of::<Idle<u32>>()),
        ] {
            assert!(end(offset, size) <= 64, "{field} leaves the lock's line");
        }
        for (field, offset, size) in [
            ("closed", offset_of!(St, closed), 1),
            ("wait_us", offset_of!(St, wait_us), 8),
            (
                "the queue's front",
                offset_of!(St, waiters),
                Waiters::<Handed<u32, Boom>>::HAND_OFF_BYTES,
            ),
        ] {
            assert!(
                at(offset) >= 64 && end(offset, size) <= 128,
                "{field} leaves the second line"
            );
        }
    }
}
