//! The pool's engine.
//!
//! # Implementation details
//!
//! One mutex ([`crate::sync::Mutex`]) guards [`State`]: the idle connections, the waiter queue, the
//! size counters, the connect backoff and the statistics. It is held only for short,
//! non-blocking sections and never across an `.await` or a call into the [`Manager`]:
//! connections are checked, judged (`has_broken`) and dropped outside it, and wakers are woken
//! after it is released.
//!
//! Invariants (under the lock):
//! - `size` counts open connections: `idle.len()` plus the checked-out ones, including
//!   connections sitting in a waiter's `Ready` slot. `size + connecting <= max_size` whenever a
//!   connect starts; `size` may exceed `max_size` only after `resize` lowered it, until enough
//!   connections come back to be closed.
//! - While `waiters` is non-empty, `idle` is empty: a connection that becomes available goes
//!   to the oldest waiter (direct hand-off), so a fresh `get()` can never barge past the queue.
//! - Only the background connector opens connections; callers never connect.
//!
//! `signals` live outside the shared state so the background tasks can wait on them while
//! holding only a `Weak` to the pool.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::sync::Mutex;
use tokio::sync::Notify;

use crate::config::{Config, QueueMode};
use crate::error::{ConnectError, PoolError};
use crate::manager::{ErrorClass, Manager};
use crate::rt::{self, Instant};
use crate::slab::Slab;
use crate::stats::{millis, Stats, Status};
use crate::waiters::Waiters;

/// A connection with the pool's bookkeeping.
pub(crate) struct Conn<C> {
    pub(crate) raw: C,
    pub(crate) created: Instant,
    /// When `max_lifetime` (less this connection's jitter) retires it.
    pub(crate) expires: Option<Instant>,
    /// When it was last returned (or opened).
    pub(crate) idle_since: Instant,
    /// Its entry in `State::checkouts` while checked out under leak detection.
    pub(crate) checkout: Option<usize>,
}

/// A checkout watched for leaks (only with `leak_threshold` set).
pub(crate) struct Checkout {
    pub(crate) caller: &'static Location<'static>,
    pub(crate) since: Instant,
    /// Reported already (each checkout is reported once).
    pub(crate) warned: bool,
}

pub(crate) struct State<C, E> {
    pub(crate) idle: VecDeque<Conn<C>>,
    pub(crate) waiters: Waiters<C, E>,
    pub(crate) size: usize,
    pub(crate) connecting: usize,
    pub(crate) min_size: usize,
    pub(crate) max_size: usize,
    pub(crate) closed: bool,
    /// Idle connections past their lifetime, kept until a replacement keeps the floor.
    pub(crate) retire_pending: usize,
    /// Consecutive failed connects.
    pub(crate) failures: u32,
    /// No connect starts before this.
    pub(crate) retry_at: Option<Instant>,
    pub(crate) last_error: Option<ConnectError<E>>,
    pub(crate) last_error_fatal: bool,
    rng: u64,
    pub(crate) stats: Stats,
    /// Checked-out connections under leak detection.
    pub(crate) checkouts: Slab<Checkout>,
}

pub(crate) struct Signals {
    /// Wakes the connector: demand may have changed.
    pub(crate) connector: Notify,
    /// Wakes the housekeeper: configuration or closing.
    pub(crate) housekeeper: Notify,
    /// Fires (notify_waiters) whenever the pool's size changes.
    pub(crate) size_changed: Notify,
    /// Set when the shared state is gone: background tasks exit.
    pub(crate) shutdown: AtomicBool,
}

pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    pub(crate) state: Mutex<State<M::Connection, M::Error>>,
    pub(crate) signals: Arc<Signals>,
    /// Live `Pool` handles; the last one to go closes the pool.
    pub(crate) handles: AtomicUsize,
}

/// What the connector should do next.
pub(crate) enum Next {
    Connect,
    WaitUntil(Instant),
    Sleep,
}

/// Where a connection goes back to.
pub(crate) enum Returned<C> {
    /// Handed to a waiter (wake it) or put idle (`None`).
    Kept(Option<Waker>),
    /// To be closed by the caller, outside the lock.
    Close(Conn<C>),
}

