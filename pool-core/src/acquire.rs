//! `get()`: the fast path (an idle connection, one short lock), the wait queue, and the health
//! check.
//!
//! # Implementation details
//!
//! A new caller takes the lock once: while nobody queues (the `queueing` hint below), before
//! it builds an [`Entry`] at all; else in its `Entry`'s first poll (as does, once more, a
//! caller that found nothing idle before building it: the pool has just run dry). If nobody
//! is queued and a connection is idle
//! ([`State::take_idle`](crate::state::State::take_idle)) it leaves with it,
//! having read no clock; the checkout takes one stamp afterwards (a coarse read of a few
//! nanoseconds, see [`clock::Clock`]). Otherwise, under the same lock, it takes a stamp and a
//! place in the FIFO queue
//! ([`State::admit`](crate::state::State::admit)) with its waker already in its seat and, if
//! the pool may grow, wakes the connector. While callers queue, the next caller takes its
//! stamp and its seat from the store before taking the lock instead (the `queueing`
//! hint), so neither lengthens the contended section.
//!
//! A queued caller then looks only at its own seat when woken (the seat's lock, not the
//! pool's): the seat is the single source of truth, and a connection handed to it is owned by
//! the seat until the caller takes it. The hand-off pops the caller's place under the pool's
//! lock and fills the seat after releasing it; until the fill lands, the caller's own timer
//! waits for it, and a caller that goes away marks the seat left, so the connection comes back
//! to the pool. A queued caller reads no clock again: the connection it is handed carries the
//! moment of the hand-off, which ends its wait. A deadline set from a stamp is padded by the
//! stamp's possible lag ([`clock::Clock::deadline`]), so a wait never times out early.
//!
//! **Timeouts.** Under the pool-wide `wait_timeout` (every `get()`), the waiter's deadline
//! sits in its place in the queue and the housekeeper's single timer fails it there, in queue
//! order; the waiter sees the timeout in its seat exactly as it would see a connection. No
//! timer is armed per `get()`. A `get_timeout` with a timeout other than the pool's keeps a
//! timer of its own (the rare path, boxed); when it fires, a connection handed over at the last
//! moment is still taken.
//!
//! Dropping the `Entry` at any point (cancellation) gives up the seat and passes a connection
//! already handed to it on to the next waiter or the idle list.
//!
//! **The check and the hook run boxed.** The manager's check future and the timeouts around
//! it and the `before_checkout` hook are most of what a `get()` future would hold (656 of
//! its 1008 bytes with the test kit's fake manager), though most checkouts never run them. So
//! [`prepare`] is boxed, the one allocation a checkout makes and only when it checks or runs
//! the hook: a queued `get()` then holds 256 bytes, which is what ten thousand queued callers
//! cost in memory and what a cancelled one has to touch (`tests/pool_alloc.rs` keeps it so, and
//! counts the one allocation of a checked checkout).
//!
//! A connection is checked when the [`CheckPolicy`] says so or the manager doubts it
//! ([`Manager::needs_check`]). An idle connection is first asked `has_broken` (cheap, synchronous): a connection that died
//! while idle is discarded without a round trip. The health check runs on an [`Object`] flagged
//! `checking`: if the caller is cancelled during the check, the guard discards the connection
//! (its protocol state is unknown) instead of returning it. A failed check discards the
//! connection and the caller goes round again, back in the queue at the place its first
//! arrival earned (it keeps its ticket).

use std::future::{poll_fn, Future};
use std::panic::{resume_unwind, Location};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::{self, Instant};
use crate::config::CheckPolicy;
use crate::conn::Conn;
use crate::error::PoolError;
use crate::hooks::Stage;
use crate::manager::Manager;
use crate::object::Object;
use crate::rt;
use crate::seats::Seat;
use crate::shared::{Came, Links, Shared};
use crate::state::{Admit, Arrival, Handed, Outcome};
use crate::stats::millis;

/// Which timer ends this caller's wait.
#[derive(Clone, Copy)]
enum Timer {
    /// None: it waits until served or the pool closes.
    Never,
    /// The pool-wide one (the housekeeper's), through the deadline in its place in the queue.
    Pool(Duration),
    /// Its own.
    Own(Duration),
}

