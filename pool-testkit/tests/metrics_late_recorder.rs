//! Regression: a recorder installed after `build()` (the pool built in one module, telemetry
//! set up in another) used to render nothing for the pool. Now the next housekeeping pass
//! registers the pool's metrics with it, each described (`# HELP`) from `pool_core::METRICS`.

use std::time::Duration;

use pool_testkit::{scrape, serve_metrics, FakeManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_installed_after_build_sees_the_pools_metrics_with_help() {
    let (manager, _backend) = FakeManager::new();
    let pool = pool_core::Pool::builder(manager)
        .name("late")
        .min_size(1)
        .housekeeping_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(5)).await.unwrap();
    // The recorder comes second.
    let (addr, _handle) = serve_metrics("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let text = scrape(addr).await.unwrap();
    for line in [
        "pool_connections{pool=\"late\"} 1",
        "pool_connections_in_use{pool=\"late\"} 1",
        "pool_checkouts_total{pool=\"late\"} 1",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    for (name, _, help) in pool_core::METRICS {
        if text.contains(&format!("{name}{{")) {
            let line = format!("# HELP {name} {help}");
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
    }
    assert!(
        text.contains("# HELP pool_connections open connections"),
        "{text}"
    );
    drop(conn);
}
