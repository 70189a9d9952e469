//! Queries through the pool from many tasks, on reused connections.
mod common;

use std::time::Duration;

use pool_core::Pool;
use pool_postgres::PgManager;
use tokio::task::JoinSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_reuse_a_few_connections() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("queries");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(4)
        .build()
        .unwrap();

    let mut set = JoinSet::new();
    for task in 0..32i32 {
        let pool = pool.clone();
        set.spawn(async move {
            for i in 0..20i32 {
                let conn = pool.get().await.unwrap();
                let row = conn
                    .query_one("SELECT $1::int4 * 1000 + $2::int4", &[&task, &i])
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i32>(0), task * 1000 + i);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let stats = pool.stats();
    assert_eq!(stats.requests_num, 640);
    assert!(
        stats.connections_num <= 4,
        "opened {}",
        stats.connections_num
    );
    let on_server = common::backends(&admin, &app).await;
    assert_eq!(
        on_server as usize,
        pool.status().size,
        "pg_stat_activity agrees with the pool"
    );
    assert!(
        (1..=4).contains(&on_server),
        "{on_server} backends for 640 queries"
    );
    pool.close_and_wait().await;
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            common::backends(&admin, &app).await == 0
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_name_defaults_to_the_program_name() {
    let url = require_server!();
    let manager = PgManager::from_url(&url).unwrap();
    let expected = std::env::current_exe()
        .unwrap()
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        manager.config().get_application_name(),
        Some(expected.as_str())
    );
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, String>(0),
        expected,
        "seen in pg_stat_activity"
    );
    // A name in the URL wins.
    let named = PgManager::from_url(&format!("{url}?application_name=billing"))
        .or_else(|_| PgManager::from_url(&format!("{url} application_name=billing")))
        .unwrap();
    assert_eq!(named.config().get_application_name(), Some("billing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_or_a_setting_left_behind_is_reset_before_the_next_borrower() {
    let url = require_server!();
    for (how, setting_kept) in [
        (pool_postgres::Reset::Rollback, true),
        (pool_postgres::Reset::DiscardAll, false),
    ] {
        let manager = PgManager::from_url(&url).unwrap();
        let pool = Pool::builder(manager)
            .max_size(1)
            .after_return(pool_postgres::reset(how))
            .build()
            .unwrap();
        let conn = pool.get().await.unwrap();
        // A setting (its own statement), then a transaction left open with a temp table.
        conn.batch_execute("SET application_name = 'left_behind'")
            .await
            .unwrap();
        conn.batch_execute("BEGIN; CREATE TEMP TABLE t (x int)")
            .await
            .unwrap();
        drop(conn);
        // The next borrower (the same connection: max 1) finds the transaction rolled back.
        let conn = pool.get().await.unwrap();
        let row = conn
            .query_one(
                "SELECT to_regclass('pg_temp.t') IS NULL, current_setting('application_name')",
                &[],
            )
            .await
            .unwrap();
        assert!(
            row.get::<_, bool>(0),
            "{how:?}: the open transaction (and its temp table) was rolled back"
        );
        let app: String = row.get(1);
        assert_eq!(
            app == "left_behind",
            setting_kept,
            "{how:?}: application_name {app}"
        );
        assert_eq!(
            pool.stats().connections_num,
            1,
            "{how:?}: the same connection, reset"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_connect_sql_sets_up_every_new_connection() {
    let url = require_server!();
    let manager = PgManager::from_url(&url)
        .unwrap()
        .after_connect_sql("SET search_path TO pg_catalog; SET statement_timeout = '7s'");
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(2)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    for _ in 0..2 {
        let conn = pool.get().await.unwrap();
        let row = conn
            .query_one(
                "SELECT current_setting('search_path'), current_setting('statement_timeout')",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "pg_catalog");
        assert_eq!(row.get::<_, String>(1), "7s");
    }

    // Bad setup SQL: the connect fails with the server's error, named; no caller gets a
    // half-set-up connection.
    let manager = PgManager::from_url(&url)
        .unwrap()
        .after_connect_sql("SET no_such_setting = 1");
    let pool = Pool::builder(manager)
        .max_size(1)
        .wait_timeout(Some(Duration::from_millis(500)))
        .build()
        .unwrap();
    let err = pool.get().await.expect_err("setup fails");
    assert!(err.to_string().contains("no_such_setting"), "{err}");
}
