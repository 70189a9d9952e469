//! Watched transactions and `GenericClient` against the real server: commit, rollback, nested
//! savepoints, the builder's modes, the connection's statement cache inside a transaction, and
//! one generic function used with a pooled connection and a transaction inside
//! `tokio::spawn`.
mod common;

use pool_postgres::tokio_postgres::IsolationLevel;
use pool_postgres::{GenericClient, PgManager, Pool};

async fn pool(url: &str, tag: &str) -> Pool {
    let app = common::unique(tag);
    let manager = PgManager::from_url(&common::with_app(url, &app, None)).unwrap();
    Pool::builder(manager).max_size(2).build().unwrap()
}

/// Generic over where it runs: a pooled connection, a transaction.
async fn rows_in(client: &impl GenericClient, table: &str) -> i64 {
    let st = client
        .prepare_cached(&format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap();
    client.query_one(&st, &[]).await.unwrap().get(0)
}

async fn add(client: &impl GenericClient, table: &str, v: i32) {
    client
        .execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&v])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generic_function_runs_on_an_object_and_a_transaction_inside_spawn() {
    let url = require_server!();
    let pool = pool(&url, "generic").await;
    let table = common::unique("generic_t");
    {
        let conn = pool.get().await.unwrap();
        conn.batch_execute(&format!("CREATE TABLE {table} (v int4)"))
            .await
            .unwrap();
    }
    let (p, t) = (pool.clone(), table.clone());
    let counts = tokio::spawn(async move {
        let mut conn = p.get().await.unwrap();
        add(&*conn, &t, 1).await;
        let before = rows_in(&conn, &t).await;
        let tx = conn.transaction().await.unwrap();
        add(&tx, &t, 2).await;
        let inside = rows_in(&tx, &t).await;
        tx.rollback().await.unwrap();
        let after_rollback = rows_in(&conn, &t).await;
        let mut tx = GenericClient::transaction(&mut conn).await.unwrap();
        add(&tx, &t, 3).await;
        {
            // A savepoint, rolled back: its row goes, the outer one stays.
            let sp = tx.transaction().await.unwrap();
            add(&sp, &t, 4).await;
            assert_eq!(rows_in(&sp, &t).await, 3);
            sp.rollback().await.unwrap();
        }
        tx.commit().await.unwrap();
        let after_commit = rows_in(&conn, &t).await;
        (before, inside, after_rollback, after_commit)
    })
    .await
    .unwrap();
    assert_eq!(counts, (1, 2, 1, 2));
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_builder_sets_the_transactions_modes_and_a_dropped_one_rolls_back() {
    let url = require_server!();
    let pool = pool(&url, "tx_builder").await;
    let mut conn = pool.get().await.unwrap();
    let tx = conn
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .read_only(true)
        .start()
        .await
        .unwrap();
    let row = tx
        .query_one("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "serializable");
    assert_eq!(row.get::<_, String>(1), "on");
    let err = tx
        .batch_execute("CREATE TEMP TABLE nope (a int)")
        .await
        .expect_err("read-only");
    assert_eq!(err.code().unwrap().code(), "25006");
    drop(tx);
    // Dropped: rolled back, the connection usable again.
    conn.batch_execute("CREATE TEMP TABLE yes (a int)")
        .await
        .unwrap();
    // A cached statement prepared in a transaction is the connection's.
    let tx = conn.transaction().await.unwrap();
    let st = tx.prepare_cached("SELECT 7::int4").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(conn.statement_cache_len(), 1);
    assert_eq!(conn.query_one(&st, &[]).await.unwrap().get::<_, i32>(0), 7);
}

#[tokio::test]
async fn copy_in_and_out_through_the_generic_client() {
    use futures_util::{SinkExt, StreamExt};
    let url = require_server!();
    let pool = pool(&url, "copy").await;
    let mut conn = pool.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.batch_execute("CREATE TEMP TABLE c (v int4) ON COMMIT DROP")
        .await
        .unwrap();
    let sink = GenericClient::copy_in::<_, bytes::Bytes>(&tx, "COPY c FROM STDIN")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n2\n3\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 3);
    let out = GenericClient::copy_out(&tx, "COPY c TO STDOUT")
        .await
        .unwrap();
    futures_util::pin_mut!(out);
    let mut text = Vec::new();
    while let Some(chunk) = out.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(text, b"1\n2\n3\n");
    tx.commit().await.unwrap();
}
