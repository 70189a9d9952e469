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
//! below without a runtime.
//!
//! Invariants (kept by the methods of this file alone):
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

use std::collections::VecDeque;
use std::panic::Location;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::config::{Config, QueueMode};
use crate::error::{ConnectError, PoolError, Stalled, TimeoutError};
use crate::idle::Idle;
use crate::manager::ErrorClass;
use crate::rt::Instant;
use crate::seats::Seat;
use crate::slab::Slab;
use crate::stats::{millis, ConnectionInfo, Stats, Status};
use crate::waiters::{Out, Queued, Waiters};

/// A connection with the pool's bookkeeping, boxed once when it is opened: the record moves
/// between the idle list, waiter seats and `Object`s as one pointer, so a checkout copies 8
/// bytes, not the record.
pub(crate) struct Conn<C>(Box<Record<C>>);

/// What the pool keeps beside each connection.
pub(crate) struct Record<C> {
    pub(crate) raw: C,
    /// The pool's number for it (1 for the first opened).
    pub(crate) id: u64,
    pub(crate) created: Instant,
    /// Checkouts so far.
    pub(crate) uses: u64,
    /// Retired when it comes back with this many uses (`max_uses`, jittered).
    use_limit: Option<u64>,
    /// The `retain` epoch it was last judged in (or opened in): predicates from later
    /// `retain` calls still have to look at it.
    pub(crate) epoch: u64,
    /// When `max_lifetime` (less this connection's jitter) retires it.
    expires: Option<Instant>,
    /// When it was last returned, opened or handed to a waiter: its idle age, and for a
    /// waiter the moment its wait ended.
    pub(crate) stamp: Instant,
    /// When a caller took it, for the usage statistics; `None` while in the pool.
    pub(crate) taken: Option<Instant>,
    /// Its entry in the leak watch while checked out with `leak_threshold` set.
    pub(crate) watch: Option<usize>,
}

impl<C> std::ops::Deref for Conn<C> {
    type Target = Record<C>;
    #[inline]
    fn deref(&self) -> &Record<C> {
        &self.0
    }
}

impl<C> std::ops::DerefMut for Conn<C> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Record<C> {
        &mut self.0
    }
}

impl<C> Conn<C> {
    /// A bare record around `raw` (id 0, never used), for the idle list's tests.
    #[cfg(test)]
    pub(crate) fn for_tests(raw: C, now: Instant) -> Self {
        Conn(Box::new(Record {
            raw,
            id: 0,
            created: now,
            uses: 0,
            use_limit: None,
            epoch: 0,
            expires: None,
            stamp: now,
            taken: None,
            watch: None,
        }))
    }

    /// The connection itself, leaving the pool's bookkeeping behind.
    pub(crate) fn into_raw(self) -> C {
        self.0.raw
    }

    /// Its metadata; `last_used` is its stamp (the last return or hand-off) while idle.
    pub(crate) fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            created: self.created.to_tokio(),
            last_used: self.taken.unwrap_or(self.stamp).to_tokio(),
            uses: self.uses,
        }
    }
}

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

