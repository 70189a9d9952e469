//! Faults between the pool and a real server, through the testkit's fault proxy: blackhole,
//! reset, refuse. Real time, bounded.
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pool_core::{CheckPolicy, Pool, PoolError};
use pool_postgres::PgManager;
use pool_testkit::{Fault, FaultProxy};

/// The test server's address and a connection string for it through `proxy`.
fn via_proxy(url: &str, proxy: &FaultProxy, app: &str) -> String {
    let mut config: pool_postgres::tokio_postgres::Config = url.parse().unwrap();
    config.application_name(app);
    let mut s = common::to_key_values(&config);
    // Point host/port at the proxy.
    s = s
        .split(' ')
        .filter(|kv| !kv.starts_with("host=") && !kv.starts_with("port="))
        .collect::<Vec<_>>()
        .join(" ");
    format!("host=127.0.0.1 port={} {s}", proxy.addr().port())
}

fn upstream(url: &str) -> SocketAddr {
    let config: pool_postgres::tokio_postgres::Config = url.parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(pool_postgres::tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if host == "localhost" {
        "127.0.0.1".to_string()
    } else {
        host
    };
    format!("{host}:{port}")
        .parse()
        .expect("the test server is named by IP address or localhost")
}

fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_while_idle_is_caught_by_the_check_and_a_fresh_connection_serves() {
    let url = require_server!();
    let proxy = FaultProxy::start(upstream(&url)).await.unwrap();
    let app = common::unique("blackhole");
    let manager = PgManager::from_url(&via_proxy(&url, &proxy, &app)).unwrap();
    let check_timeout = Duration::from_secs(1);
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(2)
        .check(CheckPolicy::Always)
        .check_timeout(check_timeout)
        .connect_timeout(Duration::from_secs(2))
        .wait_timeout(Some(Duration::from_secs(15)))
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();

    proxy.set(Fault::Blackhole);
    let t0 = Instant::now();
    let getter = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let conn = pool.get().await?;
            conn.simple_query("SELECT 1")
                .await
                .expect("the fresh connection works");
            Ok::<_, PoolError<pool_postgres::PgError>>(())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(proxy.fault(), Fault::Blackhole);
    proxy.set(Fault::Pass); // the path is back while the check is still hanging
    getter
        .await
        .unwrap()
        .expect("the caller is served, no error");
    let recovered = t0.elapsed();
    assert!(
        recovered >= check_timeout,
        "the blackholed check had to time out: {recovered:?}"
    );
    assert!(
        recovered < check_timeout + Duration::from_secs(2),
        "within check timeout + connect time: {recovered:?}"
    );
    assert_eq!(pool.stats().connections_lost, 1);
    report(&format!(
        "fault blackhole: caller served after {recovered:?} (check timeout {check_timeout:?})"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_of_every_connection_is_absorbed_with_check_always() {
    let url = require_server!();
    let proxy = FaultProxy::start(upstream(&url)).await.unwrap();
    let app = common::unique("reset");
    let manager = PgManager::from_url(&via_proxy(&url, &proxy, &app)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(3)
        .max_size(3)
        .check(CheckPolicy::Always)
        .check_timeout(Duration::from_secs(2))
        .wait_timeout(Some(Duration::from_secs(15)))
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    proxy.set(Fault::Reset);
    // Every open connection is reset.
    assert!(common::eventually(Duration::from_secs(5), || async { proxy.open() == 0 }).await);
    proxy.set(Fault::Pass);
    let t0 = Instant::now();
    for i in 0..10i32 {
        let conn = pool.get().await.expect("no error reaches the caller");
        let row = conn
            .query_one("SELECT $1::int4", &[&i])
            .await
            .expect("a working connection");
        assert_eq!(row.get::<_, i32>(0), i);
    }
    let took = t0.elapsed();
    let stats = pool.stats();
    assert_eq!(stats.connections_lost, 3, "{stats:?}");
    assert_eq!(stats.requests_errors, 0);
    report(&format!(
        "fault reset: 3 connections reset, 10 checkouts served without error in {took:?}"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_server_is_retried_at_the_backoff_rate_and_the_floor_returns() {
    let url = require_server!();
    let proxy = FaultProxy::start(upstream(&url)).await.unwrap();
    let app = common::unique("refuse");
    let manager = PgManager::from_url(&via_proxy(&url, &proxy, &app)).unwrap();
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(4)
        .check(CheckPolicy::Always)
        .check_timeout(Duration::from_millis(500))
        .wait_timeout(Some(Duration::from_secs(1)))
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();

    // The server goes away: open connections are reset, new ones refused, for 30 s. Refusing
    // starts only once every open connection has been reset: a connection whose reset was
    // still pending would pass under `Refuse` (the count of resets alone can be reached by
    // replacements reset as they arrive).
    proxy.set(Fault::Reset);
    assert!(common::eventually(Duration::from_secs(5), || async { proxy.open() == 0 }).await);
    proxy.set(Fault::Refuse);
    let refused_at = Instant::now();
    let errors_before = pool.stats().connections_errors;
    // A caller finds the dead connections (its checks fail; both are discarded) and times out.
    match pool.get().await {
        Err(PoolError::Timeout(_)) => {}
        Ok(_) => panic!("a connection got through the refusal"),
        Err(e) => panic!("expected a timeout, got {e}"),
    }
    let outage = Duration::from_secs(30);
    tokio::time::sleep(outage.saturating_sub(refused_at.elapsed())).await;
    let attempts = pool.stats().connections_errors - errors_before;
    // Full-jitter backoff from 10 ms to a 2 s cap: a few quick retries, then about one a second.
    assert!(
        (10..=90).contains(&attempts),
        "{attempts} connect attempts in {outage:?}"
    );

    proxy.set(Fault::Pass);
    let back = Instant::now();
    assert!(
        common::eventually(Duration::from_secs(5), || async { pool.status().size >= 2 }).await,
        "the floor did not come back: {:?}",
        pool.status()
    );
    let recovered = back.elapsed();
    assert!(
        recovered <= Duration::from_millis(2500),
        "back at the floor {recovered:?} after the refusal ended"
    );
    report(&format!(
        "fault refuse: {attempts} connect attempts during a {outage:?} refusal; floor back {recovered:?} after it ended"
    ));
}
