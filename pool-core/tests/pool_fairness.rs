//! FIFO hand-off: waiters are served in arrival order and a fresh `get()` never barges.
mod common;

use common::*;
use pool_testkit::Step;
use tokio_test::task;
use tokio_test::{assert_pending, assert_ready_ok};

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let (builder, _backend) = fake(1, 1);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();

    let mut waiters: Vec<_> = (0..5).map(|_| task::spawn(pool.get())).collect();
    for w in &mut waiters {
        assert_pending!(w.poll());
    }
    assert_eq!(pool.status().waiting, 5);

    let mut conn = held;
    for i in 0..5 {
        drop(conn);
        // Only the oldest waiter is woken, and it has the connection.
        for (j, w) in waiters.iter().enumerate().skip(i) {
            assert_eq!(w.is_woken(), j == i, "after return {i}, waiter {j} woken?");
        }
        conn = assert_ready_ok!(waiters[i].poll());
        for w in waiters.iter_mut().skip(i + 1) {
            assert_pending!(w.poll());
        }
    }
    drop(conn);
    assert_eq!(pool.status().idle, 1);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_get_never_overtakes_a_queued_waiter() {
    let (builder, _backend) = fake(1, 1);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let mut first = task::spawn(pool.get());
    assert_pending!(first.poll());

    // The connection comes back while `first` has not run yet: it is handed to `first`, so a
    // newcomer polled in between finds nothing idle and queues behind it.
    drop(held);
    let mut newcomer = task::spawn(pool.get());
    assert_pending!(newcomer.poll());
    let s = pool.status();
    assert_eq!((s.idle, s.in_use, s.waiting), (0, 1, 1));

    let conn = assert_ready_ok!(first.poll());
    assert_pending!(newcomer.poll());
    drop(conn);
    assert!(newcomer.is_woken());
    let _conn = assert_ready_ok!(newcomer.poll());
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_goes_to_the_oldest_waiter() {
    let (builder, backend) = fake(0, 2);
    backend.set_connect_default(pool_testkit::Step::Slow(ms(100)));
    let pool = builder.build().unwrap();
    let mut a = task::spawn(pool.get());
    let mut b = task::spawn(pool.get());
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    tokio::time::sleep(ms(100)).await;
    settle().await;
    assert!(a.is_woken());
    let _ca = assert_ready_ok!(a.poll());
    assert_pending!(b.poll());
    tokio::time::sleep(ms(100)).await;
    settle().await;
    let _cb = assert_ready_ok!(b.poll());
}

#[tokio::test(start_paused = true)]
async fn a_caller_whose_connection_fails_its_check_keeps_its_place() {
    let (builder, backend) = fake(1, 1);
    let pool = builder
        .check(pool_core::CheckPolicy::Always)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let mut a = task::spawn(pool.get());
    let mut b = task::spawn(pool.get());
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    backend.script_check([Step::Transient]);
    drop(held);
    // `a` receives it, the check fails, and `a` waits again: still ahead of `b`.
    assert_pending!(a.poll());
    assert_eq!(pool.stats().connections_lost, 1);
    settle().await; // the replacement connect
    let _conn = assert_ready_ok!(a.poll());
    assert_pending!(b.poll());
}

#[tokio::test(start_paused = true)]
async fn callers_whose_checks_fail_together_keep_their_order() {
    let (builder, backend) = fake(2, 2);
    let pool = builder
        .check(pool_core::CheckPolicy::Always)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let (h1, h2) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let mut a = task::spawn(pool.get());
    let mut b = task::spawn(pool.get());
    let mut c = task::spawn(pool.get());
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    assert_pending!(c.poll());
    backend.script_check([Step::Transient, Step::Transient]);
    drop((h1, h2)); // handed to `a` and `b`; both checks fail
    assert_pending!(a.poll());
    assert_pending!(b.poll());
    assert_eq!(pool.stats().connections_lost, 2);
    settle().await; // one replacement at a time: the first goes to `a`
    let _ca = assert_ready_ok!(a.poll());
    assert_pending!(c.poll());
    let _cb = assert_ready_ok!(b.poll());
    assert_pending!(c.poll());
}