/// What to do after [`State::release`] (and the other transitions that free a connection),
/// outside the lock.
#[must_use]
pub(crate) struct Released<C, E> {
    /// The oldest waiter's seat, popped from the queue, and the connection to fill it with
    /// once the lock is released.
    pub(crate) fill: Option<Fill<C, E>>,
    /// The connection to close.
    pub(crate) close: Option<Conn<C>>,
    /// The pool wants a connection opened (a replacement for the waiters or the floor).
    pub(crate) wake_connector: bool,
    /// A checkout reported as a possible leak has come back.
    pub(crate) leak_returned: Option<Checkout>,
    /// The pool's size changed.
    pub(crate) size_changed: bool,
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

/// What the housekeeping pass found, moved out to be closed, logged and woken outside the
/// lock. Kept by the housekeeper and reused, so a pass allocates nothing once warm.
pub(crate) struct Chores<C> {
    /// Idle connections out for the sweep's `has_broken` look.
    pub(crate) sweep: Vec<Conn<C>>,
    pub(crate) close: Vec<Conn<C>>,
    pub(crate) leaks: Vec<(&'static Location<'static>, Duration)>,
    pub(crate) wake: Vec<Waker>,
    pub(crate) expired: usize,
}

impl<C> Chores<C> {
    pub(crate) fn new() -> Self {
        Chores {
            sweep: Vec::new(),
            close: Vec::new(),
            leaks: Vec::new(),
            wake: Vec::new(),
            expired: 0,
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
    pub(crate) fn begin_wait_ready(&mut self) -> (u64, bool) {
        if self.last_error_fatal {
            self.retry_at = None;
        }
        (self.stats.connections_errors_fatal, self.wants_connect())
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

    // ---- callers ----

    /// The next idle connection to hand out: the warmest (LIFO) or the longest idle (FIFO).
    #[inline]
    fn pop_idle(&mut self) -> Option<Conn<C>> {
        match self.rules.queue_mode {
            QueueMode::Lifo => self.idle.pop_newest(),
            QueueMode::Fifo => self.idle.pop_oldest(),
        }
    }

    /// The fast path of a new `get()`: an idle connection if one is free and nobody is queued
    /// ahead (counted as a request), else `None` and nothing counted; the caller then comes to
    /// [`State::admit`] under the same lock.
    #[inline]
    pub(crate) fn take_idle(&mut self) -> Option<Conn<C>> {
        if self.closed || !self.waiters.is_empty() {
            return None;
        }
        let conn = self.pop_idle()?;
        self.requests_num += 1;
        Some(conn)
    }

    /// A caller asks for a connection: an idle one if nobody is queued ahead, else a place in
    /// the queue (in the seat `seat` gives, already waiting with the caller's waker, and with
    /// `deadline` for the pool-wide timer), or a refusal.
    #[inline]
    pub(crate) fn admit(
        &mut self,
        arrival: Arrival,
        now: Instant,
        seat: impl FnOnce() -> Seat<Handed<C, E>>,
        deadline: Option<Instant>,
    ) -> Admit<C, E> {
        let ticket = match arrival {
            Arrival::New => {
                self.requests_num += 1;
                None
            }
            Arrival::Again { ticket } => ticket,
        };
        if self.closed {
            self.stats.requests_errors += 1;
            return Admit::Refused(PoolError::Closed);
        }
        if self.waiters.is_empty() {
            let conn = self.pop_idle();
            if let Some(conn) = conn {
                return Admit::Idle(conn);
            }
        }
        if let Some(max_waiting) = self.rules.max_waiting {
            if self.waiters.len() >= max_waiting {
                self.stats.requests_errors += 1;
                return Admit::Refused(PoolError::TooManyWaiters { max_waiting });
            }
        }
        // `requests_queued` is the queue's count of tickets issued (`State::stats`): a first
        // arrival takes a new one, so the arrival writes no line of the statistics.
        let queued = self.waiters.push(ticket, seat(), now, deadline);
        if self.last_error_fatal {
            // A fatal error answered earlier callers at once; this one gets its own attempt.
            self.retry_at = None;
        } else if let Some(t) = self.retry_at {
            // A backoff drawn while nobody waited may run to the configured cap: a caller
            // brings the next attempt forward to within `WAITING_CAP`.
            self.retry_at = Some(t.min(now + WAITING_CAP.min(self.rules.backoff_cap)));
        }
        let wake_timer = match queued.deadline {
            Some(d) if self.timer_at.is_none_or(|t| d < t) => {
                self.timer_at = Some(d);
                true
            }
            _ => false,
        };
        Admit::Queued {
            queued,
            wake_connector: self.wants_connect(),
            wake_timer,
        }
    }

    /// `Pool::retain`: a new epoch; returns it.
    pub(crate) fn next_retain_epoch(&mut self) -> u64 {
        self.retain_epoch += 1;
        self.retain_epoch
    }

    /// `try_get()`: an idle connection if nobody is queued ahead, else `None` and a note of
    /// the demand (whether to wake the connector comes second). Counted as a request only when
    /// served; never as an error.
    pub(crate) fn try_admit(&mut self) -> (Result<Option<Conn<C>>, PoolError<E>>, bool) {
        if self.closed {
            return (Err(PoolError::Closed), false);
        }
        if self.waiters.is_empty() {
            let conn = self.pop_idle();
            if let Some(conn) = conn {
                self.requests_num += 1;
                return (Ok(Some(conn)), false);
            }
        }
        self.tries = (self.tries + 1).min(self.max_size);
        (Ok(None), self.wants_connect())
    }

    /// A queued caller's own timer fired (`get_timeout` with a timeout of its own): a
    /// connection handed over at the last moment is still taken, else it leaves with a
    /// timeout. `None`: its place was popped and the fill is on its way; it keeps waiting.
    pub(crate) fn time_out_waiter(
        &mut self,
        seat: &Seat<Handed<C, E>>,
        ticket: u64,
        since: Instant,
        now: Instant,
    ) -> Option<Handed<C, E>> {
        match self.waiters.remove(seat, ticket) {
            Out::Removed => {
                self.count_timeout();
                Some(Err(Box::new(self.timeout_error(since, now))))
            }
            // Whatever it was handed was counted when it was handed.
            Out::Handed(handed) => Some(handed),
            Out::InFlight => None,
        }
    }

    /// A connection handed to a waiter that queued at `since`: its wait ends now.
    fn count_hand_off(&mut self, since: Instant, now: Instant) {
        self.wait_us = self.wait_us.saturating_add(now.micros_since(since));
    }

    /// A caller timed out without having waited in the queue (its connection failed the
    /// check as its time ran out).
    pub(crate) fn count_timeout(&mut self) {
        self.stats.requests_errors += 1;
        self.stats.requests_timeouts += 1;
    }

    /// A queued caller goes away (cancelled): its seat is given up, and a connection handed to it
    /// in the meantime goes on to the next waiter or the idle list.
    pub(crate) fn leave(&mut self, seat: &Seat<Handed<C, E>>, ticket: u64) -> Released<C, E> {
        let handed = match self.waiters.remove(seat, ticket) {
            Out::Removed => None,
            Out::Handed(handed) => Some(handed),
            // Popped, not yet filled: marked left, the fill gets the connection back (or it
            // landed just now).
            Out::InFlight => seat.leave(),
        };
        match handed {
            Some(Ok(conn)) => {
                let stamp = conn.stamp;
                self.release(conn, Outcome::Healthy, stamp)
            }
            Some(Err(_)) | None => Released {
                fill: None,
                close: None,
                wake_connector: false,
                leak_returned: None,
                size_changed: false,
            },
        }
    }

    /// A connection comes back: to the oldest waiter, to the idle list, or closed (by
    /// outcome, closed pool, over the ceiling, past its lifetime).
    ///
    /// Always inlined into `Shared::release`: left to the compiler it is sometimes not (it
    /// depends on the crate it is built into), and a call here, with `Released` handed back
    /// through memory, cost A and C a few percent in `rounds`.
    #[inline(always)]
    pub(crate) fn release(
        &mut self,
        mut conn: Conn<C>,
        outcome: Outcome,
        now: Instant,
    ) -> Released<C, E> {
        if let Some(taken) = conn.taken.take() {
            self.usage_us = self.usage_us.saturating_add(now.micros_since(taken));
        }
        let leak_returned = self.end_watch(conn.watch.take());
        match outcome {
            Outcome::Healthy => {}
            Outcome::Broken => self.stats.returns_bad += 1,
            Outcome::Lost => self.stats.connections_lost += 1,
            Outcome::Discarded => {}
        }
        let aged = conn.expires.is_some_and(|t| t <= now);
        let worn = conn.use_limit.is_some_and(|limit| conn.uses >= limit);
        if outcome != Outcome::Healthy || self.closed || self.size > self.max_size || aged || worn {
            if outcome == Outcome::Healthy && !self.closed && self.size <= self.max_size {
                if worn {
                    self.stats.closed_max_uses += 1;
                } else {
                    self.stats.closed_lifetime += 1;
                }
            }
            self.size -= 1;
            self.stats.connections_closed += 1;
            return Released {
                fill: None,
                close: Some(conn),
                wake_connector: self.wants_connect(),
                leak_returned,
                size_changed: true,
            };
        }
        conn.stamp = now;
        let fill = match self.waiters.pop() {
            Some((seat, since)) => {
                self.count_hand_off(since, now);
                Some((seat, conn))
            }
            None => {
                self.idle.push_newest(conn);
                None
            }
        };
        Released {
            fill,
            close: None,
            wake_connector: false,
            leak_returned,
            size_changed: false,
        }
    }

    /// A checked-out connection leaves the pool for good (`Object::take`): not counted as
    /// closed, and the pool may open a replacement.
    pub(crate) fn detach(&mut self, watch: Option<usize>) -> Released<C, E> {
        let leak_returned = self.end_watch(watch);
        self.size -= 1;
        Released {
            fill: None,
            close: None,
            wake_connector: self.wants_connect(),
            leak_returned,
            size_changed: true,
        }
    }

    /// Starts the leak watch on a checkout; returns its key.
    pub(crate) fn watch(&mut self, caller: &'static Location<'static>, since: Instant) -> usize {
        self.checkouts.insert(Checkout {
            caller,
            since,
            warned: false,
        })
    }

    /// Ends a leak watch; returns it if it had been reported.
    fn end_watch(&mut self, key: Option<usize>) -> Option<Checkout> {
        self.checkouts.remove(key?).filter(|c| c.warned)
    }

    // ---- the connector ----

    /// Is there demand for another connection (ignoring backoff and the connect concurrency)?
    /// Waiters not already covered by a connect in flight, or a floor not met, with room below
    /// the ceiling.
    pub(crate) fn wants_connect(&self) -> bool {
        let open = self.size + self.connecting;
        if self.closed || open >= self.max_size {
            return false;
        }
        let floor = self.min_size + self.retire_pending.min(self.max_size - self.min_size);
        // Connections out for the idle sweep come back within the housekeeper's pass.
        let wanted = self.waiters.len() + self.tries;
        let demand = wanted > self.connecting + self.sweeping || open < floor;
        if !demand {
            return false;
        }
        // At a lowered ceiling only a probe, one at a time (approve_connect says when).
        open < self.ceiling() || self.full.is_some_and(|f| !f.probing)
    }

    /// Should the connector open a connection now? Demand is re-checked here just before each
    /// connect, so a burst served by returns opens nothing more.
    pub(crate) fn approve_connect(&mut self, now: Instant) -> Next {
        if !self.wants_connect() || self.connecting >= self.rules.connect_concurrency {
            return Next::Sleep;
        }
        if let Some(t) = self.retry_at.filter(|&t| t > now) {
            return Next::WaitUntil(t);
        }
        if self.size + self.connecting >= self.ceiling() {
            if let Some(full) = &mut self.full {
                if now < full.probe_at {
                    return Next::WaitUntil(full.probe_at);
                }
                full.probing = true;
            }
        }
        self.connecting += 1;
        Next::Connect(Approval(()))
    }

    /// An approved connect whose task was dropped before it finished (its runtime shut down):
    /// not a failure of the server's, so no backoff; the demand it covered is open again.
    pub(crate) fn abandon_connect(&mut self, approval: Approval) -> bool {
        let Approval(()) = approval;
        self.connecting -= 1;
        self.tries = self.tries.saturating_sub(1);
        if let Some(full) = &mut self.full {
            full.probing = false;
        }
        self.wants_connect()
    }

    /// Whether the background connector runs (see `connector_down`).
    pub(crate) fn set_connector_down(&mut self, down: bool) {
        self.connector_down = down;
    }

    /// The wakers of every queued caller (they look again and find the background gone).
    pub(crate) fn waiter_wakers(&self, wake: &mut Vec<Waker>) {
        self.waiters.wakers(wake);
    }

    /// The outcome of an approved connect: a new connection goes to the oldest waiter or idle;
    /// a failure sets the backoff and, if fatal, fails every waiter (their wakers go to
    /// `wake`). Returns the connection to close (the pool closed meanwhile) or the failure to
    /// log.
    pub(crate) fn settle_connect(
        &mut self,
        approval: Approval,
        result: Result<C, (ConnectError<E>, ErrorClass)>,
        started: Instant,
        now: Instant,
        wake: &mut Vec<Waker>,
    ) -> Result<Released<C, E>, Failure> {
        let Approval(()) = approval;
        self.connecting -= 1;
        self.tries = self.tries.saturating_sub(1);
        self.stats.connections_ms += millis(now.saturating_duration_since(started));
        match result {
            Ok(raw) => {
                self.failures = 0;
                self.retry_at = None;
                self.last_error = None;
                self.last_error_fatal = false;
                self.stats.connections_num += 1;
                self.size += 1;
                if let Some(full) = &mut self.full {
                    // Room for one more: the ceiling rises to what the pool holds, and after
                    // enough successes in a row the configured ceiling comes back.
                    full.probing = false;
                    full.successes += 1;
                    full.interval = PROBE_BASE;
                    full.probe_at = now + PROBE_BASE;
                    self.ceiling = self.ceiling.max(self.size);
                    if full.successes >= RESTORE_AFTER || self.ceiling >= self.max_size {
                        self.full = None;
                        self.ceiling = self.max_size;
                    }
                }
                self.retire_pending = self.retire_pending.saturating_sub(1);
                let expires = self.rules.max_lifetime.map(|life| {
                    let jitter = life.mul_f64(0.05 * self.random());
                    now + life.saturating_sub(jitter)
                });
                let use_limit = self.rules.max_uses.map(|max| {
                    let jitter = (max as f64 * 0.05 * self.random()) as u64;
                    max.saturating_sub(jitter).max(1)
                });
                self.last_id += 1;
                let conn = Conn(Box::new(Record {
                    raw,
                    id: self.last_id,
                    created: now,
                    uses: 0,
                    use_limit,
                    epoch: self.retain_epoch,
                    expires,
                    stamp: now,
                    taken: None,
                    watch: None,
                }));
                Ok(self.release(conn, Outcome::Healthy, now))
            }
            Err((err, class)) => {
                self.stats.connections_errors += 1;
                match class {
                    ErrorClass::Fatal => self.stats.connections_errors_fatal += 1,
                    ErrorClass::ServerFull => self.stats.connections_errors_full += 1,
                    ErrorClass::Transient => {}
                }
                self.failures = self.failures.saturating_add(1);
                let delay = self.backoff_delay();
                self.retry_at = Some(now + delay);
                self.last_error_fatal = class == ErrorClass::Fatal;
                self.lower_ceiling(class, now);
                if let (ErrorClass::Fatal, ConnectError::Backend(e)) = (class, &err) {
                    let failed = self
                        .waiters
                        .fail_all(|| Err(Box::new(PoolError::Backend(Arc::clone(e)))), wake);
                    self.stats.requests_errors += failed as u64;
                }
                self.last_error = Some(err);
                Err(Failure {
                    attempt: self.failures,
                    retry_in: delay,
                    waiting: self.waiters.len(),
                })
            }
        }
    }

    /// After a failed connect: a refusal for a full server starts or prolongs an episode
    /// with the ceiling at what the pool holds (at least 1); any failure ends a probe.
    fn lower_ceiling(&mut self, class: ErrorClass, now: Instant) {
        let full_refusal = class == ErrorClass::ServerFull && self.rules.adaptive_ceiling;
        match (&mut self.full, full_refusal) {
            (None, true) => {
                self.full = Some(Full {
                    probe_at: now + PROBE_BASE,
                    interval: PROBE_BASE,
                    successes: 0,
                    probing: false,
                });
                self.ceiling = self.size.max(1);
            }
            (Some(full), true) => {
                full.probing = false;
                full.successes = 0;
                full.interval = (full.interval * 2).min(PROBE_CAP);
                full.probe_at = now + full.interval;
                self.ceiling = self.size.max(1);
            }
            (Some(full), false) => {
                if full.probing {
                    full.probing = false;
                    full.probe_at = now + full.interval;
                }
            }
            (None, false) => {}
        }
    }

    /// A uniform draw in `[0, 1)` (xorshift64*).
    fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential backoff after `failures` consecutive failures: full jitter up to the
    /// configured cap while nobody waits; while callers wait, once the exponential reaches
    /// [`WAITING_CAP`], a draw between 60 % and 100 % of it, so the next attempt comes within
    /// a second of the last (a caller waits at most about that long after the server is
    /// back) and no sooner than 0.6 s after it (the outage stays quiet).
    fn backoff_delay(&mut self) -> Duration {
        let exp = self
            .rules
            .backoff_base
            .checked_mul(1u32 << self.failures.saturating_sub(1).min(30))
            .unwrap_or(self.rules.backoff_cap)
            .min(self.rules.backoff_cap);
        let waiting_cap = WAITING_CAP.min(self.rules.backoff_cap);
        if !self.waiters.is_empty() && exp >= waiting_cap {
            return waiting_cap.mul_f64(0.6 + 0.4 * self.random());
        }
        exp.mul_f64(self.random())
    }

    // ---- control ----

    /// New floor and ceiling (already validated). Returns whether the connector should look.
    pub(crate) fn resize(&mut self, min_size: usize, max_size: usize) -> bool {
        self.min_size = min_size;
        self.max_size = max_size;
        if self.full.is_none() {
            self.ceiling = max_size;
        }
        self.wants_connect()
    }

    /// Closes the pool: every waiter is failed (wakers to `wake`) and the idle connections are
    /// returned to be closed. `None` if it was closed already.
    pub(crate) fn close(&mut self, wake: &mut Vec<Waker>) -> Option<VecDeque<Conn<C>>> {
        if self.closed {
            return None;
        }
        self.closed = true;
        let failed = self
            .waiters
            .fail_all(|| Err(Box::new(PoolError::Closed)), wake);
        self.stats.requests_errors += failed as u64;
        let n = self.idle.len();
        self.size -= n;
        self.stats.connections_closed += n as u64;
        Some(self.idle.take_all())
    }

    // ---- the housekeeper ----

    /// One housekeeping pass: idle shrink, lifetime, the ceiling after a resize, the leak
    /// watch, and waiters past their deadline. Fills `chores`; returns when to look again (at
    /// most `cap`) and whether the connector should look.
    pub(crate) fn housekeep(
        &mut self,
        now: Instant,
        cap: Instant,
        chores: &mut Chores<C>,
    ) -> (Instant, bool) {
        let next = self.reap(now, &mut chores.close);
        let next = earliest(next, self.watch_leaks(now, &mut chores.leaks));
        let before = chores.wake.len();
        let next = earliest(next, self.expire_waiters(now, &mut chores.wake));
        chores.expired += chores.wake.len() - before;
        let at = next.map_or(cap, |n| n.min(cap));
        self.timer_at = Some(at);
        (at, self.wants_connect())
    }

    /// The idle sweep, first half: every idle connection moves to `out` (longest idle first)
    /// for a `has_broken` look outside the lock. Until [`State::sweep_in`] they still count as
    /// idle in the status, and as supply for the callers that queue meanwhile.
    pub(crate) fn sweep_out(&mut self, out: &mut Vec<Conn<C>>) {
        if self.closed {
            return;
        }
        let before = out.len();
        out.extend(self.idle.take_all());
        self.sweeping += out.len() - before;
    }

    /// The idle sweep, second half: `lost` connections were found broken (the caller closes
    /// them); the ones in `kept` (in `sweep_out`'s order) go to the callers that queued
    /// meanwhile, oldest first, and the rest back to the front of the idle list, where they
    /// were (they have been idle longer than any returned meanwhile). Closes them instead if
    /// the pool closed meanwhile (into `close`). Wakers of served callers go to `wake`.
    pub(crate) fn sweep_in(
        &mut self,
        kept: &mut Vec<Conn<C>>,
        gone: Gone,
        now: Instant,
        close: &mut Vec<Conn<C>>,
        wake: &mut Vec<Waker>,
    ) {
        let removed = gone.lost + gone.retired;
        self.sweeping -= kept.len() + removed;
        self.size -= removed;
        self.stats.connections_lost += gone.lost as u64;
        self.stats.closed_retain += gone.retired as u64;
        self.stats.connections_closed += removed as u64;
        if self.closed {
            self.size -= kept.len();
            self.stats.connections_closed += kept.len() as u64;
            close.append(kept);
            return;
        }
        // In stamp order: another sweep may have put its connections back meanwhile.
        for conn in kept.drain(..) {
            let idle = self.idle.as_deque();
            let at = idle.partition_point(|c| c.stamp <= conn.stamp);
            idle.insert(at, conn);
        }
        while !self.waiters.is_empty() {
            let conn = self.pop_idle();
            let Some(mut conn) = conn else { break };
            conn.stamp = now;
            match self.waiters.hand_off(conn, Ok) {
                Ok((waker, since)) => {
                    self.count_hand_off(since, now);
                    wake.extend(waker);
                }
                Err(conn) => {
                    self.idle.push_newest(conn);
                    break;
                }
            }
        }
    }

    /// Fails the waiters whose pool-wide deadline has passed; returns the next deadline.
    fn expire_waiters(&mut self, now: Instant, wake: &mut Vec<Waker>) -> Option<Instant> {
        if self.waiters.is_empty() {
            return None;
        }
        let mut status = self.status();
        let stalled = self.stalled(now);
        let last = &self.last_error;
        let stats = &mut self.stats;
        // Each one's status is the pool as it left it.
        self.waiters.expire(
            now,
            |since| {
                status.waiting -= 1;
                stats.requests_errors += 1;
                stats.requests_timeouts += 1;
                Err(Box::new(PoolError::Timeout(TimeoutError {
                    waited: now.saturating_duration_since(since),
                    status,
                    last_connect_error: last.clone(),
                    stalled,
                })))
            },
            wake,
        )
    }

    /// Idle shrink, lifetime and the ceiling: moves the connections to close into `out`;
    /// returns the next deadline.
    fn reap(&mut self, now: Instant, out: &mut Vec<Conn<C>>) -> Option<Instant> {
        let before = out.len();
        // Above the ceiling (after a resize): close the longest idle first.
        while self.size - (out.len() - before) > self.max_size {
            match self.idle.pop_oldest() {
                Some(c) => out.push(c),
                None => break,
            }
        }
        // Idle shrink, down to the floor. Idle connections sit in return order, so the
        // longest idle is at the front.
        if let Some(max_idle) = self.rules.max_idle {
            while self.size - (out.len() - before) > self.min_size {
                match self.idle.oldest() {
                    Some(c) if c.stamp + max_idle <= now => {
                        out.extend(self.idle.pop_oldest());
                        self.stats.closed_idle += 1;
                    }
                    _ => break,
                }
            }
        }
        // Lifetime: close expired ones while above the floor; at the floor keep them until the
        // connector has opened their replacement.
        let mut pending = 0;
        let mut i = 0;
        let idle = self.idle.as_deque();
        while i < idle.len() {
            if idle[i].expires.is_some_and(|t| t <= now) {
                let open = self.size - (out.len() - before);
                // Keep it only while a replacement can still be opened below the ceiling.
                let room = open + self.connecting + pending < self.max_size;
                if open > self.min_size || !room {
                    out.extend(idle.remove(i));
                    self.stats.closed_lifetime += 1;
                    continue;
                }
                pending += 1;
            }
            i += 1;
        }
        self.retire_pending = pending;
        let closed = out.len() - before;
        self.size -= closed;
        self.stats.connections_closed += closed as u64;

        let mut next: Option<Instant> = None;
        if let (Some(max_idle), Some(front)) = (self.rules.max_idle, self.idle.oldest()) {
            if self.size > self.min_size {
                next = earliest(next, Some(front.stamp + max_idle));
            }
        }
        for c in self.idle.iter() {
            // Expired ones still here wait for their replacement, which wakes the housekeeper.
            next = earliest(next, c.expires.filter(|&t| t > now));
        }
        next
    }

    /// Marks checkouts held past the leak threshold (each once) into `out`; returns when the
    /// next one will be due.
    fn watch_leaks(
        &mut self,
        now: Instant,
        out: &mut Vec<(&'static Location<'static>, Duration)>,
    ) -> Option<Instant> {
        let threshold = self.rules.leak_threshold?;
        if self.checkouts.len() == 0 {
            return None;
        }
        let mut next: Option<Instant> = None;
        for c in self.checkouts.iter_mut().filter(|c| !c.warned) {
            let due = c.since + threshold;
            if due <= now {
                c.warned = true;
                out.push((c.caller, now.saturating_duration_since(c.since)));
            } else {
                next = earliest(next, Some(due));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use super::*;

    #[derive(Debug)]
    struct Boom;
    impl std::fmt::Display for Boom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("boom")
        }
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> Waker {
        Waker::from(Arc::new(Count(AtomicUsize::new(0))))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    type S = State<u32, Boom>;

    fn state(min: usize, max: usize) -> S {
        let config = Config {
            min_size: min,
            max_size: max,
            max_lifetime: None,
            ..Config::default()
        };
        State::new(&config, 7)
    }

    /// Approves and settles one successful connect, raising the floor for it if nothing
    /// else asks for one.
    fn open(st: &mut S, raw: u32, now: Instant) -> Released<u32, Boom> {
        let s = st.status();
        if !st.wants_connect() {
            let _ = st.resize(s.size + 1, s.max_size);
        }
        let Next::Connect(a) = st.approve_connect(now) else {
            panic!("no connect approved: {:?}", st.status())
        };
        let _ = st.resize(s.min_size, s.max_size);
        st.settle_connect(a, Ok(raw), now, now, &mut Vec::new())
            .expect("a successful connect")
    }

    /// A pool of one: its connection checked out, and a caller queued for it.
    fn one_out_one_queued(t0: Instant) -> (S, Conn<u32>, Queued<Handed<u32, Boom>>) {
        let mut st = state(0, 1);
        let _ = open(&mut st, 1, t0);
        let conn = take_idle(&mut st, t0);
        let Admit::Queued { queued, .. } = st.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!("should queue")
        };
        (st, conn, queued)
    }

    fn take_idle(st: &mut S, now: Instant) -> Conn<u32> {
        match st.admit(Arrival::New, now, || Seat::new(waker()), None) {
            Admit::Idle(c) => c,
            _ => panic!("no idle connection: {:?}", st.status()),
        }
    }

    #[test]
    fn the_floor_is_opened_one_approved_connect_at_a_time() {
        let now = Instant::now();
        let mut st = state(2, 4);
        assert!(st.wants_connect());
        let Next::Connect(a) = st.approve_connect(now) else {
            panic!()
        };
        assert!(
            matches!(st.approve_connect(now), Next::Sleep),
            "connect_concurrency 1"
        );
        assert_eq!(st.status().connecting, 1);
        let r = st
            .settle_connect(a, Ok(1), now, now, &mut Vec::new())
            .ok()
            .unwrap();
        assert!(r.fill.is_none() && r.close.is_none());
        let _ = open(&mut st, 2, now);
        assert!(!st.wants_connect(), "floor met, nobody waiting");
        assert!(st.is_ready());
        let s = st.status();
        assert_eq!((s.size, s.idle, s.connecting), (2, 2, 0));
    }

    #[test]
    fn a_waiter_is_handed_the_next_return_and_idle_stays_empty_meanwhile() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        let _ = open(&mut st, 1, t0);
        let conn = take_idle(&mut st, t0);
        let Admit::Queued {
            queued,
            wake_connector,
            ..
        } = st.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!("should queue")
        };
        assert!(!wake_connector, "at the ceiling");
        assert!(queued.seat.poll(&waker()).is_none());
        let t1 = t0 + secs(2);
        let r = st.release(conn, Outcome::Healthy, t1);
        assert_eq!(st.status().idle, 0);
        let (seat, conn) = r.fill.expect("the waiter's seat is to be filled");
        assert!(seat.is(&queued.seat));
        assert!(
            seat.fill(Ok(conn)).is_ok(),
            "filled, and its waker handed back"
        );
        let got = queued.seat.poll(&waker()).unwrap().ok().unwrap();
        assert_eq!(got.raw, 1);
        assert_eq!(
            st.stats().requests_wait_ms,
            2000,
            "wait ends at the hand-off"
        );
    }

    /// Holds and waits shorter than a millisecond still add up: 0.6 ms held three times is
    /// 1.8 ms of use, and 0.7 ms waited three times is 2.1 ms of waiting (reported whole
    /// milliseconds, rounded down once, not per event).
    #[test]
    fn sub_millisecond_holds_and_waits_add_up() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        let _ = open(&mut st, 1, t0);
        let mut now = t0;
        for _ in 0..3 {
            let mut conn = take_idle(&mut st, now);
            conn.taken = Some(now);
            now += Duration::from_micros(600);
            let r = st.release(conn, Outcome::Healthy, now);
            assert!(r.fill.is_none() && r.close.is_none());
        }
        assert_eq!(st.stats().usage_ms, 1, "1.8 ms of use");
        let mut conn = take_idle(&mut st, now);
        for _ in 0..3 {
            let Admit::Queued { queued, .. } =
                st.admit(Arrival::New, now, || Seat::new(waker()), None)
            else {
                panic!("should queue")
            };
            conn.taken = Some(now);
            now += Duration::from_micros(700);
            let (seat, handed) = st
                .release(conn, Outcome::Healthy, now)
                .fill
                .expect("handed to the waiter");
            assert!(seat.fill(Ok(handed)).is_ok());
            conn = queued.seat.poll(&waker()).unwrap().ok().unwrap();
        }
        let s = st.stats();
        assert_eq!(s.requests_wait_ms, 2, "2.1 ms of waiting");
        assert_eq!(s.usage_ms, 3, "3.9 ms of use in all");
    }

    #[test]
    fn an_own_timer_firing_during_a_fill_in_flight_waits_for_the_connection() {
        let t0 = Instant::now();
        let (mut st, conn, queued) = one_out_one_queued(t0);
        let r = st.release(conn, Outcome::Healthy, t0);
        // Popped, not yet filled: the timer does not fail it.
        assert!(st
            .time_out_waiter(&queued.seat, queued.ticket, t0, t0 + secs(5))
            .is_none());
        assert_eq!(st.stats().requests_timeouts, 0);
        let (seat, conn) = r.fill.expect("popped for the waiter");
        assert!(seat.fill(Ok(conn)).is_ok());
        let got = st.time_out_waiter(&queued.seat, queued.ticket, t0, t0 + secs(5));
        assert!(
            matches!(got, Some(Ok(c)) if c.raw == 1),
            "the last-moment hand-off is taken"
        );
        assert_eq!(st.stats().requests_timeouts, 0);
    }

    #[test]
    fn a_new_caller_never_barges_past_the_queue() {
        let t0 = Instant::now();
        let (mut st, conn, queued) = one_out_one_queued(t0);
        let r = st.release(conn, Outcome::Healthy, t0);
        // The connection is on its way to the waiter's seat; a new caller must queue.
        let Admit::Queued { queued: second, .. } =
            st.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!("a new caller queues behind the hand-off")
        };
        // The first waiter leaves before the fill lands: the fill gets the connection back,
        // and releasing it again hands it to the second.
        assert!(st.leave(&queued.seat, queued.ticket).fill.is_none());
        let (seat, conn) = r.fill.expect("popped for the first waiter");
        let Err(Ok(conn)) = seat.fill(Ok(conn)) else {
            panic!("the seat was left")
        };
        let r = st.release(conn, Outcome::Healthy, t0);
        let (seat, conn) = r.fill.expect("on to the second waiter");
        assert!(seat.is(&second.seat));
        assert_eq!(st.status().waiting, 0);
        // The second leaves after the fill: it passes the connection on to the idle list.
        assert!(seat.fill(Ok(conn)).is_ok());
        let r = st.leave(&second.seat, second.ticket);
        assert!(r.fill.is_none() && r.close.is_none());
        assert_eq!(st.status().idle, 1);
    }

    #[test]
    fn each_queued_caller_counts_once_in_requests_queued() {
        let t0 = Instant::now();
        let (mut st, conn, queued) = one_out_one_queued(t0);
        assert_eq!(st.stats().requests_queued, 1);
        // Served, its connection fails the check: it comes back with its ticket and queues
        // again without counting twice; a new caller after it counts once.
        let r = st.release(conn, Outcome::Healthy, t0);
        let (seat, conn) = r.fill.expect("handed to the waiter");
        assert!(seat.fill(Ok(conn)).is_ok());
        let Some(Ok(conn)) = queued.seat.take() else {
            panic!("the waiter was handed the connection")
        };
        let r = st.release(conn, Outcome::Lost, t0);
        assert!(r.close.is_some());
        let again = Arrival::Again {
            ticket: Some(queued.ticket),
        };
        assert!(matches!(
            st.admit(again, t0, || Seat::new(waker()), None),
            Admit::Queued { .. }
        ));
        assert_eq!(
            st.stats().requests_queued,
            1,
            "the same caller, its old ticket"
        );
        assert!(matches!(
            st.admit(Arrival::New, t0, || Seat::new(waker()), None),
            Admit::Queued { .. }
        ));
        let s = st.stats();
        assert_eq!((s.requests_queued, s.requests_num), (2, 3));
    }

    #[test]
    fn release_outcomes_close_and_count() {
        let t0 = Instant::now();
        let mut st = state(0, 4);
        for raw in 0..4 {
            let _ = open(&mut st, raw, t0);
        }
        let mut conns: Vec<_> = (0..4).map(|_| take_idle(&mut st, t0)).collect();
        for c in &mut conns {
            c.taken = Some(t0);
        }
        let t1 = t0 + secs(1);
        let outcomes = [
            Outcome::Healthy,
            Outcome::Broken,
            Outcome::Lost,
            Outcome::Discarded,
        ];
        for (c, o) in conns.into_iter().zip(outcomes) {
            let r = st.release(c, o, t1);
            assert_eq!(r.close.is_some(), o != Outcome::Healthy, "{o:?}");
        }
        let s = st.stats();
        assert_eq!(
            (s.returns_bad, s.connections_lost, s.connections_closed),
            (1, 1, 3)
        );
        assert_eq!(s.usage_ms, 4000);
        assert_eq!(st.status().size, 1);
    }

    #[test]
    fn detach_frees_the_slot_without_counting_a_close() {
        let t0 = Instant::now();
        let mut st = state(1, 2);
        let _ = open(&mut st, 1, t0);
        let c = take_idle(&mut st, t0);
        let r = st.detach(c.watch);
        assert!(r.wake_connector, "below the floor: a replacement is wanted");
        assert_eq!(st.status().size, 0);
        assert_eq!(st.stats().connections_closed, 0);
    }

    #[test]
    fn stalled_says_why_nothing_is_connecting() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        assert_eq!(
            st.stalled(t0),
            Some(Stalled::NoBackgroundTask),
            "never started"
        );
        st.set_connector_down(false);
        assert_eq!(st.stalled(t0), None, "room to grow, nothing asked");
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        let Next::Connect(a) = st.approve_connect(t0) else {
            panic!()
        };
        assert_eq!(st.stalled(t0), None, "a connect is in flight");
        let mut wake = Vec::new();
        let err = ConnectError::Backend(Arc::new(Boom));
        let _ = st.settle_connect(a, Err((err, ErrorClass::Transient)), t0, t0, &mut wake);
        assert!(
            matches!(st.stalled(t0), Some(Stalled::BackingOff { retry_in }) if retry_in <= Duration::from_millis(10)),
            "{:?}",
            st.stalled(t0)
        );
        let later = t0 + Duration::from_millis(20);
        let Next::Connect(a) = st.approve_connect(later) else {
            panic!()
        };
        let _ = st.settle_connect(a, Ok(1), later, later, &mut wake);
        assert_eq!(st.stalled(later), Some(Stalled::AtCeiling));
        st.set_connector_down(true);
        assert_eq!(st.stalled(later), Some(Stalled::NoBackgroundTask));
        let _ = st.close(&mut wake);
        assert_eq!(st.stalled(later), Some(Stalled::Closed));
    }

