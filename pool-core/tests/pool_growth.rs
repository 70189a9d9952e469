//! Growth under demand, the spike (HikariCP's "Welcome to the Jungle"), and sustained load.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use pool_testkit::Step;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Spawns `tasks` tasks that each do `rounds` checkouts holding `hold`; returns every wait.
async fn run_load(
    pool: &pool_core::Pool<pool_testkit::FakeManager>,
    tasks: usize,
    rounds: usize,
    hold: Duration,
) -> Vec<Duration> {
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            let mut waits = Vec::new();
            for _ in 0..rounds {
                let t0 = Instant::now();
                let conn = pool.get().await.expect("every caller is served");
                waits.push(t0.elapsed());
                tokio::time::sleep(hold).await;
                drop(conn);
            }
            waits
        });
    }
    let mut all = Vec::new();
    while let Some(waits) = set.join_next().await {
        all.extend(waits.unwrap());
    }
    all
}

#[tokio::test(start_paused = true)]
async fn grows_to_max_and_never_beyond_serving_every_waiter() {
    let (builder, backend) = fake(0, 4);
    backend.set_connect_default(Step::Slow(ms(20)));
    let pool = builder.build().unwrap();
    let waits = run_load(&pool, 20, 10, ms(30)).await;
    assert_eq!(waits.len(), 200, "every checkout served");
    assert_eq!(backend.peak_live(), 4, "grew to the ceiling and not beyond");
    assert_eq!(backend.connects(), 4);
    let s = pool.status();
    assert_eq!((s.size, s.idle, s.waiting), (4, 4, 0));
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn the_spike_is_served_by_returns_not_connects() {
    // Connects take 150 ms; min 5, max 10; 50 tasks arrive at once, one 2 ms checkout each.
    let (builder, backend) = fake(5, 10);
    backend.set_connect_default(Step::Slow(ms(150)));
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(5)).await.unwrap();
    assert_eq!(backend.connects(), 5);
    let t0 = Instant::now();
    let mut waits = run_load(&pool, 50, 1, ms(2)).await;
    let burst = t0.elapsed();
    waits.sort();
    let max_wait = *waits.last().unwrap();
    assert_eq!(waits.len(), 50);
    // Five connections clear 50 checkouts of 2 ms in 20 ms, long before a connect finishes.
    assert_eq!(burst, ms(20), "burst duration");
    assert!(
        max_wait < ms(150),
        "every caller was served by a return: max wait {max_wait:?}"
    );
    // Let any connect started during the burst finish: at most one was.
    pass(ms(300)).await;
    assert!(
        backend.connects() <= 6,
        "opened {} connections",
        backend.connects()
    );
    assert_eq!(pool.stats().connections_num, backend.connects());
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn sustained_demand_grows_to_the_ceiling() {
    let (builder, backend) = fake(5, 10);
    backend.set_connect_default(Step::Slow(ms(150)));
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(5)).await.unwrap();
    // 50 tasks x 20 checkouts holding 20 ms: 20 s of connection time, far more than five
    // connections serve before the next connect completes.
    let waits = run_load(&pool, 50, 20, ms(20)).await;
    assert_eq!(waits.len(), 1000);
    assert_eq!(backend.peak_live(), 10);
    assert_eq!(pool.status().size, 10);
    assert_eq!(backend.connects(), 10);
}

#[tokio::test(start_paused = true)]
async fn growth_opens_one_connection_at_a_time_and_rechecks_demand() {
    let (builder, backend) = fake(0, 10);
    backend.set_connect_default(Step::Slow(ms(100)));
    let pool = Arc::new(builder.build().unwrap());
    // Three callers queue; the first connect serves the first; the connector re-checks and
    // opens the next, one at a time.
    let mut set = JoinSet::new();
    for _ in 0..3 {
        let pool = Arc::clone(&pool);
        set.spawn(async move {
            let t0 = Instant::now();
            let c = pool.get().await.unwrap();
            let w = t0.elapsed();
            tokio::time::sleep(secs(10)).await;
            drop(c);
            w
        });
    }
    settle().await;
    assert_eq!(pool.status().waiting, 3);
    assert_eq!(pool.status().connecting, 1, "connect_concurrency 1");
    let mut waits = Vec::new();
    while let Some(w) = set.join_next().await {
        waits.push(w.unwrap());
    }
    waits.sort();
    assert_eq!(waits, vec![ms(100), ms(200), ms(300)]);
    assert_eq!(backend.connects(), 3, "no connect beyond demand");
}
