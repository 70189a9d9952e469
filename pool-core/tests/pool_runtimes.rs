//! One pool, many runtimes: a pool built outside any runtime (a `static`), used from one
//! Tokio runtime after another, or from a second runtime while the first shuts down. The
//! background tasks die with the runtime that ran them; the next caller starts them again on
//! its own, and no queued `get()` waits past its deadline.
//!
//! These tests run on the real clock (each `#[tokio::test]` has a runtime of its own, and a
//! paused clock cannot span them); every wait is bounded by the pool's short wait timeout.
mod common;

use std::sync::LazyLock;
use std::time::Duration;

use common::*;
use pool_core::{CheckPolicy, Pool};
use pool_testkit::{FakeHandle, FakeManager, Step};

const WAIT: Duration = Duration::from_millis(150);

/// A `static` pool, built before any runtime exists.
static POOL: LazyLock<(Pool<FakeManager>, FakeHandle)> = LazyLock::new(|| {
    let (manager, backend) = FakeManager::new();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(3)
        .check(CheckPolicy::Never)
        .wait_timeout(Some(WAIT))
        .build()
        .expect("builds outside a runtime");
    (pool, backend)
});

/// The tests below take turns on the one pool: each one's counts are its own. (Tokio's
/// mutex is tied to no runtime.)
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Grows the shared pool past its idle connection to its ceiling, then a fourth caller
/// times out by the pool's deadline; everything goes back.
async fn grow_and_time_out() {
    // Built (once) on a thread with no runtime, as a `static` in `main` would be.
    std::thread::spawn(|| LazyLock::force(&POOL).0.status())
        .join()
        .unwrap();
    let (pool, _backend) = &*POOL;
    let started = tokio::time::Instant::now();
    let mut held = Vec::new();
    for i in 0..3 {
        let conn = tokio::time::timeout(Duration::from_secs(5), pool.get())
            .await
            .unwrap_or_else(|_| panic!("get #{i} hung: {:?}", pool.status()))
            .unwrap_or_else(|e| panic!("get #{i}: {e}"));
        held.push(conn);
    }
    assert_eq!(pool.status().size, 3, "grown to the ceiling");
    let err = tokio::time::timeout(Duration::from_secs(5), pool.get())
        .await
        .expect("a fourth get() ends by its deadline, not never")
        .expect_err("nothing is free");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(held);
    assert_eq!(pool.status().in_use, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn static_pool_first_current_thread_test() {
    let _t = TURN.lock().await;
    grow_and_time_out().await;
}

#[tokio::test(flavor = "current_thread")]
async fn static_pool_second_current_thread_test() {
    let _t = TURN.lock().await;
    grow_and_time_out().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pool_first_multi_thread_test() {
    let _t = TURN.lock().await;
    grow_and_time_out().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pool_second_multi_thread_test() {
    let _t = TURN.lock().await;
    grow_and_time_out().await;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The program: build in one runtime, drop it, use the pool from a new one.
#[test]
fn a_pool_outlives_the_runtime_it_was_built_in() {
    let first = runtime();
    let (pool, backend) = first.block_on(async {
        let (builder, backend) = fake(1, 3);
        let pool = builder.wait_timeout(Some(WAIT)).build().unwrap();
        pool.wait_ready(secs(5)).await.unwrap();
        (pool, backend)
    });
    drop(first);
    let second = runtime();
    second.block_on(async {
        let a = pool.get().await.expect("served by the idle connection");
        let b = tokio::time::timeout(secs(5), pool.get())
            .await
            .expect("a get() that needs the pool to grow does not hang")
            .expect("the connector started again on this runtime");
        let c = pool.get().await.unwrap();
        let err = tokio::time::timeout(secs(5), pool.get())
            .await
            .expect("ends by its deadline")
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        drop((a, b, c));
    });
    assert_eq!(backend.connects(), 3);
    assert_eq!(pool.status().size, 3);
}

/// A caller queued on a second runtime while the first, which runs the background tasks,
/// shuts down: it is woken, starts them on its own runtime, and is served or timed out.
#[test]
fn a_waiter_on_another_runtime_survives_the_first_runtimes_shutdown() {
    let first = runtime();
    let (pool, backend) = first.block_on(async {
        let (builder, backend) = fake(1, 2);
        let pool = builder.wait_timeout(Some(secs(2))).build().unwrap();
        pool.wait_ready(secs(5)).await.unwrap();
        // Connects take a while now: the grow below is in flight when the first runtime goes.
        backend.set_connect_default(Step::Slow(ms(300)));
        (pool, backend)
    });
    let held = first.block_on(pool.get()).unwrap();
    // The first runtime keeps a thread of its own going, then is shut down mid-connect.
    let second = std::thread::spawn({
        let pool = pool.clone();
        move || {
            runtime().block_on(async {
                tokio::time::timeout(secs(10), pool.get())
                    .await
                    .expect("never hangs")
                    .map(drop)
            })
        }
    });
    // Let the second runtime queue and the first runtime start the grow's connect.
    first.block_on(async {
        while pool.status().waiting == 0 || pool.status().connecting == 0 {
            tokio::time::sleep(ms(5)).await;
        }
    });
    drop(first);
    let served = second.join().unwrap();
    assert!(served.is_ok(), "served after the restart: {served:?}");
    assert_eq!(
        pool.status().connecting,
        0,
        "the abandoned connect was given back"
    );
    drop(held);
    assert!(backend.connect_attempts() >= 2);
}

/// A pool built outside a runtime and used from none: its `status()` and a return work
/// without a runtime, and the first runtime that asks starts its tasks.
#[test]
fn a_pool_used_without_a_runtime_spawns_nothing_and_returns_work() {
    let (builder, backend) = fake(0, 1);
    let pool = builder.wait_timeout(Some(WAIT)).build().unwrap();
    let conn = runtime().block_on(pool.get()).unwrap();
    // That runtime is gone; the connection comes back on a thread with none.
    drop(conn);
    assert_eq!(pool.status().idle, 1);
    let again = runtime().block_on(pool.get()).unwrap();
    drop(again);
    assert_eq!(
        backend.connects(),
        1,
        "the idle connection served the second runtime"
    );
}