    #[test]
    fn a_server_full_refusal_stalls_at_the_lowered_ceiling() {
        let t0 = Instant::now();
        let mut st = state(0, 4);
        st.set_connector_down(false);
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        let Next::Connect(a) = st.approve_connect(t0) else {
            panic!()
        };
        let mut wake = Vec::new();
        let err = ConnectError::Backend(Arc::new(Boom));
        let _ = st.settle_connect(a, Err((err, ErrorClass::ServerFull)), t0, t0, &mut wake);
        let later = t0 + Duration::from_secs(3);
        assert_eq!(
            st.stalled(later),
            None,
            "room for the probe, which the connector starts"
        );
        let Next::Connect(a) = st.approve_connect(later) else {
            panic!()
        };
        let _ = st.settle_connect(a, Ok(1), later, later, &mut wake);
        let _ = st.admit(Arrival::New, later, || Seat::new(waker()), None);
        let Next::Connect(a) = st.approve_connect(later + Duration::from_secs(30)) else {
            panic!()
        };
        let err = ConnectError::Backend(Arc::new(Boom));
        let when = later + Duration::from_secs(30);
        let _ = st.settle_connect(a, Err((err, ErrorClass::ServerFull)), when, when, &mut wake);
        let after_backoff = when + Duration::from_secs(3);
        assert_eq!(
            st.stalled(after_backoff),
            Some(Stalled::ServerFull { ceiling: 1 })
        );
    }

