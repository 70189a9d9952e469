//! Idle shrink back to the floor, and `max_lifetime` retirement with jitter.
mod common;

use std::collections::BTreeSet;

use common::*;
use pool_testkit::Step;
use tokio::task::JoinSet;

async fn burst_to(pool: &pool_core::Pool<pool_testkit::FakeManager>, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    assert_eq!(pool.status().size, n);
}

/// A pool of 2 to 8 with a 300 s `max_idle` and no lifetime, grown to 8 by a burst, all idle.
async fn two_to_eight_grown_to_eight() -> (
    pool_core::Pool<pool_testkit::FakeManager>,
    pool_testkit::FakeHandle,
) {
    let (builder, backend) = fake(2, 8);
    let pool = builder
        .max_idle(Some(secs(300)))
        .max_lifetime(None)
        .build()
        .unwrap();
    pool.wait_ready(secs(5)).await.unwrap();
    burst_to(&pool, 8).await;
    (pool, backend)
}

/// Nothing closes before 300 s idle; just after, the pool is back at its floor of 2.
async fn shrinks_after_300_s_idle(pool: &pool_core::Pool<pool_testkit::FakeManager>) {
    tokio::time::sleep(secs(299)).await;
    assert_eq!(pool.status().size, 8, "nothing closes before max_idle");
    tokio::time::sleep(secs(2)).await;
    assert_eq!(pool.status().size, 2, "shrunk to min_size after 300 s idle");
}

#[tokio::test(start_paused = true)]
async fn idle_connections_shrink_back_to_the_floor_never_below() {
    let (pool, backend) = two_to_eight_grown_to_eight().await;
    assert_eq!(pool.status().idle, 8);
    shrinks_after_300_s_idle(&pool).await;
    assert_eq!(backend.live(), 2);
    tokio::time::sleep(secs(3600)).await;
    assert_eq!(pool.status().size, 2, "never below the floor");
    assert_eq!(backend.connects(), 8, "the floor is kept, not reopened");
    assert_eq!(pool.stats().connections_closed, 6);
    assert_accounted(&pool, &backend, 0);
}

/// A pool built on a running clock stamps its hot path from the coarse clock; once the
/// runtime's clock is paused and moved, the housekeeper notices and the pool reads the
/// runtime's clock exactly again: the shrink keeps its time and a hold its length.
#[tokio::test(flavor = "current_thread")]
async fn a_clock_paused_after_the_pool_is_built_keeps_the_pool_on_time() {
    let (pool, backend) = two_to_eight_grown_to_eight().await;
    tokio::time::pause();
    shrinks_after_300_s_idle(&pool).await;
    let before = pool.stats().usage_ms;
    let held = pool.get().await.unwrap();
    tokio::time::sleep(ms(2500)).await;
    drop(held);
    // `usage_ms` is a microsecond sum shown in whole milliseconds: the holds of the burst, on
    // the real clock, may carry the shown figure over one more millisecond.
    let added = pool.stats().usage_ms - before;
    assert!(
        (2500..=2501).contains(&added),
        "a hold measured on the paused clock added {added} ms, not 2500"
    );
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_steady_low_rate_keeps_just_what_it_needs() {
    let (builder, backend) = fake(1, 8);
    let pool = builder
        .max_idle(Some(secs(300)))
        .max_lifetime(None)
        .build()
        .unwrap();
    burst_to(&pool, 8).await;
    // Two callers, each checking out once a second for 100 ms, for 20 minutes.
    let mut set = JoinSet::new();
    for _ in 0..2 {
        let pool = pool.clone();
        set.spawn(async move {
            for _ in 0..1200 {
                let c = pool.get().await.unwrap();
                tokio::time::sleep(ms(100)).await;
                drop(c);
                tokio::time::sleep(ms(900)).await;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    // LIFO reuse keeps two warm; the cold tail aged out.
    assert_eq!(pool.status().size, 2);
    assert_eq!(backend.connects(), 8, "no churn: nothing was reopened");
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn fifo_mode_spreads_use_so_nothing_ages_out() {
    let (builder, _backend) = fake(1, 4);
    let pool = builder
        .max_idle(Some(secs(10)))
        .queue_mode(pool_core::QueueMode::Fifo)
        .build()
        .unwrap();
    burst_to(&pool, 4).await;
    for _ in 0..60 {
        drop(pool.get().await.unwrap());
        tokio::time::sleep(secs(1)).await;
    }
    // Each connection is used every 4 s, under the 10 s idle limit.
    assert_eq!(pool.status().size, 4);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_retires_spread_over_the_jitter_window_without_dropping_below_the_floor() {
    let (builder, backend) = fake(10, 12);
    let pool = builder
        .max_lifetime(Some(secs(100)))
        .max_idle(None)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let mut retired_at = Vec::new();
    let mut seen_closed = 0;
    // Step through 110 s in 100 ms steps and watch.
    for step in 1..=1100u64 {
        tokio::time::advance(ms(100)).await;
        settle().await;
        let s = pool.status();
        assert!(
            s.size >= 10,
            "dropped below the floor at {} ms: {s:?}",
            step * 100
        );
        assert!(s.size <= 12);
        let closed = backend.closed();
        for _ in seen_closed..closed {
            retired_at.push(step * 100);
        }
        seen_closed = closed;
    }
    assert_eq!(
        retired_at.len(),
        10,
        "each original retired once: {retired_at:?}"
    );
    assert!(
        retired_at.iter().all(|&t| (95_000..=100_100).contains(&t)),
        "within the 5 % jitter window: {retired_at:?}"
    );
    let distinct: BTreeSet<_> = retired_at.iter().collect();
    assert!(
        distinct.len() >= 5,
        "spread out, not all at once: {retired_at:?}"
    );
    assert_eq!(backend.connects(), 20, "each replaced once");
    assert_eq!(pool.status().size, 10);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn an_expired_connection_in_use_closes_on_return_and_is_replaced() {
    let (builder, backend) = fake(1, 2);
    backend.set_connect_default(Step::Ok);
    let pool = builder.max_lifetime(Some(secs(10))).build().unwrap();
    let c = pool.get().await.unwrap();
    let first = c.id();
    tokio::time::sleep(secs(11)).await;
    drop(c);
    settle().await;
    let c = pool.get().await.unwrap();
    assert_ne!(
        c.id(),
        first,
        "the expired connection was not handed out again"
    );
    assert_eq!(pool.status().size, 1);
}
