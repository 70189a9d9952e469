//! `get()`: the fast path (an idle connection, one short lock), the wait queue, and the health
//! check.
//!
//! # Implementation details
//!
//! A caller first takes the lock once ([`Entry`]'s first poll): if nobody is queued and a
//! connection is idle it leaves with it; otherwise it takes a slot in the FIFO queue with its
//! waker already in it and, if the pool may grow, wakes the connector. After that it polls its
//! slot under the lock when woken, so the slot is the single source of truth: a connection
//! handed to it is owned by the slot until the waiter takes it. Dropping the `Entry` at any
//! point (cancellation, timeout) frees the slot and passes a connection already handed to it on
//! to the next waiter or the idle list.
//!
//! The clock is read lazily: a checkout served from the idle list reads it once (for the check
//! policy and the usage statistics); only a caller that queues starts its wait clock and its
//! timeout timer.
//!
//! An idle connection is first asked `has_broken` (cheap, synchronous): a connection that
//! died while idle is discarded without a round trip. The health check runs on an [`Object`]
//! flagged `checking`: if the caller is cancelled during
//! the check, the guard discards the connection (its protocol state is unknown) instead of
//! returning it. A failed check discards the connection and the caller goes round again, back
//! in the queue at the place its first arrival earned (it keeps its ticket).

use std::future::{poll_fn, Future};
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config::CheckPolicy;
use crate::error::{PoolError, TimeoutError};
use crate::inner::{Conn, Shared};
use crate::manager::Manager;
use crate::object::Object;
use crate::rt::{self, Instant};
use crate::stats::millis;
use crate::waiters::Slot;

type Outcome<M> = Result<Conn<<M as Manager>::Connection>, PoolError<<M as Manager>::Error>>;

pub(crate) async fn acquire<M: Manager>(
    shared: &Arc<Shared<M>>,
    timeout: Option<Duration>,
    caller: &'static Location<'static>,
) -> Result<Object<M>, PoolError<M::Error>> {
    // When this caller first had to wait (or check); `None` on the fast path.
    let mut start: Option<Instant> = None;
    let mut entry = Entry {
        shared,
        key: None,
        ticket: None,
        counted: false,
        started: None,
        taken_at: None,
    };
    loop {
        let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut entry).poll(cx))).await;
        let (mut conn, queued) = match first {
            Poll::Ready(Ok(conn)) => (conn, false),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => {
                let begun = *start.get_or_insert_with(rt::now);
                entry.started = Some(begun);
                match wait(&mut entry, timeout.map(|t| begun + t), begun).await {
                    Ok(conn) => (conn, true),
                    Err(e) => {
                        shared.state.lock().stats.requests_errors += 1;
                        return Err(e);
                    }
                }
            }
        };
        // A waiter read the clock as it took its slot (and counted its wait there).
        let now = entry.taken_at.take().unwrap_or_else(rt::now);
        if !queued && shared.manager.has_broken(&mut conn.raw) {
            // Idle connections can die unseen (a server restart): a cheap look first.
            tracing::debug!(target: "pool_core", "idle connection found broken at checkout; discarded");
            shared.discard(Some(conn), None, true);
            continue;
        }
        let mut obj = Object::new(Arc::clone(shared), conn, now);
        if needs_check(shared.config.check, obj.idle_since(), now) {
            let begun = *start.get_or_insert(now);
            obj.checking = true;
            let limit = shared.config.check_timeout;
            let checked = tokio::time::timeout(limit, shared.manager.check(obj.conn_mut())).await;
            obj.checking = false;
            if !matches!(checked, Ok(Ok(()))) {
                match checked {
                    Ok(Err(e)) => {
                        tracing::info!(target: "pool_core", error = %e, "health check failed; connection discarded")
                    }
                    _ => {
                        tracing::info!(target: "pool_core", timeout_ms = millis(limit), "health check timed out; connection discarded")
                    }
                }
                obj.lose();
                if timeout.is_some_and(|t| rt::now() >= begun + t) {
                    shared.state.lock().stats.requests_errors += 1;
                    return Err(timeout_error(shared, begun));
                }
                continue;
            }
        }
        if shared.config.leak_threshold.is_some() {
            obj.watch(caller);
        }
        if let (Some(slow), Some(begun)) = (shared.config.slow_acquire_threshold, start) {
            let total = rt::now().saturating_duration_since(begun);
            if total > slow {
                tracing::warn!(target: "pool_core", waited_ms = millis(total), "slow acquire");
            }
        }
        return Ok(obj);
    }
}

