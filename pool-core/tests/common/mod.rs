//! Helpers shared by the pool tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use pool_core::{Pool, PoolBuilder};
use pool_testkit::{FakeHandle, FakeManager};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A builder over a fresh fake backend, with health checks off so counts are exact.
pub fn fake(min: usize, max: usize) -> (PoolBuilder<FakeManager>, FakeHandle) {
    let (manager, backend) = FakeManager::new();
    let builder = Pool::builder(manager)
        .min_size(min)
        .max_size(max)
        .check(pool_core::CheckPolicy::Never);
    (builder, backend)
}

/// Lets spawned tasks run without moving the (paused) clock.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Lets `d` pass on the paused clock in small steps, running tasks in between.
pub async fn pass(d: Duration) {
    let step = ms(1).min(d);
    let mut left = d;
    while !left.is_zero() {
        let s = step.min(left);
        tokio::time::advance(s).await;
        settle().await;
        left -= s;
    }
}

/// The accounting that must hold whenever the pool is quiet: sizes add up and every open
/// connection on the backend is one the pool counts.
pub fn assert_accounted(pool: &Pool<FakeManager>, backend: &FakeHandle, detached: usize) {
    let s = pool.status();
    assert_eq!(s.size, s.idle + s.in_use, "size = idle + in use: {s:?}");
    assert_eq!(
        backend.live(),
        s.size + detached,
        "backend live vs pool size: {s:?}"
    );
    if s.waiting > 0 {
        assert_eq!(
            s.idle, 0,
            "a waiter waits while a connection is idle: {s:?}"
        );
    }
}

#[allow(unused_imports)]
pub use pool_testkit::Capture;
