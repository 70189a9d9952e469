//! A bounded soak against the real server through the fault proxy: random holds,
//! cancellations, short timeouts, and injected latency, resets and blackholes. No `get()`
//! fails with an error the pool should absorb, and after close the server is back to its
//! baseline in `pg_stat_activity`.
//!
//! `SOAK_SECS` sets the length (default 5 s; at most 120).
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_core::{CheckPolicy, Pool, PoolError};
use pool_postgres::PgManager;
use pool_testkit::{Fault, FaultProxy, Rng};

fn soak_secs() -> u64 {
    std::env::var("SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .clamp(1, 120)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_through_injected_faults_loses_nothing() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let secs_total = soak_secs();
    let config: pool_postgres::tokio_postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let proxy = Arc::new(
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap(),
    );
    let app = common::unique("soak");
    let user = config.get_user().unwrap_or("postgres");
    let db = config.get_dbname().unwrap_or(user);
    let conn_str = format!(
        "host=127.0.0.1 port={} user={user} dbname={db} application_name={app}",
        proxy.addr().port()
    );
    let manager = PgManager::from_url(&conn_str)
        .unwrap()
        .connect_timeout(Some(Duration::from_secs(2)));
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(6)
        .check(CheckPolicy::Always)
        .check_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(3))
        .wait_timeout(Some(Duration::from_secs(20)))
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let end = Instant::now() + Duration::from_secs(secs_total);
    let faults = Arc::new(AtomicU64::new(0));

    let chaos = {
        let proxy = Arc::clone(&proxy);
        let faults = Arc::clone(&faults);
        tokio::spawn(async move {
            let mut rng = Rng::new(0xFA17);
            while Instant::now() < end {
                tokio::time::sleep(Duration::from_millis(200 + rng.below(400))).await;
                let fault = match rng.below(3) {
                    0 => Fault::Latency(Duration::from_millis(1 + rng.below(5))),
                    1 => Fault::Reset,
                    _ => Fault::Blackhole,
                };
                faults.fetch_add(1, Ordering::Relaxed);
                proxy.set(fault);
                tokio::time::sleep(Duration::from_millis(50 + rng.below(250))).await;
                proxy.set(Fault::Pass);
            }
            proxy.set(Fault::Pass);
        })
    };

    let (checkouts, pool_errors, query_errors, cancelled, short_timeouts) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..12u64 {
        let pool = pool.clone();
        let (checkouts, pool_errors, query_errors, cancelled, short_timeouts) = (
            checkouts.clone(),
            pool_errors.clone(),
            query_errors.clone(),
            cancelled.clone(),
            short_timeouts.clone(),
        );
        tasks.spawn(async move {
            let mut rng = Rng::new(0x5EED + t * 104729);
            while Instant::now() < end {
                match rng.below(10) {
                    0 => {
                        if tokio::time::timeout(Duration::from_micros(rng.below(5000)), pool.get())
                            .await
                            .is_err()
                        {
                            cancelled.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    1 => match pool.get_timeout(Some(Duration::from_millis(1))).await {
                        Ok(c) => drop(c),
                        Err(PoolError::Timeout(_)) => {
                            short_timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("pool error: {e}");
                            pool_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                    _ => match pool.get().await {
                        Ok(conn) => {
                            checkouts.fetch_add(1, Ordering::Relaxed);
                            let sleep_ms = rng.below(5);
                            let q = format!("SELECT pg_sleep({})", sleep_ms as f64 / 1000.0);
                            // A fault can hit a query in flight: that is the query's error, not the
                            // pool's; the connection is then closed or dropped by the pool.
                            match tokio::time::timeout(
                                Duration::from_secs(2),
                                conn.simple_query(&q),
                            )
                            .await
                            {
                                Ok(Ok(_)) => {}
                                _ => {
                                    query_errors.fetch_add(1, Ordering::Relaxed);
                                    pool_core::Object::discard(conn);
                                }
                            }
                        }
                        Err(e) => {
                            eprintln!("pool error: {e}");
                            pool_errors.fetch_add(1, Ordering::Relaxed);
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
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
    let stats = pool.stats();
    pool.close_and_wait().await;
    drop(pool);
    let gone = common::eventually(Duration::from_secs(10), || async {
        common::backends(&admin, &app).await == 0
    })
    .await;
    assert!(
        gone,
        "backends left in pg_stat_activity: {}",
        common::backends(&admin, &app).await
    );
    let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(
        v(&pool_errors),
        0,
        "callers saw pool errors the policy should have absorbed"
    );
    assert!(v(&checkouts) > 20, "the soak did work: {}", v(&checkouts));
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "soak (postgres via fault proxy, {secs_total} s): {} checkouts, {} cancelled, {} short timeouts, {} faults injected \
         ({} proxy resets), {} connections opened / {} closed, {} lost to checks, 0 pool errors, {} queries hit by a fault; \
         pg_stat_activity back to baseline after close",
        v(&checkouts),
        v(&cancelled),
        v(&short_timeouts),
        v(&faults),
        proxy.resets(),
        stats.connections_num,
        stats.connections_closed + s.size as u64,
        stats.connections_lost,
        v(&query_errors)
    );
}
