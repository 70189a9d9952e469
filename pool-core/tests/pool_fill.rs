//! Filling to `min_size` at build, and `wait_ready`.
mod common;

use common::*;
use pool_core::{ConnectError, PoolError};
use pool_testkit::Step;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn build_returns_at_once_and_fills_to_min_in_background() {
    let (builder, backend) = fake(3, 5);
    backend.set_connect_default(Step::Slow(ms(100)));
    let t0 = Instant::now();
    let pool = builder.build().unwrap();
    assert_eq!(pool.status().size, 0, "build does not wait for connects");
    pool.wait_ready(secs(5)).await.unwrap();
    // One connect at a time (connect_concurrency 1): three connects of 100 ms.
    assert_eq!(t0.elapsed(), ms(300));
    let s = pool.status();
    assert_eq!((s.size, s.idle, s.in_use), (3, 3, 0));
    assert_eq!(backend.connects(), 3);
    // It stops at the floor.
    pass(secs(2)).await;
    assert_eq!(backend.connect_attempts(), 3);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn connect_concurrency_fills_in_parallel() {
    let (builder, backend) = fake(4, 4);
    backend.set_connect_default(Step::Slow(ms(100)));
    let t0 = Instant::now();
    let pool = builder.connect_concurrency(2).build().unwrap();
    pool.wait_ready(secs(5)).await.unwrap();
    assert_eq!(t0.elapsed(), ms(200));
    assert_eq!(backend.peak_live(), 4);
}

#[tokio::test(start_paused = true)]
async fn wait_ready_times_out_cleanly_when_backend_is_down() {
    let (builder, backend) = fake(2, 4);
    backend.set_connect_default(Step::Transient);
    let pool = builder.build().unwrap();
    let t0 = Instant::now();
    let err = pool.wait_ready(secs(3)).await.unwrap_err();
    assert_eq!(t0.elapsed(), secs(3));
    let PoolError::Timeout(t) = &err else {
        panic!("expected a timeout, got {err:?}")
    };
    assert_eq!(t.status.size, 0);
    assert!(
        matches!(t.last_connect_error, Some(ConnectError::Backend(_))),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("last connect error: fake backend: connect refused"),
        "{text}"
    );
    assert!(
        backend.connect_attempts() >= 2,
        "the connector kept retrying"
    );
    // Once the backend is back, the floor is met.
    backend.set_connect_default(Step::Ok);
    pool.wait_ready(secs(3)).await.unwrap();
    assert_eq!(pool.status().size, 2);
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn wait_ready_with_zero_floor_is_immediate() {
    let (builder, backend) = fake(0, 4);
    let pool = builder.build().unwrap();
    pool.wait_ready(ms(1)).await.unwrap();
    pass(ms(10)).await;
    assert_eq!(
        backend.connect_attempts(),
        0,
        "no floor, no demand, no connects"
    );
}

#[test]
fn build_outside_a_runtime_starts_nothing_until_a_runtime_uses_it() {
    let (builder, backend) = fake(1, 2);
    let pool = builder.build().expect("a pool builds outside a runtime");
    assert_eq!(
        backend.connect_attempts(),
        0,
        "nothing runs without a runtime"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        pool.wait_ready(secs(5)).await.unwrap();
        assert_eq!(
            pool.status().size,
            1,
            "the floor, opened once a runtime asked"
        );
    });
}

/// Regression: `wait_ready` used to wait its whole timeout on a fatal connect error (and say
/// "timed out"); it now fails with the fatal error as fast as `get()` does.
#[tokio::test(start_paused = true)]
async fn wait_ready_fails_at_once_on_a_fatal_connect_error() {
    let (builder, backend) = fake(1, 2);
    backend.set_connect_default(pool_testkit::Step::Fatal);
    let pool = builder.build().unwrap();
    let started = tokio::time::Instant::now();
    let err = pool.wait_ready(secs(5)).await.unwrap_err();
    assert!(matches!(err, pool_core::PoolError::Backend(_)), "{err}");
    assert!(started.elapsed() < ms(10), "{:?}", started.elapsed());
    assert_eq!(backend.connect_attempts(), 1);
    // Waiting again gets an attempt of its own, not the old answer.
    let err = pool.wait_ready(secs(5)).await.unwrap_err();
    assert!(matches!(err, pool_core::PoolError::Backend(_)), "{err}");
    assert_eq!(backend.connect_attempts(), 2);
    // And once the backend is fixed, the floor is met.
    backend.set_connect_default(pool_testkit::Step::Ok);
    pool.wait_ready(secs(5)).await.unwrap();
}
