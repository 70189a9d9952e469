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
