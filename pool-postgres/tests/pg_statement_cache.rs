//! `prepare_cached` against the real server: one server-side statement per cached query per
//! connection (read from `pg_prepared_statements`), a bounded LRU, eviction and one transparent
//! retry when the server lost the statement (26000) or its plan changed result type (0A000),
//! and `Reset::DiscardAll` and `clear_statement_cache` emptying it.
mod common;

use pool_postgres::{reset, PgManager, Pool, Reset};

async fn pool(url: &str, tag: &str, capacity: Option<usize>) -> Pool {
    let app = common::unique(tag);
    let mut manager = PgManager::from_url(&common::with_app(url, &app, None)).unwrap();
    if let Some(c) = capacity {
        manager = manager.statement_cache_capacity(c);
    }
    Pool::builder(manager).max_size(1).build().unwrap()
}

/// Server-side prepared statements on this connection whose text is `sql`.
async fn server_statements(conn: &pool_postgres::Object, sql: &str) -> i64 {
    conn.query_typed(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
        &[(&sql, tokio_postgres::types::Type::TEXT)],
    )
    .await
    .unwrap()[0]
        .get(0)
}

#[tokio::test]
async fn one_server_statement_per_cached_query_per_connection() {
    let url = require_server!();
    let pool = pool(&url, "cache_one", None).await;
    let conn = pool.get().await.unwrap();
    let sql = "SELECT $1::int4 * 2";
    for i in 0..5i32 {
        let st = conn.prepare_cached(sql).await.unwrap();
        let row = conn.query_one(&st, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i * 2);
    }
    assert_eq!(server_statements(&conn, sql).await, 1);
    assert_eq!(conn.statement_cache_len(), 1);
    // Typed preparation is a different entry.
    let _ = conn
        .prepare_typed_cached(sql, &[tokio_postgres::types::Type::INT4])
        .await
        .unwrap();
    assert_eq!(conn.statement_cache_len(), 2);
    // A second checkout of the same connection finds it cached still.
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.statement_cache_len(), 2);
    conn.clear_statement_cache();
    assert_eq!(conn.statement_cache_len(), 0);
}

#[tokio::test]
async fn the_cache_is_bounded_least_recently_used_first() {
    let url = require_server!();
    let pool = pool(&url, "cache_lru", Some(2)).await;
    let conn = pool.get().await.unwrap();
    let (a, b, c) = (
        "SELECT 1::int4 AS a",
        "SELECT 2::int4 AS b",
        "SELECT 3::int4 AS c",
    );
    let _ = conn.prepare_cached(a).await.unwrap();
    let _ = conn.prepare_cached(b).await.unwrap();
    let _ = conn.prepare_cached(a).await.unwrap(); // a is now the most recently used
    let _ = conn.prepare_cached(c).await.unwrap(); // evicts b
    assert_eq!(conn.statement_cache_len(), 2);
    // The evicted statement was closed on the server (its last clone dropped).
    conn.simple_query("SELECT 1").await.unwrap();
    assert_eq!(server_statements(&conn, b).await, 0, "b closed");
    assert_eq!(server_statements(&conn, a).await, 1);
    assert_eq!(server_statements(&conn, c).await, 1);
}

#[tokio::test]
async fn a_statement_the_server_lost_is_prepared_again_and_the_query_retried() {
    let url = require_server!();
    let pool = pool(&url, "cache_26000", None).await;
    let conn = pool.get().await.unwrap();
    let sql = "SELECT $1::int4 + 40";
    let st = conn.prepare_cached(sql).await.unwrap();
    // The server forgets every prepared statement behind the cache's back.
    conn.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_eq!(server_statements(&conn, sql).await, 0);
    let row = conn
        .query_one(&st, &[&2i32])
        .await
        .expect("retried with a new statement");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(
        server_statements(&conn, sql).await,
        1,
        "prepared again, once"
    );
    assert_eq!(conn.statement_cache_len(), 1);
    // An uncached statement gets the server's error: nothing to prepare it from.
    let own = conn.prepare(sql).await.unwrap();
    conn.batch_execute("DEALLOCATE ALL").await.unwrap();
    let err = conn.query_one(&own, &[&2i32]).await.unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "26000");
}

#[tokio::test]
async fn a_statement_whose_plan_changed_result_type_is_prepared_again() {
    let url = require_server!();
    let pool = pool(&url, "cache_0a000", None).await;
    let conn = pool.get().await.unwrap();
    conn.batch_execute("CREATE TEMP TABLE t (a int4); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let st = conn.prepare_cached("SELECT * FROM t").await.unwrap();
    assert_eq!(conn.query(&st, &[]).await.unwrap()[0].len(), 1);
    conn.batch_execute("ALTER TABLE t ADD COLUMN b int4 DEFAULT 7")
        .await
        .unwrap();
    let rows = conn
        .query(&st, &[])
        .await
        .expect("0A000 'cached plan must not change result type', retried");
    assert_eq!(rows[0].len(), 2);
    assert_eq!(rows[0].get::<_, i32>(1), 7);
}

#[tokio::test]
async fn reset_discard_all_empties_the_cache() {
    let url = require_server!();
    let app = common::unique("cache_discard");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let pool = Pool::builder(manager)
        .max_size(1)
        .after_return(reset(Reset::DiscardAll))
        .build()
        .unwrap();
    let conn = pool.get().await.unwrap();
    let st = conn.prepare_cached("SELECT 5::int4").await.unwrap();
    assert_eq!(conn.statement_cache_len(), 1);
    drop(st);
    drop(conn);
    // The reset runs in the background before the connection is offered again.
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.statement_cache_len(), 0);
    let st = conn.prepare_cached("SELECT 5::int4").await.unwrap();
    assert_eq!(conn.query_one(&st, &[]).await.unwrap().get::<_, i32>(0), 5);
}