    #[test]
    fn a_fatal_connect_fails_every_waiter_and_the_next_caller_gets_an_attempt() {
        let t0 = Instant::now();
        let mut st = state(0, 2);
        let keys: Vec<_> = (0..3)
            .map(
                |_| match st.admit(Arrival::New, t0, || Seat::new(waker()), None) {
                    Admit::Queued { queued, .. } => queued.seat,
                    _ => panic!(),
                },
            )
            .collect();
        let Next::Connect(a) = st.approve_connect(t0) else {
            panic!()
        };
        let mut wake = Vec::new();
        let err = ConnectError::Backend(Arc::new(Boom));
        let failure = st
            .settle_connect(a, Err((err, ErrorClass::Fatal)), t0, t0, &mut wake)
            .err()
            .unwrap();
        assert_eq!(failure.attempt, 1);
        assert_eq!(wake.len(), 3);
        for k in keys {
            assert!(matches!(
                k.poll(&waker()).map(|h| h.map_err(|e| *e)),
                Some(Err(PoolError::Backend(_)))
            ));
        }
        assert_eq!(st.stats().requests_errors, 3);
        // Backing off...
        assert!(matches!(
            st.approve_connect(t0),
            Next::Sleep | Next::WaitUntil(_)
        ));
        // ...until a new caller arrives: it gets its own attempt at once.
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        assert!(matches!(st.approve_connect(t0), Next::Connect(_)));
    }

