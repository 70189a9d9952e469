//! The adaptive ceiling: a server that refuses connects for being full lowers the pool's
//! effective ceiling to what it holds; the pool probes upward one connection at a time and the
//! configured ceiling comes back after sustained success.
mod common;

use common::*;
use pool_core::{Pool, PoolError};
use pool_testkit::{FakeHandle, FakeManager};
use tokio::task::JoinSet;

/// `tasks` callers for `secs` seconds of paused time, each holding a connection 100 ms and
/// then resting 50 ms. Returns (checkouts, caller errors).
async fn load(pool: &Pool<FakeManager>, tasks: usize, secs_: u64) -> (u64, u64) {
    let mut set = JoinSet::new();
    let end = tokio::time::Instant::now() + secs(secs_);
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            while tokio::time::Instant::now() < end {
                match pool.get().await {
                    Ok(conn) => {
                        ok += 1;
                        tokio::time::sleep(ms(100)).await;
                        drop(conn);
                    }
                    Err(e) => {
                        eprintln!("caller error: {e}");
                        err += 1;
                    }
                }
                tokio::time::sleep(ms(50)).await;
            }
            (ok, err)
        });
    }
    let (mut ok, mut err) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (o, e) = r.unwrap();
        ok += o;
        err += e;
    }
    (ok, err)
}

async fn run(adaptive: bool) -> (Pool<FakeManager>, FakeHandle, u64, u64) {
    let (builder, backend) = fake(1, 8);
    backend.set_capacity(Some(3));
    let pool = builder.adaptive_ceiling(adaptive).build().unwrap();
    let (ok, errors) = load(&pool, 6, 30).await;
    (pool, backend, ok, errors)
}

#[tokio::test(start_paused = true)]
async fn a_full_server_lowers_the_ceiling_and_refused_connects_drop() {
    let (pool, backend, ok_on, errors_on) = run(true).await;
    let refused_on = backend.refused();
    let s = pool.status();
    let (_plain, plain_backend, ok_off, errors_off) = run(false).await;
    let refused_off = plain_backend.refused();
    eprintln!(
        "capacity 3, 6 callers, 30 s: adaptive {refused_on} refused connects, {ok_on} checkouts; \
         plain {refused_off} refused, {ok_off} checkouts"
    );
    assert_eq!(
        (errors_on, errors_off),
        (0, 0),
        "callers are served by returns"
    );
    assert_eq!(s.ceiling, 3, "the ceiling is what the server holds: {s:?}");
    assert_eq!(s.max_size, 8);
    assert!(backend.peak_live() <= 3);
    // The first refusal, then probes 10 s and 30 s later (the interval doubles while they
    // are refused): at most three in 30 s.
    assert!(
        refused_on <= 3,
        "{refused_on} refused connects with the adaptive ceiling"
    );
    assert!(
        refused_on * 5 <= refused_off,
        "adaptive {refused_on} vs plain {refused_off}"
    );
    assert!(
        ok_on >= ok_off * 9 / 10,
        "as many checkouts: {ok_on} vs {ok_off}"
    );
    assert_accounted(&pool, &backend, 0);
}

#[tokio::test(start_paused = true)]
async fn the_configured_ceiling_comes_back_when_the_server_has_room_again() {
    let (builder, backend) = fake(1, 6);
    backend.set_capacity(Some(2));
    let pool = builder.build().unwrap();
    let p = pool.clone();
    // Ten callers need all six connections and more: demand above the ceiling all along.
    let loaded = tokio::spawn(async move { load(&p, 10, 45).await });
    tokio::time::sleep(secs(5)).await;
    assert_eq!(pool.status().ceiling, 2);
    backend.set_capacity(None);
    // Probes every 10 s while they succeed; the third success in a row restores the ceiling.
    tokio::time::sleep(secs(35)).await;
    let s = pool.status();
    assert_eq!(s.ceiling, 6, "restored after successful probes: {s:?}");
    assert_eq!(s.size, 6, "and the pool grows to it under demand: {s:?}");
    let (_, errors) = loaded.await.unwrap();
    assert_eq!(errors, 0);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_says_the_ceiling_is_lowered() {
    let (builder, backend) = fake(0, 4);
    backend.set_capacity(Some(1));
    let pool = builder.wait_timeout(Some(secs(1))).build().unwrap();
    let _held = pool.get().await.unwrap();
    let err = pool.get().await.expect_err("the server has no room");
    let PoolError::Timeout(t) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(t.status.ceiling, 1);
    let text = err.to_string();
    assert!(
        text.contains("ceiling lowered to 1: the server is full"),
        "{text}"
    );
    assert!(
        text.contains("server full"),
        "the last connect error: {text}"
    );
}

#[tokio::test(start_paused = true)]
async fn probes_wait_longer_while_they_keep_being_refused() {
    let (builder, backend) = fake(0, 4);
    backend.set_capacity(Some(1));
    let pool = builder.build().unwrap();
    let _held = pool.get().await.unwrap();
    // One caller waiting all along: after the first refusal, probes above the ceiling of 1
    // come 10, 20, 40 and 80 s apart while refused.
    let p = pool.clone();
    let waiter = tokio::spawn(async move { p.get_timeout(None).await.map(drop) });
    tokio::time::sleep(secs(160)).await;
    let refused = backend.refused();
    assert_eq!(refused, 5, "at 0, 10, 30, 70 and 150 s");
    waiter.abort();
}