impl Timer {
    /// How long the caller may wait, if it is timed.
    fn limit(self) -> Option<Duration> {
        match self {
            Timer::Never => None,
            Timer::Pool(t) | Timer::Own(t) => Some(t),
        }
    }
}

/// `get()`. A plain function returning an `async move` block rather than an `async fn`, whose
/// future would keep a second copy of its arguments; and no closure state is kept across its
/// awaits, so the future holds each thing once.
pub(crate) fn acquire<'a, M: Manager>(
    shared: &'a Arc<Shared<M>>,
    links: &'a Links<M>,
    timeout: Option<Duration>,
    caller: &'static Location<'static>,
) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + 'a {
    let timer = match timeout {
        None => Timer::Never,
        Some(t) if timeout == shared.config.wait_timeout => Timer::Pool(t),
        Some(t) => Timer::Own(t),
    };
    async move {
        // The fast path, while nobody queues: one short lock for an idle connection, and no
        // `Entry` built (nor dropped) unless the caller has to go round the queue.
        // It is kept as the bare connection, not a `Got`: it lives across the awaits below,
        // so it takes room in the future.
        let mut fast = if shared.queueing.load(Ordering::Relaxed) {
            None
        } else {
            shared.take_idle()
        };
        let mut entry: Option<Entry<'_, M>> = None;
        loop {
            let Got {
                conn,
                at,
                from_idle,
            } = match fast.take() {
                Some(conn) => Got {
                    conn,
                    at: None,
                    from_idle: true,
                },
                None => {
                    let entry = entry.get_or_insert_with(|| Entry::new(shared, timer));
                    poll_fn(|cx| entry.poll_next(cx)).await?
                }
            };
            // The common outcome is the bare guard, with nothing to run: it is moved once.
            let (obj, end) = match ready(shared, links, conn, at, from_idle, caller) {
                Ok(obj) => (obj, at.map(|t| (t, t))),
                Err(NotOut::Dead) => {
                    // Counted as a request already: it comes back as the same one.
                    entry
                        .get_or_insert_with(|| Entry::new(shared, timer))
                        .arrival = Arrival::Again { ticket: None };
                    continue;
                }
                Err(unprepared) => {
                    let (obj, check, start) = match unprepared {
                        NotOut::Check(obj, start) => (obj, true, start),
                        NotOut::Hook(obj, start) => (obj, false, start),
                        NotOut::Dead => unreachable!("matched above"),
                    };
                    match Box::pin(prepare(shared, obj, check, start)).await {
                        Prepared::Out(obj, end) => (obj, Some(end)),
                        Prepared::Failed { start, end } => {
                            let entry = entry.get_or_insert_with(|| Entry::new(shared, timer));
                            let since = *entry.since.get_or_insert(start);
                            if timer
                                .limit()
                                .is_some_and(|t| end >= shared.clock.deadline(since, t))
                            {
                                return Err(shared.timed_out(since, end));
                            }
                            entry.arrival = Arrival::Again {
                                ticket: entry.ticket,
                            };
                            continue;
                        }
                    }
                }
            };
            // A caller that neither queued nor waited for a check or a hook has nothing to report.
            if let Some((start, end)) = end {
                let since = entry.as_ref().and_then(|e| e.since).unwrap_or(start);
                let waited = end.saturating_duration_since(since);
                if let Some(span) = entry.as_ref().and_then(|e| e.span.as_ref()) {
                    span.record("waited_ms", millis(waited));
                }
                #[cfg(feature = "metrics")]
                shared.metrics.checked_out(waited);
                if shared
                    .config
                    .slow_acquire_threshold
                    .is_some_and(|slow| waited > slow)
                {
                    tracing::warn!(target: "pool_core", waited_ms = millis(waited), "slow acquire");
                }
            } else {
                #[cfg(feature = "metrics")]
                shared.metrics.checked_out_at_once();
            }
            return Ok(obj);
        }
    }
}

/// What became of a connection a caller got, when it is not checked out at once.
enum NotOut<M: Manager> {
    /// Found dead by `has_broken` (taken from the idle list) or by `retain`, and released.
    Dead,
    /// Its health check (and the hook, if set) to run, begun at the instant. Two variants
    /// rather than a flag: a `bool` beside the guard gave the `Result` around this an odd
    /// layout that the fast path copied piecewise.
    Check(Object<M>, Instant),
    /// Only its `before_checkout` hook to run.
    Hook(Object<M>, Instant),
}

