//! Errors: what went wrong, with the figures that explain it.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::stats::Status;

/// The error a [`Pool::get`](crate::Pool::get) returns.
///
/// `E` is the backend's error type ([`Manager::Error`](crate::Manager::Error)). Backend errors
/// are shared (`Arc`) because one connect failure can answer several callers.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError<E> {
    /// No connection became available within the wait timeout.
    Timeout(TimeoutError<E>),
    /// Opening a connection failed with an error the manager classified as fatal (bad
    /// credentials, unknown database): waiting could not have helped.
    Backend(Arc<E>),
    /// The pool was closed, before or while this caller waited.
    Closed,
    /// The wait queue was full (`max_waiting`): the request was shed without waiting.
    TooManyWaiters {
        /// The configured bound.
        max_waiting: usize,
    },
}

impl<E> PoolError<E> {
    /// The backend error behind this one, if any: the fatal connect error, or the last connect
    /// error seen before a timeout.
    pub fn backend_error(&self) -> Option<&E> {
        match self {
            PoolError::Backend(e) => Some(e),
            PoolError::Timeout(t) => match &t.last_connect_error {
                Some(ConnectError::Backend(e)) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }

    /// Is this a [`PoolError::Timeout`]?
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout(_))
    }
}

/// Details of a [`PoolError::Timeout`].
#[derive(Debug)]
#[non_exhaustive]
pub struct TimeoutError<E> {
    /// How long the caller waited.
    pub waited: Duration,
    /// The pool as it was when the wait ended.
    pub status: Status,
    /// The most recent connect failure since the last successful connect, if any: usually the
    /// reason the pool could not grow.
    pub last_connect_error: Option<ConnectError<E>>,
    /// Why no connect was in flight when the wait ended, if none was: what kept the pool from
    /// growing. `None` while a connect was under way (or the pool had no reason to grow).
    pub stalled: Option<Stalled>,
}

/// Why a pool was not opening a connection when a wait timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stalled {
    /// Every connection up to `max_size` was open (and in use): the pool could not grow.
    AtCeiling,
    /// The server refused connects for being full: the ceiling is lowered to `ceiling`
    /// while the pool probes for room.
    ServerFull {
        /// The lowered ceiling.
        ceiling: usize,
    },
    /// Backing off after failed connects; the next attempt in `retry_in`.
    BackingOff {
        /// Time left until the next connect attempt.
        retry_in: Duration,
    },
    /// The pool is closed.
    Closed,
    /// No background connector was running: it has not been started on a runtime yet, or it
    /// died with the runtime it ran on. The next `get()` on a live runtime starts it again.
    NoBackgroundTask,
}

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stalled::AtCeiling => f.write_str("the pool is at max_size"),
            Stalled::ServerFull { ceiling } => write!(
                f,
                "at the lowered ceiling ({ceiling}), probing the full server for room one connection at a time"
            ),
            Stalled::BackingOff { retry_in } => write!(
                f,
                "backing off after failed connects, next attempt in {retry_in:?}"
            ),
            Stalled::Closed => f.write_str("the pool is closed"),
            Stalled::NoBackgroundTask => f.write_str(
                "no background connector is running (its runtime shut down, or none started it yet)",
            ),
        }
    }
}

/// Why the pool's background connector failed to open a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError<E> {
    /// The manager's `connect` returned this error.
    Backend(Arc<E>),
    /// The manager's `connect` did not finish within the connect timeout.
    TimedOut(Duration),
    /// The manager's `connect` panicked, with this message. Counted as a failed connect and
    /// retried with backoff, like a transient error.
    Panicked(Arc<str>),
    /// The connection opened, but the `after_connect` hook failed, timed out or panicked
    /// (this says which); the connection was closed. Retried like a transient error.
    Hook(Arc<str>),
}

impl<E> Clone for ConnectError<E> {
    fn clone(&self) -> Self {
        match self {
            ConnectError::Backend(e) => ConnectError::Backend(Arc::clone(e)),
            ConnectError::TimedOut(d) => ConnectError::TimedOut(*d),
            ConnectError::Panicked(m) => ConnectError::Panicked(Arc::clone(m)),
            ConnectError::Hook(m) => ConnectError::Hook(Arc::clone(m)),
        }
    }
}

impl<E: fmt::Display> fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Backend(e) => write!(f, "{e}"),
            ConnectError::TimedOut(d) => write!(f, "connect timed out after {d:?}"),
            ConnectError::Panicked(m) => write!(f, "connect panicked: {m}"),
            ConnectError::Hook(m) => write!(f, "after_connect hook: {m}"),
        }
    }
}

impl<E: fmt::Display> fmt::Display for TimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.status;
        write!(
            f,
            "timed out after {:?} waiting for a connection (size {}/{} max, {} in use, {} waiting, {} connecting",
            self.waited, s.size, s.max_size, s.in_use, s.waiting, s.connecting
        )?;
        if s.ceiling < s.max_size {
            write!(f, "; ceiling lowered to {}: the server is full", s.ceiling)?;
        }
        f.write_str(")")?;
        if let Some(why) = &self.stalled {
            write!(f, "; nothing connecting: {why}")?;
        }
        match &self.last_connect_error {
            Some(e) => write!(f, "; last connect error: {e}"),
            None => Ok(()),
        }
    }
}

impl<E: fmt::Display> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout(t) => t.fmt(f),
            PoolError::Backend(e) => write!(f, "could not open a connection (fatal): {e}"),
            PoolError::Closed => f.write_str("the pool is closed"),
            PoolError::TooManyWaiters { max_waiting } => write!(
                f,
                "too many callers waiting for a connection (max_waiting = {max_waiting}); request shed"
            ),
        }
    }
}

impl<E: StdError + 'static> StdError for PoolError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.backend_error().map(|e| e as &(dyn StdError + 'static))
    }
}

/// An invalid pool configuration, naming the field (and the environment variable, when the
/// value came from one) and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field holds a value the pool cannot work with.
    Invalid {
        /// The field, as named in [`Config`](crate::Config).
        field: &'static str,
        /// The offending value, as text.
        value: String,
        /// What is wrong with it.
        reason: String,
        /// The environment variable the value came from, if it came from one.
        var: Option<String>,
    },
    /// An environment variable is set but cannot be parsed.
    Env {
        /// The variable's full name.
        var: String,
        /// Its value (lossily converted if it was not UTF-8).
        value: String,
        /// What was expected.
        reason: String,
    },
    /// Kept for compatibility; no longer returned: a pool is built outside a runtime as well
    /// as inside one, and its background tasks start on the first runtime that uses it.
    NoRuntime,
}

impl ConfigError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            field,
            value: value.to_string(),
            reason: reason.into(),
            var: None,
        }
    }

    /// The environment variable this error names, if any.
    pub fn var(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { var, .. } => var.as_deref(),
            ConfigError::Env { var, .. } => Some(var),
            ConfigError::NoRuntime => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { field, value, reason, var: Some(var) } => {
                write!(f, "invalid pool config: {var}={value:?} sets {field}, which {reason}")
            }
            ConfigError::Invalid { field, value, reason, var: None } => {
                write!(f, "invalid pool config: {field} = {value}: {reason}")
            }
            ConfigError::Env { var, value, reason } => {
                write!(f, "invalid pool config: {var}={value:?}: {reason}")
            }
            ConfigError::NoRuntime => f.write_str(
                "the pool must be built inside a Tokio runtime (its background connector and housekeeping tasks run there)",
            ),
        }
    }
}

impl StdError for ConfigError {}
