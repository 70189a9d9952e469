//! The main demo: a bursty workload on an elastic pool, showing it grow to its ceiling under a
//! burst and shrink back to its floor when idle.
//!
//! ```text
//! cargo run --release --example elastic
//! ```
//!
//! Runs on the built-in fake backend (connects take 50 ms); needs no database.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pool_core::{Pool, Status};
use pool_testkit::{FakeManager, Step};
use tokio::time::Instant;

struct Phase {
    name: &'static str,
    secs: f64,
    /// New checkouts per second.
    rate: f64,
    /// Hold range in ms.
    hold: (u64, u64),
}

const PHASES: &[Phase] = &[
    Phase {
        name: "trickle",
        secs: 1.5,
        rate: 20.0,
        hold: (2, 8),
    },
    Phase {
        name: "burst",
        secs: 3.0,
        rate: 350.0,
        hold: (10, 40),
    },
    Phase {
        name: "idle",
        secs: 5.0,
        rate: 2.0,
        hold: (2, 5),
    },
];

const MIN: usize = 2;
const MAX: usize = 10;
const MAX_IDLE: Duration = Duration::from_secs(2);
const CONNECT_LATENCY: Duration = Duration::from_millis(50);

fn line(t: Duration, phase: &str, s: &Status, opened: u64, closed: u64) -> String {
    let bar: String = (0..MAX)
        .map(|i| {
            if i < s.in_use {
                '#'
            } else if i < s.size {
                '-'
            } else {
                '.'
            }
        })
        .collect();
    format!(
        "t={:>5.2}s {:<7} [{bar}] size={:>2} idle={:>2} in_use={:>2} waiting={:>3} connecting={} opened={:>2} closed={:>2}",
        t.as_secs_f64(),
        phase,
        s.size,
        s.idle,
        s.in_use,
        s.waiting,
        s.connecting,
        opened,
        closed
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let (manager, backend) = FakeManager::new();
    backend.set_connect_default(Step::Slow(CONNECT_LATENCY));
    let pool = Pool::builder(manager)
        .min_size(MIN)
        .max_size(MAX)
        .max_idle(Some(MAX_IDLE))
        .housekeeping_interval(Duration::from_millis(100))
        .build()
        .expect("valid config");
    pool.wait_ready(Duration::from_secs(5))
        .await
        .expect("the fake backend is up");

    println!("elastic pool demo: min {MIN}, max {MAX}, max_idle {MAX_IDLE:?}, connects take {CONNECT_LATENCY:?} (fake backend)");
    let start = Instant::now();
    let waits = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let phase_name = Arc::new(Mutex::new(PHASES[0].name));

    // The live status line.
    let monitor = {
        let pool = pool.clone();
        let backend = backend.clone();
        let phase_name = Arc::clone(&phase_name);
        tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let s = pool.status();
                peak = peak.max(s.size);
                if n % 5 == 0 {
                    println!(
                        "{}",
                        line(
                            start.elapsed(),
                            *phase_name.lock(),
                            &s,
                            backend.connects(),
                            backend.closed()
                        )
                    );
                }
                n += 1;
                if pool.is_closed() {
                    return peak;
                }
            }
        })
    };

    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut tasks = tokio::task::JoinSet::new();
    for phase in PHASES {
        *phase_name.lock() = phase.name;
        let phase_start = Instant::now();
        let gap = Duration::from_secs_f64(1.0 / phase.rate);
        let mut due = phase_start;
        while phase_start.elapsed().as_secs_f64() < phase.secs {
            let hold =
                Duration::from_millis(phase.hold.0 + next() % (phase.hold.1 - phase.hold.0 + 1));
            let pool = pool.clone();
            let waits = Arc::clone(&waits);
            let errors = Arc::clone(&errors);
            tasks.spawn(async move {
                let t0 = Instant::now();
                match pool.get().await {
                    Ok(conn) => {
                        waits.lock().push(t0.elapsed());
                        tokio::time::sleep(hold).await;
                        drop(conn);
                    }
                    Err(e) => {
                        eprintln!("checkout failed: {e}");
                        *errors.lock() += 1;
                    }
                }
            });
            due += gap;
            tokio::time::sleep_until(due).await;
        }
    }
    while tasks.join_next().await.is_some() {}
    let final_status = pool.status();
    let stats = pool.stats();
    pool.close();
    let peak = monitor.await.unwrap_or(0).max(backend.peak_live());

    let mut w = waits.lock().clone();
    w.sort();
    println!();
    println!("summary");
    println!("  checkouts          {}", w.len());
    println!("  errors             {}", *errors.lock());
    println!("  connections opened {}", stats.connections_num);
    println!(
        "  connections closed {} (before close)",
        stats.connections_closed
    );
    println!("  peak size          {peak} (ceiling {MAX})");
    println!("  final size         {} (floor {MIN})", final_status.size);
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "  wait p50 {}  p90 {}  p99 {}  max {}",
        ms(percentile(&w, 0.50)),
        ms(percentile(&w, 0.90)),
        ms(percentile(&w, 0.99)),
        ms(w.last().copied().unwrap_or_default())
    );
    println!(
        "  requests queued    {} of {}",
        stats.requests_queued, stats.requests_num
    );
    if final_status.size != MIN {
        eprintln!("unexpected: the idle pool should end at its floor of {MIN}");
        std::process::exit(1);
    }
}
