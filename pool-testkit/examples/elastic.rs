//! The main demo: a bursty workload on an elastic pool, showing it grow to its ceiling under a
//! burst and shrink back to its floor when idle.
//!
//! ```text
//! cargo run --release --example elastic                      # the built-in fake backend
//! cargo run --release --example elastic -- --url postgres://postgres@127.0.0.1/postgres
//! DATABASE_URL=postgres://... cargo run --release --example elastic
//! ```
//!
//! On the fake backend connects take 50 ms and no database is needed. With a URL, the same
//! workload runs through `PgManager`, each checkout writing a checkpoint row (keyed by thread
//! id, namespace and checkpoint id, with a JSONB payload) and reading it back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pool_core::{Manager, Object, Pool, Status};
use pool_postgres::PgManager;
use pool_testkit::{FakeManager, Rng, Step};
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
const FAKE_CONNECT_LATENCY: Duration = Duration::from_millis(50);
const APP_NAME: &str = "pool-elastic-demo";

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
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn database_url() -> Result<Option<String>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())),
        [flag, url] if flag == "--url" => Ok(Some(url.clone())),
        [arg] if arg.starts_with("--url=") => Ok(Some(arg["--url=".len()..].to_string())),
        [arg] if arg == "-h" || arg == "--help" => {
            println!("usage: elastic [--url POSTGRES_URL]   (or set DATABASE_URL; default: the fake backend)");
            std::process::exit(0);
        }
        [flag] if flag == "--url" => Err("--url needs a value".to_string()),
        other => Err(format!("unexpected arguments {other:?} (try --help)")),
    }
}

#[tokio::main]
async fn main() {
    let url = match database_url() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("elastic: {e}");
            std::process::exit(2);
        }
    };
    let ok = match url {
        None => run_fake().await,
        Some(url) => run_postgres(&url).await,
    };
    if !ok {
        std::process::exit(1);
    }
}

async fn run_fake() -> bool {
    let (manager, backend) = FakeManager::new();
    backend.set_connect_default(Step::Slow(FAKE_CONNECT_LATENCY));
    println!(
        "elastic pool demo on the fake backend: min {MIN}, max {MAX}, max_idle {MAX_IDLE:?}, connects take {FAKE_CONNECT_LATENCY:?}"
    );
    let summary = run(manager, |conn, _seq, hold| async move {
        tokio::time::sleep(hold).await;
        drop(conn);
        Ok(())
    })
    .await;
    println!(
        "  backend: {} connects, {} closed, {} open",
        backend.connects(),
        backend.closed(),
        backend.live()
    );
    summary
}

async fn run_postgres(url: &str) -> bool {
    let conn_str = if url.contains('?') || url.starts_with("postgres") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={APP_NAME}")
    } else {
        format!("{url} application_name={APP_NAME}")
    };
    let manager = match PgManager::from_url(&conn_str) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("elastic: {e}");
            return false;
        }
    };
    println!(
        "elastic pool demo on PostgreSQL ({}): min {MIN}, max {MAX}, max_idle {MAX_IDLE:?}",
        pool_postgres::redact(url)
    );
    let run_id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros())
    );
    let setup = {
        let pool = match Pool::builder(PgManager::from_url(&conn_str).expect("parsed above"))
            .max_size(1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .build()
        {
            Ok(p) => p,
            Err(e) => {
                eprintln!("elastic: {e}");
                return false;
            }
        };
        let result = match pool.get().await {
            Ok(c) => c
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS elastic_demo_checkpoints (
                        thread_id text NOT NULL,
                        checkpoint_ns text NOT NULL DEFAULT '',
                        checkpoint_id text NOT NULL,
                        payload jsonb NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now(),
                        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id))",
                )
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        pool.close_and_wait().await;
        result
    };
    if let Err(e) = setup {
        eprintln!("elastic: cannot prepare the checkpoint table: {e}");
        return false;
    }
    let rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&rows);
    let ok = run(manager, move |conn, seq, hold| {
        let run_id = run_id.clone();
        let rows = Arc::clone(&counted);
        async move {
            let thread_id = format!("demo-thread-{}", seq % 16);
            let checkpoint_id = format!("{run_id}-{seq:06}");
            let payload = format!(r#"{{"step": {seq}, "channel_values": {{"messages": ["hello {seq}"]}}}}"#);
            conn.execute(
                "INSERT INTO elastic_demo_checkpoints (thread_id, checkpoint_ns, checkpoint_id, payload)
                 VALUES ($1, '', $2, $3::text::jsonb)
                 ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET payload = EXCLUDED.payload",
                &[&thread_id, &checkpoint_id, &payload],
            )
            .await
            .map_err(|e| e.to_string())?;
            let row = conn
                .query_one(
                    "SELECT (payload->>'step')::int8 FROM elastic_demo_checkpoints
                     WHERE thread_id = $1 AND checkpoint_ns = '' AND checkpoint_id = $2",
                    &[&thread_id, &checkpoint_id],
                )
                .await
                .map_err(|e| e.to_string())?;
            if row.get::<_, i64>(0) != seq as i64 {
                return Err(format!("checkpoint {checkpoint_id} read back wrong"));
            }
            rows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(hold).await;
            drop(conn);
            Ok(())
        }
    })
    .await;
    println!(
        "  checkpoint rows written and read back: {}",
        rows.load(std::sync::atomic::Ordering::Relaxed)
    );
    ok
}

