//! What the pool's handles and background tasks share: the manager, the configuration, the
//! locked [`State`] and the signals that wake the background tasks.
//!
//! # Implementation details
//!
//! One mutex ([`crate::sync::Mutex`]) guards [`State`], and only this file takes it: the
//! `get()` path, the facade, the connector and the housekeeper call `Shared`'s methods. Every
//! method follows the same shape: take a stamp if needed (before the lock; [`clock::Clock`]),
//! lock, take one transition, unlock, then apply the [`After`] the transition handed back
//! ([`Shared::apply`], the one place that fills a waiter's seat, wakes, closes, nudges the
//! background tasks and logs). The lock is never held across an `.await`, a call into the
//! [`Manager`], a waker or a connection's `Drop`.
//!
//! **Code the pool calls may panic.** `has_broken` is called inside `catch_unwind` ([`Shared::judge`]):
//! the caller puts the connection back as discarded before the panic goes on. A connection the
//! pool closes is dropped inside `catch_unwind` ([`close_quietly`]), so a panicking `Drop` is
//! logged and never reaches the housekeeper, the connector or a caller returning a connection.
//!
//! `signals` live in their own `Arc` so the background tasks can wait on them while holding
//! only a `Weak` to the pool.
//!
//! **Links.** An [`Object`](crate::Object) keeps the pool alive through a [`Link`], one of a
//! few handles on [`Shared`] that [`Links`] picks by thread, not through the `Arc<Shared>`
//! itself: a checkout and its return then count on a line that stays with one thread, instead
//! of every thread counting on the same one.

use std::any::Any;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

use tokio::sync::Notify;

use crate::clock::{self, Instant};
use crate::config::Config;
use crate::conn::Conn;
use crate::error::ConnectError;
use crate::error::PoolError;
use crate::hooks::{Hooks, Stage};
use crate::manager::{ErrorClass, Manager};
use crate::rt;
use crate::seats::{Seat, SeatStore};
use crate::signals::{Liveness, Signals, Task};
use crate::state::{
    Admit, After, Approval, Arrival, Bulk, Checkout, Chores, Gone, Handed, Next, Outcome, State,
};

use crate::stats::{millis, ConnectionInfo, Stats, Status};
use crate::sync::{thread_shard, Mutex, SHARDS};
use crate::unwind::{close_quietly, panic_message};

pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    pub(crate) hooks: Hooks<M::Connection>,
    /// The pool's name, in spans (and metrics labels).
    pub(crate) name: Arc<str>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: crate::metrics::PoolMetrics,
    /// The one lock: taken by this file's methods alone.
    state: Mutex<State<M::Connection, M::Error>>,
    /// Seats filled on the hot path, for reuse by the next callers to queue.
    pub(crate) seats: SeatStore<Handed<M::Connection, M::Error>>,
    pub(crate) signals: Arc<Signals>,
    /// Stamps for checkouts, returns and arrivals (see [`clock::Clock`]).
    pub(crate) clock: clock::Clock,
    /// Live `Pool` handles; the last one to go closes the pool.
    pub(crate) handles: AtomicUsize,
    /// A hint, not state: the last caller that came to the lock had to queue (set) or found a
    /// connection idle (cleared). Tells the next caller whether to read the clock before the
    /// lock.
    pub(crate) queueing: AtomicBool,
    /// The newest `retain` epoch (mirrors the state's, for a lock-free look on return).
    retain_epoch: AtomicU64,
    /// The newest `retain` predicates, with their epochs.
    retains: Mutex<Vec<(u64, Predicate)>>,
}

/// A handle on [`Shared`] that [`Object`](crate::Object)s hold. Line-aligned, so its `Arc`'s
/// reference counts have a cache line to themselves: threads counting on different links do
/// not share a line.
#[repr(align(64))]
pub(crate) struct Link<M: Manager>(Arc<Shared<M>>);

impl<M: Manager> std::ops::Deref for Link<M> {
    type Target = Arc<Shared<M>>;
    #[inline]
    fn deref(&self) -> &Arc<Shared<M>> {
        &self.0
    }
}

/// One [`Link`] per thread shard, owned by the [`Pool`](crate::Pool) handles (not by
/// [`Shared`], which the links keep alive).
pub(crate) struct Links<M: Manager>([Arc<Link<M>>; SHARDS]);

