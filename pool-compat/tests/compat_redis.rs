//! bb8-redis's and deadpool-redis's own managers on pool-core, against a real Redis server.
//! Each test selects a database of its own, so `CLIENT LIST` tells its connections apart.
mod common;

use std::time::Duration;

use common::*;
use pool_compat::{CompatError, FromBb8, FromDeadpool};
use pool_core::{CheckPolicy, ErrorClass, Manager, Pool, PoolError};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, ErrorKind, RedisError};

fn bb8(url: &str) -> FromBb8<bb8_redis::RedisConnectionManager> {
    FromBb8::new(bb8_redis::RedisConnectionManager::new(url).expect("a valid URL"))
}

fn deadpool(url: &str) -> FromDeadpool<deadpool_redis::Manager> {
    FromDeadpool::new(deadpool_redis::Manager::new(url).expect("a valid URL"))
}

/// `tasks` tasks each doing `rounds` SET/GET pairs on keys of their own; returns the values
/// read back that were wrong (none expected) and the errors.
async fn set_get<M>(pool: &Pool<M>, tag: &str, tasks: usize, rounds: usize) -> Vec<String>
where
    M: Manager<Connection = MultiplexedConnection, Error = CompatError<RedisError>>,
{
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let pool = pool.clone();
        let tag = tag.to_string();
        set.spawn(async move {
            let mut faults = Vec::new();
            for r in 0..rounds {
                let key = format!("pool-compat:{tag}:{t}");
                let value = format!("{t}-{r}");
                let outcome: Result<String, String> = async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    let () = conn.set(&key, &value).await.map_err(|e| e.to_string())?;
                    conn.get(&key).await.map_err(|e| e.to_string())
                }
                .await;
                match outcome {
                    Ok(v) if v == value => {}
                    Ok(v) => faults.push(format!("{key}: wrote {value}, read {v}")),
                    Err(e) => faults.push(format!("{key}: {e}")),
                }
            }
            faults
        });
    }
    let mut faults = Vec::new();
    while let Some(r) = set.join_next().await {
        faults.extend(r.expect("task"));
    }
    faults
}

fn assert_adds_up<M: Manager>(pool: &Pool<M>) {
    let s = pool.status();
    assert_eq!(s.size, s.idle + s.in_use, "{s:?}");
    assert_eq!((s.in_use, s.waiting), (0, 0), "{s:?}");
}

