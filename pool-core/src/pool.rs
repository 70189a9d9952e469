//! The public facade: [`Pool`] and [`PoolBuilder`].

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::acquire;
use crate::config::{CheckPolicy, Config, QueueMode};
use crate::error::{ConfigError, PoolError};
use crate::hooks::{HookFuture, Hooks, Stage};
use crate::manager::Manager;
use crate::object::Object;
use crate::shared::{Links, Shared};
use crate::stats::{ConnectionInfo, Stats, Status};
use crate::{clock, rt};

/// An elastic connection pool: between `min_size` and `max_size` connections, growing on
/// demand in the background and shrinking idle connections back to the floor.
///
/// Cheap to clone (two `Arc`s); `Send + Sync`. Dropping the last clone closes the idle
/// connections and stops the background tasks; checked-out connections close when returned.
pub struct Pool<M: Manager> {
    shared: Arc<Shared<M>>,
    /// The handles its `Object`s hold.
    links: Arc<Links<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Pool {
            shared: Arc::clone(&self.shared),
            links: Arc::clone(&self.links),
        }
    }
}

impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle: nobody can ask for a connection any more.
            self.shared.close();
        }
    }
}

impl<M: Manager + fmt::Debug> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("manager", &self.shared.manager)
            .field("status", &self.status())
            .finish()
    }
}

