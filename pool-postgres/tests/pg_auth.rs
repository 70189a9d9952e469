//! Credentials on a private scram-sha-256 cluster: a wrong password fails at once, named; a
//! password provider is asked before every connect, and asked again once when the server
//! refuses it, so a rotation mid-run costs callers nothing.
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use pool_core::{Object, Pool, PoolError};
use pool_postgres::{PgManager, ProviderError};
use tokio::task::{spawn_blocking, JoinSet};

fn conninfo(c: &Cluster, user: &str, password: &str, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname=postgres application_name={app}",
        c.port
    )
}

async fn cluster_with_role(role: &str, password: &str) -> Cluster {
    let (role, password) = (role.to_string(), password.to_string());
    spawn_blocking(move || {
        let c = Cluster::new();
        c.sql(&format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"));
        c
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_the_first_get_at_once_naming_28p01() {
    let _ = require_server!();
    let cluster = cluster_with_role("app", "right").await;
    let manager = PgManager::from_url(&conninfo(&cluster, "app", "wrong", "auth")).unwrap();
    let pool = Pool::builder(manager)
        .wait_timeout(Some(Duration::from_secs(10)))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.get().await.expect_err("wrong password");
    let took = started.elapsed();
    let PoolError::Backend(e) = &err else {
        panic!("expected the fatal backend error at once, got {err:?}")
    };
    assert_eq!(e.code().map(|c| c.code()), Some("28P01"), "{e}");
    assert!(err.to_string().contains("28P01"), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "no password in the error: {err}"
    );
    assert!(
        took < Duration::from_secs(2),
        "at once, not after the wait timeout: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_password_is_refreshed_once_and_the_connect_retried() {
    let _ = require_server!();
    let cluster = cluster_with_role("app", "fresh").await;
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    // A token cache that hands out a stale token first.
    let manager = PgManager::from_url(&conninfo(&cluster, "app", "unused", "stale"))
        .unwrap()
        .password_provider(move || {
            let n = c.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok::<_, ProviderError>(if n == 0 { "stale" } else { "fresh" }.to_string())
            }
        });
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool
        .get()
        .await
        .expect("the retry with the fresh password works");
    conn.simple_query("SELECT 1").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(pool.manager().auth_retries(), 1);
    assert_eq!(pool.stats().connections_errors, 0);

    // A provider that only ever has a wrong password: fatal after one retry, named.
    let manager = PgManager::from_url(&conninfo(&cluster, "app", "unused", "stale2"))
        .unwrap()
        .password_provider(|| async { Ok::<_, ProviderError>("nope".to_string()) });
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let err = pool.get().await.expect_err("never right");
    assert!(matches!(err, PoolError::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("28P01"), "{err}");
    assert_eq!(pool.manager().auth_retries(), 1);

    // A provider that fails: a transient connect error that names it.
    let manager = PgManager::from_url(&conninfo(&cluster, "app", "unused", "stale3"))
        .unwrap()
        .password_provider(|| async { Err::<String, _>("secret store unreachable") });
    let pool = Pool::builder(manager)
        .max_size(1)
        .wait_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let err = pool.get().await.expect_err("no password");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        err.to_string().contains("secret store unreachable"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotated_mid_run_costs_no_caller_errors() {
    let _ = require_server!();
    let cluster = Arc::new(cluster_with_role("app", "one").await);
    let secret = Arc::new(Mutex::new("one".to_string()));
    let s = Arc::clone(&secret);
    let manager = PgManager::from_url(&conninfo(&cluster, "app", "unused", "rotate"))
        .unwrap()
        .password_provider(move || {
            let current = s.lock().unwrap().clone();
            async move { Ok::<_, ProviderError>(current) }
        });
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(4)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for task in 0..8u64 {
        let (pool, stop, errors) = (pool.clone(), Arc::clone(&stop), Arc::clone(&errors));
        set.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match pool.get().await {
                    Ok(conn) => {
                        if conn.simple_query("SELECT 1").await.is_err() {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        // Every other use a connection is closed, so connects keep happening
                        // across the rotation.
                        if (n + task).is_multiple_of(2) {
                            Object::discard(conn);
                        }
                    }
                    Err(e) => {
                        eprintln!("get: {e}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = pool.stats().connections_num;
    // The rotation: the server, then at once the secret store. A connect that read the old
    // password just before and authenticates just after is refused (28P01), asks the
    // provider again and gets the new one.
    let (c, s) = (Arc::clone(&cluster), Arc::clone(&secret));
    spawn_blocking(move || {
        c.sql("ALTER ROLE app PASSWORD 'two'");
        *s.lock().unwrap() = "two".to_string();
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let stats = pool.stats();
    eprintln!(
        "rotation: {} connects after the rotation began, {} refused and retried with a fresh password, {} connect errors, {} caller errors",
        stats.connections_num - before,
        pool.manager().auth_retries(),
        stats.connections_errors,
        errors.load(Ordering::Relaxed)
    );
    assert_eq!(errors.load(Ordering::Relaxed), 0);
    assert!(
        stats.connections_num - before >= 10,
        "connects happened across the rotation"
    );
}