    #[test]
    fn transient_failures_back_off_exponentially_within_the_cap() {
        let t0 = Instant::now();
        let mut st = state(1, 1);
        let mut delays = Vec::new();
        let mut now = t0;
        for _ in 0..12 {
            let a = loop {
                match st.approve_connect(now) {
                    Next::Connect(a) => break a,
                    Next::WaitUntil(t) => now = t,
                    Next::Sleep => panic!("the floor wants a connection"),
                }
            };
            let err = ConnectError::TimedOut(secs(1));
            let f = st
                .settle_connect(
                    a,
                    Err((err, ErrorClass::Transient)),
                    now,
                    now,
                    &mut Vec::new(),
                )
                .err()
                .unwrap();
            delays.push(f.retry_in);
        }
        let cfg = Config::default();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = cfg
                .backoff_base
                .saturating_mul(1 << i.min(30))
                .min(cfg.backoff_cap);
            assert!(*d <= ceiling, "attempt {i}: {d:?} > {ceiling:?}");
        }
        assert!(delays.iter().skip(8).any(|d| *d > secs(0)));
    }

    #[test]
    fn the_timer_expires_waiters_in_order_and_asks_to_be_woken_only_when_earlier() {
        let t0 = Instant::now();
        let mut st = state(0, 1);
        let mut chores = Chores::new();
        // The housekeeper sleeps until its cap, 1 s from now.
        let (at, _) = st.housekeep(t0, t0 + secs(1), &mut chores);
        assert_eq!(at, t0 + secs(1));
        let admit = |st: &mut S, deadline| match st.admit(
            Arrival::New,
            t0,
            || Seat::new(waker()),
            Some(deadline),
        ) {
            Admit::Queued {
                queued, wake_timer, ..
            } => (queued.seat, wake_timer),
            _ => panic!(),
        };
        // A deadline after the timer's next look needs no wake-up...
        let (late, woke) = admit(&mut st, t0 + secs(30));
        assert!(!woke);
        // ...an earlier one does, once.
        let (_, woke) = admit(&mut st, t0 + secs(30));
        assert!(!woke);
        let mut st2 = state(0, 1);
        let _ = st2.housekeep(t0, t0 + secs(1), &mut chores);
        let (_, woke) = admit(&mut st2, t0 + Duration::from_millis(100));
        assert!(woke, "earlier than the timer's next look");
        let (_, woke) = admit(&mut st2, t0 + Duration::from_millis(200));
        assert!(!woke, "the timer already looks before this one");

        // The housekeeper now sleeps until the head's deadline, and expires it there.
        let (at, _) = st.housekeep(t0 + secs(29), t0 + secs(60), &mut chores);
        assert_eq!(at, t0 + secs(30));
        let (_, _) = st.housekeep(t0 + secs(30), t0 + secs(60), &mut chores);
        assert_eq!(chores.expired, 2);
        assert_eq!(chores.wake.len(), 2);
        match late.poll(&waker()).map(|h| h.map_err(|e| *e)) {
            Some(Err(PoolError::Timeout(t))) => {
                assert_eq!(t.waited, secs(30));
                assert_eq!(t.status.waiting, 1, "the other one still waited");
            }
            _ => panic!("the waiter should have timed out"),
        }
        // Counted as they expire, whether or not their callers have looked yet.
        assert_eq!(st.stats().requests_errors, 2);
        assert_eq!(st.stats().requests_timeouts, 2);
    }

