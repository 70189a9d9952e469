//! The main demo: a bursty workload on an elastic pool, showing it grow to its ceiling under a
//! burst and shrink back to its floor when idle.
//!
//! ```text
//! cargo run --release --example elastic                      # the built-in fake backend
//! cargo run --release --example elastic -- --url postgres://postgres@127.0.0.1/postgres
//! cargo run --release --example elastic -- --plot pool.svg  # and draw the pool's shape
//! cargo run --release --example elastic -- --metrics 127.0.0.1:9100  # Prometheus at /metrics
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

/// The command line: `--url URL` (else `DATABASE_URL`, else the fake backend) and
/// `--plot FILE.svg`.
struct Args {
    url: Option<String>,
    plot: Option<String>,
    metrics: Option<std::net::SocketAddr>,
}

const USAGE: &str = "usage: elastic [--url POSTGRES_URL] [--plot FILE.svg] [--metrics ADDR]   (or set DATABASE_URL; default: the fake backend)";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.trim().is_empty()),
        plot: None,
        metrics: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--url" => args.url = Some(value()?),
            "--plot" => args.plot = Some(value()?),
            "--metrics" => {
                let v = value()?;
                args.metrics = Some(v.parse().map_err(|_| {
                    format!("--metrics {v:?}: expected an address like 127.0.0.1:9100")
                })?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unexpected argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Where `--plot` asked the picture to go.
static PLOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("elastic: {e}");
            std::process::exit(2);
        }
    };
    let _ = PLOT.set(args.plot);
    if let Some(addr) = args.metrics {
        match pool_testkit::serve_metrics(addr).await {
            Ok((bound, _)) => println!("serving Prometheus metrics at http://{bound}/metrics"),
            Err(e) => {
                eprintln!("elastic: --metrics {addr}: {e}");
                std::process::exit(2);
            }
        }
    }
    let ok = match args.url {
        None => run_fake().await,
        Some(url) => run_postgres(&url).await,
    };
    if !ok {
        std::process::exit(1);
    }
}

/// One status sample: seconds since the start, and the pool's shape.
type Sample = (f64, Status);

/// A plotted line: its name, its colour, and what it shows.
type Series = (&'static str, &'static str, fn(&Status) -> usize);

/// An SVG of size, idle, in use and waiting over time, with the floor and the ceiling
/// marked and the phases named (no plotting dependency: lines and text).
fn svg(samples: &[Sample], phases: &[(f64, &str)]) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 420.0, 60.0, 150.0, 30.0, 50.0);
    let t_max = samples.last().map_or(1.0, |s| s.0).max(1.0);
    let y_max = samples
        .iter()
        .map(|(_, s)| s.size.max(s.waiting).max(s.max_size))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        + 1.0;
    let x = |t: f64| left + (w - left - right) * t / t_max;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / y_max);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Axes and grid.
    let step = ((y_max / 10.0).ceil() as usize).max(1);
    for v in (0..=(y_max as usize)).step_by(step) {
        let yy = y(v as f64);
        out += &format!("<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>\n", w - right, left - 6.0, yy + 4.0);
    }
    let mut t = 0.0;
    while t <= t_max {
        out += &format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.0} s</text>\n",
            x(t),
            h - bottom + 18.0
        );
        t += 2.0;
    }
    // Phases.
    for (start, name) in phases {
        let xx = x(*start);
        out += &format!("<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\">{name}</text>\n", h - bottom, xx + 4.0, top - 10.0);
    }
    // Floor and ceiling.
    if let Some((_, s)) = samples.first() {
        for (v, label) in [(s.min_size, "floor"), (s.max_size, "ceiling")] {
            let yy = y(v as f64);
            out += &format!("<line x1=\"{left}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#999\" stroke-dasharray=\"2 3\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\">{label} {v}</text>\n", w - right, w - right + 6.0, yy + 4.0);
        }
    }
    // Series.
    let series: [Series; 4] = [
        ("size", "#1f77b4", |s| s.size),
        ("idle", "#2ca02c", |s| s.idle),
        ("in use", "#ff7f0e", |s| s.in_use),
        ("waiting", "#d62728", |s| s.waiting),
    ];
    for (i, (name, color, value)) in series.iter().enumerate() {
        let points: Vec<String> = samples
            .iter()
            .map(|(t, s)| format!("{:.1},{:.1}", x(*t), y(value(s) as f64)))
            .collect();
        out += &format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{}\" stroke-opacity=\"{}\" points=\"{}\"/>\n",
            // Size is drawn wide and light, under the lines it is the sum of.
            if i == 0 { 6.0 } else { 1.5 },
            if i == 0 { 0.35 } else { 1.0 },
            points.join(" ")
        );
        let ly = top + 20.0 + 18.0 * i as f64;
        out += &format!("<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"/>\n<text x=\"{:.1}\" y=\"{:.1}\">{name}</text>\n", w - right + 40.0, w - right + 60.0, w - right + 66.0, ly + 4.0);
    }
    out += "</svg>\n";
    out
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
        .name("elastic")
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
            let mut samples: Vec<Sample> = Vec::new();
            loop {
                tick.tick().await;
                let s = pool.status();
                peak = peak.max(s.size);
                samples.push((start.elapsed().as_secs_f64(), s));
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
                    return (peak, samples);
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
    let (peak, samples) = monitor.await.unwrap_or_default();
    if let Some(Some(path)) = PLOT.get() {
        let mut phases = Vec::new();
        let mut at = 0.0;
        for p in PHASES {
            phases.push((at, p.name));
            at += p.secs;
        }
        match std::fs::write(path, svg(&samples, &phases)) {
            Ok(()) => println!("plot written to {path} ({} samples)", samples.len()),
            Err(e) => {
                eprintln!("elastic: cannot write the plot to {path}: {e}");
                return false;
            }
        }
    }

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