/// What [`prepare`] made of a checkout.
enum Prepared<M: Manager> {
    /// Checked out, with when its checkout began and ended (around the check and the hook).
    Out(Object<M>, (Instant, Instant)),
    /// Failed or timed out its health check or hook (begun at `start`, ended at `end`) and
    /// released.
    Failed { start: Instant, end: Instant },
}

/// Turns a connection a caller got into a checkout: a cheap look first if it comes from the
/// idle list (where connections can die unseen), the bookkeeping, and the health check and
/// the `before_checkout` hook when they apply. `at` is when the caller got it if that is
/// known already (a hand-off); else one stamp is taken here.
///
/// Synchronous up to the check or hook: `Ok` with the guard when neither applies (the common
/// case, so the guard alone is moved out), `Err` if the connection was found dead (and released)
/// or with what [`prepare`] has to finish, so a checkout without either builds no `prepare`
/// future.
#[inline]
fn ready<M: Manager>(
    shared: &Arc<Shared<M>>,
    links: &Links<M>,
    mut conn: Conn<M::Connection>,
    at: Option<Instant>,
    from_idle: bool,
    caller: &'static Location<'static>,
) -> Result<Object<M>, NotOut<M>> {
    if !shared.retained(&mut conn) {
        shared.release(conn, Outcome::Discarded);
        return Err(NotOut::Dead);
    }
    if from_idle {
        match shared.judge(&mut conn) {
            Ok(false) => {}
            Ok(true) => {
                tracing::debug!(target: "pool_core", "idle connection found broken at checkout; discarded");
                shared.release(conn, Outcome::Lost);
                return Err(NotOut::Dead);
            }
            Err(panic) => {
                shared.release(conn, Outcome::Lost);
                resume_unwind(panic);
            }
        }
    }
    let now = at.unwrap_or_else(|| shared.clock.stamp());
    let by_policy = needs_check(shared.config.check, conn.stamp, now);
    conn.taken = Some(now);
    conn.uses += 1;
    if shared.config.leak_threshold.is_some() {
        shared.watch(&mut conn, caller, now);
    }
    let mut obj = Object::new(links.pick(), conn);
    // Asked with the connection already in its guard: a panic here returns it.
    let check = by_policy || shared.manager.needs_check(obj.conn_mut());
    if !check && !shared.hooks.has(Stage::BeforeCheckout) {
        return Ok(obj);
    }
    Err(if check {
        NotOut::Check(obj, now)
    } else {
        NotOut::Hook(obj, now)
    })
}

/// The health check (if `check`) and the `before_checkout` hook (if set) on a checkout begun
/// at `start`.
async fn prepare<M: Manager>(
    shared: &Arc<Shared<M>>,
    mut obj: Object<M>,
    check: bool,
    start: Instant,
) -> Prepared<M> {
    if check {
        obj.set_checking(true);
        let limit = shared.config.check_timeout;
        let checked = rt::timeout(limit, shared.manager.check(obj.conn_mut())).await;
        obj.set_checking(false);
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::info!(target: "pool_core", error = %e, "health check failed; connection discarded");
                Object::lose(obj);
                return Prepared::Failed {
                    start,
                    end: clock::now(),
                };
            }
            Err(_) => {
                tracing::info!(target: "pool_core", timeout_ms = millis(limit), "health check timed out; connection discarded");
                Object::lose(obj);
                return Prepared::Failed {
                    start,
                    end: clock::now(),
                };
            }
        }
    }
    if shared.hooks.has(Stage::BeforeCheckout) {
        // Cancelled mid-hook: `checking` has the guard discard the connection.
        obj.set_checking(true);
        let info = obj.info();
        let ran = shared
            .hooks
            .run(
                Stage::BeforeCheckout,
                &shared.name,
                shared.config.hook_timeout,
                obj.conn_mut(),
                &info,
            )
            .await;
        obj.set_checking(false);
        if ran.is_err() {
            Object::discard(obj);
            return Prepared::Failed {
                start,
                end: clock::now(),
            };
        }
    }
    Prepared::Out(obj, (start, clock::now()))
}