impl<M: Manager> Pool<M> {
    /// A builder with the default [`Config`].
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder {
            manager,
            config: Config::default(),
            hooks: Hooks::default(),
            name: Arc::from("pool"),
        }
    }

    /// Builds a pool from a [`Config`]; see [`PoolBuilder::build`].
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    pub fn new(manager: M, config: Config) -> Result<Self, ConfigError> {
        PoolBuilder {
            manager,
            config,
            hooks: Hooks::default(),
            name: Arc::from("pool"),
        }
        .build()
    }

    /// Checks out a connection, waiting up to the configured `wait_timeout`.
    ///
    /// Takes an idle connection if one is free and nobody is queued; otherwise joins the FIFO
    /// queue (asking the background connector to grow the pool if it is below `max_size`) and
    /// takes whichever comes first: a returned connection or a new one. The connection is
    /// health-checked first when the [`CheckPolicy`] asks; one that fails is discarded and the
    /// caller is served by another.
    ///
    /// No timer is armed per call: a queued caller's deadline sits in its place in the queue,
    /// and the pool's housekeeping task expires the queue in order.
    ///
    /// # Errors
    /// - [`PoolError::Timeout`] after `wait_timeout`, carrying the last connect error if any;
    /// - [`PoolError::Backend`] at once when a connect fails with a fatal error;
    /// - [`PoolError::Closed`] if the pool is or becomes closed;
    /// - [`PoolError::TooManyWaiters`] when `max_waiting` callers already wait.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future at any await point loses no connection and no queue
    /// slot. A connection handed over just as the caller left goes to the next waiter or back
    /// to the idle list; one cancelled mid health check is discarded (its state is unknown).
    ///
    /// # Example
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # #[derive(Debug, Default)]
    /// # struct Numbers(std::sync::atomic::AtomicU64);
    /// # impl pool_core::Manager for Numbers {
    /// #     type Connection = u64;
    /// #     type Error = std::io::Error;
    /// #     async fn connect(&self) -> std::io::Result<u64> {
    /// #         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    /// #     }
    /// #     async fn check(&self, _: &mut u64) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// let pool = pool_core::Pool::builder(Numbers::default()).max_size(2).build().unwrap();
    /// let conn = pool.get().await.unwrap();
    /// assert_eq!(*conn, 0); // derefs to the connection
    /// assert_eq!(pool.status().in_use, 1);
    /// drop(conn);
    /// assert_eq!(pool.status().idle, 1);
    /// # }
    /// ```
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + '_ {
        acquire::acquire(
            &self.shared,
            &self.links,
            self.shared.config.wait_timeout,
            Location::caller(),
        )
    }

    /// [`get`](Pool::get) with its own wait timeout (`None` waits until served or closed).
    ///
    /// A timeout equal to the pool's `wait_timeout` is kept by the pool's one timer, like
    /// `get()`'s; any other arms a timer for this call alone, which costs a little more per
    /// queued call.
    ///
    /// # Errors
    /// As [`get`](Pool::get).
    ///
    /// # Cancel safety
    /// As [`get`](Pool::get).
    #[track_caller]
    pub fn get_timeout(
        &self,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Object<M>, PoolError<M::Error>>> + Send + '_ {
        acquire::acquire(&self.shared, &self.links, timeout, Location::caller())
    }

    /// Waits until the pool has opened its `min_size` connections.
    ///
    /// # Errors
    /// - [`PoolError::Backend`] as soon as a connect fails with a fatal error (bad
    ///   credentials, unknown database), as [`get`](Pool::get) would: waiting cannot help;
    /// - [`PoolError::Timeout`] (with the last connect error) if the floor is not met in time;
    /// - [`PoolError::Closed`] if the pool closes.
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes the pool.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), PoolError<M::Error>> {
        self.shared.ensure_running();
        let start = clock::now();
        let deadline = start + timeout;
        let fatal_seen = self.shared.begin_wait_ready();
        loop {
            let changed = self.shared.signals.size_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(done) = self.shared.ready(fatal_seen, start, deadline) {
                return done;
            }
            let _ = rt::timeout_at(deadline, changed).await;
        }
    }

    /// The name set on the builder (`"pool"` by default).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A snapshot of sizes and the queue (eventually consistent).
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Cumulative counters (eventually consistent).
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The configuration the pool was built with (`min_size`/`max_size` as built; see
    /// [`status`](Pool::status) for the current ones after [`resize`](Pool::resize)).
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The configuration in effect now: the one built with, with the floor and ceiling of the
    /// latest [`resize`](Pool::resize). (The pool also logs it once, at debug level, when it
    /// is built.)
    pub fn effective_config(&self) -> Config {
        let s = self.status();
        Config {
            min_size: s.min_size,
            max_size: s.max_size,
            ..self.shared.config.clone()
        }
    }

    /// The manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Changes the floor and the ceiling. Growing takes effect in the background; shrinking
    /// closes idle connections above the new ceiling now and checked-out ones when returned.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `max_size` or `min_size` when `max == 0` or `min > max`;
    /// the pool is left unchanged.
    pub fn resize(&self, min_size: usize, max_size: usize) -> Result<(), ConfigError> {
        let check = Config {
            min_size,
            max_size,
            ..self.shared.config.clone()
        };
        check.validate()?;
        self.shared.ensure_running();
        self.shared.resize(min_size, max_size);
        Ok(())
    }

    /// Closes the pool: queued callers get [`PoolError::Closed`], idle connections close now,
    /// checked-out ones close when returned, and new `get()` calls fail with `Closed`.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Has [`close`](Pool::close) been called?
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// An idle connection at once if one is free and nobody is queued, else `Ok(None)` without
    /// waiting. A miss is not an error (not counted in `requests_errors`), but tells the
    /// background connector there is demand, so a later call may find a new connection. The
    /// connection is checked first when the [`CheckPolicy`] asks (the only await).
    ///
    /// # Errors
    /// [`PoolError::Closed`] once the pool is closed.
    #[track_caller]
    pub fn try_get(
        &self,
    ) -> impl Future<Output = Result<Option<Object<M>>, PoolError<M::Error>>> + Send + '_ {
        acquire::try_acquire(&self.shared, &self.links, Location::caller())
    }

    /// Closes the idle connections for which `keep` returns false, now, and every other
    /// connection (checked out, or out for the idle sweep) at its next return or checkout if
    /// `keep` rejects it then. Connections opened after this call are not asked. Returns how
    /// many idle connections it closed. The pool opens replacements as the floor or waiters
    /// need. A panic in `keep` closes the connection it was asked about.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # #[derive(Debug, Default)]
    /// # struct Numbers(std::sync::atomic::AtomicU64);
    /// # impl pool_core::Manager for Numbers {
    /// #     type Connection = u64;
    /// #     type Error = std::io::Error;
    /// #     async fn connect(&self) -> std::io::Result<u64> {
    /// #         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    /// #     }
    /// #     async fn check(&self, _: &mut u64) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// # let pool = pool_core::Pool::builder(Numbers::default()).min_size(2).build().unwrap();
    /// # pool.wait_ready(std::time::Duration::from_secs(1)).await.unwrap();
    /// // Recycle everything opened before a credentials rotation.
    /// let cutoff = tokio::time::Instant::now();
    /// let closed = pool.retain(move |info| info.created >= cutoff);
    /// assert_eq!(closed, 2);
    /// # }
    /// ```
    pub fn retain(&self, keep: impl Fn(&ConnectionInfo) -> bool + Send + Sync + 'static) -> usize {
        self.shared.retain(Arc::new(keep))
    }

    /// [`close_and_wait`](Pool::close_and_wait), bounded: `Err` with the pool's status if
    /// connections (checked out, or connects in flight) are still open after `timeout`.
    ///
    /// # Errors
    /// The [`Status`] at the deadline: what is still open.
    pub async fn close_and_wait_timeout(&self, timeout: Duration) -> Result<(), Status> {
        match rt::timeout(timeout, self.close_and_wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.status()),
        }
    }

    /// Closes the pool and waits until every connection, including checked-out ones and
    /// connects in flight, has closed.
    ///
    /// # Cancel safety
    /// Cancel-safe: the pool stays closed; dropping the future only stops the waiting.
    pub async fn close_and_wait(&self) {
        self.close();
        loop {
            let changed = self.shared.signals.size_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.shared.is_drained() {
                return;
            }
            changed.await;
        }
    }
}

/// Builds a [`Pool`]: every [`Config`] field has a setter; [`build`](PoolBuilder::build)
/// validates them.
#[derive(Debug)]
pub struct PoolBuilder<M: Manager> {
    manager: M,
    config: Config,
    hooks: Hooks<M::Connection>,
    name: Arc<str>,
}

