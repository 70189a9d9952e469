//! A bounded soak on the fake backend: random holds, cancellations, short timeouts, broken
//! connections, failed checks and connect failures, from many tasks at once. At the end the
//! pool's accounts add up and every connection the backend opened is accounted for.
//!
//! `SOAK_SECS` sets the length (default 5 s; at most 120).
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pool_core::{CheckPolicy, Object, PoolError};
use pool_testkit::{Rng, Step};
use tokio::time::Instant;

fn soak_secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .clamp(1, 120)
}

#[derive(Default)]
struct Totals {
    checkouts: AtomicU64,
    cancelled: AtomicU64,
    short_timeouts: AtomicU64,
    broken: AtomicU64,
    discarded: AtomicU64,
    faults: AtomicU64,
    unexpected: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_on_the_fake_backend_loses_nothing() {
    let secs_total = soak_secs();
    let (builder, backend) = fake(2, 8);
    backend.set_connect_default(Step::Slow(ms(2)));
    let pool = builder
        .check(CheckPolicy::Always)
        .check_timeout(ms(50))
        .connect_timeout(ms(200))
        .max_idle(Some(ms(300)))
        .max_lifetime(Some(secs(2)))
        .wait_timeout(Some(secs(10)))
        .build()
        .unwrap();
    pool.wait_ready(secs(5)).await.unwrap();
    let totals = Arc::new(Totals::default());
    let end = Instant::now() + Duration::from_secs(secs_total);

    // Chaos: connect failures, failed or hanging checks, connections broken under the pool.
    let chaos = {
        let backend = backend.clone();
        let totals = Arc::clone(&totals);
        tokio::spawn(async move {
            let mut rng = Rng::new(0xC0FFEE);
            while Instant::now() < end {
                tokio::time::sleep(ms(20 + rng.below(80))).await;
                totals.faults.fetch_add(1, Ordering::Relaxed);
                match rng.below(4) {
                    0 => backend.script_connect([Step::Transient, Step::Transient]),
                    1 => backend.script_check([Step::Transient]),
                    2 => backend.script_check([Step::Never]),
                    _ => {
                        backend.break_all();
                    }
                }
            }
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..24u64 {
        let pool = pool.clone();
        let totals = Arc::clone(&totals);
        tasks.spawn(async move {
            let mut rng = Rng::new(0x9E37_79B9 + t * 7919);
            while Instant::now() < end {
                match rng.below(10) {
                    // Cancelled while waiting or checking.
                    0 => {
                        if tokio::time::timeout(Duration::from_micros(rng.below(3000)), pool.get())
                            .await
                            .is_err()
                        {
                            totals.cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // A deliberately short wait timeout: a timeout here is expected.
                    1 => match pool.get_timeout(Some(ms(1))).await {
                        Ok(c) => drop(c),
                        Err(PoolError::Timeout(_)) => {
                            totals.short_timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("unexpected: {e}");
                            totals.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    n => match pool.get().await {
                        Ok(c) => {
                            totals.checkouts.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_micros(rng.below(4000))).await;
                            match n {
                                2 => {
                                    c.break_it();
                                    totals.broken.fetch_add(1, Ordering::Relaxed);
                                }
                                3 => {
                                    Object::discard(c);
                                    totals.discarded.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                                _ => {}
                            }
                            drop(c);
                        }
                        Err(e) => {
                            eprintln!("unexpected: {e}");
                            totals.unexpected.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                }
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    chaos.await.unwrap();

    let s = pool.status();
    assert_eq!(s.size, s.idle + s.in_use, "{s:?}");
    assert_eq!(s.in_use, 0, "{s:?}");
    assert_eq!(s.waiting, 0, "{s:?}");
    let stats = pool.stats();
    pool.close_and_wait().await;
    assert_eq!(backend.live(), 0, "every connection closed");
    assert_eq!(
        backend.connects(),
        backend.closed(),
        "every connection opened was closed"
    );
    assert_eq!(
        stats.connections_num,
        backend.connects(),
        "the pool counted every connect"
    );
    let t = |a: &AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(
        t(&totals.unexpected),
        0,
        "callers saw errors the pool should have absorbed"
    );
    assert!(t(&totals.checkouts) > 100, "the soak did work");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "soak (fake, {secs_total} s): {} checkouts, {} cancelled, {} short timeouts, {} broken, {} discarded, {} faults injected, \
         {} connections opened / {} closed, {} lost to checks, 0 unexpected errors",
        t(&totals.checkouts),
        t(&totals.cancelled),
        t(&totals.short_timeouts),
        t(&totals.broken),
        t(&totals.discarded),
        t(&totals.faults),
        backend.connects(),
        backend.closed(),
        stats.connections_lost
    );
}