/// `try_get()`: an idle connection if one is free and nobody is queued, else `None` at once
/// (the connector is told there is demand). A connection found dead or failing its check is
/// replaced by the next idle one, if any.
pub(crate) async fn try_acquire<M: Manager>(
    shared: &Arc<Shared<M>>,
    links: &Links<M>,
    caller: &'static Location<'static>,
) -> Result<Option<Object<M>>, PoolError<M::Error>> {
    shared.ensure_running();
    loop {
        let Some(conn) = shared.try_admit()? else {
            return Ok(None);
        };
        let (obj, check, start) = match ready(shared, links, conn, None, true, caller) {
            Ok(obj) => {
                #[cfg(feature = "metrics")]
                shared.metrics.checked_out_at_once();
                return Ok(Some(obj));
            }
            Err(NotOut::Dead) => continue,
            Err(NotOut::Check(obj, start)) => (obj, true, start),
            Err(NotOut::Hook(obj, start)) => (obj, false, start),
        };
        match Box::pin(prepare(shared, obj, check, start)).await {
            Prepared::Out(obj, _) => {
                #[cfg(feature = "metrics")]
                shared.metrics.checked_out_at_once();
                return Ok(Some(obj));
            }
            Prepared::Failed { .. } => continue,
        }
    }
}

fn needs_check(policy: CheckPolicy, idle_since: Instant, now: Instant) -> bool {
    match policy {
        CheckPolicy::Always => true,
        CheckPolicy::Never => false,
        CheckPolicy::IdleLongerThan(d) => now.saturating_duration_since(idle_since) > d,
    }
}

/// A connection for a caller.
struct Got<C> {
    conn: Conn<C>,
    /// When the caller got it, if known: the hand-off's stamp, or the clock read as it queued;
    /// `None` on the fast path, which reads no clock before it has a connection.
    at: Option<Instant>,
    /// Taken from the idle list (where it may have died unseen), not handed over.
    from_idle: bool,
}

impl<C> Got<C> {
    fn handed(conn: Conn<C>) -> Self {
        Got {
            at: Some(conn.stamp),
            conn,
            from_idle: false,
        }
    }
}

/// The seat a queued caller waits in.
type WaitSeat<M> = Seat<Handed<<M as Manager>::Connection, <M as Manager>::Error>>;

type Next<M> = Result<Got<<M as Manager>::Connection>, PoolError<<M as Manager>::Error>>;

/// A caller's place in the pool: not queued (`seat: None`), or waiting in a seat.
struct Entry<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    timer: Timer,
    /// Its seat while queued, with the ticket its place in line is found by.
    seat: Option<(WaitSeat<M>, u64)>,
    /// How it comes to the pool next.
    arrival: Arrival,
    /// Its place in line, once it has queued; kept if it has to queue again.
    ticket: Option<u64>,
    /// When this `get()` first came to the pool.
    since: Option<Instant>,
    /// The `pool.wait` span, once it has queued.
    span: Option<tracing::Span>,
    /// Its own timer (`Timer::Own`), armed when it first queues; boxed, as the rare path, so
    /// the common `get()` future stays small.
    own_timer: Option<Pin<Box<rt::Sleep>>>,
}

impl<'a, M: Manager> Entry<'a, M> {
    fn new(shared: &'a Arc<Shared<M>>, timer: Timer) -> Self {
        Entry {
            shared,
            timer,
            seat: None,
            arrival: Arrival::New,
            ticket: None,
            since: None,
            span: None,
            own_timer: None,
        }
    }

