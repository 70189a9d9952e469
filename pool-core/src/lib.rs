//! An elastic, fair, cancel-safe async connection pool for Tokio, generic over the connection
//! type through the [`Manager`] trait.
//!
//! The pool keeps a small idle floor (`min_size`) and grows only under demand, up to
//! `max_size`: a [`Pool::get`] that finds nothing idle joins a FIFO queue, and a background
//! connector opens connections (never the caller), re-checking the demand before each one, so a
//! burst shorter than a connect is served by returns and opens almost nothing. Idle connections
//! above the floor close after `max_idle`; every connection retires after `max_lifetime`.
//! Connections are health-checked on checkout by [`CheckPolicy`], failed transient connects are
//! retried with capped exponential backoff, fatal ones reach the waiting callers at once, and
//! every error says what the pool looked like when it happened. Each housekeeping pass asks
//! [`Manager::has_broken`] of the idle connections, so connections that died while idle are
//! replaced before a caller meets them.
//!
//! A pool is a value, not a task: it can be built outside a runtime (a `static` pool) and used
//! from one Tokio runtime after another; its background tasks start, and start again, on the
//! runtime of the caller that finds them gone.
//!
//! The pool survives the code it calls: a `connect` that panics counts as a failed connect
//! ([`ConnectError::Panicked`]) and the connector carries on; a hook that fails or panics
//! costs its connection, never the caller; a panic in `check` or
//! `has_broken` unwinds through the caller as any panic would, with the connection closed and
//! nothing left counted as in use; a connection whose `Drop` panics is closed quietly.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use pool_core::{CheckPolicy, Manager, Pool};
//!
//! /// Your backend's connect and health check; here, numbered connections.
//! #[derive(Debug, Default)]
//! struct Numbers(AtomicU64);
//!
//! impl Manager for Numbers {
//!     type Connection = u64;
//!     type Error = std::io::Error;
//!     async fn connect(&self) -> std::io::Result<u64> {
//!         Ok(self.0.fetch_add(1, Ordering::Relaxed))
//!     }
//!     async fn check(&self, _conn: &mut u64) -> std::io::Result<()> {
//!         Ok(())
//!     }
//! }
//!
//! let pool = Pool::builder(Numbers::default())
//!     .min_size(1)
//!     .max_size(4)
//!     .max_idle(Some(Duration::from_secs(300)))
//!     .check(CheckPolicy::Always)
//!     .build()?;
//! pool.wait_ready(Duration::from_secs(5)).await?;
//! let conn = pool.get().await?; // derefs to the connection; returns to the pool on drop
//! assert_eq!(pool.status().in_use, 1);
//! drop(conn);
//! # Ok(())
//! # }
//! ```
//!
//! # When not to use it
//!
//! If every request needs a connection for its whole life and the server has room for the
//! ceiling of every process, a fixed-size pool is simpler. This crate is for fleets where idle
//! connections are the scarce thing: it keeps a small floor and grows only under demand.
//!
//! # The main design decision
//!
//! Callers never connect. Only the background connector opens connections, at most
//! `connect_concurrency` at a time, and a caller takes whichever comes first: a returned
//! connection or a new one. This is what keeps a burst from opening a connection per caller
//! and an outage from turning into a connect storm (about one or two attempts a second
//! however many callers wait), and what makes a cancelled `get()` unable to cancel a connect.
//!
//! # Map of the engine
//!
//! [`Pool`] and [`Object`] are thin facades over a `pub(crate)` engine. Each file owns its
//! invariants:
//!
//! | file | owns |
//! |---|---|
//! | `state/` | everything under the lock (`mod.rs` the fields; `admit.rs`, `release.rs`, `connect.rs`, `housekeep.rs` the transitions, each with its unit tests): the idle list, the queue, `size` and `connecting` against the floor and ceiling, the backoff, the statistics and the leak watch; every change is one method (admit a caller, approve and settle a connect, release a connection with an outcome, reap, expire waiters, resize, close), unit-tested without a runtime |
//! | `conn.rs` | the connection record: a connection and the pool's bookkeeping beside it, boxed once when opened, moved as one pointer |
//! | `idle.rs` | the idle list in return order (longest idle first), its newest connection inline so a return followed by a checkout touches no heap slot |
//! | `waiters.rs` | the FIFO queue: tickets (a caller going round again keeps its place) and each waiter's deadline in queue order; the hot path's hand-off only pops a place; a caller leaving is found by its ticket and its place emptied where it stands |
//! | `seats.rs` | a waiter's seat (a cell with its own lock, filled after the pool's lock is released and emptied by its caller without it; a caller leaving between pop and fill hands the connection back), and the store that reuses seats once their callers let go, sharded by thread |
//! | `slab.rs` | the leak watch's entries, reused through a free list: no allocation once warm |
//! | `shared.rs` | the lock and the signals: lock, call one transition, unlock, then wake, close and log; `has_broken` and a closing connection's `Drop` run under `catch_unwind`; the per-thread links `Object`s hold |
//! | `acquire.rs` | the `get()` path: the fast path (one lock, no clock read before it has a connection), queueing, a caller's own timer, the health check and `before_checkout`, cancellation |
//! | `object.rs` | the checkout guard: every way a connection leaves a caller's hands |
//! | `connector.rs` | the only place connections are opened; a panicking `connect` is a failed connect |
//! | `background.rs` | starting the connector and the housekeeper, and starting them again on the caller's runtime when the runtime they ran on has shut down; a connect dropped mid-flight gives its approval back |
//! | `hooks.rs` | the one runner of all three hook stages: in order added, each under `hook_timeout`, in its span, a panic caught, logged, the connection discarded on failure |
//! | `unwind.rs` | keeping a panic in code the pool calls where it belongs: `catch_panic`, `panic_message`, `close_quietly` |
//! | `housekeeping.rs` | the idle sweep (`has_broken` on idle connections), idle shrink, lifetime, leak reports, and the one timer that expires waiters |
//! | `clock.rs` | time: the engine's `Instant` (integer nanoseconds, tokio's instant only at timers and the public API); the hot path's coarse stamps and when they give way to exact reads (a paused or moved runtime clock) |
//! | `rt.rs` | the coupling to Tokio's runtime: spawn, timeouts and timers |
//! | `signals.rs` | what wakes the background tasks (and the size watchers), and whether each task is alive |
//! | `loom.rs` | (tests, under `--cfg pool_loom`) the model checker on the hand-off: the seat, the connect approval and returns racing a cancel, over every interleaving of the engine's locks |
//! | `sync.rs` | the lock (a spin lock that yields, released by a plain store: cache-line-aligned as `Mutex`, unaligned as `Lock` for the seats), behind a facade so it can be swapped and measured; each thread's shard |
//! | `config.rs`, `env.rs` | the configuration, its validation, and the environment table |
//! | `error.rs`, `stats.rs` | errors that carry the pool's status; `status()` and `stats()` |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod acquire;
mod background;
mod clock;
mod config;
mod conn;
mod connector;
mod env;
mod error;
mod hooks;
mod housekeeping;
mod idle;
#[cfg(all(test, pool_loom))]
mod loom;
mod manager;
#[cfg(feature = "metrics")]
mod metrics;
mod object;
mod pool;
mod rt;
mod seats;
#[cfg(feature = "serde")]
mod serde_config;
mod shared;
mod signals;
mod slab;
mod state;
mod stats;
mod sync;
mod unwind;
mod waiters;

pub use config::{CheckPolicy, Config, QueueMode};
pub use env::{unknown_env_vars, EnvVar, ENV_VARS};
pub use error::{ConfigError, ConnectError, PoolError, Stalled, TimeoutError};
pub use hooks::{HookError, HookFuture};
pub use manager::{ErrorClass, Manager};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::METRICS;
pub use object::Object;
pub use pool::{Pool, PoolBuilder};
pub use stats::{ConnectionInfo, Stats, Status};
/// The instant type the pool reports (tokio's, so it follows a paused test clock).
pub use tokio::time::Instant;
