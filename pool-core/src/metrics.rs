//! Metrics through the `metrics` facade (the `metrics` feature). Every handle is registered
//! once, with the label `pool` = the pool's name, so recording on the hot path allocates
//! nothing: when the pool is built if a recorder is installed then (globally, or locally on
//! the building thread), else at the first housekeeping pass that finds one, so a recorder
//! installed after `build()` gets every metric too (histogram samples from before it was
//! installed are not kept). Each metric is described (Prometheus' `# HELP`) from [`METRICS`]
//! when its handles are registered. A recorder that is a zero-sized type cannot be told from
//! the no-op one the facade uses when none is installed: install it before building the pool. Gauges and counters are published from `status()` and `stats()`
//! on every housekeeping pass (at most `housekeeping_interval` old) and when the pool closes;
//! histograms are recorded as things happen, except the zero waits of checkouts served at once,
//! which are added (with their count in `pool_checkouts_total`) at each publish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::stats::{Stats, Status};

/// Every metric's name, kind and what it measures (the README's table comes from this list).
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "pool_connections",
        "gauge",
        "open connections (idle + in use)",
    ),
    ("pool_connections_idle", "gauge", "idle connections"),
    (
        "pool_connections_in_use",
        "gauge",
        "checked-out connections",
    ),
    ("pool_waiting", "gauge", "callers queued for a connection"),
    ("pool_connecting", "gauge", "connects in flight"),
    (
        "pool_ceiling",
        "gauge",
        "the ceiling in effect (lowered while the server is full)",
    ),
    ("pool_checkouts_total", "counter", "connections handed out"),
    (
        "pool_timeouts_total",
        "counter",
        "get() calls that timed out",
    ),
    ("pool_connect_attempts_total", "counter", "connects tried"),
    (
        "pool_connect_failures_total",
        "counter",
        "failed connects, by `class`: transient, fatal, server_full",
    ),
    (
        "pool_connections_closed_total",
        "counter",
        "connections closed, by `reason`: idle, lifetime, max_uses, retain, broken, other",
    ),
    (
        "pool_wait_seconds",
        "histogram",
        "time from get() to a connection",
    ),
    ("pool_connect_seconds", "histogram", "time one connect took"),
    (
        "pool_checkout_seconds",
        "histogram",
        "time a connection stayed checked out",
    ),
];

pub(crate) struct PoolMetrics {
    name: String,
    /// Registered with the first recorder seen (at build or at a later publish).
    handles: OnceLock<Handles>,
    /// Checkouts served at once (the fast path) since the last publish: counted in
    /// `pool_checkouts_total` and recorded as zero waits in `pool_wait_seconds` when published,
    /// so the fast path pays one relaxed increment instead of a counter and a histogram.
    unwaited: AtomicU64,
}

struct Handles {
    size: Gauge,
    idle: Gauge,
    in_use: Gauge,
    waiting: Gauge,
    connecting: Gauge,
    ceiling: Gauge,
    checkouts: Counter,
    timeouts: Counter,
    connect_attempts: Counter,
    failures_transient: Counter,
    failures_fatal: Counter,
    failures_full: Counter,
    closed_idle: Counter,
    closed_lifetime: Counter,
    closed_max_uses: Counter,
    closed_retain: Counter,
    closed_broken: Counter,
    closed_other: Counter,
    wait: Histogram,
    connect: Histogram,
    checkout: Histogram,
}

/// Is a recorder installed (globally, or locally on this thread)? The facade hands out its
/// no-op recorder, a zero-sized type, when none is.
fn recorder_installed() -> bool {
    metrics::with_recorder(|r| std::mem::size_of_val(r) != 0)
}

/// Describes every metric to the current recorder (`# HELP` in Prometheus' text).
fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            "gauge" => metrics::describe_gauge!(name, help),
            "counter" => metrics::describe_counter!(name, help),
            _ => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
}

impl PoolMetrics {
    pub(crate) fn register(name: &str) -> PoolMetrics {
        let metrics = PoolMetrics {
            name: name.to_string(),
            handles: OnceLock::new(),
            unwaited: AtomicU64::new(0),
        };
        metrics.bind();
        metrics
    }

