//! `tracing` events for connect failures, discarded connections and slow acquires.
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use pool_core::CheckPolicy;
use pool_testkit::Step;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn events_name_connect_failures_discards_and_slow_acquires() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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
