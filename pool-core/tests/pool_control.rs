//! Load shedding, close, drain, resize, status and stats.
mod common;

use common::*;
use std::sync::Arc;

use pool_core::{Pool, PoolError};
use pool_testkit::Step;
use tokio_test::task;
use tokio_test::{assert_pending, assert_ready, assert_ready_err};

#[tokio::test(start_paused = true)]
async fn max_waiting_sheds_load_with_too_many_waiters() {
    let (builder, _backend) = fake(1, 1);
    let pool = builder.max_waiting(Some(2)).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let _held = pool.get().await.unwrap();
    let mut a = task::spawn(pool.get());
    let mut b = task::spawn(pool.get());
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    let err = pool.get().await.unwrap_err();
    assert!(
        matches!(err, PoolError::TooManyWaiters { max_waiting: 2 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_waiting = 2"));
    assert_eq!(pool.status().waiting, 2, "the shed request did not queue");
    assert_eq!(pool.stats().requests_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn close_answers_waiters_closes_idle_now_and_in_use_on_return() {
    let (builder, backend) = fake(2, 2);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    drop(b);
    let mut waiter = task::spawn(pool.get());
    // `b` went idle... then the waiter takes it; hold it too.
    let w = assert_ready!(waiter.poll()).unwrap();
    let mut waiter2 = task::spawn(pool.get());
    assert_pending!(waiter2.poll());

    pool.close();
    assert!(pool.is_closed());
    assert!(waiter2.is_woken());
    assert!(matches!(
        assert_ready_err!(waiter2.poll()),
        PoolError::Closed
    ));
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    assert_eq!(
        backend.live(),
        2,
        "in-use connections stay open until returned"
    );

    let mut drain = task::spawn(pool.close_and_wait());
    assert_pending!(drain.poll());
    drop(a);
    assert_eq!(backend.live(), 1, "closed on return");
    assert_pending!(drain.poll());
    drop(w);
    assert!(drain.is_woken());
    assert_ready!(drain.poll());
    assert_eq!(backend.live(), 0);
    assert_eq!(pool.status().size, 0);
}

#[tokio::test(start_paused = true)]
async fn close_closes_idle_connections_at_once_and_stops_connecting() {
    let (builder, backend) = fake(3, 5);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    pool.close();
    assert_eq!(backend.live(), 0);
    pass(secs(5)).await;
    assert_eq!(backend.connect_attempts(), 3, "no refill after close");
}

#[tokio::test(start_paused = true)]
async fn a_connect_finishing_after_close_is_closed() {
    let (builder, backend) = fake(1, 2);
    backend.set_connect_default(Step::Slow(ms(100)));
    let pool = builder.build().unwrap();
    settle().await;
    assert_eq!(pool.status().connecting, 1);
    let mut drain = task::spawn(pool.close_and_wait());
    assert_pending!(drain.poll());
    tokio::time::sleep(ms(100)).await;
    settle().await;
    assert_ready!(drain.poll());
    assert_eq!(backend.connects(), 1);
    assert_eq!(backend.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_closes_idle_connections() {
    let (builder, backend) = fake(3, 5);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let other = pool.clone();
    drop(pool);
    assert_eq!(backend.live(), 3);
    let held = other.get().await.unwrap();
    drop(other);
    assert_eq!(
        backend.live(),
        1,
        "idle ones closed with the last pool handle"
    );
    drop(held);
    assert_eq!(
        backend.live(),
        0,
        "the checked-out one closes when it comes back"
    );
    pass(secs(2)).await;
    assert_eq!(backend.connect_attempts(), 3, "background tasks stopped");
}

#[tokio::test(start_paused = true)]
async fn resize_up_grows_the_floor_and_down_closes_the_excess() {
    let (builder, backend) = fake(1, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    pool.resize(6, 8).unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    assert_eq!(pool.status().size, 6);
    let s = pool.status();
    assert_eq!((s.min_size, s.max_size), (6, 8));

    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(pool.get().await.unwrap());
        }
        v
    };
    pool.resize(1, 2).unwrap();
    settle().await;
    // One idle connection above the new ceiling closed at once; the five in use stay open...
    assert_eq!(pool.status().size, 5);
    drop(held);
    // ...and close on return down to the ceiling.
    assert_eq!(pool.status().size, 2);
    assert_eq!(backend.live(), 2);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn resize_up_serves_queued_waiters() {
    let (builder, _backend) = fake(0, 1);
    let pool = builder.build().unwrap();
    let _held = pool.get().await.unwrap();
    let mut w = task::spawn(pool.get());
    assert_pending!(w.poll());
    pool.resize(0, 2).unwrap();
    settle().await;
    assert!(w.is_woken());
    assert!(assert_ready!(w.poll()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_invalid_resize_names_the_field_and_changes_nothing() {
    let (builder, _backend) = fake(1, 4);
    let pool = builder.build().unwrap();
    let err = pool.resize(5, 4).unwrap_err();
    assert!(err.to_string().contains("min_size = 5"), "{err}");
    let err = pool.resize(0, 0).unwrap_err();
    assert!(err.to_string().contains("max_size = 0"), "{err}");
    let s = pool.status();
    assert_eq!((s.min_size, s.max_size), (1, 4));
}

#[tokio::test(start_paused = true)]
async fn stats_count_requests_waits_usage_and_connections() {
    let (builder, backend) = fake(0, 1);
    backend.set_connect_default(Step::Slow(ms(40)));
    let pool = builder.build().unwrap();
    let c = pool.get().await.unwrap();
    tokio::time::sleep(ms(100)).await;
    let mut w = task::spawn(pool.get());
    assert_pending!(w.poll());
    tokio::time::sleep(ms(10)).await;
    drop(c);
    let c = assert_ready!(w.poll()).unwrap();
    drop(c);
    let s = pool.stats();
    assert_eq!(s.requests_num, 2);
    assert_eq!(s.requests_queued, 2);
    assert_eq!(s.requests_wait_ms, 50);
    assert_eq!(s.usage_ms, 110);
    assert_eq!(s.connections_num, 1);
    assert_eq!(s.connections_ms, 40);
    assert_eq!(s.connections_errors, 0);
}

/// A manager whose drop is seen through a `Weak` to its token.
struct Tracked {
    _token: Arc<()>,
}

impl pool_core::Manager for Tracked {
    type Connection = u8;
    type Error = std::io::Error;
    async fn connect(&self) -> Result<u8, std::io::Error> {
        Ok(0)
    }
    async fn check(&self, _conn: &mut u8) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_pool_is_freed_once_its_last_handle_and_connection_are_gone() {
    let token = Arc::new(());
    let alive = Arc::downgrade(&token);
    let pool = Pool::builder(Tracked { _token: token })
        .min_size(2)
        .max_size(2)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let other = pool.clone();
    // Checked out on this thread and on another, so the handles of more than one thread
    // shard are held.
    let here = pool.get().await.unwrap();
    let there = {
        let p = other.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(async move { p.get_timeout(None).await.map_err(|e| e.to_string()) })
        })
        .join()
        .unwrap()
        .unwrap()
    };
    drop(pool);
    drop(other);
    settle().await;
    assert!(
        alive.upgrade().is_some(),
        "checked-out connections keep the pool (and its manager) alive"
    );
    drop(here);
    assert!(alive.upgrade().is_some(), "one connection is still out");
    drop(there);
    settle().await;
    assert!(
        alive.upgrade().is_none(),
        "with no handle and no connection out, the manager is dropped"
    );
}