    /// The handles, registering them first if a recorder has appeared since the last look.
    fn bind(&self) -> Option<&Handles> {
        if let Some(h) = self.handles.get() {
            return Some(h);
        }
        if !recorder_installed() {
            return None;
        }
        Some(self.handles.get_or_init(|| {
            describe();
            Handles::register(&self.name)
        }))
    }

    /// Gauges and counters from a snapshot taken under the lock.
    pub(crate) fn publish(&self, s: &Status, st: &Stats) {
        let Some(h) = self.bind() else {
            return;
        };
        let unwaited = self.unwaited.swap(0, Ordering::Relaxed);
        if unwaited > 0 {
            h.checkouts.increment(unwaited);
            h.wait.record_many(0.0, unwaited as usize);
        }
        h.publish(s, st);
    }

    /// A checkout after a wait of `d` (or a health check or hook).
    pub(crate) fn checked_out(&self, d: Duration) {
        if let Some(h) = self.handles.get() {
            h.checkouts.increment(1);
            h.wait.record(d.as_secs_f64());
        }
    }

    /// A checkout served at once; published with the next pass.
    #[inline]
    pub(crate) fn checked_out_at_once(&self) {
        self.unwaited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connected(&self, d: Duration) {
        if let Some(h) = self.handles.get() {
            h.connect.record(d.as_secs_f64());
        }
    }

    pub(crate) fn checked_in(&self, d: Duration) {
        if let Some(h) = self.handles.get() {
            h.checkout.record(d.as_secs_f64());
        }
    }
}

impl Handles {
    fn register(name: &str) -> Handles {
        let pool = name.to_string();
        let failures = |class: &'static str| counter!("pool_connect_failures_total", "pool" => pool.clone(), "class" => class);
        let closed = |reason: &'static str| counter!("pool_connections_closed_total", "pool" => pool.clone(), "reason" => reason);
        Handles {
            size: gauge!("pool_connections", "pool" => pool.clone()),
            idle: gauge!("pool_connections_idle", "pool" => pool.clone()),
            in_use: gauge!("pool_connections_in_use", "pool" => pool.clone()),
            waiting: gauge!("pool_waiting", "pool" => pool.clone()),
            connecting: gauge!("pool_connecting", "pool" => pool.clone()),
            ceiling: gauge!("pool_ceiling", "pool" => pool.clone()),
            checkouts: counter!("pool_checkouts_total", "pool" => pool.clone()),
            timeouts: counter!("pool_timeouts_total", "pool" => pool.clone()),
            connect_attempts: counter!("pool_connect_attempts_total", "pool" => pool.clone()),
            failures_transient: failures("transient"),
            failures_fatal: failures("fatal"),
            failures_full: failures("server_full"),
            closed_idle: closed("idle"),
            closed_lifetime: closed("lifetime"),
            closed_max_uses: closed("max_uses"),
            closed_retain: closed("retain"),
            closed_broken: closed("broken"),
            closed_other: closed("other"),
            wait: histogram!("pool_wait_seconds", "pool" => pool.clone()),
            connect: histogram!("pool_connect_seconds", "pool" => pool.clone()),
            checkout: histogram!("pool_checkout_seconds", "pool" => pool),
        }
    }

    fn publish(&self, s: &Status, st: &Stats) {
        self.size.set(s.size as f64);
        self.idle.set(s.idle as f64);
        self.in_use.set(s.in_use as f64);
        self.waiting.set(s.waiting as f64);
        self.connecting.set(s.connecting as f64);
        self.ceiling.set(s.ceiling as f64);
        self.timeouts.absolute(st.requests_timeouts);
        self.connect_attempts
            .absolute(st.connections_num + st.connections_errors);
        let special = st.connections_errors_fatal + st.connections_errors_full;
        self.failures_transient
            .absolute(st.connections_errors.saturating_sub(special));
        self.failures_fatal.absolute(st.connections_errors_fatal);
        self.failures_full.absolute(st.connections_errors_full);
        let broken = st.returns_bad + st.connections_lost;
        let named =
            st.closed_idle + st.closed_lifetime + st.closed_max_uses + st.closed_retain + broken;
        self.closed_idle.absolute(st.closed_idle);
        self.closed_lifetime.absolute(st.closed_lifetime);
        self.closed_max_uses.absolute(st.closed_max_uses);
        self.closed_retain.absolute(st.closed_retain);
        self.closed_broken.absolute(broken);
        self.closed_other
            .absolute(st.connections_closed.saturating_sub(named));
    }
}
