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

#[tokio::test(start_paused = true)]
async fn spans_around_a_wait_a_connect_and_the_hooks_carry_the_pool_name() {
    use tracing_subscriber::fmt::format::FmtSpan;
    let capture = pool_testkit::Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (builder, backend) = fake(0, 1);
    backend.script_connect([pool_testkit::Step::Slow(ms(40))]);
    let pool = builder
        .name("orders")
        .after_connect(|_conn| Box::pin(async { Ok(()) }))
        .before_checkout(|_conn, _info| Box::pin(async { Ok(()) }))
        .build()
        .unwrap();
    assert_eq!(pool.name(), "orders");
    let conn = pool.get().await.unwrap();
    drop(conn);
    // A second get finds the connection idle: no wait span.
    drop(pool.get().await.unwrap());
    settle().await;

    let text = capture.text();
    // A span's own close line: the span (innermost) followed by the close event.
    let closes = |span: &str| {
        text.lines()
            .filter(|l| l.contains(&format!("{span}: pool_core: close")))
            .count()
    };
    assert_eq!(
        closes("pool.wait{pool=orders waited_ms=40}"),
        1,
        "only the get() that waited:\n{text}"
    );
    assert_eq!(text.matches("pool.wait{").count(), 1, "{text}");
    assert_eq!(closes("pool.connect{pool=orders}"), 1, "{text}");
    assert_eq!(closes("pool.after_connect{pool=orders}"), 1, "{text}");
    assert_eq!(
        closes("pool.before_checkout{pool=orders conn=1}"),
        2,
        "{text}"
    );
}
