//! The idle sweep: the housekeeper asks `has_broken` of idle connections on each pass, so
//! connections that died while idle are closed and the floor is refilled before any caller
//! comes.
mod common;

use common::*;
use pool_core::CheckPolicy;

#[tokio::test(start_paused = true)]
async fn after_a_server_loss_the_floor_is_back_within_two_passes_without_a_get() {
    let (builder, backend) = fake(3, 6);
    let pool = builder.housekeeping_interval(secs(1)).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    // Three more opened under load, returned idle: six idle, three above the floor.
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(pool.get().await.unwrap());
        }
        v
    };
    drop(held);
    settle().await;
    assert_eq!(pool.status().idle, 6);

    assert_eq!(backend.break_all(), 6, "the server restarts");
    let t0 = tokio::time::Instant::now();
    // Two housekeeping passes, with no caller at all.
    pass(secs(2)).await;
    let s = pool.status();
    assert_eq!(
        (s.size, s.idle, s.in_use),
        (3, 3, 0),
        "the floor, refilled: {s:?}"
    );
    assert_eq!(
        pool.stats().connections_lost,
        6,
        "all six found by the sweep"
    );
    assert_eq!(
        backend.connects(),
        9,
        "six before, three replacements for the floor"
    );
    assert_eq!(backend.live(), 3);
    assert_accounted(&pool, &backend, 0);
    assert!(t0.elapsed() <= secs(2));

    // The next caller gets a live connection at once and finds nothing broken.
    let conn = pool.get().await.unwrap();
    assert!(conn.id() > 6, "a fresh connection");
    assert_eq!(pool.stats().connections_lost, 6);
}

#[tokio::test(start_paused = true)]
async fn the_sweep_leaves_healthy_idle_connections_alone() {
    let (builder, backend) = fake(2, 4);
    let pool = builder.check(CheckPolicy::Never).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    pass(secs(5)).await;
    assert_eq!(pool.stats().connections_lost, 0);
    assert_eq!(backend.connects(), 2, "nothing closed, nothing reopened");
    assert_eq!(pool.status().idle, 2);
}

#[tokio::test(start_paused = true)]
async fn a_has_broken_that_panics_in_the_sweep_closes_that_connection_and_the_sweep_goes_on() {
    let (builder, backend) = fake(2, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.panic_in_has_broken(1);
    pass(secs(1)).await;
    assert_eq!(pool.stats().connections_lost, 1);
    // The housekeeper is still alive: a later server loss is still swept.
    pass(secs(1)).await;
    assert_eq!(pool.status().size, 2);
    backend.break_all();
    pass(secs(2)).await;
    assert_eq!(pool.stats().connections_lost, 3);
    assert_eq!(pool.status().size, 2);
    assert_accounted(&pool, &backend, 0);
}
