//! Fatal connect errors (bad credentials, unknown database) fail the first `get()` at once.
mod common;

use std::time::{Duration, Instant};

use pool_core::{ErrorClass, Pool, PoolError};
use pool_postgres::PgManager;

async fn first_get_fails_at_once(conn: &str, expected_code: &str) {
    let manager = PgManager::from_url(conn).unwrap();
    let pool = Pool::builder(manager)
        .max_size(2)
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "failed after {took:?}, not at once"
    );
    let PoolError::Backend(e) = &err else {
        panic!("expected a fatal backend error, got {err:?}")
    };
    assert_eq!(e.code().map(|c| c.code()), Some(expected_code), "{err}");
    assert_eq!(e.class(), ErrorClass::Fatal);
    assert!(err.to_string().contains(expected_code), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_fails_at_once_with_3d000() {
    let url = require_server!();
    let mut config: pool_postgres::tokio_postgres::Config = url.parse().unwrap();
    config.dbname("pooltest_no_such_database");
    first_get_fails_at_once(&common::to_key_values(&config), "3D000").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_not_log_in_fails_at_once_with_class_28() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let role = common::unique("nologin");
    admin
        .batch_execute(&format!("CREATE ROLE {role} NOLOGIN"))
        .await
        .unwrap();
    first_get_fails_at_once(&common::with_app(&url, &role, Some(&role)), "28000").await;
    common::drop_role(&admin, &role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_role_fails_at_once_with_class_28() {
    let url = require_server!();
    let role = common::unique("ghost");
    first_get_fails_at_once(&common::with_app(&url, &role, Some(&role)), "28000").await;
}
