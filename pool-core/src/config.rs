//! The pool's configuration: a plain struct, validated when the pool is built.

use std::time::Duration;

use crate::error::ConfigError;

/// When to health-check a connection before handing it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckPolicy {
    /// Check every connection before every checkout (the incident's fix: an empty query each
    /// time). Safest; costs one round trip per checkout.
    Always,
    /// Check connections that sat idle longer than this; ones handed straight from a return or a
    /// fresh connect are not checked.
    IdleLongerThan(Duration),
    /// Never check; rely on `has_broken` at return and on the caller's own error handling.
    Never,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy::IdleLongerThan(Duration::from_millis(500))
    }
}

/// Which idle connection a checkout takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueMode {
    /// The most recently returned (warm) connection first; the cold tail ages out under
    /// `max_idle`. The default.
    #[default]
    Lifo,
    /// The connection idle the longest first, spreading use over every connection.
    Fifo,
}

/// Pool configuration. Build one with [`Config::default`] and field updates, with
/// [`Config::from_env`], or through [`PoolBuilder`](crate::PoolBuilder).
///
/// Every field is checked by [`Config::validate`] when the pool is built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Connections kept open even when idle (the floor). Default 0.
    pub min_size: usize,
    /// Connections never exceeded (the ceiling). Default 10; must be at least 1.
    pub max_size: usize,
    /// Idle connections above `min_size` are closed after this long unused. `None` keeps them.
    /// Default 10 minutes.
    pub max_idle: Option<Duration>,
    /// Connections are retired after this age (each with its own negative jitter of up to 5 %),
    /// and replaced if the pool falls below `min_size`. `None` keeps them. Default 1 hour.
    pub max_lifetime: Option<Duration>,
    /// A connection is closed when it comes back after this many checkouts (each connection's
    /// limit is up to 5 % lower, at random, so connections opened together do not all retire
    /// together). `None` (the default) never retires a connection for its uses.
    pub max_uses: Option<u64>,
    /// How long `get()` waits before failing with a timeout. `None` waits forever. Default 30 s.
    pub wait_timeout: Option<Duration>,
    /// How long one connect may take before it counts as failed. Default 30 s.
    pub connect_timeout: Duration,
    /// When to health-check before a checkout.
    pub check: CheckPolicy,
    /// How long a health check may take before the connection is discarded. Default 5 s.
    pub check_timeout: Duration,
    /// Idle order. Default LIFO.
    pub queue_mode: QueueMode,
    /// Callers allowed to wait at once; the next one gets `TooManyWaiters`. `None` is
    /// unbounded. Default `None`.
    pub max_waiting: Option<usize>,
    /// Connects in flight at once while growing. Default 1, as psycopg_pool and HikariCP.
    pub connect_concurrency: usize,
    /// First retry delay after a transient connect error; it doubles with each failure.
    /// Default 10 ms.
    pub backoff_base: Duration,
    /// The most the retry delay grows to. Default 2 s.
    pub backoff_cap: Duration,
    /// A `get()` that waits longer than this logs a `tracing` warning. `None` never does.
    /// Default 1 s.
    pub slow_acquire_threshold: Option<Duration>,
    /// The longest the housekeeping task sleeps between passes. Default 1 s.
    pub housekeeping_interval: Duration,
    /// A connection checked out longer than this is reported once (a `tracing` warning naming
    /// the `get()` call site) as a possible leak. `None` (the default) turns detection off.
    pub leak_threshold: Option<Duration>,
    /// What to do when a connect is refused because the server is full
    /// ([`ErrorClass::ServerFull`](crate::ErrorClass::ServerFull); 53300 for Postgres): lower
    /// the pool's effective ceiling to its current size (at least 1) and probe upward one
    /// connection at a time, instead of retrying at the configured ceiling. The configured
    /// ceiling comes back after three successful connects in a row. Default on.
    pub adaptive_ceiling: bool,
    /// The longest a lifecycle hook (`after_connect`, `before_checkout`) may run; one that
    /// takes longer costs its connection. Default 5 s.
    pub hook_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_size: 0,
            max_size: 10,
            max_idle: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(3600)),
            max_uses: None,
            wait_timeout: Some(Duration::from_secs(30)),
            connect_timeout: Duration::from_secs(30),
            check: CheckPolicy::default(),
            check_timeout: Duration::from_secs(5),
            queue_mode: QueueMode::Lifo,
            max_waiting: None,
            connect_concurrency: 1,
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_secs(2),
            slow_acquire_threshold: Some(Duration::from_secs(1)),
            housekeeping_interval: Duration::from_secs(1),
            leak_threshold: None,
            adaptive_ceiling: true,
            hook_timeout: Duration::from_secs(5),
        }
    }
}

fn nonzero(field: &'static str, d: Duration) -> Result<(), ConfigError> {
    if d.is_zero() {
        return Err(ConfigError::invalid(
            field,
            "0s",
            "must be greater than zero",
        ));
    }
    Ok(())
}

impl Config {
    /// Checks every field; the error names the first invalid one and its value.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field, its value and what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::invalid("max_size", 0, "must be at least 1"));
        }
        if self.min_size > self.max_size {
            return Err(ConfigError::invalid(
                "min_size",
                self.min_size,
                format!("must not exceed max_size ({})", self.max_size),
            ));
        }
        if let Some(d) = self.max_idle {
            nonzero("max_idle", d)?;
        }
        if self.max_uses == Some(0) {
            return Err(ConfigError::invalid(
                "max_uses",
                "0",
                "must be at least 1 (or None to never retire a connection for its uses)",
            ));
        }
        if let Some(d) = self.max_lifetime {
            nonzero("max_lifetime", d)?;
        }
        nonzero("connect_timeout", self.connect_timeout)?;
        nonzero("check_timeout", self.check_timeout)?;
        if let CheckPolicy::IdleLongerThan(d) = self.check {
            nonzero("check", d).map_err(|_| {
                ConfigError::invalid(
                    "check",
                    "IdleLongerThan(0s)",
                    "has a zero idle threshold; use CheckPolicy::Always to check every checkout",
                )
            })?;
        }
        if self.connect_concurrency == 0 {
            return Err(ConfigError::invalid(
                "connect_concurrency",
                0,
                "must be at least 1",
            ));
        }
        nonzero("backoff_base", self.backoff_base)?;
        if self.backoff_cap < self.backoff_base {
            return Err(ConfigError::invalid(
                "backoff_cap",
                format!("{:?}", self.backoff_cap),
                format!("must be at least backoff_base ({:?})", self.backoff_base),
            ));
        }
        nonzero("housekeeping_interval", self.housekeeping_interval)?;
        nonzero("hook_timeout", self.hook_timeout)?;
        if let Some(d) = self.leak_threshold {
            nonzero("leak_threshold", d)?;
        }
        Ok(())
    }
}