impl<M: Manager> Links<M> {
    pub(crate) fn new(shared: &Arc<Shared<M>>) -> Self {
        Links(std::array::from_fn(|_| Arc::new(Link(Arc::clone(shared)))))
    }

    /// This thread's link, for a new `Object`.
    #[inline]
    pub(crate) fn pick(&self) -> Arc<Link<M>> {
        Arc::clone(&self.0[thread_shard()])
    }
}

/// What a caller coming to the lock got ([`Shared::come`]).
pub(crate) enum Came<C, E> {
    /// An idle connection, at once.
    Idle(Conn<C>),
    /// Admitted (queued, served or refused), with the stamp it came at.
    Admitted(Admit<C, E>, Instant),
}

/// A `retain` predicate.
pub(crate) type Predicate = Arc<dyn Fn(&ConnectionInfo) -> bool + Send + Sync>;

/// `retain` predicates kept for connections out when they were given.
const RETAINS_KEPT: usize = 64;

impl<M: Manager> Shared<M> {
    pub(crate) fn new(
        manager: M,
        config: Config,
        hooks: Hooks<M::Connection>,
        name: Arc<str>,
    ) -> Self {
        let seed = RandomState::new().build_hasher().finish();
        let state = Mutex::new(State::new(&config, seed));
        Shared {
            manager,
            config,
            hooks,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::PoolMetrics::register(&name),
            name,
            state,
            seats: SeatStore::new(),
            signals: Arc::new(Signals {
                connector: Notify::new(),
                housekeeper: Notify::new(),
                size_changed: Notify::new(),
                shutdown: AtomicBool::new(false),
                alive: Liveness::default(),
            }),
            clock: clock::Clock::new(),
            handles: AtomicUsize::new(1),
            queueing: AtomicBool::new(false),
            retain_epoch: AtomicU64::new(0),
            retains: Mutex::new(Vec::new()),
        }
    }

    /// A connection comes back to the pool (see [`Outcome`]).
    #[inline]
    pub(crate) fn release(&self, conn: Conn<M::Connection>, outcome: Outcome) {
        let now = self.clock.stamp();
        #[cfg(feature = "metrics")]
        if let Some(taken) = conn.taken {
            self.metrics
                .checked_in(now.saturating_duration_since(taken));
        }
        let after = self.state.lock().release(conn, outcome, now);
        if outcome == Outcome::Broken {
            tracing::debug!(target: "pool_core", "closing a connection returned broken");
        }
        self.apply(after);
    }

    /// Asks the manager whether `conn` is broken; `Err` with the payload if it panicked
    /// (the caller releases the connection as discarded or lost, then lets the panic go on).
    #[inline]
    pub(crate) fn judge(
        &self,
        conn: &mut Conn<M::Connection>,
    ) -> Result<bool, Box<dyn Any + Send>> {
        catch_unwind(AssertUnwindSafe(|| self.manager.has_broken(&mut conn.raw)))
    }

    /// A healthy connection came back and an `after_return` hook is set: the hook runs in a
    /// task of its own, then the connection is released (closed if the hook failed). A task
    /// dropped before it finishes (its runtime shut down) closes the connection.
    pub(crate) fn after_return(this: &Arc<Self>, conn: Conn<M::Connection>) {
        if !rt::has_runtime() {
            tracing::debug!(target: "pool_core", "returned outside a runtime: after_return cannot run; connection closed");
            this.release(conn, Outcome::Discarded);
            return;
        }
        let mut returning = Returning {
            shared: Arc::clone(this),
            conn: Some(conn),
        };
        rt::spawn(async move {
            let shared = Arc::clone(&returning.shared);
            let conn = returning.conn.as_mut().expect("held until released");
            let info = conn.info();
            let ran = shared
                .hooks
                .run(
                    Stage::AfterReturn,
                    &shared.name,
                    shared.config.hook_timeout,
                    &mut conn.raw,
                    &info,
                )
                .await;
            let outcome = match ran {
                Ok(()) => Outcome::Healthy,
                Err(_) => Outcome::Discarded,
            };
            let conn = returning.conn.take().expect("held until released");
            shared.release(conn, outcome);
        });
    }

    /// A queued caller goes away before taking what it was handed.
    pub(crate) fn leave(&self, seat: &Seat<Handed<M::Connection, M::Error>>, ticket: u64) {
        let after = self.state.lock().leave(seat, ticket);
        self.apply(after);
    }

