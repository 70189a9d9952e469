//! The seam between the pool and a backend.

use std::future::Future;

/// Whether a connect error is worth retrying.
///
/// The pool retries [`Transient`](ErrorClass::Transient) and
/// [`ServerFull`](ErrorClass::ServerFull) errors in the background with capped exponential
/// backoff, and hands [`Fatal`](ErrorClass::Fatal) errors to the waiting callers at once, since
/// waiting cannot fix them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The server is full, starting up, or unreachable for now: retry with backoff.
    Transient,
    /// Bad credentials, unknown database and the like: fail the waiting callers now.
    Fatal,
    /// The server refused the connection because it is full (Postgres: 53300, too many
    /// connections). Retried like a transient error and, with
    /// [`Config::adaptive_ceiling`](crate::Config::adaptive_ceiling), the pool lowers its
    /// effective ceiling to the connections it has and probes for room one at a time.
    ServerFull,
}

/// Opens, checks and judges connections for a [`Pool`](crate::Pool).
///
/// The pool calls [`connect`](Manager::connect) only from its background tasks, never from a
/// caller's `get()`, so a cancelled caller never cancels a connect.
///
/// # Example
///
/// ```
/// use pool_core::{ErrorClass, Manager};
///
/// #[derive(Debug)]
/// struct Numbers;
///
/// #[derive(Debug)]
/// struct Unreachable;
/// impl std::fmt::Display for Unreachable {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("unreachable")
///     }
/// }
/// impl std::error::Error for Unreachable {}
///
/// impl Manager for Numbers {
///     type Connection = u64;
///     type Error = Unreachable;
///     async fn connect(&self) -> Result<u64, Unreachable> {
///         Ok(42)
///     }
///     async fn check(&self, _conn: &mut u64) -> Result<(), Unreachable> {
///         Ok(())
///     }
///     fn classify(&self, _err: &Unreachable) -> ErrorClass {
///         ErrorClass::Transient
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The connection type the pool hands out.
    type Connection: Send + 'static;
    /// The error `connect` and `check` return.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection. Called only from the pool's background tasks, bounded by the
    /// pool's connect timeout.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Health check before a checkout, when the [`CheckPolicy`](crate::CheckPolicy) asks for
    /// one; bounded by the pool's check timeout. A failed or timed-out check discards the
    /// connection and the caller is served by another one.
    fn check(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Cheap and synchronous: is this connection unusable? Called on every return, at checkout
    /// of a connection taken from the idle list, and on each idle connection once per
    /// housekeeping pass (the idle sweep); a broken connection is closed instead of going back
    /// to the pool or to a caller. Called without the pool's lock held.
    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// Cheap and synchronous: does the manager doubt this connection, so that it must pass
    /// [`check`](Manager::check) before its next use whatever the pool's
    /// [`CheckPolicy`](crate::CheckPolicy)? Asked at every checkout; defaults to no. (A
    /// Postgres manager doubts the connections opened before another one saw its backend
    /// terminated: each is checked once instead of all being closed.)
    fn needs_check(&self, conn: &mut Self::Connection) -> bool {
        let _ = conn;
        false
    }

    /// Called once when a pool is built with this manager, before any connect, with the
    /// pool's configuration (a manager may size itself to it: the Postgres manager compares
    /// the floor with the server's connection budget). Does nothing by default.
    fn configure(&mut self, config: &crate::Config) {
        let _ = config;
    }

    /// Classifies a connect error as worth retrying or fatal. Defaults to transient.
    fn classify(&self, err: &Self::Error) -> ErrorClass {
        let _ = err;
        ErrorClass::Transient
    }
}
