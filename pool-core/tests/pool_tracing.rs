//! `tracing` events for connect failures, discarded connections and slow acquires.
mod common;

use common::*;
use pool_core::CheckPolicy;
use pool_testkit::Step;

#[tokio::test(start_paused = true)]
async fn events_name_connect_failures_discards_and_slow_acquires() {
    let (capture, _guard) = Capture::install();

    let (builder, backend) = fake(1, 2);
    backend.script_connect([Step::Transient, Step::Ok]);
    let pool = builder
        .check(CheckPolicy::Always)
        .slow_acquire_threshold(Some(ms(500)))
        .build()
        .unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    let text = capture.text();
    assert!(text.contains("connect failed"), "{text}");
    assert!(
        text.contains("fake backend: connect refused (transient)"),
        "{text}"
    );
    assert!(text.contains("attempt=1"), "{text}");

    backend.script_check([Step::Transient]);
    drop(pool.get().await.unwrap());
    let text = capture.text();
    assert!(
        text.contains("health check failed; connection discarded"),
        "{text}"
    );

    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(drop) })
    };
    tokio::time::sleep(secs(1)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
    let text = capture.text();
    assert!(
        text.contains("slow acquire") && text.contains("waited_ms=1000"),
        "{text}"
    );
    assert!(!text.contains("ERROR"), "{text}");
}
