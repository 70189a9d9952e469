//! Test doubles for `pool-core`: a fake backend whose every `connect` and `check` can be
//! scripted, which can break live connections and counts what the pool did to it; and a TCP
//! [`FaultProxy`] that refuses, resets, blackholes or delays traffic to a real server.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use pool_testkit::{FakeManager, Step};
//! use std::time::Duration;
//!
//! let (manager, backend) = FakeManager::new();
//! backend.script_connect([Step::Transient, Step::Slow(Duration::from_millis(150))]);
//! let pool = pool_core::Pool::builder(manager).min_size(1).build().unwrap();
//! pool.wait_ready(Duration::from_secs(5)).await.unwrap();
//! assert_eq!(backend.connect_attempts(), 2);
//! assert_eq!(backend.live(), 1);
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The workspace's Markdown examples, compiled and run as doctests here (this crate can use
/// every other crate of the workspace).
#[cfg(doctest)]
mod markdown {
    #[doc = include_str!("../../README.md")]
    mod readme {}
    #[doc = include_str!("../../pool-postgres/README.md")]
    mod pool_postgres_readme {}
    #[doc = include_str!("../../pool-compat/README.md")]
    mod pool_compat_readme {}
    #[doc = include_str!("../README.md")]
    mod pool_testkit_readme {}
    #[doc = include_str!("../../docs/usage.md")]
    mod usage {}
}

mod fake;
pub mod model;
mod prometheus;
mod proxy;
mod support;

pub use fake::{FakeConn, FakeError, FakeHandle, FakeManager, Step};
pub use prometheus::{scrape, serve_metrics};
pub use proxy::{Fault, FaultProxy};
pub use support::{Capture, Rng};
