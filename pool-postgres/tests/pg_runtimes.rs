//! A `static` Postgres pool shared by several `#[tokio::test]`s, each with its own runtime.
//! Each connection's driver task runs on the runtime that opened it and dies with it, so the
//! next test finds the idle connections closed (`has_broken`, `Client::is_closed`): they are
//! replaced without a caller error, and the pool's background tasks start again on the new
//! runtime. Real clock: a paused one cannot span runtimes; every wait is bounded.
mod common;

use std::sync::LazyLock;
use std::time::Duration;

use pool_core::{CheckPolicy, Pool};
use pool_postgres::PgManager;

const WAIT: Duration = Duration::from_millis(300);

/// Built (once) on a thread with no runtime, as a `static` in `main` would be; `None` when no
/// server is configured outside CI (the tests then skip, loudly).
static POOL: LazyLock<Option<Pool<PgManager>>> = LazyLock::new(|| {
    let url = common::server_url()?;
    let app = common::unique("runtimes");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(2)
        // No checkout check: the dead driver must be found by `has_broken` alone.
        .check(CheckPolicy::Never)
        .wait_timeout(Some(WAIT))
        .build()
        .expect("builds outside a runtime");
    Some(pool)
});

/// The tests take turns, one runtime after another: each leaves a sentinel task on its
/// runtime, and the next waits for that runtime to be gone (the sentinel dropped with it)
/// before it asks the pool for anything. (A connection's driver runs on the runtime that
/// opened it: with runtimes overlapping, one opened by the runtime that is shutting down dies
/// with it even after it was handed out.)
static TURN: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>> =
    tokio::sync::Mutex::const_new(None);

fn pool() -> Option<&'static Pool<PgManager>> {
    std::thread::spawn(|| LazyLock::force(&POOL).is_some())
        .join()
        .unwrap();
    POOL.as_ref()
}

async fn grow_query_and_time_out() {
    let Some(pool) = pool() else { return };
    let mut turn = TURN.lock().await;
    let follows = turn.is_some();
    if let Some(previous) = turn.take() {
        // Err once the previous test's runtime has dropped its sentinel; it drops the rest of
        // its tasks (the connections' drivers among them) in the same pass, in no set order,
        // so give that pass a moment to finish.
        let _ = previous.await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (sentinel, gone) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _sentinel = sentinel;
        std::future::pending::<()>().await
    });
    *turn = Some(gone);
    let errors_before = pool.stats().requests_errors;
    let lost_before = pool.stats().connections_lost;
    let mut held = Vec::new();
    for i in 0..2 {
        let conn = tokio::time::timeout(Duration::from_secs(10), pool.get())
            .await
            .unwrap_or_else(|_| panic!("get #{i} hung: {:?}", pool.status()))
            .unwrap_or_else(|e| panic!("get #{i}: {e}"));
        let row = conn.query_one("SELECT 1::int4", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        held.push(conn);
    }
    let err = tokio::time::timeout(Duration::from_secs(10), pool.get())
        .await
        .expect("the third get() ends by its deadline")
        .expect_err("both connections are out");
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        pool.stats().requests_errors,
        errors_before + 1,
        "only the timeout failed: connections whose driver died were replaced quietly"
    );
    if follows {
        assert!(
            pool.stats().connections_lost > lost_before,
            "the previous runtime's idle connections were found dead and replaced: {:?}",
            pool.stats()
        );
    }
    drop(held);
}

#[tokio::test(flavor = "current_thread")]
async fn static_pg_pool_first_current_thread_test() {
    grow_query_and_time_out().await;
}

#[tokio::test(flavor = "current_thread")]
async fn static_pg_pool_second_current_thread_test() {
    grow_query_and_time_out().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pg_pool_first_multi_thread_test() {
    grow_query_and_time_out().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pg_pool_second_multi_thread_test() {
    grow_query_and_time_out().await;
}
