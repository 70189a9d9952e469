//! A role limited to 2 connections and a pool wanting 4: callers are served by returns,
//! connect attempts stay within the backoff, and a timed-out wait carries 53300.
mod common;

use std::time::{Duration, Instant};

use pool_core::{ConnectError, Pool, PoolError};
use pool_postgres::PgManager;
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_are_absorbed_by_returns_and_backoff() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let role = common::unique("limit2");
    common::create_limited_role(&admin, &role, 2).await;
    let manager = PgManager::from_url(&common::with_app(&url, &role, Some(&role))).unwrap();
    let pool = Pool::builder(manager)
        .min_size(0)
        .max_size(4)
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
        .unwrap();

    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..16 {
        let pool = pool.clone();
        set.spawn(async move {
            for _ in 0..5 {
                let conn = pool.get().await.expect("served by a return");
                conn.simple_query("SELECT pg_sleep(0.01)").await.unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    let stats = pool.stats();
    let attempts = stats.connections_num + stats.connections_errors;
    assert_eq!(stats.requests_num, 80);
    assert_eq!(stats.requests_errors, 0);
    assert_eq!(stats.connections_num, 2, "the two the role allows");
    assert!(stats.connections_errors >= 1, "the pool did try to grow");
    // Backoff: 10 ms doubling to a 2 s cap, full jitter: a handful of quick retries, then
    // about one a second.
    let bound = 12 + (3.0 * secs) as u64;
    assert!(
        attempts <= bound,
        "{attempts} connect attempts in {secs:.1} s (bound {bound})"
    );

    // With both connections held, a wait times out and says why the pool could not grow.
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let err = pool
        .get_timeout(Some(Duration::from_millis(1500)))
        .await
        .unwrap_err();
    let PoolError::Timeout(t) = &err else {
        panic!("expected a timeout, got {err:?}")
    };
    let Some(ConnectError::Backend(e)) = &t.last_connect_error else {
        panic!("no connect error in {err}")
    };
    assert_eq!(e.code().map(|c| c.code()), Some("53300"), "{err}");
    assert!(err.to_string().contains("53300"), "{err}");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "limit 2: 80 checkouts by 16 tasks in {secs:.2} s, {} connections, {} refused connects ({attempts} attempts); timeout says: {err}",
        stats.connections_num,
        stats.connections_errors
    );
    drop((a, b));
    pool.close_and_wait().await;
    common::drop_role(&admin, &role).await;
}
