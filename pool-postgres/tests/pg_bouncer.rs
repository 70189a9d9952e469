//! Behind PgBouncer in transaction mode: five pools, simple and typed queries from many tasks
//! with no error, the pool's health check safe there, and a named prepared statement failing
//! with the server's own clear error.
mod common;

use std::time::Duration;

use common::bouncer::Bouncer;
use pool_core::{CheckPolicy, Pool};
use pool_postgres::tokio_postgres::types::Type;
use pool_postgres::PgManager;
use tokio::task::JoinSet;

/// A private PgBouncer in front of the test server, with a server pool of `size` (started off
/// the runtime: it waits for the process to listen).
async fn bouncer(url: String, size: u32) -> Bouncer {
    let config: pool_postgres::tokio_postgres::Config = url.parse().unwrap();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    tokio::task::spawn_blocking(move || Bouncer::start(port, "postgres", size))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_pools_through_pgbouncer_run_simple_and_typed_queries_without_errors() {
    let url = require_server!();
    let bouncer = bouncer(url, 4).await;
    let app = common::unique("bouncer");
    let pools: Vec<Pool<PgManager>> = (0..5)
        .map(|_| {
            let manager = PgManager::from_url(&bouncer.conninfo("postgres", &app)).unwrap();
            // A health check on every checkout: the empty query goes through PgBouncer too.
            Pool::builder(manager)
                .min_size(1)
                .max_size(4)
                .check(CheckPolicy::Always)
                .build()
                .unwrap()
        })
        .collect();
    let mut set = JoinSet::new();
    for task in 0..16i32 {
        let pool = pools[task as usize % pools.len()].clone();
        set.spawn(async move {
            let mut errors = Vec::new();
            for i in 0..50i32 {
                let conn = match pool.get().await {
                    Ok(c) => c,
                    Err(e) => {
                        errors.push(format!("get: {e}"));
                        continue;
                    }
                };
                let result = if i % 2 == 0 {
                    conn.simple_query("SELECT 1").await.map(|_| ())
                } else {
                    conn.query_typed(
                        "SELECT $1::int4 + $2::int4",
                        &[(&i, Type::INT4), (&task, Type::INT4)],
                    )
                    .await
                    .map(|rows| assert_eq!(rows[0].get::<_, i32>(0), i + task))
                };
                if let Err(e) = result {
                    errors.push(format!("query: {e}"));
                }
            }
            errors
        });
    }
    let mut errors = Vec::new();
    while let Some(r) = set.join_next().await {
        errors.extend(r.unwrap());
    }
    let checkouts: u64 = pools.iter().map(|p| p.stats().requests_num).sum();
    eprintln!(
        "pgbouncer: 5 pools, 16 tasks, {checkouts} checkouts, {} errors",
        errors.len()
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(checkouts, 800);
    for pool in &pools {
        assert_eq!(pool.stats().connections_lost, 0, "no check failed");
        pool.close_and_wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_prepared_statement_fails_behind_pgbouncer_with_a_clear_error() {
    let url = require_server!();
    let bouncer = bouncer(url, 2).await;
    let app = common::unique("bouncer_prepared");
    let manager = PgManager::from_url(&bouncer.conninfo("postgres", &app)).unwrap();
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    // Prepared in one transaction; the server connection is reset (DISCARD ALL) when it ends,
    // so the execution finds no such statement.
    let statement = conn.prepare("SELECT $1::int4 + 1").await.unwrap();
    let (capture, guard) = pool_testkit::Capture::install();
    let err = conn
        .query(&statement, &[&1i32])
        .await
        .expect_err("the named statement is gone");
    drop(guard);
    let log = capture.text();
    assert!(
        log.contains("transaction-mode pooler") && log.contains("query_typed"),
        "the pool says what happened and what to do: {log}"
    );
    let db = err.as_db_error().expect("the server's error");
    eprintln!(
        "named prepared statement behind pgbouncer: {}: {}",
        db.code().code(),
        db.message()
    );
    assert_eq!(db.code().code(), "26000", "{err:?}");
    assert!(db.message().contains("does not exist"), "{}", db.message());
    // The unnamed-statement path works on the same connection.
    let rows = conn
        .query_typed("SELECT $1::int4 + 1", &[(&1i32, Type::INT4)])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    drop(conn);
    // And the connection is still good for the next caller.
    let conn = tokio::time::timeout(Duration::from_secs(5), pool.get())
        .await
        .unwrap()
        .unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
}

/// Behind a transaction-mode pooler the statement cache is turned off
/// (`statement_cache_capacity(0)`): `prepare_cached` prepares every time, keeps nothing, and
/// its named statement fails with the same clear error as `prepare`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_cached_with_the_cache_off_behind_pgbouncer_gives_the_clear_error() {
    let url = require_server!();
    let bouncer = bouncer(url, 2).await;
    let app = common::unique("bouncer_cached");
    let manager = PgManager::from_url(&bouncer.conninfo("postgres", &app))
        .unwrap()
        .statement_cache_capacity(0);
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let statement = conn.prepare_cached("SELECT $1::int4 + 1").await.unwrap();
    assert_eq!(
        conn.statement_cache_len(),
        0,
        "nothing is kept with the cache off"
    );
    let (capture, guard) = pool_testkit::Capture::install();
    let err = conn
        .query(&statement, &[&1i32])
        .await
        .expect_err("the named statement is gone");
    drop(guard);
    assert_eq!(err.as_db_error().unwrap().code().code(), "26000", "{err:?}");
    let log = capture.text();
    assert!(
        log.contains("transaction-mode pooler") && log.contains("query_typed"),
        "{log}"
    );
}