    /// A checked-out connection leaves the pool for good.
    pub(crate) fn detach(&self, watch: Option<usize>) {
        let after = self.state.lock().detach(watch);
        self.apply(after);
    }

    /// Starts the leak watch on a checkout.
    pub(crate) fn watch(
        &self,
        conn: &mut Conn<M::Connection>,
        caller: &'static Location<'static>,
        since: Instant,
    ) {
        conn.watch = Some(self.state.lock().watch(caller, since));
    }

    /// Outside the lock, what a transition left to do: fill the seat of the waiter handed a
    /// connection, wake, close, tell the background tasks and the size watchers, log. Takes
    /// the value, so nothing is left to drop (the housekeeper, which keeps its buffers, uses
    /// [`Shared::apply_kept`]).
    #[inline]
    pub(crate) fn apply(&self, after: After<M::Connection, M::Error>) {
        let After {
            fill,
            close,
            leak_returned,
            wake_connector,
            wake_housekeeper,
            size_changed,
            bulk,
        } = after;
        if let Some((seat, conn)) = fill {
            match seat.fill(Ok(conn)) {
                Ok(waker) => {
                    self.seats.give(seat);
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                // The waiter left between the pop and the fill: the connection comes back.
                Err(Ok(conn)) => self.release(conn, Outcome::Healthy),
                Err(Err(_)) => unreachable!("a hand-off fills a connection"),
            }
        }
        if let Some(conn) = close {
            close_quietly(conn);
        }
        if let Some(mut bulk) = bulk {
            self.apply_bulk(&mut bulk);
        }
        if wake_connector {
            self.signals.connector.notify_one();
        }
        if wake_housekeeper {
            self.signals.housekeeper.notify_one();
        }
        if size_changed {
            self.signals.size_changed.notify_waiters();
        }
        if let Some(c) = leak_returned {
            self.log_leak_returned(c);
        }
    }

    /// [`Shared::apply`] for an `After` that is kept and filled again (the housekeeper's):
    /// its bulk buffers stay, emptied, so a pass allocates nothing once warm.
    pub(crate) fn apply_kept(&self, after: &mut After<M::Connection, M::Error>) {
        let mut bulk = after.bulk.take();
        self.apply(std::mem::replace(after, After::new()));
        if let Some(b) = bulk.as_deref_mut() {
            self.apply_bulk(b);
        }
        after.bulk = bulk;
    }

    /// The rare part of an [`After`]: wakes, closes and logs, leaving the buffers empty for
    /// reuse.
    #[cold]
    #[inline(never)]
    fn apply_bulk(&self, bulk: &mut Bulk<M::Connection>) {
        bulk.wake.drain(..).for_each(Waker::wake);
        if !bulk.close.is_empty() {
            if bulk.close.len() > 1 {
                tracing::debug!(target: "pool_core", closed = bulk.close.len(), "closing connections");
            }
            bulk.close.drain(..).for_each(close_quietly);
        }
        for (caller, held) in bulk.leaks.drain(..) {
            tracing::warn!(
                target: "pool_core",
                checked_out_at = %caller,
                held_ms = millis(held),
                leak_threshold_ms = self.config.leak_threshold.map_or(0, millis),
                "possible connection leak: checked out longer than the leak threshold"
            );
        }
        if bulk.expired > 0 {
            tracing::debug!(target: "pool_core", expired = bulk.expired, "waiters timed out");
            bulk.expired = 0;
        }
    }

    #[cold]
    fn log_leak_returned(&self, c: Checkout) {
        tracing::info!(
            target: "pool_core",
            checked_out_at = %c.caller,
            held_ms = millis(clock::now().saturating_duration_since(c.since)),
            "a connection reported as a possible leak came back"
        );
    }

    /// Is the pool closed?
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().is_closed()
    }

    /// Are all connections closed and no connect in flight?
    pub(crate) fn is_drained(&self) -> bool {
        self.state.lock().is_drained()
    }

    /// A snapshot of sizes and the queue.
    pub(crate) fn status(&self) -> Status {
        self.state.lock().status()
    }

    /// The cumulative counters.
    pub(crate) fn stats(&self) -> Stats {
        self.state.lock().stats()
    }

