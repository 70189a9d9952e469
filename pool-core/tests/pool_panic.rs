//! A pool survives the code it calls: panics in `connect`, `check`, `has_broken` and in a
//! connection's `Drop` leave its accounting right, and it goes on serving.
mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};

use common::*;
use pool_core::{CheckPolicy, ConnectError, Object, Pool, PoolError};
use pool_testkit::{FakeHandle, FakeManager, Step};
use tokio::task::JoinSet;

/// Nothing is counted as in use, waiting or connecting, every open connection is one the pool
/// counts, and a `get()` is served.
async fn assert_recovered(pool: &Pool<FakeManager>, backend: &FakeHandle) {
    settle().await;
    let s = pool.status();
    assert_eq!(
        (s.in_use, s.waiting, s.connecting),
        (0, 0, 0),
        "nothing left in use, waiting or connecting: {s:?}"
    );
    assert_accounted(pool, backend, 0);
    let conn = pool
        .get_timeout(Some(secs(5)))
        .await
        .expect("a get() is served after the panic");
    assert_eq!(pool.status().in_use, 1);
    drop(conn);
    settle().await;
    assert_accounted(pool, backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_panics_counts_as_a_failed_connect_and_the_pool_grows_again() {
    let (builder, backend) = fake(2, 6);
    backend.script_connect([Step::Panic]);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(5))
        .await
        .expect("the floor is opened despite the panic");
    let s = pool.status();
    assert_eq!((s.size, s.connecting), (2, 0), "{s:?}");
    assert_eq!(backend.connect_attempts(), 3, "the panicked one, then two");
    assert_eq!(pool.stats().connections_errors, 1);

    // The pool still grows to its ceiling under demand.
    let held = get_many(&pool, 6).await;
    assert_eq!(pool.status().size, 6);
    drop(held);
    assert_recovered(&pool, &backend).await;
}

/// `n` connections, each got by a task of its own.
async fn get_many(pool: &Pool<FakeManager>, n: usize) -> Vec<Object<FakeManager>> {
    let mut set = JoinSet::new();
    for _ in 0..n {
        let p = pool.clone();
        set.spawn(async move { p.get_timeout(Some(secs(5))).await });
    }
    let mut held = Vec::new();
    while let Some(joined) = set.join_next().await {
        held.push(joined.unwrap().expect("every caller served"));
    }
    held
}

#[tokio::test(start_paused = true)]
async fn a_timeout_after_panicking_connects_says_the_connect_panicked_and_backoff_applies() {
    let (builder, backend) = fake(0, 2);
    backend.set_connect_default(Step::Panic);
    let pool = builder.build().unwrap();
    let err = pool
        .get_timeout(Some(secs(1)))
        .await
        .expect_err("no connect can succeed");
    let PoolError::Timeout(t) = &err else {
        panic!("expected a timeout, got {err:?}")
    };
    let Some(ConnectError::Panicked(msg)) = &t.last_connect_error else {
        panic!(
            "expected the last connect error to be the panic, got {:?}",
            t.last_connect_error
        )
    };
    assert!(msg.contains("connect panicked (scripted)"), "{msg}");
    let text = err.to_string();
    assert!(text.contains("panicked"), "the error says so: {text}");
    // Retried with backoff (10 ms base, doubling, full jitter), not in a tight loop.
    let attempts = backend.connect_attempts();
    assert!((2..25).contains(&attempts), "{attempts} attempts in 1 s");
    assert_eq!(pool.stats().connections_errors, attempts);

    backend.set_connect_default(Step::Ok);
    assert_recovered(&pool, &backend).await;
}

#[tokio::test(start_paused = true)]
async fn has_broken_panicking_at_checkout_unwinds_through_the_caller_and_releases_the_slot() {
    let (builder, backend) = fake(2, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.panic_in_has_broken(1);
    let p = pool.clone();
    let joined = tokio::spawn(async move { p.get().await.map(drop) }).await;
    assert!(joined.expect_err("the caller panicked").is_panic());
    assert_eq!(
        pool.stats().connections_lost,
        1,
        "the connection involved is closed"
    );
    assert_recovered(&pool, &backend).await;
}

#[tokio::test(start_paused = true)]
async fn has_broken_panicking_on_return_unwinds_from_the_drop_and_releases_the_slot() {
    let (builder, backend) = fake(1, 4);
    let pool = builder.build().unwrap();
    let conn = pool.get().await.unwrap();
    backend.panic_in_has_broken(1);
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(conn)));
    assert!(dropped.is_err(), "the panic reaches the caller");
    assert_eq!(pool.status().in_use, 0);
    assert_recovered(&pool, &backend).await;
}

