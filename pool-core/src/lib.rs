#![doc = include_str!("../../README.md")]
//!
//! # Crate layout
//!
//! [`Pool`] is a thin facade over a `pub(crate)` engine: `inner` (state and its lock),
//! `acquire` (the `get()` path), `waiters` (the FIFO queue), `connector` (the only place
//! connections open) and `housekeeping` (idle shrink and lifetime). [`Manager`] is the one seam
//! to a backend.
//!
//! # When not to use it
//!
//! If every request needs a connection for its whole life and the server has room for the
//! ceiling of every process, a fixed-size pool is simpler. This crate is for fleets where idle
//! connections are the scarce thing: it keeps a small floor and grows only under demand.

mod acquire;
mod config;
mod connector;
mod env;
mod error;
mod housekeeping;
mod manager;
mod object;
mod pool;
mod rt;
mod shared;
mod slab;
mod state;
mod stats;
mod sync;
mod waiters;

pub use config::{CheckPolicy, Config, QueueMode};
pub use env::ENV_VARS;
pub use error::{ConfigError, ConnectError, PoolError, TimeoutError};
pub use manager::{ErrorClass, Manager};
pub use object::Object;
pub use pool::{Pool, PoolBuilder};
pub use stats::{Stats, Status};
/// The instant type the pool reports (tokio's, so it follows a paused test clock).
pub use tokio::time::Instant;