    /// The fast path of a new `get()`: an idle connection if one is free and nobody queues.
    #[inline]
    pub(crate) fn take_idle(&self) -> Option<Conn<M::Connection>> {
        self.state.lock().take_idle()
    }

    /// A caller comes to the lock from its queue entry: a new caller takes an idle connection
    /// if one is free and nobody queues; otherwise it is admitted (queued, served, or refused).
    /// `since` becomes when it first came, read from `early` or a stamp taken under the lock;
    /// `deadline` gives its place's deadline from that; `seat` is only asked for if it queues.
    #[inline]
    pub(crate) fn come(
        &self,
        arrival: Arrival,
        early: Option<Instant>,
        since: &mut Option<Instant>,
        deadline: impl FnOnce(Instant) -> Option<Instant>,
        seat: impl FnOnce() -> Seat<Handed<M::Connection, M::Error>>,
    ) -> Came<M::Connection, M::Error> {
        let mut st = self.state.lock();
        if let Arrival::New = arrival {
            if let Some(conn) = st.take_idle() {
                return Came::Idle(conn);
            }
        }
        let now = early.unwrap_or_else(|| self.clock.stamp());
        let since = *since.get_or_insert(now);
        let admit = st.admit(arrival, since, seat, deadline(since));
        Came::Admitted(admit, now)
    }

    /// `try_get()`: an idle connection if one is free and nobody queues, else `None`, the
    /// demand noted for the connector.
    pub(crate) fn try_admit(&self) -> Result<Option<Conn<M::Connection>>, PoolError<M::Error>> {
        let (taken, after) = self.state.lock().try_admit();
        self.apply(after);
        taken
    }

    /// A caller whose wait (begun at `since`) ends at `now` without a connection: counted as
    /// a timeout, with the error that says what the pool looked like.
    pub(crate) fn timed_out(&self, since: Instant, now: Instant) -> PoolError<M::Error> {
        let mut st = self.state.lock();
        st.count_timeout();
        st.timeout_error(since, now)
    }

    /// A queued caller's own timer fired: what its seat holds if something is there or on its
    /// way (`None`: a connection is on its way; it keeps waiting), else the timeout.
    pub(crate) fn time_out_waiter(
        &self,
        seat: &Seat<Handed<M::Connection, M::Error>>,
        ticket: u64,
        since: Instant,
        now: Instant,
    ) -> Option<Handed<M::Connection, M::Error>> {
        self.state.lock().time_out_waiter(seat, ticket, since, now)
    }

    /// What the connector should do next; `None` once the pool is closed.
    pub(crate) fn next_connect(&self) -> Option<Next> {
        let mut st = self.state.lock();
        if st.is_closed() {
            return None;
        }
        Some(st.approve_connect(clock::now()))
    }

    /// `wait_ready` begins: returns the fatal errors counted so far (see [`Shared::ready`]).
    pub(crate) fn begin_wait_ready(&self) -> u64 {
        let (seen, after) = self.state.lock().begin_wait_ready();
        self.apply(after);
        seen
    }

    /// Where a `wait_ready` begun at `start` (with `fatal_seen` from
    /// [`Shared::begin_wait_ready`]) stands: `None` while it should wait on.
    pub(crate) fn ready(
        &self,
        fatal_seen: u64,
        start: Instant,
        deadline: Instant,
    ) -> Option<Result<(), PoolError<M::Error>>> {
        let st = self.state.lock();
        if st.is_closed() {
            return Some(Err(PoolError::Closed));
        }
        if st.is_ready() {
            return Some(Ok(()));
        }
        if let Some(e) = st.fatal_since(fatal_seen) {
            return Some(Err(PoolError::Backend(e)));
        }
        let now = clock::now();
        (now >= deadline).then(|| Err(st.timeout_error(start, now)))
    }

    /// New floor and ceiling (already validated).
    pub(crate) fn resize(&self, min_size: usize, max_size: usize) {
        let after = self.state.lock().resize(min_size, max_size);
        self.apply(after);
    }

    /// The background tasks were (re)started on the caller's runtime.
    pub(crate) fn background_started(&self) {
        if self.signals.alive.connector() {
            self.state.lock().connector_started();
        }
    }

