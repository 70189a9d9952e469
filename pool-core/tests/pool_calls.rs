//! The calls users expect when they switch: `try_get`, `max_uses`, `retain`,
//! `Object::info`, and a bounded `close_and_wait`.
mod common;

use common::*;
use pool_core::{Config, PoolError};

#[tokio::test(start_paused = true)]
async fn try_get_never_waits_and_a_miss_asks_for_a_connection() {
    let (builder, backend) = fake(0, 2);
    let pool = builder.build().unwrap();
    let miss = pool.try_get().await.unwrap();
    assert!(miss.is_none(), "nothing idle: no wait, no connection");
    let stats = pool.stats();
    assert_eq!(
        (stats.requests_num, stats.requests_errors),
        (0, 0),
        "a miss is not an error"
    );
    settle().await;
    assert_eq!(
        backend.connects(),
        1,
        "the miss told the connector there is demand"
    );
    let conn = pool
        .try_get()
        .await
        .unwrap()
        .expect("the new connection, idle");
    assert_eq!(pool.stats().requests_num, 1);
    // Held: the next try misses again (and asks for a second connection).
    assert!(pool.try_get().await.unwrap().is_none());
    settle().await;
    assert_eq!(backend.connects(), 2);
    drop(conn);
    pool.close();
    assert!(matches!(pool.try_get().await, Err(PoolError::Closed)));
}

#[tokio::test(start_paused = true)]
async fn try_get_skips_a_dead_idle_connection() {
    let (builder, backend) = fake(2, 2);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    // LIFO: the newest idle one is taken first; break it.
    assert!(backend.break_conn(2));
    let conn = pool.try_get().await.unwrap().expect("the other idle one");
    assert_eq!(conn.id(), 1);
    assert_eq!(pool.stats().connections_lost, 1);
}

#[tokio::test(start_paused = true)]
async fn max_uses_retires_a_connection_after_that_many_checkouts() {
    let (builder, backend) = fake(1, 1);
    let pool = builder.max_uses(Some(10)).build().unwrap();
    let mut seen = Vec::new();
    for _ in 0..25 {
        let conn = pool.get().await.unwrap();
        seen.push((conn.id(), conn.info().uses));
        drop(conn);
        settle().await;
    }
    // 5 % of 10 rounds down to no jitter: exactly 10 uses each.
    let expected: Vec<(u64, u64)> = (0..25u64).map(|i| (i / 10 + 1, i % 10 + 1)).collect();
    assert_eq!(seen, expected);
    assert_eq!(backend.connects(), 3);
    assert_accounted(&pool, &backend, 0);

    // With 100, each connection's limit is jittered down by up to 5 %.
    let (builder, _backend) = fake(1, 1);
    let pool = builder.max_uses(Some(100)).build().unwrap();
    let mut uses = 0;
    loop {
        let conn = pool.get().await.unwrap();
        if conn.info().id != 1 {
            break;
        }
        uses = conn.info().uses;
        drop(conn);
        settle().await;
    }
    assert!((95..=100).contains(&uses), "retired after {uses} uses");
}

#[tokio::test(start_paused = true)]
async fn retain_closes_idle_connections_now_and_checked_out_ones_on_return() {
    let (builder, backend) = fake(3, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let held_id = held.info().id;
    let info = held.info();
    assert_eq!(info.uses, 1);
    assert_eq!(info.last_used, tokio::time::Instant::now());

    // Keep only connection 1 (and whatever is opened from now on).
    let before = tokio::time::Instant::now();
    let closed = pool.retain(move |i| i.id == 1 || i.created > before);
    let expected_now = if held_id == 1 { 2 } else { 1 };
    assert_eq!(closed, expected_now, "the idle ones other than 1");
    settle().await;
    assert_accounted(&pool, &backend, 0);
    // The held one is asked when it comes back.
    let closed_before = backend.closed();
    drop(held);
    settle().await;
    let closed_on_return = backend.closed() - closed_before;
    assert_eq!(closed_on_return, u64::from(held_id != 1));
    // Only connection 1 and new ones are left; the floor is back.
    tokio::time::sleep(ms(100)).await;
    let s = pool.status();
    assert_eq!(s.size, 3, "{s:?}");
    assert_eq!(backend.closed(), 2);
    assert_accounted(&pool, &backend, 0);
    // New connections are not asked by the old predicate.
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(pool.get().await.unwrap());
    }
    drop(ids);
    settle().await;
    assert_eq!(backend.closed(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_retain_predicate_closes_the_connection_it_was_asked_about() {
    let (builder, backend) = fake(2, 2);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let closed = pool.retain(|i| {
        if i.id == 1 {
            panic!("predicate bug")
        } else {
            true
        }
    });
    assert_eq!(closed, 1);
    settle().await;
    assert_accounted(&pool, &backend, 0);
    assert_eq!(pool.status().size, 2, "replaced");
}

#[tokio::test(start_paused = true)]
async fn close_and_wait_timeout_reports_what_is_still_open() {
    let (builder, backend) = fake(2, 2);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let s = pool
        .close_and_wait_timeout(secs(2))
        .await
        .expect_err("one connection is still checked out");
    assert_eq!((s.size, s.in_use), (1, 1), "{s:?}");
    drop(held);
    pool.close_and_wait_timeout(secs(2)).await.unwrap();
    assert_eq!(backend.live(), 0);
}

#[test]
fn max_uses_of_zero_is_refused_by_name() {
    let config = {
        let mut c = Config::default();
        c.max_uses = Some(0);
        c
    };
    let err = config.validate().unwrap_err();
    assert!(err.to_string().contains("max_uses"), "{err}");
}
