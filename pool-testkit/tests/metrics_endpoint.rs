//! The demo's `--metrics` endpoint: Prometheus text with the pool's metrics, scraped once.

use std::time::Duration;

use pool_testkit::{scrape, serve_metrics, FakeManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_as_prometheus_text() {
    let (addr, _handle) = serve_metrics("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (manager, _backend) = FakeManager::new();
    let pool = pool_core::Pool::builder(manager)
        .name("scrape")
        .min_size(1)
        .housekeeping_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    let conn = pool.get().await.unwrap();
    // A housekeeping pass publishes the gauges.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let text = scrape(addr).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    for line in [
        "pool_connections{pool=\"scrape\"} 1",
        "pool_connections_in_use{pool=\"scrape\"} 1",
        "pool_checkouts_total{pool=\"scrape\"} 1",
        "pool_ceiling{pool=\"scrape\"} 10",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(text.contains("pool_wait_seconds"), "{text}");
    drop(conn);
}