    #[test]
    fn reap_shrinks_idle_to_the_floor_and_retires_at_the_floor_only_after_replacement() {
        let t0 = Instant::now();
        let config = Config {
            min_size: 1,
            max_size: 3,
            max_idle: Some(secs(10)),
            max_lifetime: Some(secs(100)),
            ..Config::default()
        };
        let mut st: S = State::new(&config, 3);
        for raw in 0..3 {
            let _ = open(&mut st, raw, t0);
        }
        let mut chores = Chores::new();
        let (next, _) = st.housekeep(t0 + secs(5), t0 + secs(60), &mut chores);
        assert_eq!(next, t0 + secs(10));
        assert!(chores.close.is_empty());
        let _ = st.housekeep(t0 + secs(10), t0 + secs(60), &mut chores);
        assert_eq!(chores.close.len(), 2, "down to the floor");
        assert_eq!(st.status().size, 1);
        chores.close.clear();
        // Past its lifetime (jitter up to 5 %): at the floor it stays until replaced.
        let (_, wake_connector) = st.housekeep(t0 + secs(100), t0 + secs(200), &mut chores);
        assert!(chores.close.is_empty());
        assert!(wake_connector, "a replacement is wanted");
        let _ = open(&mut st, 9, t0 + secs(100));
        let _ = st.housekeep(t0 + secs(100), t0 + secs(200), &mut chores);
        assert_eq!(chores.close.len(), 1, "the expired one goes once replaced");
        assert_eq!(st.status().size, 1);
    }

