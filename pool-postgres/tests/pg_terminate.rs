//! `pg_terminate_backend` on every pool backend while idle: with check `Always`, callers see
//! no error and the dead connections are counted.
mod common;

use std::time::Duration;

use pool_core::{CheckPolicy, Pool};
use pool_postgres::{tokio_postgres, PgManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_idle_backends_are_replaced_without_errors() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("terminate");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(4)
        .max_size(4)
        .check(CheckPolicy::Always)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(common::backends(&admin, &app).await, 4);

    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 4);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            common::backends(&admin, &app).await == 0
        })
        .await
    );

    // Every checkout succeeds; no error reaches a caller.
    for i in 0..8i32 {
        let conn = pool.get().await.expect("no error reaches the caller");
        let row = conn
            .query_one("SELECT $1::int4", &[&i])
            .await
            .expect("the connection works");
        assert_eq!(row.get::<_, i32>(0), i);
    }
    let stats = pool.stats();
    assert_eq!(stats.connections_lost, 4, "{stats:?}");
    assert_eq!(stats.requests_errors, 0);
    assert!(
        pool.manager().server_restarts_seen() >= 1,
        "57P01 was seen by the connection tasks"
    );
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            common::backends(&admin, &app).await == 4
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_is_never_handed_out_even_without_checks() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("terminate_nocheck");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(2)
        .check(CheckPolicy::Never)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    // Once the connection tasks have seen the termination (57P01), `has_broken` retires both.
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            pool.manager().server_restarts_seen() >= 1
        })
        .await
    );
    let conn = pool.get().await.unwrap();
    conn.simple_query("SELECT 1")
        .await
        .expect("a live connection");
    assert_eq!(pool.stats().connections_lost, 2);
}

async fn backend_pids(admin: &tokio_postgres::Client, app: &str) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_sweep_refills_the_floor_after_terminated_backends_without_any_get() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("sweep");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let interval = Duration::from_millis(500);
    let pool = Pool::builder(manager)
        .min_size(3)
        .max_size(6)
        .check(CheckPolicy::Never)
        .housekeeping_interval(interval)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let old = backend_pids(&admin, &app).await;
    assert_eq!(old.len(), 3);

    let started = tokio::time::Instant::now();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    // No get(): the housekeeper's sweep finds the dead connections and the connector
    // replaces them. Two passes, plus the time three local connects take.
    let refilled = common::eventually(2 * interval + Duration::from_millis(500), || async {
        let now = backend_pids(&admin, &app).await;
        now.len() == 3 && now.iter().all(|p| !old.contains(p))
    })
    .await;
    let took = started.elapsed();
    assert!(
        refilled,
        "the floor is not back with live backends after {took:?}: {:?}, backends {:?} (were {old:?})",
        pool.status(),
        backend_pids(&admin, &app).await
    );
    let s = pool.status();
    assert_eq!((s.size, s.idle, s.in_use), (3, 3, 0), "{s:?}");
    let stats = pool.stats();
    assert_eq!(stats.connections_lost, 3, "found by the sweep: {stats:?}");
    assert_eq!(stats.requests_num, 0, "no caller was involved");
    eprintln!("idle sweep: floor of 3 back with new backends {took:?} after the terminations (interval {interval:?})");

    // And they work.
    let conn = pool.get().await.unwrap();
    conn.simple_query("SELECT 1")
        .await
        .expect("a live connection");
    assert_eq!(pool.stats().connections_lost, 3);
}
