//! Outage recovery: a 10 s outage with 50 tasks asking for connections (1 s per-get limit),
//! then the server is back. During the outage the pool stays quiet (a couple of connect
//! attempts a second, whatever the number of callers); once it is back the first caller is
//! served within about a second, and gets that start a second after recovery do not fail.
//! On the paused clock: the whole run takes milliseconds.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use pool_testkit::Step;
use tokio::time::Instant;

struct Figures {
    attempts_per_sec: f64,
    first_success_after: Duration,
    errors_after: usize,
}

async fn outage_run() -> Figures {
    let (builder, backend) = fake(1, 10);
    let pool = builder.wait_timeout(Some(secs(1))).build().unwrap();
    pool.wait_ready(secs(1)).await.unwrap();
    // The server goes away: its connection dies, new connects are refused.
    backend.break_all();
    backend.set_connect_default(Step::Transient);
    let start = Instant::now();
    let attempts_before = backend.connect_attempts();
    let outcomes: Arc<Mutex<Vec<(Instant, Instant, bool)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (pool, outcomes, stop) = (pool.clone(), Arc::clone(&outcomes), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let asked = Instant::now();
                let got = pool.get().await;
                let ok = got.is_ok();
                outcomes.lock().unwrap().push((asked, Instant::now(), ok));
                match got {
                    Ok(conn) => {
                        tokio::time::sleep(ms(5)).await;
                        drop(conn);
                    }
                    Err(_) => tokio::time::sleep(ms(10)).await,
                }
            }
        }));
    }
    tokio::time::sleep(secs(10)).await;
    let attempts = backend.connect_attempts() - attempts_before;
    backend.set_connect_default(Step::Ok);
    let back = Instant::now();
    tokio::time::sleep(secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap();
    let first_success = outcomes
        .iter()
        .filter(|(_, end, ok)| *ok && *end >= back)
        .map(|(_, end, _)| *end)
        .min()
        .expect("served after the outage");
    let errors_after = outcomes
        .iter()
        .filter(|(asked, _, ok)| !ok && *asked >= back + secs(1))
        .count();
    let _ = start;
    Figures {
        attempts_per_sec: attempts as f64 / 10.0,
        first_success_after: first_success - back,
        errors_after,
    }
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_callers_are_served_within_a_second_and_the_outage_stays_quiet() {
    let runs: usize = std::env::var("OUTAGE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for run in 0..runs {
        let f = outage_run().await;
        eprintln!(
            "outage run {run}: {:.1} connect attempts/s during, first success {:?} after, {} errors after +1 s",
            f.attempts_per_sec, f.first_success_after, f.errors_after
        );
        // While callers wait, consecutive attempts are at most 1 s apart, and at least 0.6 s
        // once the backoff reaches its ceiling: after the few quick first retries, under two
        // a second (2.5 bounds the rare run whose first retries all come at once).
        if std::env::var_os("OUTAGE_REPORT_ONLY").is_some() {
            continue;
        }
        assert!(f.attempts_per_sec <= 2.5, "{:.1}/s", f.attempts_per_sec);
        assert!(
            f.first_success_after <= secs(1),
            "{:?}",
            f.first_success_after
        );
        assert_eq!(f.errors_after, 0);
    }
}