/// Waits for a queued entry's slot to be filled, or for the deadline.
async fn wait<M: Manager>(
    entry: &mut Entry<'_, M>,
    deadline: Option<Instant>,
    begun: Instant,
) -> Outcome<M> {
    let sleep = deadline.map(tokio::time::sleep_until);
    tokio::pin!(sleep);
    // The entry was polled (and its waker stored) just before: the first pass only arms the
    // timer. A hand-off in between has already woken this task, so nothing is missed.
    let mut armed = false;
    let got = poll_fn(|cx| {
        if armed {
            if let Poll::Ready(r) = Pin::new(&mut *entry).poll(cx) {
                return Poll::Ready(Some(r));
            }
        }
        armed = true;
        if let Some(sleep) = sleep.as_mut().as_pin_mut() {
            if sleep.poll(cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Poll::Pending
    })
    .await;
    match got {
        Some(r) => r,
        None => entry.expire(begun),
    }
}

fn needs_check(policy: CheckPolicy, idle_since: Instant, now: Instant) -> bool {
    match policy {
        CheckPolicy::Always => true,
        CheckPolicy::Never => false,
        CheckPolicy::IdleLongerThan(d) => now.saturating_duration_since(idle_since) > d,
    }
}

/// A caller's place in the pool: not yet queued (`key: None`), or waiting in a slot.
struct Entry<'a, M: Manager> {
    shared: &'a Shared<M>,
    key: Option<usize>,
    /// The caller's place in line, kept if it has to queue again.
    ticket: Option<u64>,
    /// Whether this request was counted in the statistics.
    counted: bool,
    /// When it started waiting, if it queued.
    started: Option<Instant>,
    /// When a queued caller took its connection from its slot.
    taken_at: Option<Instant>,
}

impl<M: Manager> Entry<'_, M> {
    /// The wait timed out: take a connection handed over at the last moment, or leave the
    /// queue with a timeout error.
    fn expire(&mut self, start: Instant) -> Outcome<M> {
        if let Some(key) = self.key.take() {
            let mut st = self.shared.state.lock();
            match st.waiters.remove(key) {
                Slot::Ready(conn) => {
                    st.stats.requests_wait_ms += millis(rt::now().saturating_duration_since(start));
                    return Ok(conn);
                }
                Slot::Failed(e) => return Err(e),
                Slot::Waiting(_) | Slot::Vacant(_) => {}
            }
        }
        Err(timeout_error(self.shared, start))
    }
}

fn timeout_error<M: Manager>(shared: &Shared<M>, start: Instant) -> PoolError<M::Error> {
    let st = shared.state.lock();
    PoolError::Timeout(TimeoutError {
        waited: rt::now().saturating_duration_since(start),
        status: st.status(),
        last_connect_error: st.last_error.clone(),
    })
}

impl<M: Manager> Future for Entry<'_, M> {
    type Output = Outcome<M>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<M>> {
        let this = self.get_mut();
        let shared = this.shared;
        // A queued caller reads the clock before taking the lock, for its wait statistics.
        let now = this.key.map(|_| rt::now());
        let mut st = shared.state.lock();
        let Some(key) = this.key else {
            // First pass: an idle connection if nobody is queued ahead, else a queue slot.
            if !this.counted {
                this.counted = true;
                st.stats.requests_num += 1;
            }
            if st.closed {
                st.stats.requests_errors += 1;
                return Poll::Ready(Err(PoolError::Closed));
            }
            if let Some(conn) = st.take_idle(shared.config.queue_mode) {
                return Poll::Ready(Ok(conn));
            }
            if let Some(max_waiting) = shared.config.max_waiting {
                if st.waiters.len() >= max_waiting {
                    st.stats.requests_errors += 1;
                    return Poll::Ready(Err(PoolError::TooManyWaiters { max_waiting }));
                }
            }
            if this.ticket.is_none() {
                st.stats.requests_queued += 1;
            }
            let (key, ticket) = st.waiters.push(this.ticket, cx.waker().clone());
            this.key = Some(key);
            this.ticket = Some(ticket);
            if st.last_error_fatal {
                // A fatal error answered earlier callers at once; this one gets its own attempt.
                st.retry_at = None;
            }
            let wake = st.wants_connect();
            drop(st);
            if wake {
                shared.signals.connector.notify_one();
            }
            return Poll::Pending;
        };
        let slot = st.waiters.slot_mut(key);
        if let Slot::Waiting(waker) = slot {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        this.key = None;
        if let (Some(now), Some(started)) = (now, this.started) {
            st.stats.requests_wait_ms += millis(now.saturating_duration_since(started));
            this.taken_at = Some(now);
        }
        match st.waiters.remove(key) {
            Slot::Ready(conn) => Poll::Ready(Ok(conn)),
            Slot::Failed(e) => Poll::Ready(Err(e)),
            Slot::Waiting(_) | Slot::Vacant(_) => unreachable!("slot state checked above"),
        }
    }
}

impl<M: Manager> Drop for Entry<'_, M> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let slot = self.shared.state.lock().waiters.remove(key);
        if let Slot::Ready(conn) = slot {
            // Handed over just as this caller went away: on to the next waiter or idle.
            self.shared.give_back(conn, false, None);
        }
    }
}
