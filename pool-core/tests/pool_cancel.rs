//! Cancellation at every await point, across connect and check outcomes: nothing is lost and
//! every remaining waiter is served.
mod common;

use std::task::Poll;

use common::*;
use pool_core::{CheckPolicy, Pool, PoolError};
use pool_testkit::{FakeHandle, FakeManager, Step};
use tokio_test::task;

const OUTCOMES: [Step; 4] = [
    Step::Ok,
    Step::Transient,
    Step::Slow(std::time::Duration::from_millis(50)),
    Step::Never,
];

fn assert_quiet(pool: &Pool<FakeManager>, backend: &FakeHandle, what: &str) {
    let s = pool.status();
    assert_eq!(s.size, s.idle + s.in_use, "{what}: {s:?}");
    assert_eq!(s.waiting, 0, "{what}: a waiter entry leaked: {s:?}");
    assert_eq!(
        s.in_use, 0,
        "{what}: a connection is still counted in use: {s:?}"
    );
    assert_eq!(
        backend.live(),
        s.size,
        "{what}: backend live vs size: {s:?}"
    );
    assert!(s.size <= s.max_size, "{what}: {s:?}");
}

/// Three callers; caller 0 is dropped after `cancel_at` steps of 10 ms, caller 1 has a wait
/// timeout of the same length, caller 2 waits on. Afterwards the backend recovers.
async fn scenario(min: usize, connect: Step, check: Step, cancel_at: u32) {
    let what =
        format!("min {min}, connect {connect:?}, check {check:?}, cancel at step {cancel_at}");
    let (manager, backend) = FakeManager::new();
    let pool = Pool::builder(manager)
        .min_size(min)
        .max_size(2)
        .check(CheckPolicy::Always)
        .check_timeout(ms(100))
        .connect_timeout(ms(300))
        .wait_timeout(None)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.script_connect([connect]);
    backend.script_check([check]);

    let mut c0 = Some(task::spawn(pool.get()));
    let mut c1 = Some(task::spawn(
        pool.get_timeout(Some(ms(u64::from(cancel_at) * 10 + 5))),
    ));
    let mut c2 = task::spawn(pool.get());
    let mut c2_conn = None;
    let mut c0_served = None;
    let mut c1_served = None;

    for step in 0..=60u32 {
        if step == cancel_at {
            // Cancel caller 0 wherever it is (it may even hold a connection by now).
            c0 = None;
        }
        if let Some(t) = c0.as_mut() {
            if let Poll::Ready(r) = t.poll() {
                // Served before the cancellation point: it uses the connection and returns it.
                c0_served = Some(r.map(drop));
                c0 = None;
            }
        }
        if let Some(t) = c1.as_mut() {
            if let Poll::Ready(r) = t.poll() {
                match &r {
                    Ok(_) | Err(PoolError::Timeout(_)) => {}
                    Err(e) => panic!("{what}: caller 1 got {e:?}"),
                }
                c1_served = Some(r.map(drop));
                c1 = None;
            }
        }
        if c2_conn.is_none() {
            if let Poll::Ready(r) = c2.poll() {
                c2_conn = Some(r.unwrap_or_else(|e| panic!("{what}: caller 2 got {e:?}")));
            }
        }
        if step == 20 {
            // The backend recovers: later connects and checks succeed.
            backend.set_connect_default(Step::Ok);
            backend.set_check_default(Step::Ok);
        }
        tokio::time::advance(ms(10)).await;
        settle().await;
    }
    drop(c0);
    drop(c1);
    assert!(
        c2_conn.is_some(),
        "{what}: caller 2 was never served; status {:?}",
        pool.status()
    );
    drop(c2_conn);
    if let Some(r) = c0_served {
        r.unwrap_or_else(|e| panic!("{what}: caller 0 got {e:?}"));
    }
    let _ = c1_served;
    // Let connects in flight finish (connect timeout 300 ms).
    for _ in 0..40 {
        tokio::time::advance(ms(10)).await;
        settle().await;
    }
    assert_eq!(pool.status().connecting, 0, "{what}");
    assert_quiet(&pool, &backend, &what);
    // And the pool still serves.
    let conn = pool
        .get_timeout(Some(secs(1)))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    drop(conn);
    assert_quiet(&pool, &backend, &what);
    pool.close_and_wait().await;
    assert_eq!(
        backend.live(),
        0,
        "{what}: every connection closed after close"
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_at_every_step_across_outcomes_loses_nothing() {
    let mut runs = 0;
    for min in [0, 1] {
        for connect in OUTCOMES {
            for check in OUTCOMES {
                for cancel_at in [0, 1, 2, 3, 5, 8, 11, 16, 31, 45] {
                    scenario(min, connect, check, cancel_at).await;
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 320);
}

#[tokio::test(start_paused = true)]
async fn a_connection_handed_to_a_waiter_that_leaves_goes_to_the_next() {
    let (builder, backend) = fake(1, 1);
    let pool = builder.build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let mut a = task::spawn(pool.get());
    let mut b = task::spawn(pool.get());
    assert!(a.poll().is_pending());
    assert!(b.poll().is_pending());
    drop(held); // handed to `a`
    drop(a); // `a` leaves before running: the connection moves on to `b`
    assert!(b.is_woken());
    let conn = match b.poll() {
        Poll::Ready(Ok(c)) => c,
        other => panic!("expected b to be served, got {other:?}"),
    };
    assert_eq!(pool.status().size, 1);
    drop(conn);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_cancelled_mid_check_discards_the_connection() {
    let (manager, backend) = FakeManager::new();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(1)
        .check(CheckPolicy::Always)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    backend.script_check([Step::Never]);
    let mut t = task::spawn(pool.get());
    assert!(t.poll().is_pending());
    assert_eq!(backend.checks(), 1);
    drop(t);
    assert_eq!(
        backend.closed(),
        1,
        "a connection in an unknown state is not reused"
    );
    settle().await;
    assert_eq!(pool.status().size, 1, "replaced");
    assert_accounted(&pool, &backend, 0);
}

/// A storm of cancellations in scattered order (every third caller, then the rest from the
/// newest), some with timeouts of their own: the survivors keep their order, each is served
/// once, and nothing is left queued.
#[tokio::test(start_paused = true)]
async fn a_cancellation_storm_in_any_order_keeps_the_survivors_in_order() {
    let (manager, backend) = FakeManager::new();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(1)
        .check(CheckPolicy::Never)
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let held = pool.get().await.unwrap();
    let n = 3000;
    let mut callers: Vec<_> = (0..n)
        .map(|i| {
            let t = if i % 5 == 0 { Some(secs(600)) } else { None };
            Some(task::spawn(pool.get_timeout(t)))
        })
        .collect();
    for c in callers.iter_mut() {
        assert!(c.as_mut().unwrap().poll().is_pending());
    }
    assert_eq!(pool.status().waiting, n);
    // Every third leaves, then every other of the rest from the newest: places emptied all
    // over the queue.
    for c in callers.iter_mut().step_by(3) {
        *c = None;
    }
    let rest: Vec<usize> = (0..n).filter(|i| i % 3 != 0).collect();
    let mut survivors = Vec::new();
    for (k, &i) in rest.iter().enumerate().rev() {
        if k % 2 == 1 {
            callers[i] = None;
        } else {
            survivors.push(i);
        }
    }
    survivors.reverse();
    assert_eq!(pool.status().waiting, survivors.len());
    // The connection goes round the survivors, oldest first.
    drop(held);
    for &i in &survivors {
        let c = callers[i].as_mut().unwrap();
        assert!(c.is_woken(), "caller {i} is next");
        let Poll::Ready(Ok(conn)) = c.poll() else {
            panic!("caller {i} is served")
        };
        callers[i] = None;
        drop(conn);
    }
    assert_quiet(&pool, &backend, "after the storm");
    assert_eq!(pool.status().idle, 1);
}
