//! Health checks on checkout and `has_broken` on return.
mod common;

use common::*;
use pool_core::CheckPolicy;
use pool_testkit::Step;

#[tokio::test(start_paused = true)]
async fn a_failed_check_discards_that_connection_and_the_caller_gets_a_healthy_one() {
    let (builder, backend) = fake(2, 4);
    let pool = builder.check(CheckPolicy::Always).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.script_check([Step::Transient]);
    let conn = pool
        .get()
        .await
        .expect("the caller never sees the failed check");
    assert_eq!(backend.checks(), 2, "the failed one, then the healthy one");
    let stats = pool.stats();
    assert_eq!(stats.connections_lost, 1);
    assert_eq!(stats.requests_errors, 0);
    drop(conn);
    settle().await;
    // The floor is refilled.
    assert_eq!(pool.status().size, 2);
    assert_eq!(backend.connects(), 3);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn when_every_idle_connection_is_dead_the_caller_gets_a_fresh_one() {
    let (builder, backend) = fake(3, 4);
    let pool = builder.check(CheckPolicy::Always).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    assert_eq!(backend.break_all(), 3);
    let conn = pool.get().await.unwrap();
    assert!(conn.id() > 3, "a fresh connection, not one of the dead");
    assert_eq!(pool.stats().connections_lost, 3);
    drop(conn);
    settle().await;
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_check_that_hangs_times_out_and_the_connection_is_discarded() {
    let (builder, backend) = fake(1, 2);
    let pool = builder
        .check(CheckPolicy::Always)
        .check_timeout(ms(200))
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.script_check([Step::Never]);
    let t0 = tokio::time::Instant::now();
    let conn = pool.get().await.unwrap();
    assert_eq!(
        t0.elapsed(),
        ms(200),
        "one check timeout, then a fresh connect (instant)"
    );
    assert_eq!(conn.id(), 2);
    assert_eq!(pool.stats().connections_lost, 1);
}

#[tokio::test(start_paused = true)]
async fn idle_longer_than_checks_only_connections_idle_past_the_threshold() {
    let (builder, backend) = fake(1, 2);
    let pool = builder
        .check(CheckPolicy::IdleLongerThan(secs(1)))
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(
        backend.checks(),
        0,
        "fresh and just-returned connections are not checked"
    );
    tokio::time::sleep(secs(2)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(backend.checks(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_broken_connection_is_closed_on_return_and_replaced_to_the_floor() {
    let (builder, backend) = fake(1, 2);
    let pool = builder.build().unwrap();
    let conn = pool.get().await.unwrap();
    conn.break_it();
    drop(conn);
    assert_eq!(pool.stats().returns_bad, 1);
    assert_eq!(backend.closed(), 1, "closed synchronously on return");
    settle().await;
    assert_eq!(pool.status().size, 1, "the floor is refilled");
    assert_eq!(backend.connects(), 2);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn discard_and_take_leave_the_pool_and_let_it_replace_them() {
    let (builder, backend) = fake(1, 2);
    let pool = builder.build().unwrap();
    let conn = pool.get().await.unwrap();
    pool_core::Object::discard(conn);
    assert_eq!(backend.live(), 0);
    settle().await;
    assert_eq!(pool.status().size, 1);
    let conn = pool.get().await.unwrap();
    let raw = pool_core::Object::take(conn);
    settle().await;
    assert_eq!(
        pool.status().size,
        1,
        "replaced; the detached one is no longer counted"
    );
    assert_accounted(&pool, &backend, 1);
    drop(raw);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_broken_while_idle_is_discarded_at_checkout_without_a_check() {
    let (builder, backend) = fake(2, 2);
    let pool = builder.check(CheckPolicy::Never).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    assert_eq!(backend.break_all(), 2);
    let conn = pool.get().await.unwrap();
    assert!(conn.id() > 2, "neither dead idle connection was handed out");
    assert_eq!(backend.checks(), 0);
    assert_eq!(pool.stats().connections_lost, 2);
    assert_eq!(pool.stats().requests_num, 1);
    drop(conn);
    settle().await;
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_manager_doubts_is_checked_once_whatever_the_policy() {
    let (builder, backend) = fake(2, 2);
    let pool = builder.check(CheckPolicy::Never).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!(backend.checks(), 0, "the policy asks for none");
    assert_eq!(backend.doubt_all(), 2);
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    assert_eq!(
        backend.checks(),
        2,
        "each doubted connection checked before its use"
    );
    drop((a, b));
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(backend.checks(), 2, "once passed, no more checks");

    // A doubted connection that fails its check is replaced; the caller never sees it.
    backend.doubt_all();
    backend.script_check([Step::Transient]);
    let conn = pool.get().await.expect("served by the other one");
    assert_eq!(pool.stats().connections_lost, 1);
    drop(conn);
    settle().await;
    assert_accounted(&pool, &backend, 0);
}
