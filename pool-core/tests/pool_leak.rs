//! Leak detection: a connection held past `leak_threshold` is reported once, naming the
//! `get()` call site.
mod common;

use common::*;

#[tokio::test(start_paused = true)]
async fn a_connection_held_past_the_threshold_is_reported_with_its_call_site() {
    let (capture, _guard) = Capture::install();
    let (builder, _backend) = fake(1, 2);
    let pool = builder.leak_threshold(Some(secs(10))).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();

    let line = line!() + 1;
    let leaked = pool.get().await.unwrap();
    let quick = pool.get().await.unwrap();
    tokio::time::sleep(secs(3)).await;
    drop(quick); // returned in time: never reported
    tokio::time::sleep(secs(6)).await;
    assert!(
        !capture.text().contains("possible connection leak"),
        "reported too early:\n{}",
        capture.text()
    );

    tokio::time::sleep(secs(3)).await; // 12 s held, past the 10 s threshold (+ one housekeeping tick)
    let text = capture.text();
    let site = format!("pool_leak.rs:{line}");
    assert_eq!(
        text.matches("possible connection leak").count(),
        1,
        "{text}"
    );
    assert!(
        text.contains(&site),
        "the report names the call site {site}:\n{text}"
    );
    assert!(text.contains("leak_threshold_ms=10000"), "{text}");

    tokio::time::sleep(secs(30)).await;
    assert_eq!(
        capture.text().matches("possible connection leak").count(),
        1,
        "reported once"
    );
    drop(leaked);
    assert!(capture
        .text()
        .contains("a connection reported as a possible leak came back"));
    assert_eq!(pool.status().in_use, 0);
}

#[tokio::test(start_paused = true)]
async fn leak_detection_is_off_by_default() {
    let (capture, _guard) = Capture::install();
    let (builder, _backend) = fake(1, 2);
    let pool = builder.build().unwrap();
    let held = pool.get().await.unwrap();
    tokio::time::sleep(secs(3600)).await;
    // No word of a leak (but in the build's debug line, which names the setting itself).
    let text = capture.text();
    assert!(
        !text
            .lines()
            .any(|l| l.contains("leak") && !l.contains("pool built")),
        "{text}"
    );
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn detached_and_discarded_checkouts_stop_being_watched() {
    let (capture, _guard) = Capture::install();
    let (builder, _backend) = fake(0, 2);
    let pool = builder.leak_threshold(Some(secs(5))).build().unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let raw = pool_core::Object::take(a);
    pool_core::Object::discard(b);
    tokio::time::sleep(secs(60)).await;
    assert!(
        !capture.text().contains("possible connection leak"),
        "{}",
        capture.text()
    );
    drop(raw);
}