#[tokio::test(start_paused = true)]
async fn has_broken_panicking_while_the_borrower_unwinds_does_not_abort() {
    let (builder, backend) = fake(1, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let (p, b) = (pool.clone(), backend.clone());
    let joined = tokio::spawn(async move {
        let _conn = p.get().await.unwrap();
        b.panic_in_has_broken(1);
        panic!("the borrower's own bug");
    })
    .await;
    assert!(joined.expect_err("the borrower panicked").is_panic());
    assert_recovered(&pool, &backend).await;
}

#[tokio::test(start_paused = true)]
async fn a_check_that_panics_unwinds_through_the_caller_and_the_connection_is_discarded() {
    let (builder, backend) = fake(2, 4);
    let pool = builder.check(CheckPolicy::Always).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.script_check([Step::Panic]);
    let p = pool.clone();
    let joined = tokio::spawn(async move { p.get().await.map(drop) }).await;
    assert!(joined.expect_err("the caller panicked").is_panic());
    settle().await;
    assert_eq!(
        backend.closed(),
        1,
        "the connection being checked is closed"
    );
    assert_recovered(&pool, &backend).await;
    assert_eq!(pool.status().size, 2, "the floor is refilled");
}

#[tokio::test(start_paused = true)]
async fn a_connection_whose_drop_panics_is_closed_quietly_on_discard() {
    let (builder, backend) = fake(1, 4);
    let pool = builder.build().unwrap();
    let conn = pool.get().await.unwrap();
    conn.panic_on_close();
    Object::discard(conn);
    assert_eq!(backend.closed(), 1);
    assert_recovered(&pool, &backend).await;
}

#[tokio::test(start_paused = true)]
async fn drops_that_panic_in_the_idle_shrink_leave_the_housekeeper_running() {
    let (builder, backend) = fake(1, 4);
    let pool = builder.max_idle(Some(secs(10))).build().unwrap();
    for round in 0..2 {
        let held = get_many(&pool, 4).await;
        drop(held);
        settle().await;
        assert_eq!(backend.panic_on_close_all(), 4);
        tokio::time::sleep(secs(12)).await;
        settle().await;
        let s = pool.status();
        assert_eq!(s.size, 1, "round {round}: shrunk back to the floor: {s:?}");
        assert_accounted(&pool, &backend, 0);
    }
    // The housekeeper's timer still expires waiters.
    let _held = pool.get().await.unwrap();
    let p = pool.clone();
    let err = tokio::spawn(async move {
        p.resize(1, 1).unwrap();
        p.get().await.map(drop)
    });
    tokio::time::sleep(secs(31)).await;
    let err = err.await.unwrap().expect_err("the pool is full");
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn drops_that_panic_while_the_pool_closes_do_not_stop_the_close() {
    let (builder, backend) = fake(3, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    assert_eq!(backend.panic_on_close_all(), 3);
    pool.close();
    assert_eq!(backend.live(), 1, "the idle ones closed");
    drop(held);
    pool.close_and_wait().await;
    assert_eq!(backend.live(), 0);
    assert_eq!(pool.status().size, 0);
}
