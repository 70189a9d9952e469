//! Lifecycle hooks: `after_connect` before a new connection is first offered,
//! `before_checkout` before every hand-out; a failing, slow or panicking hook costs the
//! connection, never the caller.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use pool_core::{ConnectError, HookError, PoolError};
use tokio_test::task;

#[tokio::test(start_paused = true)]
async fn after_connect_runs_on_every_new_connection_before_it_is_offered() {
    let (builder, backend) = fake(2, 4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let pool = builder
        .after_connect(move |conn| {
            let s = Arc::clone(&s);
            Box::pin(async move {
                tokio::time::sleep(ms(10)).await;
                s.lock().unwrap().push(conn.id());
                Ok(())
            })
        })
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 2]);
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(pool.get().await.unwrap());
        }
        v
    };
    for c in &held {
        assert!(
            seen.lock().unwrap().contains(&c.id()),
            "hook ran before hand-out"
        );
    }
    assert_eq!(backend.connects(), 3);
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "once per connection, not per checkout"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_slow_or_panicking_after_connect_costs_the_connection_not_the_caller() {
    let (builder, backend) = fake(0, 2);
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let pool = builder
        .hook_timeout(ms(500))
        .after_connect(move |_conn| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match n {
                    0 => Err(HookError::from("SET search_path failed")),
                    1 => {
                        tokio::time::sleep(secs(10)).await;
                        Ok(())
                    }
                    2 => panic!("hook bug"),
                    _ => Ok(()),
                }
            })
        })
        .build()
        .unwrap();
    let conn = pool.get().await.expect("served by the fourth connection");
    assert_eq!(conn.id(), 4);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let stats = pool.stats();
    assert_eq!(stats.connections_errors, 3);
    assert_eq!(stats.requests_errors, 0);
    assert_eq!(backend.live(), 1, "the three others were closed");
    drop(conn);

    // The error says which hook and why.
    let (builder, _backend) = fake(0, 1);
    let pool = builder
        .wait_timeout(Some(secs(1)))
        .after_connect(|_conn| Box::pin(async { Err(HookError::from("no such schema")) }))
        .build()
        .unwrap();
    let err = pool
        .get()
        .await
        .expect_err("every connection fails its hook");
    let PoolError::Timeout(t) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(&t.last_connect_error, Some(ConnectError::Hook(m)) if m.contains("no such schema"))
    );
    assert!(
        err.to_string()
            .contains("after_connect hook: failed: no such schema"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn before_checkout_runs_on_every_checkout_and_a_failure_hands_out_another() {
    let (builder, backend) = fake(2, 2);
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = Arc::clone(&log);
    let pool = builder
        .before_checkout(move |conn, info| {
            let l = Arc::clone(&l);
            let (id, uses) = (conn.id(), info.uses);
            Box::pin(async move {
                l.lock().unwrap().push((id, uses));
                if id == 2 && uses == 2 {
                    return Err(HookError::from("reset failed"));
                }
                Ok(())
            })
        })
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    // LIFO: 2, 2 (fails on its second use: closed, the caller gets 1), then 1, ...
    let ids: Vec<u64> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let c = pool.get().await.unwrap();
            v.push(c.id());
        }
        v
    };
    assert_eq!(ids, [2, 1, 1]);
    assert_eq!(*log.lock().unwrap(), [(2, 1), (2, 2), (1, 1), (1, 2)]);
    assert_eq!(pool.stats().requests_errors, 0);
    settle().await;
    assert_eq!(backend.closed(), 1);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_cancelled_during_before_checkout_leaves_the_connection_closed() {
    let (builder, backend) = fake(1, 1);
    let pool = builder
        .before_checkout(|_conn, _info| {
            Box::pin(async {
                tokio::time::sleep(secs(1)).await;
                Ok(())
            })
        })
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let mut get = task::spawn(pool.get());
    assert!(get.poll().is_pending(), "inside the hook");
    drop(get);
    settle().await;
    assert_eq!(backend.closed(), 1, "not returned half-prepared");
    assert_accounted(&pool, &backend, 0);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id(), 2);
}

