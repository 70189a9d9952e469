//! Fatal and transient connect errors, backoff, and timeouts carrying the last error.
mod common;

use common::*;
use pool_core::{ConnectError, ErrorClass, PoolError};
use pool_testkit::Step;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_fatal_connect_error_reaches_the_waiting_caller_at_once() {
    let (builder, backend) = fake(0, 4);
    backend.set_connect_default(Step::Fatal);
    let pool = builder.wait_timeout(Some(secs(30))).build().unwrap();
    let t0 = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(t0.elapsed(), ms(0), "no time passes");
    let PoolError::Backend(e) = &err else {
        panic!("expected Backend, got {err:?}")
    };
    assert_eq!(e.class, ErrorClass::Fatal);
    assert!(err.to_string().contains("fatal"), "{err}");
    assert!(std::error::Error::source(&err).is_some());
    // The next caller also fails at once, with its own attempt.
    let t1 = Instant::now();
    assert!(matches!(pool.get().await, Err(PoolError::Backend(_))));
    assert_eq!(t1.elapsed(), ms(0));
    assert_eq!(backend.connect_attempts(), 2);
    assert_eq!(pool.stats().requests_errors, 2);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_answers_every_queued_caller() {
    let (builder, backend) = fake(0, 1);
    backend.set_connect_default(Step::Fatal);
    let pool = builder.build().unwrap();
    let mut set = JoinSet::new();
    for _ in 0..5 {
        let pool = pool.clone();
        set.spawn(async move { pool.get().await.map(drop) });
    }
    let t0 = Instant::now();
    while let Some(r) = set.join_next().await {
        assert!(matches!(r.unwrap(), Err(PoolError::Backend(_))));
    }
    assert_eq!(t0.elapsed(), ms(0));
    assert!(backend.connect_attempts() <= 5);
    assert_eq!(pool.status().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_backoff_and_the_caller_is_served() {
    let (builder, backend) = fake(0, 4);
    backend.script_connect([Step::Transient, Step::Transient, Step::Transient]);
    let pool = builder.build().unwrap();
    let t0 = Instant::now();
    let conn = pool.get().await.expect("served after the retries");
    let waited = t0.elapsed();
    assert_eq!(backend.connect_attempts(), 4);
    // Full jitter: each delay is in [0, 10 ms * 2^n], so at most 10 + 20 + 40 ms.
    assert!(waited <= ms(70), "waited {waited:?}");
    assert_eq!(pool.stats().connections_errors, 3);
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn a_wait_that_times_out_carries_the_last_connect_error() {
    let (builder, backend) = fake(0, 4);
    backend.set_connect_default(Step::Transient);
    let pool = builder.wait_timeout(Some(secs(2))).build().unwrap();
    let t0 = Instant::now();
    let err = pool.get().await.unwrap_err();
    assert_eq!(t0.elapsed(), secs(2));
    let PoolError::Timeout(t) = &err else {
        panic!("expected Timeout, got {err:?}")
    };
    assert_eq!(t.waited, secs(2));
    let Some(ConnectError::Backend(e)) = &t.last_connect_error else {
        panic!("{err:?}")
    };
    assert_eq!(e.class, ErrorClass::Transient);
    assert!(err.backend_error().is_some());
    let text = err.to_string();
    assert!(
        text.starts_with("timed out after 2s waiting for a connection"),
        "{text}"
    );
    assert!(
        text.contains("last connect error: fake backend: connect refused (transient)"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_times_out_and_counts_as_transient() {
    let (builder, backend) = fake(0, 4);
    backend.script_connect([Step::Never]);
    let pool = builder.connect_timeout(secs(1)).build().unwrap();
    let t0 = Instant::now();
    let conn = pool.get().await.unwrap();
    assert!(
        t0.elapsed() >= secs(1) && t0.elapsed() <= ms(1010),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(backend.connect_attempts(), 2);
    drop(conn);
    let timed_out = pool.get_timeout(Some(ms(1))).await;
    assert!(timed_out.is_ok());
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_retried_at_the_backoff_rate_whatever_the_number_of_callers() {
    let (builder, backend) = fake(1, 10);
    let pool = builder.wait_timeout(Some(secs(1))).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    // The server goes away for 60 s: the idle connection dies and connects are refused.
    backend.set_connect_default(Step::Transient);
    backend.break_all();
    // The dead idle connection is discarded at checkout, never handed out; the caller times
    // out since connects are refused.
    assert!(matches!(pool.get().await, Err(PoolError::Timeout(_))));
    assert_eq!(pool.status().size, 0);
    let before = backend.connect_attempts();
    let outage_start = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let pool = pool.clone();
        set.spawn(async move {
            let mut timeouts = 0u32;
            while outage_start.elapsed() < secs(60) {
                match pool.get().await {
                    Err(PoolError::Timeout(_)) => timeouts += 1,
                    other => panic!("unexpected during the outage: {other:?}"),
                }
            }
            timeouts
        });
    }
    let mut timeouts = 0;
    while let Some(t) = set.join_next().await {
        timeouts += t.unwrap();
    }
    let attempts = backend.connect_attempts() - before;
    // 100 callers timed out about 6000 times, yet the connector alone retried: with delays
    // drawn from [0, 2 s] once the cap is reached, about one attempt a second.
    assert!(timeouts >= 5900, "{timeouts}");
    assert!(
        (20..=150).contains(&attempts),
        "connect attempts during the outage: {attempts}"
    );
    // The server comes back: the pool serves again within about the backoff cap.
    backend.set_connect_default(Step::Ok);
    let back = Instant::now();
    let conn = pool.get_timeout(Some(secs(5))).await.unwrap();
    assert!(
        back.elapsed() <= secs(2),
        "served {:?} after recovery",
        back.elapsed()
    );
    drop(conn);
}