    #[test]
    fn resize_below_the_size_closes_returns_and_idle_above_the_ceiling() {
        let t0 = Instant::now();
        let mut st = state(0, 3);
        for raw in 0..3 {
            let _ = open(&mut st, raw, t0);
        }
        let first = take_idle(&mut st, t0);
        let second = take_idle(&mut st, t0);
        assert!(!st.resize(0, 1));
        let mut chores = Chores::new();
        let _ = st.housekeep(t0, t0 + secs(1), &mut chores);
        assert_eq!(chores.close.len(), 1, "the idle one closed: size 3 -> 2");
        let r = st.release(first, Outcome::Healthy, t0);
        assert!(r.close.is_some(), "over the ceiling: closed on return");
        let r = st.release(second, Outcome::Healthy, t0);
        assert!(r.close.is_none(), "at the ceiling: kept");
        let s = st.status();
        assert_eq!((s.size, s.idle), (1, 1));
    }

    #[test]
    fn close_fails_waiters_hands_back_idle_and_closes_returns() {
        let t0 = Instant::now();
        let mut st = state(0, 2);
        let _ = open(&mut st, 1, t0);
        let _ = open(&mut st, 2, t0);
        let held = take_idle(&mut st, t0);
        let other = take_idle(&mut st, t0);
        let _ = st.release(other, Outcome::Healthy, t0);
        assert_eq!(st.status().idle, 1);
        let mut st_waiting = state(0, 1);
        let _ = open(&mut st_waiting, 3, t0);
        let held_w = take_idle(&mut st_waiting, t0);
        let Admit::Queued { queued, .. } =
            st_waiting.admit(Arrival::New, t0, || Seat::new(waker()), None)
        else {
            panic!()
        };

        let mut wake = Vec::new();
        let idle = st.close(&mut wake).expect("first close");
        assert_eq!(idle.len(), 1);
        assert!(st.close(&mut wake).is_none(), "closing twice does nothing");
        assert!(st.release(held, Outcome::Healthy, t0).close.is_some());
        assert!(st.is_drained());
        assert!(matches!(
            st.admit(Arrival::New, t0, || Seat::new(waker()), None),
            Admit::Refused(PoolError::Closed)
        ));

        let _ = st_waiting.close(&mut wake);
        assert_eq!(wake.len(), 1);
        assert!(matches!(
            queued.seat.poll(&waker()).map(|h| h.map_err(|e| *e)),
            Some(Err(PoolError::Closed))
        ));
        assert!(st_waiting
            .release(held_w, Outcome::Healthy, t0)
            .close
            .is_some());
        assert_eq!(st_waiting.stats().connections_closed, 1);
    }