macro_rules! setters {
    ($($field:ident: $ty:ty = $suffix:literal, $expects:literal;)*) => {
        impl<M: Manager> PoolBuilder<M> {
            $(
                #[doc = concat!("See [`Config::", stringify!($field), "`].")]
                pub fn $field(mut self, value: $ty) -> Self {
                    self.config.$field = value;
                    self
                }
            )*
        }
    };
}
crate::env::config_fields!(setters);

impl<M: Manager> PoolBuilder<M> {
    /// Names the pool (default `"pool"`): the `pool` field of its tracing spans
    /// (`pool.wait` around a `get()` that waits, with `waited_ms`; `pool.connect`;
    /// `pool.after_connect`, `pool.before_checkout`, `pool.after_return` around hooks).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Arc::from(name.into());
        self
    }

    /// Runs `hook` on every new connection in the background connector, before the connection
    /// is first offered (session setup: `SET search_path`, `application_name`, prepared
    /// statements). A hook that fails, panics or outlasts `hook_timeout` closes the connection
    /// and counts as a failed connect ([`ConnectError::Hook`](crate::ConnectError::Hook)),
    /// retried with backoff; no caller sees it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # #[derive(Debug, Default)]
    /// # struct Numbers(std::sync::atomic::AtomicU64);
    /// # impl pool_core::Manager for Numbers {
    /// #     type Connection = u64;
    /// #     type Error = std::io::Error;
    /// #     async fn connect(&self) -> std::io::Result<u64> {
    /// #         Ok(self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    /// #     }
    /// #     async fn check(&self, _: &mut u64) -> std::io::Result<()> { Ok(()) }
    /// # }
    /// let pool = pool_core::Pool::builder(Numbers::default())
    ///     .after_connect(|conn| Box::pin(async move {
    ///         // e.g. conn.batch_execute("SET search_path TO app").await?;
    ///         let _: &mut u64 = conn;
    ///         Ok(())
    ///     }))
    ///     .build()
    ///     .unwrap();
    /// # drop(pool);
    /// # }
    /// ```
    pub fn after_connect(
        mut self,
        hook: impl for<'a> Fn(&'a mut M::Connection) -> HookFuture<'a> + Send + Sync + 'static,
    ) -> Self {
        self.hooks
            .add(Stage::AfterConnect, Box::new(move |conn, _| hook(conn)));
        self
    }

    /// Runs `hook` on the caller's task before every checkout, after any health check, with
    /// the connection's [`ConnectionInfo`]. A hook that fails, panics or outlasts
    /// `hook_timeout` closes the connection, and the caller is served by another (within its
    /// wait timeout). A caller cancelled during the hook leaves the connection closed, not
    /// returned.
    pub fn before_checkout(
        mut self,
        hook: impl for<'a> Fn(&'a mut M::Connection, &'a ConnectionInfo) -> HookFuture<'a>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.hooks.add(Stage::BeforeCheckout, Box::new(hook));
        self
    }

    /// Runs `hook` on every connection that comes back healthy, in a background task, never
    /// on the returning caller's task (dropping an [`Object`] stays synchronous). Until it
    /// finishes the connection is neither idle nor handed to a waiter (it counts as in use),
    /// and waiters are served by other connections. A hook that fails, panics or outlasts
    /// `hook_timeout` closes the connection. Outside a Tokio runtime the hook cannot run, and
    /// the connection is closed instead of being returned unreset.
    pub fn after_return(
        mut self,
        hook: impl for<'a> Fn(&'a mut M::Connection, &'a ConnectionInfo) -> HookFuture<'a>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.hooks.add(Stage::AfterReturn, Box::new(hook));
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The configuration so far.
    pub fn current_config(&self) -> &Config {
        &self.config
    }

    /// Validates the configuration and builds the pool. Returns at once: the pool opens its
    /// `min_size` connections in the background (see [`Pool::wait_ready`]).
    ///
    /// Works inside a Tokio runtime and outside one (a `static` or `LazyLock` pool). The
    /// background connector and housekeeping tasks start on the runtime this is called in, or
    /// on the first runtime that calls [`get`](Pool::get), [`try_get`](Pool::try_get),
    /// [`wait_ready`](Pool::wait_ready) or [`resize`](Pool::resize); if that runtime shuts
    /// down, the next caller from another runtime starts them again there, and a caller
    /// already queued is woken to do so, so no `get()` waits past its deadline because a
    /// runtime went away. Returning a connection never spawns and works from any thread.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first invalid field and its value.
    pub fn build(self) -> Result<Pool<M>, ConfigError> {
        self.config.validate()?;
        let mut manager = self.manager;
        manager.configure(&self.config);
        tracing::debug!(target: "pool_core", pool = %self.name, config = ?self.config, "pool built");
        let shared = Arc::new(Shared::new(manager, self.config, self.hooks, self.name));
        shared.ensure_running();
        let links = Arc::new(Links::new(&shared));
        Ok(Pool { shared, links })
    }
}