/// Drives the phases through a pool over `manager`; `work` does one checkout's job. Prints the
/// live status and the summary; returns whether the run went as it should.
async fn run<M, F, Fut>(manager: M, work: F) -> bool
where
    M: Manager,
    F: Fn(Object<M>, u64, Duration) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let pool = match Pool::builder(manager)
        .min_size(MIN)
        .max_size(MAX)
        .max_idle(Some(MAX_IDLE))
        .housekeeping_interval(Duration::from_millis(100))
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("elastic: {e}");
            return false;
        }
    };
    if let Err(e) = pool.wait_ready(Duration::from_secs(10)).await {
        eprintln!("elastic: the pool could not open its floor of {MIN}: {e}");
        return false;
    }
    let start = Instant::now();
    let waits = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let phase_name = Arc::new(Mutex::new(PHASES[0].name));

    let monitor = {
        let pool = pool.clone();
        let phase_name = Arc::clone(&phase_name);
        tokio::spawn(async move {
            let mut peak = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let s = pool.status();
                peak = peak.max(s.size);
                if n % 25 == 0 {
                    let st = pool.stats();
                    println!(
                        "{}",
                        line(
                            start.elapsed(),
                            *phase_name.lock(),
                            &s,
                            st.connections_num,
                            st.connections_closed
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

    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut tasks = tokio::task::JoinSet::new();
    let mut seq = 0u64;
    for phase in PHASES {
        *phase_name.lock() = phase.name;
        let phase_start = Instant::now();
        let gap = Duration::from_secs_f64(1.0 / phase.rate);
        let mut due = phase_start;
        while phase_start.elapsed().as_secs_f64() < phase.secs {
            let hold =
                Duration::from_millis(phase.hold.0 + rng.below(phase.hold.1 - phase.hold.0 + 1));
            let pool = pool.clone();
            let waits = Arc::clone(&waits);
            let errors = Arc::clone(&errors);
            let work = work.clone();
            seq += 1;
            let n = seq;
            tasks.spawn(async move {
                let t0 = Instant::now();
                let result = match pool.get().await {
                    Ok(conn) => {
                        waits.lock().push(t0.elapsed());
                        work(conn, n, hold).await
                    }
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = result {
                    eprintln!("checkout {n} failed: {e}");
                    *errors.lock() += 1;
                }
            });
            due += gap;
            tokio::time::sleep_until(due).await;
        }
    }
    while tasks.join_next().await.is_some() {}
    let final_status = pool.status();
    let stats = pool.stats();
    pool.close_and_wait().await;
    let peak = monitor.await.unwrap_or(0);

    let mut w = waits.lock().clone();
    w.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    let errors = *errors.lock();
    println!();
    println!("summary");
    println!("  checkouts          {} ({} errors)", w.len(), errors);
    println!("  connections opened {}", stats.connections_num);
    println!(
        "  connections closed {} while running (idle shrink)",
        stats.connections_closed
    );
    println!("  peak size          {peak} (ceiling {MAX})");
    println!("  final size         {} (floor {MIN})", final_status.size);
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
        return false;
    }
    errors == 0
}
