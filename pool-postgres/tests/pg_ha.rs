//! High availability on private clusters (the shared server is never touched): a standby
//! listed first, failover by promotion, demotion in place, load balancing over standbys, a
//! restart under an idle pool; and on the shared server, cancelling a pooled connection's
//! query and one terminated backend costing one connect.
mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, SUPERUSER_PASSWORD};
use pool_core::{CheckPolicy, Pool};
use pool_postgres::tokio_postgres::{error::SqlState, NoTls};
use pool_postgres::PgManager;
use tokio::task::{spawn_blocking, JoinSet};

/// A connection string over these clusters' ports, in order.
fn over(clusters: &[&Cluster], app: &str, extra: &str) -> String {
    let ports: Vec<String> = clusters.iter().map(|c| c.port.to_string()).collect();
    let hosts = vec!["127.0.0.1"; clusters.len()].join(",");
    format!(
        "host={hosts} port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres application_name={app} {extra}",
        ports.join(",")
    )
}

/// Clusters are made with blocking commands: off the runtime's threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_blocking(f).await.expect("cluster command")
}

/// A primary with a table `w (task, n)` and a streaming standby of it.
async fn primary_and_standby() -> (Cluster, Cluster) {
    blocking(|| {
        let p = Cluster::new();
        p.sql("CREATE TABLE w (task int, n int)");
        let s = p.standby();
        (p, s)
    })
    .await
}

/// A ready pool (min 2, max 8) over these clusters with `target_session_attrs=read-write`.
async fn read_write_pool(clusters: &[&Cluster], app: &str) -> Pool<PgManager> {
    let manager =
        PgManager::from_url(&over(clusters, app, "target_session_attrs=read-write")).unwrap();
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(8)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    pool
}

/// Two clusters with a table `w (task, n)`: A writable, B read-only (as a demoted node is).
async fn writable_and_read_only() -> (Cluster, Cluster) {
    blocking(|| {
        let a = Cluster::new();
        let b = Cluster::new();
        for c in [&a, &b] {
            c.sql("CREATE TABLE w (task int, n int)");
        }
        b.sql("ALTER SYSTEM SET default_transaction_read_only = on");
        b.sql("SELECT pg_reload_conf()");
        (a, b)
    })
    .await
}

/// Demotion in place: A becomes read-only, B writable.
async fn demote_first(a: Cluster, b: Cluster) -> (Cluster, Cluster) {
    blocking(move || {
        a.sql("ALTER SYSTEM SET default_transaction_read_only = on");
        a.sql("SELECT pg_reload_conf()");
        b.sql("ALTER SYSTEM RESET default_transaction_read_only");
        b.sql("SELECT pg_reload_conf()");
        (a, b)
    })
    .await
}

fn count(c: &Cluster, sql: &str) -> i64 {
    c.sql(sql)
        .parse()
        .unwrap_or_else(|_| panic!("a number from {sql}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_skips_a_standby_listed_first() {
    let _ = require_server!();
    let (primary, standby) = primary_and_standby().await;
    let app = common::unique("rw_first");
    let pool = read_write_pool(&[&standby, &primary], &app).await;

    let mut set = JoinSet::new();
    for task in 0..16i32 {
        let pool = pool.clone();
        set.spawn(async move {
            for n in 0..100i32 {
                let conn = pool.get().await.unwrap();
                if n == 0 {
                    let row = conn
                        .query_one("SELECT pg_is_in_recovery()", &[])
                        .await
                        .unwrap();
                    assert!(!row.get::<_, bool>(0), "a pooled connection on the standby");
                }
                conn.execute("INSERT INTO w VALUES ($1, $2)", &[&task, &n])
                    .await
                    .expect("every write lands on the primary");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    assert_eq!(count(&primary, "SELECT count(*) FROM w"), 1600);
    let q = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    // A connect still in flight tries the standby first and is turned away there; its backend
    // lingers until the server sees the socket close. Once no connect is in flight, nothing
    // of the pool's is left on the standby.
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            pool.status().connecting == 0 && count(&standby, &q) == 0
        })
        .await,
        "no pooled connection on the standby: {} backends there, {:?}",
        count(&standby, &q),
        pool.status()
    );
    // (A connect still in flight may add one: compare with the pool's size when it is done.)
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            let s = pool.status();
            s.connecting == 0 && count(&primary, &q) == s.size as i64
        })
        .await,
        "the pool's connections are on the primary: {:?}, {} backends",
        pool.status(),
        count(&primary, &q)
    );
}