    /// A background task's future was dropped: mark the connector down (for the timeout's
    /// reason) and wake every queued caller, so one of them starts the task again on its own
    /// runtime and none waits past its deadline for a timer that is gone.
    pub(crate) fn background_gone(&self, task: Task) {
        let after = self.state.lock().background_gone(task == Task::Connector);
        if after.waking() > 0 {
            tracing::debug!(target: "pool_core", pool = %self.name, ?task, waiting = after.waking(), "background task gone; waking the queue to start it again");
        }
        self.apply(after);
    }

    /// A connect's task was dropped before it finished: its approval is given back.
    pub(crate) fn connect_abandoned(&self, approval: Approval) {
        let after = self.state.lock().abandon_connect(approval);
        self.apply(after);
    }

    /// The outcome of one background connect, approved by `approval`.
    pub(crate) fn connect_done(
        &self,
        approval: Approval,
        result: Result<M::Connection, ConnectError<M::Error>>,
        started: Instant,
    ) {
        let result = result.map_err(|err| {
            let class = match &err {
                ConnectError::Backend(e) => {
                    catch_unwind(AssertUnwindSafe(|| self.manager.classify(e))).unwrap_or_else(
                        |panic| {
                            tracing::warn!(
                                target: "pool_core",
                                panic = %panic_message(&*panic),
                                "classify panicked; the connect error counts as transient"
                            );
                            ErrorClass::Transient
                        },
                    )
                }
                ConnectError::TimedOut(_) | ConnectError::Panicked(_) | ConnectError::Hook(_) => {
                    ErrorClass::Transient
                }
            };
            (err, class)
        });
        let failed = result.as_ref().err().cloned();
        let now = clock::now();
        #[cfg(feature = "metrics")]
        self.metrics
            .connected(now.saturating_duration_since(started));
        let ((after, failure), was_full, full, ceiling) = {
            let mut st = self.state.lock();
            let was_full = st.server_full();
            let settled = st.settle_connect(approval, result, started, now);
            (settled, was_full, st.server_full(), st.ceiling())
        };
        match (was_full, full, &failed) {
            (false, true, Some((error, _))) => tracing::warn!(
                target: "pool_core",
                %error,
                ceiling,
                "the server is full: the pool's ceiling is lowered to the connections it has; probing for room one connection at a time"
            ),
            (true, false, _) => tracing::info!(
                target: "pool_core",
                ceiling,
                "connects succeed again: the configured ceiling is back"
            ),
            _ => {}
        }
        if let (Some(f), Some((error, class))) = (failure, failed) {
            tracing::warn!(
                target: "pool_core",
                %error,
                ?class,
                attempt = f.attempt,
                retry_in_ms = millis(f.retry_in),
                waiting = f.waiting,
                "connect failed"
            );
        }
        self.apply(after);
    }

    /// One housekeeping pass; returns when to look again (`None`: the pool is closed).
    pub(crate) fn housekeep(
        &self,
        chores: &mut Chores<M::Connection, M::Error>,
    ) -> Option<Instant> {
        let now = self.clock.now_checked();
        let cap = now + self.config.housekeeping_interval;
        let at = {
            let mut st = self.state.lock();
            if st.is_closed() {
                return None;
            }
            st.sweep_out(&mut chores.sweep);
            if !chores.sweep.is_empty() {
                drop(st);
                let gone = self.sweep(&mut chores.sweep, &mut chores.after.bulk().close);
                st = self.state.lock();
                st.sweep_in(&mut chores.sweep, gone, now, &mut chores.after);
            }
            let next = st.housekeep(now, cap, &mut chores.after);
            // Snapshots under the lock, published after it: publishing records the batched
            // zero waits, one sample per checkout served at once since the last pass.
            #[cfg(feature = "metrics")]
            let snapshot = (st.status(), st.stats());
            drop(st);
            #[cfg(feature = "metrics")]
            self.metrics.publish(&snapshot.0, &snapshot.1);
            next
        };
        self.apply_kept(&mut chores.after);
        Some(at)
    }