    /// Polls for the next connection for this caller (with the moment it got it), or the
    /// error that ends its wait. Polled straight from `acquire`'s `poll_fn`, with no future of
    /// its own in between, so the result is moved once less.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Next<M>> {
        let span = self.span.clone();
        let _entered = span.as_ref().map(tracing::Span::enter);
        if let Poll::Ready(r) = self.poll_seat(cx) {
            return Poll::Ready(r);
        }
        // Queued: the background tasks that serve and time out the queue must be running
        // (they die with the runtime they ran on; see `background.rs`).
        self.shared.ensure_running();
        if let (Timer::Own(t), Some(since)) = (self.timer, self.since) {
            let timer = self.own_timer.get_or_insert_with(|| {
                Box::pin(rt::sleep_until(self.shared.clock.deadline(since, t)))
            });
            if timer.as_mut().poll(cx).is_ready() {
                if let Some(r) = self.time_out() {
                    return Poll::Ready(r);
                }
            }
        }
        Poll::Pending
    }

    fn poll_seat(&mut self, cx: &mut Context<'_>) -> Poll<Next<M>> {
        let shared = self.shared;
        if let Some((seat, _)) = &self.seat {
            // Its own seat's lock only: the pool's lock was taken by whoever handed it over.
            return match seat.poll(cx.waker()) {
                None => Poll::Pending,
                Some(handed) => {
                    self.seat = None;
                    Poll::Ready(handed.map(Got::handed).map_err(|e| *e))
                }
            };
        }
        // While callers queue, the next one likely will too: it reads the clock before taking
        // the lock, so the read does not lengthen the contended section. Otherwise it reads
        // none on the fast path, and under the lock only if it has to queue.
        // The same goes for the seat it will wait in: taken before the lock, so the seat's
        // cache line is not pulled in inside the contended section.
        let queueing = shared.queueing.load(Ordering::Relaxed);
        let early = queueing.then(|| shared.clock.stamp());
        let mut ready_seat = queueing.then(|| shared.seats.take(cx.waker()));
        let timer = self.timer;
        let came = shared.come(
            self.arrival,
            early,
            &mut self.since,
            |since| match timer {
                Timer::Pool(t) => Some(shared.clock.deadline(since, t)),
                Timer::Never | Timer::Own(_) => None,
            },
            || {
                ready_seat
                    .take()
                    .unwrap_or_else(|| shared.seats.take(cx.waker()))
            },
        );
        let (admitted, now) = match came {
            Came::Idle(conn) => {
                if queueing {
                    shared.queueing.store(false, Ordering::Relaxed);
                }
                if let Some(seat) = ready_seat {
                    shared.seats.give_unused(seat);
                }
                return Poll::Ready(Ok(Got {
                    conn,
                    at: early,
                    from_idle: true,
                }));
            }
            Came::Admitted(admitted, now) => (admitted, now),
        };
        if !queueing {
            shared.queueing.store(true, Ordering::Relaxed);
        }
        if let Some(seat) = ready_seat {
            shared.seats.give_unused(seat);
        }
        match admitted {
            Admit::Idle(conn) => Poll::Ready(Ok(Got {
                conn,
                at: Some(now),
                from_idle: true,
            })),
            Admit::Refused(e) => Poll::Ready(Err(e)),
            Admit::Queued {
                queued,
                wake_connector,
                wake_timer,
            } => {
                self.seat = Some((queued.seat, queued.ticket));
                self.ticket = Some(queued.ticket);
                if self.span.is_none() {
                    // Only a caller that waits gets a span: the fast path stays free of it.
                    // One no subscriber wants is not kept: every poll would enter it for
                    // nothing.
                    let span = tracing::debug_span!(
                        target: "pool_core",
                        "pool.wait",
                        pool = %shared.name,
                        waited_ms = tracing::field::Empty,
                    );
                    if !span.is_disabled() {
                        self.span = Some(span);
                    }
                }
                if wake_connector {
                    shared.signals.connector.notify_one();
                }
                if wake_timer {
                    shared.signals.housekeeper.notify_one();
                }
                Poll::Pending
            }
        }
    }

    /// Its own timer fired: `None` if a connection is on its way to its seat (it keeps
    /// waiting for it).
    fn time_out(&mut self) -> Option<Next<M>> {
        let since = self.since.expect("a timed caller has a start");
        let now = clock::now();
        let handed = match &self.seat {
            Some((seat, ticket)) => self.shared.time_out_waiter(seat, *ticket, since, now)?,
            None => Err(Box::new(self.shared.timed_out(since, now))),
        };
        self.seat = None;
        Some(handed.map(Got::handed).map_err(|e| *e))
    }
}

impl<M: Manager> Drop for Entry<'_, M> {
    fn drop(&mut self) {
        if let Some((seat, ticket)) = self.seat.take() {
            self.shared.leave(&seat, ticket);
        }
    }
}