/// What the writers saw.
#[derive(Default)]
struct Writes {
    ok: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// Moments of successful writes, for the gap around a failover.
    times: Mutex<Vec<Instant>>,
}

/// 16 tasks writing through `pool` until `stop` is set; each write on a fresh checkout.
fn writers(pool: &Pool<PgManager>, writes: &Arc<Writes>, stop: &Arc<AtomicUsize>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for task in 0..16i32 {
        let (pool, writes, stop) = (pool.clone(), Arc::clone(writes), Arc::clone(stop));
        set.spawn(async move {
            let mut n = 0i32;
            while stop.load(Ordering::Relaxed) == 0 {
                n += 1;
                let conn = match pool.get().await {
                    Ok(c) => c,
                    Err(e) => {
                        writes.errors.lock().unwrap().push(format!("get: {e}"));
                        continue;
                    }
                };
                match conn
                    .execute("INSERT INTO w VALUES ($1, $2)", &[&task, &n])
                    .await
                {
                    Ok(_) => {
                        writes.ok.fetch_add(1, Ordering::Relaxed);
                        writes.times.lock().unwrap().push(Instant::now());
                    }
                    Err(e) => {
                        let code = e.code().map(|c| c.code().to_string());
                        writes.errors.lock().unwrap().push(format!("{code:?}: {e}"));
                    }
                }
            }
        });
    }
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_promoted_standby_resumes_writes_within_three_seconds() {
    let _ = require_server!();
    let (primary, standby) = primary_and_standby().await;
    let app = common::unique("failover");
    let pool = read_write_pool(&[&primary, &standby], &app).await;
    let writes = Arc::new(Writes::default());
    let stop = Arc::new(AtomicUsize::new(0));
    let mut set = writers(&pool, &writes, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = writes.ok.load(Ordering::Relaxed);
    assert!(before > 0, "writes flow before the failover");

    let stopped_at = Instant::now();
    let (primary, standby) = blocking(move || {
        let mut p = primary;
        p.stop();
        (p, standby)
    })
    .await;
    let stop_done = Instant::now();
    let errors_at_stop = writes.errors.lock().unwrap().len();
    let standby = blocking(move || {
        standby.promote();
        standby
    })
    .await;
    let promoted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(1, Ordering::Relaxed);
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }

    let first_after = writes
        .times
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t > promoted_at)
        .min()
        .expect("writes resumed after the promotion");
    let resumed = first_after - promoted_at;
    let gap = writes
        .times
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|t| *t > stop_done)
        .min()
        .map(|t| t - stop_done);
    let errors = writes.errors.lock().unwrap().clone();
    eprintln!(
        "failover: stop took {:?}, promotion {:?}; first write {gap:?} after the stop ended, {resumed:?} after pg_ctl promote returned; \
         {} writes ok, {} caller errors ({} of them by the end of the stop): {errors:?}",
        stop_done - stopped_at,
        promoted_at - stop_done,
        writes.ok.load(Ordering::Relaxed),
        errors.len(),
        errors_at_stop
    );
    assert!(
        resumed <= Duration::from_secs(3),
        "writes resumed after {resumed:?}"
    );
    // Only writes in flight when the primary stopped fail: at most one per writer, and none
    // with 25006 (nothing ran on a read-only server).
    assert!(errors.len() <= 16, "{errors:?}");
    assert_eq!(
        errors.len(),
        errors_at_stop,
        "no error after the stop: {errors:?}"
    );
    assert!(!errors.iter().any(|e| e.contains("25006")), "{errors:?}");
    // Every write that succeeded is on the new primary (the old one shipped its WAL before
    // it stopped).
    assert_eq!(
        count(&standby, "SELECT count(*) FROM w") as u64,
        writes.ok.load(Ordering::Relaxed)
    );
    drop(primary);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demotion_in_place_evicts_that_servers_connections_and_writes_move_on() {
    let _ = require_server!();
    let (a, b) = writable_and_read_only().await;
    let app = common::unique("demote");
    let manager =
        PgManager::from_url(&over(&[&a, &b], &app, "target_session_attrs=read-write")).unwrap();
    let pool = Pool::builder(manager)
        .min_size(4)
        .max_size(8)
        .check(CheckPolicy::Never)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let writes = Arc::new(Writes::default());
    let stop = Arc::new(AtomicUsize::new(0));
    let mut set = writers(&pool, &writes, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let on_a_before = count(&a, "SELECT count(*) FROM w");
    assert!(on_a_before > 0);
    assert_eq!(count(&b, "SELECT count(*) FROM w"), 0);

    // A becomes read-only, B writable.
    let (a, b) = demote_first(a, b).await;
    let flipped_ok = writes.ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(1, Ordering::Relaxed);
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let errors = writes.errors.lock().unwrap().clone();
    let on_b = count(&b, "SELECT count(*) FROM w");
    // Closed connections' backends exit a moment after the pool drops them. A connect still
    // in flight tries A first and is turned away there (A is read-only now); its backend
    // lingers until the server sees the socket close. So A is looked at once no connect is in
    // flight, and the look that finds it empty is the one that counts: a count taken after it
    // could catch the next connect's turned-away attempt.
    let q = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    let evicted = common::eventually(Duration::from_secs(5), || async {
        pool.status().connecting == 0 && count(&a, &q) == 0
    })
    .await;
    eprintln!(
        "demotion: {} writes on A before, {on_b} on B after; {} caller errors (25006 on A's \
         connections in use); demotions seen {}",
        on_a_before,
        errors.len(),
        pool.manager().demotions_seen()
    );
    assert!(pool.manager().demotions_seen() >= 1);
    assert!(on_b > 100, "writes continue on B: {on_b}");
    assert!(
        writes.ok.load(Ordering::Relaxed) > flipped_ok,
        "writes succeed after the flip"
    );
    // Only connections to A in use at the flip see 25006; at most one error per connection.
    assert!(errors.len() <= 8, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("25006")), "{errors:?}");
    assert!(
        evicted,
        "A's connections were evicted: {} backends there, {:?}",
        count(&a, &q),
        pool.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balanced_read_only_connections_spread_over_two_standbys() {
    let _ = require_server!();
    let (primary, s1, s2) = blocking(|| {
        let p = Cluster::new();
        let s1 = p.standby();
        let s2 = p.standby();
        (p, s1, s2)
    })
    .await;
    let app = common::unique("balance");
    let manager = PgManager::from_url(&over(
        &[&primary, &s1, &s2],
        &app,
        "target_session_attrs=read-only load_balance_hosts=random",
    ))
    .unwrap();
    // 24 connections: with a fair coin, fewer than 4 on one standby has a probability of
    // about 3 in 10,000 (with 16 it would be 2 in 100).
    let n = 24;
    let pool = Pool::builder(manager)
        .min_size(n)
        .max_size(n)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(20)).await.unwrap();
    let q = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    let (c0, c1, c2) = (count(&primary, &q), count(&s1, &q), count(&s2, &q));
    eprintln!("load balancing: primary {c0}, standby 1 {c1}, standby 2 {c2}");
    assert_eq!(c0, 0, "read-only: none on the primary");
    assert_eq!((c1 + c2) as usize, n);
    assert!(c1 >= 4 && c2 >= 4, "spread over both: {c1} and {c2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_an_idle_pool_is_followed_by_gets_without_errors() {
    let _ = require_server!();
    let cluster = blocking(Cluster::new).await;
    let app = common::unique("restart");
    let manager = PgManager::from_url(&over(&[&cluster], &app, "")).unwrap();
    let pool = Pool::builder(manager)
        .min_size(4)
        .max_size(8)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let _cluster = blocking(move || {
        let mut c = cluster;
        c.restart();
        c
    })
    .await;
    let mut errors = 0;
    for i in 0..100i32 {
        match pool.get().await {
            Ok(conn) => match conn.query_one("SELECT $1::int4", &[&i]).await {
                Ok(row) => assert_eq!(row.get::<_, i32>(0), i),
                Err(e) => {
                    errors += 1;
                    eprintln!("query {i}: {e}");
                }
            },
            Err(e) => {
                errors += 1;
                eprintln!("get {i}: {e}");
            }
        }
    }
    assert_eq!(errors, 0);
    assert!(pool.stats().connections_lost >= 4 || pool.stats().returns_bad > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_terminated_backend_costs_at_most_one_connect() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("one_term");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(8)
        .max_size(8)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let opened = pool.stats().connections_num;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 \
             AND pid = (SELECT min(pid) FROM pg_stat_activity WHERE application_name = $1)",
            &[&app],
        )
        .await
        .unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            pool.manager().server_restarts_seen() >= 1
        })
        .await,
        "the connection task saw 57P01"
    );
    // Every connection used several times, eight at once.
    for round in 0..5 {
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.get().await.expect("no caller error"));
        }
        for conn in &held {
            conn.simple_query("SELECT 1")
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    let new = pool.stats().connections_num - opened;
    eprintln!("one terminated backend of 8: {new} new connect(s)");
    assert!(new <= 1, "{new} connects for one terminated backend");
    assert_eq!(pool.stats().requests_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connections_query_can_be_cancelled() {
    let url = require_server!();
    let manager = PgManager::from_url(&url).unwrap();
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let token = conn.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = conn.simple_query("SELECT pg_sleep(10)").await.map(drop);
        (r, conn)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    token
        .cancel_query(NoTls)
        .await
        .expect("the cancel request is sent");
    let (result, conn) = sleeper.await.unwrap();
    let took = started.elapsed();
    let err = result.expect_err("the query was cancelled");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(took < Duration::from_secs(1), "cancelled after {took:?}");
    // The connection is used again afterwards.
    conn.simple_query("SELECT 1")
        .await
        .expect("usable after the cancel");
    drop(conn);
    let again = pool.get().await.unwrap();
    again.simple_query("SELECT 1").await.unwrap();
}

/// Demotion in place while a transaction runs: the 25006 inside the transaction is watched as
/// a plain statement's is, and the demoted server's connections are evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demotion_seen_inside_a_transaction_evicts_that_servers_connections() {
    let _ = require_server!();
    let (a, b) = writable_and_read_only().await;
    let app = common::unique("demote_tx");
    let manager =
        PgManager::from_url(&over(&[&a, &b], &app, "target_session_attrs=read-write")).unwrap();
    let pool = Pool::builder(manager)
        .min_size(3)
        .max_size(3)
        .check(CheckPolicy::Never)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let mut conn = pool.get().await.unwrap();
    // A is demoted in place: new transactions there are read-only.
    let (a, b) = demote_first(a, b).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tx = conn.transaction().await.unwrap();
    let err = tx
        .execute("INSERT INTO w VALUES (1, 1)", &[])
        .await
        .expect_err("A is read-only now");
    assert_eq!(err.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION));
    drop(tx);
    assert_eq!(
        pool.manager().demotions_seen(),
        1,
        "seen through the transaction"
    );
    drop(conn);
    // The connection in hand and the idle ones to A are closed; writes go to B.
    let q = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'");
    let evicted = common::eventually(Duration::from_secs(5), || async {
        let _ = pool.get().await;
        pool.status().connecting == 0 && count(&a, &q) == 0
    })
    .await;
    assert!(
        evicted,
        "A's connections: {}, {:?}",
        count(&a, &q),
        pool.status()
    );
    let mut conn = pool.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.execute("INSERT INTO w VALUES (2, 2)", &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(conn);
    assert_eq!(count(&b, "SELECT count(*) FROM w"), 1);
}
