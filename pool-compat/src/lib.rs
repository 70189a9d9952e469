//! Run existing [bb8] and [deadpool] managers on [`pool_core`].
//!
//! A team moving to `pool-core` from bb8 or deadpool keeps its managers: [`FromBb8`] makes
//! any `bb8::ManageConnection` a [`pool_core::Manager`], [`FromDeadpool`] any
//! `deadpool::managed::Manager`. The pool then hands out the manager's own connection type
//! (an [`Object`](pool_core::Object) derefs to it), so code that used the connection keeps
//! working:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pool_compat::FromBb8;
//! use redis::AsyncCommands;
//!
//! // Before: bb8::Pool::builder().build(RedisConnectionManager::new(url)?).await?
//! let manager = bb8_redis::RedisConnectionManager::new("redis://127.0.0.1:6379")?;
//! let pool = pool_core::Pool::builder(FromBb8::new(manager)).max_size(16).build()?;
//! let mut conn = pool.get().await?;
//! let _: () = conn.set("greeting", "hello").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What maps, and what does not
//!
//! | the original | on pool-core |
//! |---|---|
//! | bb8 `connect`, deadpool `create` | [`Manager::connect`](pool_core::Manager::connect), called by the pool's background connector only |
//! | bb8 `is_valid`, deadpool `recycle` | [`Manager::check`](pool_core::Manager::check), run when the [`CheckPolicy`](pool_core::CheckPolicy) asks (bb8's `test_on_check_out` is `CheckPolicy::Always`; deadpool recycles every checkout, which is `Always` too) |
//! | bb8 `has_broken` | [`Manager::has_broken`](pool_core::Manager::has_broken), on every return and on idle connections at checkout |
//! | deadpool's `RecycleError::Message` | [`CompatError::Recycle`] |
//! | errors | [`CompatError::Backend`] wrapping the manager's own error; transient (retried with backoff) unless [`classify_with`](FromBb8::classify_with) says fatal |
//!
//! Not mapped:
//! - **deadpool's recycle [`Metrics`](deadpool::managed::Metrics).** pool-core keeps its own
//!   per-connection bookkeeping; `recycle` is given a fresh `Metrics` (created now, never
//!   recycled, count 0) on every check. A `recycle` that retires connections by age or use
//!   count through them never does so here: use the pool's `max_lifetime` instead.
//! - **deadpool's `detach`.** [`Object::take`](pool_core::Object::take) detaches a connection
//!   without calling the manager.
//! - **bb8's `CustomizeConnection` and deadpool's hooks** (`post_create`, `pre_recycle`,
//!   `post_recycle`). They belong to those crates' pool builders, not to the manager, and do
//!   not come along.
//! - **bb8's error sink.** Connect errors go to `tracing` and to the callers' errors, as for any
//!   pool-core manager.
//!
//! The original's pool settings (sizes, timeouts, `min_idle`) are set on
//! [`PoolBuilder`](pool_core::PoolBuilder) instead.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "bb8")]
mod bb8_manager;
#[cfg(any(feature = "bb8", feature = "deadpool"))]
mod classify;
#[cfg(feature = "deadpool")]
mod deadpool_manager;
mod error;

#[cfg(feature = "bb8")]
#[cfg_attr(docsrs, doc(cfg(feature = "bb8")))]
pub use bb8_manager::FromBb8;
#[cfg(feature = "deadpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
pub use deadpool_manager::FromDeadpool;
pub use error::CompatError;
