//! `get()`: the fast path (an idle connection, one short lock), the wait queue, and the health
//! check.
//!
//! # Implementation details
//!
//! A caller first takes the lock once: if nobody is queued and a connection is idle it leaves
//! with it; otherwise it takes a slot in the FIFO queue and, if the pool may grow, wakes the
//! connector. Waiting is a hand-written future ([`Wait`]) polling its slot under the lock, so
//! the slot is the single source of truth: a connection handed to it is owned by the slot until
//! the waiter takes it. Dropping the `Wait` at any point (cancellation, timeout) frees the slot
//! and passes a connection already handed to it on to the next waiter or the idle list.
//!
//! An idle connection is first asked `has_broken` (cheap, synchronous): a connection that
//! died while idle is discarded without a round trip. The health check runs on an [`Object`]
//! flagged `checking`: if the caller is cancelled during
//! the check, the guard discards the connection (its protocol state is unknown) instead of
//! returning it. A failed check discards the connection and the caller goes round again, back
//! in the queue at the place its first arrival earned (it keeps its ticket).

use std::future::Future;
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

enum First<C> {
    Idle(Conn<C>),
    Queued(usize),
}

pub(crate) async fn acquire<M: Manager>(
    shared: &Arc<Shared<M>>,
    timeout: Option<Duration>,
) -> Result<Object<M>, PoolError<M::Error>> {
    let start = rt::now();
    let deadline = timeout.map(|t| start + t);
    let mut first_round = true;
    let mut ticket = None;
    loop {
        let mut queued = false;
        let conn = match enter(shared, first_round, &mut ticket) {
            Err(e) => return Err(e),
            Ok(First::Idle(mut conn)) => {
                first_round = false;
                // Idle connections can die unseen (a server restart): a cheap look first.
                if shared.manager.has_broken(&mut conn.raw) {
                    tracing::debug!(target: "pool_core", "idle connection found broken at checkout; discarded");
                    shared.discard(Some(conn), true);
                    continue;
                }
                conn
            }
            Ok(First::Queued(key)) => {
                queued = true;
                let mut wait = Wait {
                    shared,
                    key: Some(key),
                };
                let got = match deadline {
                    None => (&mut wait).await,
                    Some(d) => match tokio::time::timeout_at(d, &mut wait).await {
                        Ok(got) => got,
                        Err(_) => wait.expire(start),
                    },
                };
                match got {
                    Ok(conn) => conn,
                    Err(e) => {
                        shared.state.lock().stats.requests_errors += 1;
                        return Err(e);
                    }
                }
            }
        };
        first_round = false;
        let now = rt::now();
        let waited = now.saturating_duration_since(start);
        if queued {
            let mut st = shared.state.lock();
            st.stats.requests_wait_ms += millis(waited);
        }
        let mut obj = Object::new(Arc::clone(shared), conn, now);
        if needs_check(shared.config.check, obj.idle_since(), now) {
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
                if deadline.is_some_and(|d| rt::now() >= d) {
                    shared.state.lock().stats.requests_errors += 1;
                    return Err(timeout_error(shared, start));
                }
                continue;
            }
        }
        if let Some(slow) = shared.config.slow_acquire_threshold {
            let total = rt::now().saturating_duration_since(start);
            if total > slow {
                tracing::warn!(target: "pool_core", waited_ms = millis(total), "slow acquire");
            }
        }
        return Ok(obj);
    }
}

fn needs_check(policy: CheckPolicy, idle_since: Instant, now: Instant) -> bool {
    match policy {
        CheckPolicy::Always => true,
        CheckPolicy::Never => false,
        CheckPolicy::IdleLongerThan(d) => now.saturating_duration_since(idle_since) > d,
    }
}

/// One pass under the lock: take an idle connection, or queue.
fn enter<M: Manager>(
    shared: &Shared<M>,
    first_round: bool,
    ticket: &mut Option<u64>,
) -> Result<First<M::Connection>, PoolError<M::Error>> {
    let mut st = shared.state.lock();
    if first_round {
        st.stats.requests_num += 1;
    }
    if st.closed {
        st.stats.requests_errors += 1;
        return Err(PoolError::Closed);
    }
    if let Some(conn) = st.take_idle(shared.config.queue_mode) {
        return Ok(First::Idle(conn));
    }
    if let Some(max_waiting) = shared.config.max_waiting {
        if st.waiters.len() >= max_waiting {
            st.stats.requests_errors += 1;
            return Err(PoolError::TooManyWaiters { max_waiting });
        }
    }
    if ticket.is_none() {
        st.stats.requests_queued += 1;
    }
    let (key, t) = st.waiters.push(*ticket);
    *ticket = Some(t);
    if st.last_error_fatal {
        // A fatal error answered earlier callers at once; this one gets its own attempt.
        st.retry_at = None;
    }
    let wake = st.wants_connect();
    drop(st);
    if wake {
        shared.signals.connector.notify_one();
    }
    Ok(First::Queued(key))
}

/// A queued caller's wait for its slot to be filled.
struct Wait<'a, M: Manager> {
    shared: &'a Shared<M>,
    key: Option<usize>,
}

impl<M: Manager> Wait<'_, M> {
    /// The wait timed out: take a connection handed over at the last moment, or leave the
    /// queue with a timeout error.
    fn expire(&mut self, start: Instant) -> Outcome<M> {
        if let Some(key) = self.key.take() {
            let mut st = self.shared.state.lock();
            match st.waiters.remove(key) {
                Slot::Ready(conn) => return Ok(conn),
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

impl<M: Manager> Future for Wait<'_, M> {
    type Output = Outcome<M>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<M>> {
        let this = self.get_mut();
        let Some(key) = this.key else {
            return Poll::Ready(Err(PoolError::Closed));
        };
        let mut st = this.shared.state.lock();
        let slot = st.waiters.slot_mut(key);
        if let Slot::Waiting(waker) = slot {
            match waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        this.key = None;
        match st.waiters.remove(key) {
            Slot::Ready(conn) => Poll::Ready(Ok(conn)),
            Slot::Failed(e) => Poll::Ready(Err(e)),
            Slot::Waiting(_) | Slot::Vacant(_) => unreachable!("slot state checked above"),
        }
    }
}

impl<M: Manager> Drop for Wait<'_, M> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let slot = self.shared.state.lock().waiters.remove(key);
        if let Slot::Ready(conn) = slot {
            // Handed over just as this caller went away: on to the next waiter or idle.
            self.shared.give_back(conn, false, None);
        }
    }
}