impl<C, E> State<C, E> {
    pub(crate) fn new(config: &Config) -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        State {
            idle: VecDeque::with_capacity(config.max_size),
            waiters: Waiters::new(),
            size: 0,
            connecting: 0,
            min_size: config.min_size,
            max_size: config.max_size,
            closed: false,
            retire_pending: 0,
            failures: 0,
            retry_at: None,
            last_error: None,
            last_error_fatal: false,
            rng: seed | 1,
            stats: Stats::default(),
            checkouts: Slab::new(),
        }
    }

    pub(crate) fn status(&self) -> Status {
        Status {
            size: self.size,
            idle: self.idle.len(),
            in_use: self.size - self.idle.len(),
            waiting: self.waiters.len(),
            connecting: self.connecting,
            min_size: self.min_size,
            max_size: self.max_size,
        }
    }

    /// A uniform draw in `[0, 1)` (xorshift64*).
    pub(crate) fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Should the connector open a connection now? Demand is re-checked here just before each
    /// connect: waiters not already covered by a connect in flight, or a floor not met.
    pub(crate) fn next_connect(&self, now: Instant, concurrency: usize) -> Next {
        if !self.wants_connect() || self.connecting >= concurrency {
            return Next::Sleep;
        }
        match self.retry_at {
            Some(t) if t > now => Next::WaitUntil(t),
            _ => Next::Connect,
        }
    }

    /// Is there demand for another connection (ignoring backoff and the connect concurrency)?
    /// Waiters not already covered by a connect in flight, or a floor not met, with room below
    /// the ceiling.
    pub(crate) fn wants_connect(&self) -> bool {
        let open = self.size + self.connecting;
        if self.closed || open >= self.max_size {
            return false;
        }
        let floor = self.min_size + self.retire_pending.min(self.max_size - self.min_size);
        self.waiters.len() > self.connecting || open < floor
    }

    /// A connection comes back (returned, freshly opened, or bounced by a waiter that left):
    /// to the oldest waiter, to the idle list, or out (closed pool, over the ceiling, expired).
    pub(crate) fn put_back(&mut self, conn: Conn<C>, now: Instant) -> Returned<C> {
        let expired = conn.expires.is_some_and(|t| t <= now);
        if self.closed || self.size > self.max_size || expired {
            self.size -= 1;
            self.stats.connections_closed += 1;
            return Returned::Close(conn);
        }
        match self.waiters.hand_off(conn) {
            Ok(waker) => Returned::Kept(waker),
            Err(mut conn) => {
                conn.idle_since = now;
                self.idle.push_back(conn);
                Returned::Kept(None)
            }
        }
    }

    /// Takes an idle connection, if no waiter is queued ahead of the caller.
    #[inline]
    pub(crate) fn take_idle(&mut self, mode: QueueMode) -> Option<Conn<C>> {
        if !self.waiters.is_empty() {
            return None;
        }
        match mode {
            QueueMode::Lifo => self.idle.pop_back(),
            QueueMode::Fifo => self.idle.pop_front(),
        }
    }

    /// Ends a leak watch; returns it if it had been reported.
    pub(crate) fn end_checkout(&mut self, key: Option<usize>) -> Option<Checkout> {
        self.checkouts.remove(key?).filter(|c| c.warned)
    }

    /// Closes a connection that was counted in `size` (discarded, broken, detached).
    pub(crate) fn forget(&mut self) {
        self.size -= 1;
        self.stats.connections_closed += 1;
    }

    pub(crate) fn backoff_delay(&mut self, config: &Config) -> Duration {
        let exp = config
            .backoff_base
            .checked_mul(1u32 << self.failures.saturating_sub(1).min(30))
            .unwrap_or(config.backoff_cap)
            .min(config.backoff_cap);
        exp.mul_f64(self.random())
    }
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, config: Config) -> Self {
        let state = Mutex::new(State::new(&config));
        Shared {
            manager,
            config,
            state,
            signals: Arc::new(Signals {
                connector: Notify::new(),
                housekeeper: Notify::new(),
                size_changed: Notify::new(),
                shutdown: AtomicBool::new(false),
            }),
            handles: AtomicUsize::new(1),
        }
    }

    /// Bookkeeping for a connection that just left the caller's hands.
    /// `since`: when it was checked out, for the usage statistics (`None` if it never reached
    /// the caller).
    pub(crate) fn give_back(
        &self,
        mut conn: Conn<M::Connection>,
        broken: bool,
        since: Option<Instant>,
    ) {
        let now = rt::now();
        let mut st = self.state.lock();
        if let Some(since) = since {
            st.stats.usage_ms += millis(now.saturating_duration_since(since));
        }
        let reported = st.end_checkout(conn.checkout.take());
        let outcome = if broken {
            st.stats.returns_bad += 1;
            st.forget();
            Returned::Close(conn)
        } else {
            st.put_back(conn, now)
        };
        match outcome {
            Returned::Kept(waker) => {
                drop(st);
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Returned::Close(conn) => {
                let wake_connector = st.wants_connect();
                drop(st);
                if broken {
                    tracing::debug!(target: "pool_core", "closing a connection returned broken");
                }
                drop(conn);
                self.after_close(wake_connector);
            }
        }
        if let Some(c) = reported {
            tracing::info!(
                target: "pool_core",
                checked_out_at = %c.caller,
                held_ms = millis(now.saturating_duration_since(c.since)),
                "a connection reported as a possible leak came back"
            );
        }
    }

    /// Watches a new checkout for leaks (with `leak_threshold` set).
    pub(crate) fn start_checkout(
        &self,
        conn: &mut Conn<M::Connection>,
        caller: &'static Location<'static>,
        now: Instant,
    ) {
        let key = self.state.lock().checkouts.insert(Checkout {
            caller,
            since: now,
            warned: false,
        });
        conn.checkout = Some(key);
    }

    /// After a connection closed (outside the lock): tell the connector and drain waiters.
    pub(crate) fn after_close(&self, wake_connector: bool) {
        if wake_connector {
            self.signals.connector.notify_one();
        }
        self.signals.size_changed.notify_waiters();
    }

    /// Discards a checked-out connection (failed check, `Object::discard`), or forgets a
    /// detached one (`Object::take`: `conn` is `None`, `checkout` its leak-watch entry).
    pub(crate) fn discard(
        &self,
        conn: Option<Conn<M::Connection>>,
        checkout: Option<usize>,
        lost: bool,
    ) {
        let wake = {
            let mut st = self.state.lock();
            st.end_checkout(checkout.or(conn.as_ref().and_then(|c| c.checkout)));
            st.forget();
            if lost {
                st.stats.connections_lost += 1;
            }
            st.wants_connect()
        };
        drop(conn);
        self.after_close(wake);
    }

    pub(crate) fn new_conn(
        &self,
        raw: M::Connection,
        now: Instant,
        st: &mut State<M::Connection, M::Error>,
    ) -> Conn<M::Connection> {
        let expires = self.config.max_lifetime.map(|life| {
            let jitter = life.mul_f64(0.05 * st.random());
            now + life.saturating_sub(jitter)
        });
        Conn {
            raw,
            created: now,
            expires,
            idle_since: now,
            checkout: None,
        }
    }

    /// The outcome of one background connect.
    pub(crate) fn connect_done(
        &self,
        result: Result<M::Connection, ConnectError<M::Error>>,
        started: Instant,
    ) {
        let now = rt::now();
        let mut wake: Vec<Waker> = Vec::new();
        let mut close = None;
        {
            let mut st = self.state.lock();
            st.connecting -= 1;
            st.stats.connections_ms += millis(now - started);
            match result {
                Ok(raw) => {
                    st.failures = 0;
                    st.retry_at = None;
                    st.last_error = None;
                    st.last_error_fatal = false;
                    st.stats.connections_num += 1;
                    st.size += 1;
                    if st.retire_pending > 0 {
                        st.retire_pending -= 1;
                    }
                    let conn = self.new_conn(raw, now, &mut st);
                    match st.put_back(conn, now) {
                        Returned::Kept(Some(w)) => wake.push(w),
                        Returned::Kept(None) => {}
                        Returned::Close(c) => close = Some(c),
                    }
                }
                Err(err) => {
                    st.stats.connections_errors += 1;
                    st.failures = st.failures.saturating_add(1);
                    let delay = st.backoff_delay(&self.config);
                    st.retry_at = Some(now + delay);
                    let class = match &err {
                        ConnectError::Backend(e) => self.manager.classify(e),
                        ConnectError::TimedOut(_) => ErrorClass::Transient,
                    };
                    tracing::warn!(
                        target: "pool_core",
                        error = %err,
                        class = ?class,
                        attempt = st.failures,
                        retry_in_ms = millis(delay),
                        waiting = st.waiters.len(),
                        "connect failed"
                    );
                    st.last_error_fatal = class == ErrorClass::Fatal;
                    if let (ErrorClass::Fatal, ConnectError::Backend(e)) = (class, &err) {
                        st.waiters
                            .fail_all(|| PoolError::Backend(Arc::clone(e)), &mut wake);
                    }
                    st.last_error = Some(err);
                }
            }
        }
        for w in wake {
            w.wake();
        }
        drop(close);
        self.signals.connector.notify_one();
        self.signals.housekeeper.notify_one();
        self.signals.size_changed.notify_waiters();
    }

    pub(crate) fn close(&self) {
        let mut wake = Vec::new();
        let idle = {
            let mut st = self.state.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.waiters.fail_all(|| PoolError::Closed, &mut wake);
            let n = st.idle.len();
            st.size -= n;
            st.stats.connections_closed += n as u64;
            std::mem::take(&mut st.idle)
        };
        for w in wake {
            w.wake();
        }
        drop(idle);
        self.signals.connector.notify_one();
        self.signals.housekeeper.notify_one();
        self.signals.size_changed.notify_waiters();
    }
}

impl<M: Manager> Drop for Shared<M> {
    fn drop(&mut self) {
        self.signals.shutdown.store(true, Ordering::Release);
        self.signals.connector.notify_one();
        self.signals.housekeeper.notify_one();
        self.signals.size_changed.notify_waiters();
    }
}
