//! Metrics (the `metrics` feature): every metric in `pool_core::METRICS` is registered with
//! the pool's name and has the value a scripted run leads to.
#![cfg(feature = "metrics")]
mod common;

use std::collections::HashMap;

use common::*;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pool_core::{Pool, METRICS};
use pool_testkit::FakeManager;

#[tokio::test(start_paused = true)]
async fn every_metric_is_named_labelled_and_counts_what_happened() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (builder, backend) = fake(1, 3);
    // Handles are registered once, at build, with the recorder in place.
    let pool: Pool<FakeManager> = metrics::with_local_recorder(&recorder, || {
        builder
            .name("orders")
            .max_idle(Some(secs(10)))
            .wait_timeout(Some(ms(200)))
            .build()
            .unwrap()
    });
    pool.wait_ready(secs(1)).await.unwrap();
    // Three callers: the pool grows to 3.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    // A fourth times out.
    assert!(pool.get().await.unwrap_err().is_timeout());
    // One comes back broken; the others go idle and shrink back to the floor.
    held[0].break_it();
    tokio::time::sleep(ms(50)).await;
    drop(held);
    tokio::time::sleep(secs(12)).await;
    settle().await;

    let mut values: HashMap<String, DebugValue> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .filter(|l| l.key() != "pool")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        assert!(
            key.key()
                .labels()
                .any(|l| l.key() == "pool" && l.value() == "orders"),
            "{key:?} carries the pool's name"
        );
        let name = if labels.is_empty() {
            key.key().name().to_string()
        } else {
            format!("{}{{{}}}", key.key().name(), labels.join(","))
        };
        values.insert(name, value);
    }
    for (name, _, _) in METRICS {
        assert!(
            values
                .keys()
                .any(|k| k == name || k.starts_with(&format!("{name}{{"))),
            "{name} is registered: {:?}",
            values.keys().collect::<Vec<_>>()
        );
    }
    let gauge = |n: &str| match &values[n] {
        DebugValue::Gauge(v) => v.into_inner(),
        other => panic!("{n}: {other:?}"),
    };
    let counter = |n: &str| match &values[n] {
        DebugValue::Counter(v) => *v,
        other => panic!("{n}: {other:?}"),
    };
    let samples = |n: &str| match &values[n] {
        DebugValue::Histogram(v) => v.len(),
        other => panic!("{n}: {other:?}"),
    };
    let s = pool.status();
    assert_eq!(gauge("pool_connections"), s.size as f64);
    assert_eq!(s.size, 1, "back at the floor");
    assert_eq!(gauge("pool_connections_idle"), 1.0);
    assert_eq!(gauge("pool_connections_in_use"), 0.0);
    assert_eq!(gauge("pool_waiting"), 0.0);
    assert_eq!(gauge("pool_connecting"), 0.0);
    assert_eq!(gauge("pool_ceiling"), 3.0);
    assert_eq!(counter("pool_checkouts_total"), 3);
    assert_eq!(counter("pool_timeouts_total"), 1);
    assert_eq!(
        counter("pool_connect_attempts_total"),
        backend.connect_attempts()
    );
    assert_eq!(counter("pool_connect_failures_total{class=transient}"), 0);
    assert_eq!(counter("pool_connections_closed_total{reason=broken}"), 1);
    assert_eq!(counter("pool_connections_closed_total{reason=idle}"), 1);
    assert_eq!(counter("pool_connections_closed_total{reason=lifetime}"), 0);
    assert_eq!(samples("pool_wait_seconds"), 3);
    assert_eq!(
        samples("pool_connect_seconds") as u64,
        backend.connect_attempts()
    );
    assert_eq!(samples("pool_checkout_seconds"), 3);
}