#[tokio::test(start_paused = true)]
async fn after_return_runs_in_the_background_and_holds_the_connection_until_done() {
    let (builder, backend) = fake(1, 2);
    let resets = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&resets);
    let pool = builder
        .after_return(move |conn, info| {
            let r = Arc::clone(&r);
            let fail = conn.id() == 1 && info.uses == 2;
            Box::pin(async move {
                tokio::time::sleep(ms(100)).await;
                r.fetch_add(1, Ordering::SeqCst);
                if fail {
                    return Err(HookError::from("ROLLBACK failed"));
                }
                Ok(())
            })
        })
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id(), 1);
    drop(conn);
    // The drop returned at once; the hook runs in the background meanwhile.
    assert_eq!(resets.load(Ordering::SeqCst), 0);
    settle().await;
    let s = pool.status();
    assert_eq!(
        (s.idle, s.in_use),
        (0, 1),
        "neither idle nor handed out: {s:?}"
    );
    // A caller now is served by another connection, not by the one being reset.
    let other = pool.get().await.unwrap();
    assert_eq!(other.id(), 2);
    tokio::time::sleep(ms(150)).await;
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    assert_eq!(pool.status().idle, 1, "back once the hook finished");
    drop(other);
    // Connection 2 is still being reset: the next caller gets 1, whose second return fails
    // its hook and closes it.
    let one = pool.get().await.unwrap();
    assert_eq!(one.id(), 1);
    drop(one);
    tokio::time::sleep(ms(300)).await;
    assert_eq!(backend.closed(), 1, "the failed reset closed it");
    assert_accounted(&pool, &backend, 0);
}

#[test]
fn after_return_outside_a_runtime_closes_the_connection() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (pool, backend, conn) = rt.block_on(async {
        let (builder, backend) = fake(1, 1);
        let pool = builder
            .after_return(|_conn, _info| Box::pin(async { Ok(()) }))
            .build()
            .unwrap();
        let conn = pool.get().await.unwrap();
        (pool, backend, conn)
    });
    // Dropped on a thread with no runtime: the hook cannot run, so the connection is not
    // returned unreset.
    std::thread::spawn(move || drop(conn)).join().unwrap();
    assert_eq!(backend.closed(), 1);
    assert_eq!(pool.status().in_use, 0);
    drop(rt);
}

/// Regression: a `before_checkout` hook that panics used to unwind through the caller's
/// `get()`. Like the other two stages, it costs the connection: closed, and the caller is
/// served by another.
#[tokio::test(start_paused = true)]
async fn a_panicking_before_checkout_costs_the_connection_not_the_caller() {
    let (builder, backend) = fake(2, 2);
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let pool = builder
        .before_checkout(move |_conn, _info| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            // The first call panics while building its future, the second inside it.
            if n == 0 {
                panic!("hook bug before the future");
            }
            Box::pin(async move {
                if n == 1 {
                    panic!("hook bug inside the future");
                }
                Ok(())
            })
        })
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let conn = pool.get().await.expect("the caller is served, not unwound");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(conn.id(), 3, "both panicking hooks cost their connections");
    assert_eq!(backend.closed(), 2);
    assert_eq!(pool.stats().requests_errors, 0);
    drop(conn);
    settle().await;
    assert_accounted(&pool, &backend, 0);
}

/// Several hooks per stage run in the order added; the first failure stops the stage.
#[tokio::test(start_paused = true)]
async fn several_hooks_per_stage_run_in_the_order_added() {
    let (builder, _backend) = fake(0, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let (a, b, c, d) = (
        Arc::clone(&order),
        Arc::clone(&order),
        Arc::clone(&order),
        Arc::clone(&order),
    );
    let pool = builder
        .after_connect(move |_| {
            a.lock().unwrap().push("connect 1");
            Box::pin(async { Ok(()) })
        })
        .after_connect(move |_| {
            b.lock().unwrap().push("connect 2");
            Box::pin(async { Ok(()) })
        })
        .after_return(move |_, _| {
            c.lock().unwrap().push("return 1 (reset)");
            Box::pin(async { Ok(()) })
        })
        .after_return(move |_, _| {
            d.lock().unwrap().push("return 2 (user)");
            Box::pin(async { Ok(()) })
        })
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    settle().await;
    assert_eq!(
        *order.lock().unwrap(),
        [
            "connect 1",
            "connect 2",
            "return 1 (reset)",
            "return 2 (user)"
        ]
    );
    assert_eq!(pool.status().idle, 1, "back once both hooks passed");
}