    /// The idle sweep's look, outside the lock: each connection in `swept` that a `retain`
    /// predicate newer than it rejects, or that `has_broken` calls broken (or panics on),
    /// moves to `close`.
    fn sweep(
        &self,
        swept: &mut Vec<Conn<M::Connection>>,
        close: &mut Vec<Conn<M::Connection>>,
    ) -> Gone {
        let mut gone = Gone::default();
        let mut i = 0;
        while i < swept.len() {
            let conn = &mut swept[i];
            if !self.retained(conn) {
                close.push(swept.remove(i));
                gone.retired += 1;
                continue;
            }
            let broken = self.judge(conn).unwrap_or_else(|panic| {
                tracing::warn!(
                    target: "pool_core",
                    panic = %panic_message(&*panic),
                    "has_broken panicked in the idle sweep; connection closed"
                );
                true
            });
            if broken {
                close.push(swept.remove(i));
                gone.lost += 1;
            } else {
                i += 1;
            }
        }
        if gone.lost > 0 {
            tracing::info!(target: "pool_core", lost = gone.lost, "idle sweep closed connections found broken");
        }
        gone
    }

    /// Does `conn` pass the `retain` predicates newer than its epoch? Moves it to the current
    /// epoch if so. On every checkout and return: an inlined atomic comparison when there are
    /// none, the predicates only out of line.
    #[inline]
    pub(crate) fn retained(&self, conn: &mut Conn<M::Connection>) -> bool {
        let current = self.retain_epoch.load(Ordering::Acquire);
        conn.epoch >= current || self.retained_slow(conn, current)
    }

    #[cold]
    #[inline(never)]
    fn retained_slow(&self, conn: &mut Conn<M::Connection>, current: u64) -> bool {
        let pending: Vec<Predicate> = {
            let retains = self.retains.lock();
            // Predicates pruned from the list (more than RETAINS_KEPT calls ago) cannot be
            // asked: such an old connection is closed.
            if retains.first().is_some_and(|(e, _)| *e > conn.epoch + 1) {
                return false;
            }
            retains
                .iter()
                .filter(|(e, _)| *e > conn.epoch)
                .map(|(_, f)| Arc::clone(f))
                .collect()
        };
        let keep = pending.iter().all(|f| self.ask(f, conn));
        if keep {
            conn.epoch = current;
        }
        keep
    }

    /// One predicate on one connection; a panic in it closes the connection.
    fn ask(&self, f: &Predicate, conn: &Conn<M::Connection>) -> bool {
        let info = conn.info();
        catch_unwind(AssertUnwindSafe(|| f(&info))).unwrap_or_else(|panic| {
            tracing::warn!(
                target: "pool_core",
                panic = %panic_message(&*panic),
                "a retain predicate panicked; connection closed"
            );
            false
        })
    }

    /// `Pool::retain`: idle connections the predicate rejects close now; the others (checked
    /// out, being opened back by a sweep) are asked at their next checkout or return.
    /// Returns how many closed now.
    pub(crate) fn retain(&self, f: Predicate) -> usize {
        let mut swept = Vec::new();
        {
            let mut st = self.state.lock();
            let epoch = st.next_retain_epoch();
            let mut retains = self.retains.lock();
            retains.push((epoch, f));
            if retains.len() > RETAINS_KEPT {
                retains.remove(0);
            }
            drop(retains);
            self.retain_epoch.store(epoch, Ordering::Release);
            st.sweep_out(&mut swept);
        }
        let mut after = After::new();
        // Every idle connection is older than this predicate: `retained` asks it (and any older
        // one the connection has not seen).
        let gone = self.sweep(&mut swept, &mut after.bulk().close);
        let n = gone.lost + gone.retired;
        self.state
            .lock()
            .sweep_in(&mut swept, gone, clock::now(), &mut after);
        self.apply(after);
        n
    }

    /// `Pool::close`: waiters fail, idle connections close, the background tasks stop.
    pub(crate) fn close(&self) {
        let after = self.state.lock().close();
        let closing = after.size_changed;
        self.apply(after);
        if closing {
            self.publish();
        }
    }

    /// Publishes the gauges and counters now (the housekeeper does on every pass).
    pub(crate) fn publish(&self) {
        #[cfg(feature = "metrics")]
        {
            let (status, stats) = {
                let st = self.state.lock();
                (st.status(), st.stats())
            };
            self.metrics.publish(&status, &stats);
        }
    }
}

/// A connection in its `after_return` task; released as discarded if the task is dropped
/// before the hook finishes.
struct Returning<M: Manager> {
    shared: Arc<Shared<M>>,
    conn: Option<Conn<M::Connection>>,
}

impl<M: Manager> Drop for Returning<M> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.release(conn, Outcome::Discarded);
        }
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