    #[test]
    fn max_waiting_sheds_the_next_caller() {
        let t0 = Instant::now();
        let config = Config {
            max_size: 1,
            max_waiting: Some(1),
            ..Config::default()
        };
        let mut st: S = State::new(&config, 1);
        let _ = st.admit(Arrival::New, t0, || Seat::new(waker()), None);
        assert!(matches!(
            st.admit(Arrival::New, t0, || Seat::new(waker()), None),
            Admit::Refused(PoolError::TooManyWaiters { max_waiting: 1 })
        ));
        assert_eq!(st.stats().requests_errors, 1);
    }

    #[test]
    fn the_sweep_closes_the_broken_and_puts_the_rest_back_in_their_places() {
        let t0 = Instant::now();
        let mut st = state(1, 4);
        for raw in 1..=3 {
            let _ = open(&mut st, raw, t0 + secs(u64::from(raw)));
        }
        let mut out = Vec::new();
        st.sweep_out(&mut out);
        assert_eq!(out.iter().map(|c| c.raw).collect::<Vec<_>>(), [1, 2, 3]);
        let s = st.status();
        assert_eq!(
            (s.size, s.idle, s.in_use),
            (3, 3, 0),
            "out for the look, still idle"
        );
        assert!(!st.wants_connect());
        // 2 is broken; meanwhile a connection opened at t0+10 was returned.
        let _broken = out.remove(1);
        let _ = open(&mut st, 4, t0 + secs(10));
        let (mut close, mut wake) = (Vec::new(), Vec::new());
        st.sweep_in(
            &mut out,
            Gone {
                lost: 1,
                retired: 0,
            },
            t0 + secs(11),
            &mut close,
            &mut wake,
        );
        assert!(out.is_empty() && close.is_empty() && wake.is_empty());
        let s = st.status();
        assert_eq!((s.size, s.idle), (3, 3));
        let stats = st.stats();
        assert_eq!((stats.connections_lost, stats.connections_closed), (1, 1));
        let order: Vec<_> = st.idle.iter().map(|c| (c.raw, c.stamp)).collect();
        assert_eq!(
            order,
            [(1, t0 + secs(1)), (3, t0 + secs(3)), (4, t0 + secs(10))],
            "longest idle first, stamps kept"
        );
    }

    #[test]
    fn callers_queued_during_the_sweep_are_served_by_it_without_a_connect() {
        let t0 = Instant::now();
        let mut st = state(0, 4);
        let _ = open(&mut st, 1, t0);
        let _ = st.resize(0, 4);
        let mut out = Vec::new();
        st.sweep_out(&mut out);
        let Admit::Queued {
            queued,
            wake_connector,
            ..
        } = st.admit(Arrival::New, t0 + secs(1), || Seat::new(waker()), None)
        else {
            panic!("nothing idle during the look: it queues")
        };
        assert!(!wake_connector, "the swept connection covers it");
        assert!(matches!(st.approve_connect(t0), Next::Sleep));
        let (mut close, mut wake) = (Vec::new(), Vec::new());
        st.sweep_in(
            &mut out,
            Gone::default(),
            t0 + secs(2),
            &mut close,
            &mut wake,
        );
        assert_eq!(wake.len(), 1, "the waiter is woken");
        let Some(Ok(conn)) = queued.seat.poll(&waker()) else {
            panic!("the waiter was handed the swept connection")
        };
        assert_eq!((conn.raw, conn.stamp), (1, t0 + secs(2)));
        let s = st.status();
        assert_eq!((s.size, s.idle, s.in_use, s.waiting), (1, 0, 1, 0));
    }

    #[test]
    fn a_pool_closed_during_the_sweep_closes_what_comes_back() {
        let t0 = Instant::now();
        let mut st = state(2, 4);
        let _ = open(&mut st, 1, t0);
        let _ = open(&mut st, 2, t0);
        let mut out = Vec::new();
        st.sweep_out(&mut out);
        let idle = st.close(&mut Vec::new()).expect("first close");
        assert!(idle.is_empty());
        let (mut close, mut wake) = (Vec::new(), Vec::new());
        st.sweep_in(&mut out, Gone::default(), t0, &mut close, &mut wake);
        assert_eq!(close.len(), 2);
        assert!(st.is_drained());
        assert_eq!(st.stats().connections_closed, 2);
    }

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