async fn sixteen_tasks<M>(pool: Pool<M>, db: u32, tag: &str, url: &str)
where
    M: Manager<Connection = MultiplexedConnection, Error = CompatError<RedisError>>,
{
    let faults = set_get(&pool, tag, 16, 50).await;
    assert!(faults.is_empty(), "{faults:?}");
    let stats = pool.stats();
    assert_eq!(stats.requests_num, 16 * 50);
    assert_eq!(stats.requests_errors, 0);
    assert!(stats.connections_num <= 8, "{stats:?}");
    assert_adds_up(&pool);
    let mut admin = admin(url).await.unwrap();
    assert_eq!(
        clients_in(&mut admin, db).await.len(),
        pool.status().size,
        "every pooled connection is a client on the server"
    );
    pool.close_and_wait().await;
    assert_eq!(
        await_clients(&mut admin, db, 0, Duration::from_secs(5)).await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_redis_manager_serves_16_tasks() {
    let Some(url) = redis_url().await else { return };
    let db = 1;
    let pool = Pool::builder(bb8(&format!("{url}/{db}")))
        .max_size(8)
        .build()
        .unwrap();
    sixteen_tasks(pool, db, "bb8", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_redis_manager_serves_16_tasks() {
    let Some(url) = redis_url().await else { return };
    let db = 2;
    let pool = Pool::builder(deadpool(&format!("{url}/{db}")))
        .max_size(8)
        .build()
        .unwrap();
    sixteen_tasks(pool, db, "deadpool", &url).await;
}

async fn kills_absorbed<M>(pool: Pool<M>, db: u32, tag: &str, url: &str)
where
    M: Manager<Connection = MultiplexedConnection, Error = CompatError<RedisError>>,
{
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    let mut admin = admin(url).await.unwrap();
    assert_eq!(
        await_clients(&mut admin, db, 4, Duration::from_secs(5)).await,
        4
    );
    let killed = kill_clients_in(&mut admin, db).await;
    assert_eq!(killed, 4);
    let faults = set_get(&pool, tag, 16, 10).await;
    assert!(faults.is_empty(), "no caller sees the kill: {faults:?}");
    let stats = pool.stats();
    assert_eq!(stats.requests_errors, 0);
    assert!(
        stats.connections_lost >= 4,
        "the killed connections were found by the check: {stats:?}"
    );
    assert_adds_up(&pool);
    assert_eq!(
        clients_in(&mut admin, db).await.len(),
        pool.status().size,
        "the pool holds only live connections"
    );
    pool.close_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_killed_connections_are_absorbed_under_check_always() {
    let Some(url) = redis_url().await else { return };
    let db = 3;
    let pool = Pool::builder(bb8(&format!("{url}/{db}")))
        .min_size(4)
        .max_size(4)
        .check(CheckPolicy::Always)
        .build()
        .unwrap();
    kills_absorbed(pool, db, "bb8-kill", &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_killed_connections_are_absorbed_under_check_always() {
    let Some(url) = redis_url().await else { return };
    let db = 4;
    let pool = Pool::builder(deadpool(&format!("{url}/{db}")))
        .min_size(4)
        .max_size(4)
        .check(CheckPolicy::Always)
        .build()
        .unwrap();
    kills_absorbed(pool, db, "deadpool-kill", &url).await;
}

async fn shrinks_to_the_floor<M>(pool: Pool<M>, db: u32, url: &str)
where
    M: Manager<Connection = MultiplexedConnection, Error = CompatError<RedisError>>,
{
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    let mut admin = admin(url).await.unwrap();
    // Six at once: the pool grows to its ceiling.
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(pool.get().await.unwrap());
    }
    assert_eq!(clients_in(&mut admin, db).await.len(), 6);
    drop(held);
    // Idle for 300 ms, the five above the floor close.
    let seen = await_clients(&mut admin, db, 1, Duration::from_secs(5)).await;
    assert_eq!(seen, 1, "CLIENT LIST back at the floor");
    assert_eq!(pool.status().size, 1);
    assert_eq!(pool.stats().connections_closed, 5);
    pool.close_and_wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_idle_shrink_is_seen_in_client_list() {
    let Some(url) = redis_url().await else { return };
    let db = 5;
    let pool = Pool::builder(bb8(&format!("{url}/{db}")))
        .min_size(1)
        .max_size(6)
        .max_idle(Some(Duration::from_millis(300)))
        .housekeeping_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    shrinks_to_the_floor(pool, db, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_idle_shrink_is_seen_in_client_list() {
    let Some(url) = redis_url().await else { return };
    let db = 6;
    let pool = Pool::builder(deadpool(&format!("{url}/{db}")))
        .min_size(1)
        .max_size(6)
        .max_idle(Some(Duration::from_millis(300)))
        .housekeeping_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    shrinks_to_the_floor(pool, db, &url).await;
}

fn auth_is_fatal(e: &RedisError) -> ErrorClass {
    if e.kind() == ErrorKind::AuthenticationFailed {
        ErrorClass::Fatal
    } else {
        ErrorClass::Transient
    }
}

/// A wrong password: by default retried (the timeout names the error); classified fatal, it
/// reaches the caller at once, named.
async fn wrong_password<M>(transient: Pool<M>, fatal: Pool<M>, right: Pool<M>)
where
    M: Manager<Connection = MultiplexedConnection, Error = CompatError<RedisError>>,
{
    let Err(err) = transient.get_timeout(Some(Duration::from_secs(1))).await else {
        panic!("a wrong password cannot be served")
    };
    let PoolError::Timeout(t) = &err else {
        panic!("transient by default: a timeout, got {err}")
    };
    let message = err.to_string();
    assert!(
        message.contains("AuthenticationFailed") || message.contains("WRONGPASS"),
        "the timeout names the connect error: {message}"
    );
    assert!(t.last_connect_error.is_some());
    assert!(transient.stats().connections_errors >= 2, "retried");

    let started = tokio::time::Instant::now();
    let Err(err) = fatal.get().await else {
        panic!("a wrong password cannot be served")
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "at once, not after the wait timeout"
    );
    match &err {
        PoolError::Backend(e) => {
            let inner = e.backend().expect("the manager's own error");
            assert_eq!(inner.kind(), ErrorKind::AuthenticationFailed, "{inner:?}");
        }
        other => panic!("classified fatal: a backend error, got {other}"),
    }
    assert_eq!(fatal.stats().connections_errors, 1, "not retried");

    // The right password works on the same server.
    let mut conn = right.get().await.expect("the right password");
    let pong: String = redis::cmd("PING").query_async(&mut *conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_a_wrong_password_reaches_the_caller_named() {
    let Some(server) = PrivateRedis::start("s3cret").await else {
        return;
    };
    let wrong = server.url("wrong");
    wrong_password(
        Pool::builder(bb8(&wrong)).build().unwrap(),
        Pool::builder(bb8(&wrong).classify_with(auth_is_fatal))
            .build()
            .unwrap(),
        Pool::builder(bb8(&server.url("s3cret"))).build().unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_a_wrong_password_reaches_the_caller_named() {
    let Some(server) = PrivateRedis::start("s3cret").await else {
        return;
    };
    let wrong = server.url("wrong");
    wrong_password(
        Pool::builder(deadpool(&wrong)).build().unwrap(),
        Pool::builder(deadpool(&wrong).classify_with(auth_is_fatal))
            .build()
            .unwrap(),
        Pool::builder(deadpool(&server.url("s3cret")))
            .build()
            .unwrap(),
    )
    .await;
}
