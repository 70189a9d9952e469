//! pool-core side by side with deadpool, bb8, mobc and qp, with a bare `tokio::sync::Semaphore`
//! as the floor, in one run. Prints one markdown table at the end (also written to
//! `target/criterion/pool_compare.md`).
//!
//! ```text
//! cargo bench -p benches                    # full criterion runs
//! BENCH_QUICK=1 cargo bench -p benches      # quick mode (about 3 minutes on 2 cores)
//! ```
//!
//! `BENCH_WORKLOADS=A,B` runs a subset. Workload H is a cancellation storm: 10,000 queued
//! `get()`s dropped newest first, timed per cancel. Workload F needs a PostgreSQL server: `POOL_BENCH_DATABASE_URL` (or
//! `POOL_TEST_DATABASE_URL`); without one it is skipped with a message. Workload G needs a Redis
//! server: `POOL_BENCH_REDIS_URL` (or `POOL_TEST_REDIS_URL`); without one it is skipped with a
//! message.

#![allow(unreachable_pub, missing_debug_implementations)]

#[path = "common/peers.rs"]
mod peers;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/redis.rs"]
mod redis_pools;
#[path = "common/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use peers::*;
use service::Service;
use tokio::runtime::Runtime;
use tokio::time::Instant;

/// A batch that takes longer than this is a hang (qp loses wake-ups under contention).
const HANG: Duration = Duration::from_secs(10);

const POOLS: [&str; 7] = [
    "floor",
    "ours",
    "ours-untimed",
    "deadpool",
    "bb8",
    "mobc",
    "qp",
];

#[derive(Default)]
struct Report {
    /// (workload, pool) -> nanoseconds per operation (median).
    ns_per_op: BTreeMap<(String, String), f64>,
    /// (workload, pool) -> a note instead of a figure ("hangs").
    notes: BTreeMap<(String, String), String>,
    /// Free-form rows: (row title, pool -> cell).
    extra: Vec<(String, BTreeMap<String, String>)>,
    ops: BTreeMap<String, u64>,
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_workers() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `tasks` tasks, each doing `per_task` checkouts holding across `hold`.
async fn batch<P: BenchPool>(
    pool: &P,
    tasks: usize,
    per_task: usize,
    hold: &Hold,
) -> Result<(), String> {
    if tasks == 1 {
        for _ in 0..per_task {
            cycle(pool, hold).await?;
        }
        return Ok(());
    }
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        let hold = hold.clone();
        set.spawn(async move {
            for _ in 0..per_task {
                cycle(&pool, &hold).await?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

struct Workload {
    id: &'static str,
    tasks: usize,
    per_task: usize,
    size: usize,
    multi: bool,
}

fn bench_one<P: BenchPool>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    w: &Workload,
    name: &str,
    pool: P,
    report: &mut Report,
) {
    let hold = if w.tasks == 1 {
        Hold::Nothing
    } else {
        Hold::Yield
    };
    let preflight = rt.block_on(async {
        tokio::time::timeout(HANG, batch(&pool, w.tasks, w.per_task, &hold)).await
    });
    match preflight {
        Err(_) => {
            report
                .notes
                .insert((w.id.into(), name.into()), "hangs".into());
            eprintln!(
                "{}/{name}: a batch did not finish within {HANG:?}: hangs",
                w.id
            );
            return;
        }
        Ok(Err(e)) => {
            report
                .notes
                .insert((w.id.into(), name.into()), format!("error: {e}"));
            return;
        }
        Ok(Ok(())) => {}
    }
    let hung = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&hung);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    match tokio::time::timeout(HANG, batch(&pool, w.tasks, w.per_task, &hold)).await
                    {
                        Ok(r) => r.expect("checkout"),
                        Err(_) => {
                            flag.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                start.elapsed()
            })
        })
    });
    if hung.load(Ordering::Relaxed) {
        report
            .notes
            .insert((w.id.into(), name.into()), "hangs".into());
    }
}

fn run_workload(c: &mut Criterion, w: &Workload, report: &mut Report) {
    let rt = if w.multi {
        two_workers()
    } else {
        current_thread()
    };
    let ops = (w.tasks * w.per_task) as u64;
    report.ops.insert(w.id.into(), ops);
    let mut group = c.benchmark_group(w.id);
    group.throughput(Throughput::Elements(ops));
    let n = w.size;
    let floor = rt.block_on(build_floor(n));
    bench_one(&mut group, &rt, w, "floor", floor, report);
    let ours = rt.block_on(build_ours(n, n, Duration::ZERO));
    bench_one(&mut group, &rt, w, "ours", ours, report);
    let untimed = rt.block_on(build_ours_untimed(n, n, Duration::ZERO));
    bench_one(&mut group, &rt, w, "ours-untimed", untimed, report);
    let dp = rt.block_on(build_deadpool(n, n, Duration::ZERO));
    bench_one(&mut group, &rt, w, "deadpool", dp, report);
    let bb = rt.block_on(build_bb8(n, n, Duration::ZERO));
    bench_one(&mut group, &rt, w, "bb8", bb, report);
    let mo = rt.block_on(build_mobc(n, n, Duration::ZERO));
    bench_one(&mut group, &rt, w, "mobc", mo, report);
    let qp = rt.block_on(build_qp(n, n, Duration::ZERO));
    bench_one(&mut group, &rt, w, "qp", qp, report);
    group.finish();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Workload C again, recording every checkout's wait: fairness.
fn fairness(report: &mut Report, rounds: usize) {
    let rt = two_workers();
    let mut row = BTreeMap::new();
    let hold = Hold::Yield;
    macro_rules! measure {
        ($name:expr, $build:expr) => {{
            let pool = rt.block_on($build);
            let waits = rt.block_on(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..64 {
                    let pool = pool.clone();
                    let hold = hold.clone();
                    set.spawn(async move {
                        let mut w = Vec::with_capacity(rounds);
                        for _ in 0..rounds {
                            w.push(cycle_timed(&pool, &hold).await?);
                        }
                        Ok::<_, String>(w)
                    });
                }
                tokio::time::timeout(HANG * 3, async {
                    let mut all = Vec::new();
                    while let Some(r) = set.join_next().await {
                        all.extend(r.map_err(|e| e.to_string())??);
                    }
                    Ok::<_, String>(all)
                })
                .await
            });
            match waits {
                Ok(Ok(mut w)) => {
                    w.sort();
                    let med = percentile(&w, 0.5).as_nanos().max(1) as f64;
                    let r = |p: f64| percentile(&w, p).as_nanos() as f64 / med;
                    row.insert(
                        $name.to_string(),
                        format!(
                            "{:.1}x / {:.1}x / {:.0}x (median {:.1} µs)",
                            r(0.99),
                            r(0.999),
                            w.last().unwrap().as_nanos() as f64 / med,
                            med / 1e3
                        ),
                    );
                }
                Ok(Err(e)) => {
                    row.insert($name.to_string(), format!("error: {e}"));
                }
                Err(_) => {
                    row.insert($name.to_string(), "hangs".to_string());
                }
            }
        }};
    }
    measure!("floor", build_floor(4));
    measure!("ours", build_ours(4, 4, Duration::ZERO));
    measure!("deadpool", build_deadpool(4, 4, Duration::ZERO));
    measure!("bb8", build_bb8(4, 4, Duration::ZERO));
    measure!("mobc", build_mobc(4, 4, Duration::ZERO));
    measure!("qp", build_qp(4, 4, Duration::ZERO));
    report.extra.push((
        "C: wait p99 / p99.9 / max, as multiples of the median".into(),
        row,
    ));
}

/// Workload H: a cancellation storm. One connection, held; `waiters` `get()`s queue behind it
/// (each polled once); then they are dropped newest first, the order that makes a queue
/// searched from the front pay the most. Time per cancelled `get()`, median over `rounds`.
fn cancel_storm(report: &mut Report, rounds: usize, waiters: usize) {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let rt = current_thread();
    let mut row = BTreeMap::new();
    macro_rules! measure {
        ($name:expr, $build:expr) => {{
            let pool = rt.block_on($build);
            let mut per_cancel = Vec::new();
            let mut failed = None;
            for _ in 0..rounds {
                let r = rt.block_on(async {
                    let held = pool.get().await?;
                    let mut cx = Context::from_waker(Waker::noop());
                    let mut queued: Vec<_> = (0..waiters).map(|_| Box::pin(pool.get())).collect();
                    for f in &mut queued {
                        if !matches!(f.as_mut().poll(&mut cx), Poll::Pending) {
                            return Err("a get() did not queue".to_string());
                        }
                    }
                    let t0 = std::time::Instant::now();
                    while let Some(f) = queued.pop() {
                        drop(f);
                    }
                    let took = t0.elapsed();
                    drop(held);
                    // The pool still serves after the storm.
                    drop(pool.get().await?);
                    Ok::<_, String>(took)
                });
                match r {
                    Ok(took) => per_cancel.push(took.as_nanos() as f64 / waiters as f64),
                    Err(e) => failed = Some(format!("error: {e}")),
                }
            }
            let cell = match failed {
                Some(f) => f,
                None => {
                    per_cancel.sort_by(f64::total_cmp);
                    fmt_ns(per_cancel[per_cancel.len() / 2])
                }
            };
            row.insert($name.to_string(), cell);
        }};
    }
    measure!("floor", build_floor(1));
    measure!("ours", build_ours(1, 1, Duration::ZERO));
    measure!("deadpool", build_deadpool(1, 1, Duration::ZERO));
    measure!("bb8", build_bb8(1, 1, Duration::ZERO));
    measure!("mobc", build_mobc(1, 1, Duration::ZERO));
    report.extra.push((
        format!("H: {waiters} queued get()s cancelled newest first (per cancel, median of rounds)"),
        row,
    ));
}

/// Workload E: the spike. Connects take 150 ms; min 5 (pre-opened), max 10; 50 tasks arrive
/// at once, one checkout each holding 2 ms. Median over `rounds` fresh pools.
fn spike(report: &mut Report, rounds: usize) {
    let rt = two_workers();
    let mut opened_row = BTreeMap::new();
    let mut p99_row = BTreeMap::new();
    let delay = Duration::from_millis(150);
    macro_rules! measure {
        ($name:expr, $build:expr) => {{
            let mut opened = Vec::new();
            let mut p99s = Vec::new();
            let mut failed = None;
            for _ in 0..rounds {
                let result = rt.block_on(async {
                    let pool = $build.await;
                    let before = pool.opened();
                    let mut set = tokio::task::JoinSet::new();
                    for _ in 0..50 {
                        let pool = pool.clone();
                        set.spawn(async move {
                            cycle_timed(&pool, &Hold::Sleep(Duration::from_millis(2))).await
                        });
                    }
                    let waits = tokio::time::timeout(HANG, async {
                        let mut w = Vec::new();
                        while let Some(r) = set.join_next().await {
                            w.push(r.map_err(|e| e.to_string())??);
                        }
                        Ok::<_, String>(w)
                    })
                    .await;
                    // Let connects started during the burst finish before counting.
                    tokio::time::sleep(delay * 2).await;
                    (waits, pool.opened() - before)
                });
                match result {
                    (Ok(Ok(mut w)), n) => {
                        w.sort();
                        opened.push(n);
                        p99s.push(percentile(&w, 0.99));
                    }
                    (Ok(Err(e)), _) => failed = Some(format!("error: {e}")),
                    (Err(_), _) => failed = Some("hangs".to_string()),
                }
            }
            match failed {
                Some(f) => {
                    opened_row.insert($name.to_string(), f.clone());
                    p99_row.insert($name.to_string(), f);
                }
                None => {
                    opened.sort();
                    p99s.sort();
                    opened_row.insert($name.to_string(), format!("{}", opened[opened.len() / 2]));
                    p99_row.insert(
                        $name.to_string(),
                        format!("{:.1} ms", p99s[p99s.len() / 2].as_secs_f64() * 1e3),
                    );
                }
            }
        }};
    }
    // The floor: five permits and no connects at all, the best this workload can do.
    measure!("floor", build_floor(5));
    measure!("ours", build_ours(5, 10, delay));
    measure!("deadpool", build_deadpool(5, 10, delay));
    measure!("bb8", build_bb8(5, 10, delay));
    measure!("mobc", build_mobc(5, 10, delay));
    measure!("qp", build_qp(5, 10, delay));
    report.extra.push((
        "E: spike, connections opened beyond the 5 (median of rounds)".into(),
        opened_row,
    ));
    report
        .extra
        .push(("E: spike, p99 wait (median of rounds)".into(), p99_row));
}

/// The first of `vars` that is set and not empty.
fn env_url(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
}

/// `tasks` tasks each making `per_task` calls to a real server through `pool`.
async fn service_batch<P: Service>(pool: &P, tasks: usize, per_task: usize) -> Result<(), String> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            for _ in 0..per_task {
                pool.call().await?;
            }
            Ok::<_, String>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn service_bench_one<P: Service>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &Runtime,
    name: &str,
    pool: P,
    tasks: usize,
    per_task: usize,
) {
    rt.block_on(service_batch(&pool, tasks, per_task))
        .expect("preflight");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    service_batch(&pool, tasks, per_task).await.expect("call");
                }
                start.elapsed()
            })
        })
    });
}

/// The task counts of the real-server workloads (F, G), with each task's calls per batch.
const SERVICE_TASKS: [(usize, usize); 3] = [(1, 64), (16, 16), (64, 4)];

/// One task: a current-thread runtime, so the call and the connection's own task share a
/// thread and cross-thread wake-ups do not drown the pool's own cost. More tasks: two workers.
fn service_runtime(tasks: usize) -> Runtime {
    if tasks == 1 {
        current_thread()
    } else {
        two_workers()
    }
}

fn postgres(c: &mut Criterion, report: &mut Report) {
    let Some(url) = env_url(&["POOL_BENCH_DATABASE_URL", "POOL_TEST_DATABASE_URL"]) else {
        eprintln!("workload F skipped: set POOL_BENCH_DATABASE_URL (or POOL_TEST_DATABASE_URL) to a PostgreSQL URL");
        return;
    };
    for (tasks, per_task) in SERVICE_TASKS {
        let rt = service_runtime(tasks);
        let raw = rt.block_on(pg::raw(&url));
        let ours = rt.block_on(pg::ours(&url, 16));
        let dp = rt.block_on(pg::deadpool(&url, 16));
        let bb = rt.block_on(pg::bb8(&url, 16));
        let id = format!("F{tasks}");
        report.ops.insert(id.clone(), (tasks * per_task) as u64);
        let mut group = c.benchmark_group(&id);
        group.throughput(Throughput::Elements((tasks * per_task) as u64));
        service_bench_one(&mut group, &rt, "raw", raw, tasks, per_task);
        service_bench_one(&mut group, &rt, "ours", ours.clone(), tasks, per_task);
        service_bench_one(&mut group, &rt, "deadpool-postgres", dp, tasks, per_task);
        service_bench_one(&mut group, &rt, "bb8-postgres", bb, tasks, per_task);
        group.finish();
        rt.block_on(ours.0.close_and_wait());
    }
    // The parameterized point query: a statement cache's worth.
    rt_point(c, report, &url);
}

/// Workload F's point query (`SELECT v FROM t WHERE k = $1`, 1,000 rows) at 1, 16 and 64 tasks
/// on 16 connections: ours with `prepare_cached` and with a plain `query_one(&str)`,
/// deadpool-postgres with its `prepare_cached`, bb8-postgres, and a raw client with one
/// prepared statement.
fn rt_point(c: &mut Criterion, report: &mut Report, url: &str) {
    current_thread().block_on(pg::point_table(url));
    for (tasks, per_task) in SERVICE_TASKS {
        let rt = service_runtime(tasks);
        let raw = rt.block_on(pg::raw_point(url));
        let ring = rt.block_on(pg::raw_ring(url, 16));
        let ours = rt.block_on(pg::ours(url, 16));
        let fifo = rt.block_on(pg::ours_fifo(url, 16));
        let dp = rt.block_on(pg::deadpool(url, 16));
        let bb = rt.block_on(pg::bb8(url, 16));
        let id = format!("P{tasks}");
        report.ops.insert(id.clone(), (tasks * per_task) as u64);
        let mut group = c.benchmark_group(&id);
        group.throughput(Throughput::Elements((tasks * per_task) as u64));
        service_bench_one(&mut group, &rt, "raw", raw, tasks, per_task);
        service_bench_one(&mut group, &rt, "raw-ring", ring, tasks, per_task);
        let cached = pg::OursPoint(ours.clone(), true, Default::default());
        service_bench_one(&mut group, &rt, "ours-cached", cached, tasks, per_task);
        let plain = pg::OursPoint(ours.clone(), false, Default::default());
        service_bench_one(&mut group, &rt, "ours-plain", plain, tasks, per_task);
        let dpc = pg::DeadpoolPoint(dp, Default::default());
        service_bench_one(&mut group, &rt, "deadpool-cached", dpc, tasks, per_task);
        let b = pg::Bb8Point(bb, Default::default());
        service_bench_one(&mut group, &rt, "bb8-postgres", b, tasks, per_task);
        let f = pg::OursPoint(fifo.clone(), true, Default::default());
        service_bench_one(&mut group, &rt, "ours-cached-fifo", f, tasks, per_task);
        group.finish();
        rt.block_on(ours.0.close_and_wait());
        rt.block_on(fifo.0.close_and_wait());
    }
}

/// Workload G: Redis `PING` through a pool of 16, from 1, 16 and 64 tasks.
fn redis(c: &mut Criterion, report: &mut Report) {
    let Some(url) = env_url(&["POOL_BENCH_REDIS_URL", "POOL_TEST_REDIS_URL"]) else {
        eprintln!("workload G skipped: set POOL_BENCH_REDIS_URL (or POOL_TEST_REDIS_URL) to a Redis URL, e.g. redis://127.0.0.1:6379");
        return;
    };
    for (tasks, per_task) in SERVICE_TASKS {
        let rt = service_runtime(tasks);
        let bb = rt.block_on(redis_pools::bb8(&url, 16));
        let ours_bb = rt.block_on(redis_pools::ours_bb8(&url, 16));
        let dp = rt.block_on(redis_pools::deadpool(&url, 16));
        let ours_dp = rt.block_on(redis_pools::ours_deadpool(&url, 16));
        let id = format!("G{tasks}");
        report.ops.insert(id.clone(), (tasks * per_task) as u64);
        let mut group = c.benchmark_group(&id);
        group.throughput(Throughput::Elements((tasks * per_task) as u64));
        service_bench_one(&mut group, &rt, "bb8-redis", bb, tasks, per_task);
        service_bench_one(
            &mut group,
            &rt,
            "ours-bb8",
            ours_bb.clone(),
            tasks,
            per_task,
        );
        service_bench_one(&mut group, &rt, "deadpool-redis", dp, tasks, per_task);
        service_bench_one(
            &mut group,
            &rt,
            "ours-deadpool",
            ours_dp.clone(),
            tasks,
            per_task,
        );
        group.finish();
        rt.block_on(ours_bb.0.close_and_wait());
        rt.block_on(ours_dp.0.close_and_wait());
    }
}

/// Criterion's median for one benchmark, in nanoseconds per iteration.
fn median_ns(dir: &Path, group: &str, name: &str) -> Option<f64> {
    let text =
        std::fs::read_to_string(dir.join(group).join(name).join("new/estimates.json")).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[p..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        .collect();
    num.parse().ok()
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A real-server workload's table, if it ran: per-call medians of each pool (`columns`: name,
/// header) at each task count, and ratios (`ratios`: numerator, denominator, header).
fn service_table(
    out: &mut String,
    dir: &Path,
    report: &Report,
    workload: &str,
    title: &str,
    columns: &[(&str, &str)],
    ratios: &[(&str, &str, &str)],
) {
    if !report.ops.contains_key(&format!("{workload}1")) {
        return;
    }
    let headers: Vec<&str> = columns
        .iter()
        .map(|c| c.1)
        .chain(ratios.iter().map(|r| r.2))
        .collect();
    let _ = writeln!(out);
    let _ = writeln!(out, "| {title} | {} |", headers.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(headers.len()));
    for (tasks, _) in SERVICE_TASKS {
        let id = format!("{workload}{tasks}");
        let ops = report.ops[&id] as f64;
        let m = |p: &str| median_ns(dir, &id, p).map(|v| v / ops);
        let cells: Vec<String> = columns
            .iter()
            .map(|(p, _)| m(p).map_or("–".into(), fmt_ns))
            .chain(ratios.iter().map(|(a, b, _)| match (m(a), m(b)) {
                (Some(a), Some(b)) => format!("{:.2}", a / b),
                _ => "–".into(),
            }))
            .collect();
        let _ = writeln!(
            out,
            "| {tasks} task{} | {} |",
            if tasks == 1 { "" } else { "s" },
            cells.join(" | ")
        );
    }
}

/// Workloads A-E: the in-memory pools against the floor.
fn in_memory_table(out: &mut String, dir: &Path, report: &mut Report) {
    let _ = writeln!(
        out,
        "| workload | floor | ours (defaults) | ours (no wait timeout) | deadpool | bb8 | mobc | qp | ours/floor | deadpool/ours |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let titles = [
        (
            "A",
            "A: uncontended get+return, 1 task, pool of 16 (per op)",
        ),
        ("B", "B: 16 tasks on 16, hold across a yield (per op)"),
        ("C", "C: 64 tasks on 4, hold across a yield (per op)"),
        ("D", "D: 256 tasks on 16, hold across a yield (per op)"),
    ];
    for (id, title) in titles {
        // Only the workloads run now: criterion's folder may hold older ones.
        let Some(&ops) = report.ops.get(id) else {
            continue;
        };
        let ops = ops as f64;
        for p in POOLS {
            if let Some(m) = median_ns(dir, id, p) {
                report.ns_per_op.insert((id.into(), p.into()), m / ops);
            }
        }
        let cell = |p: &str| match report.notes.get(&(id.to_string(), p.to_string())) {
            Some(n) => n.clone(),
            None => report
                .ns_per_op
                .get(&(id.to_string(), p.to_string()))
                .map_or("–".into(), |v| fmt_ns(*v)),
        };
        let get = |p: &str| {
            if report.notes.contains_key(&(id.to_string(), p.to_string())) {
                None
            } else {
                report
                    .ns_per_op
                    .get(&(id.to_string(), p.to_string()))
                    .copied()
            }
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {title} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell("floor"),
            cell("ours"),
            cell("ours-untimed"),
            cell("deadpool"),
            cell("bb8"),
            cell("mobc"),
            cell("qp"),
            ratio(get("ours"), get("floor")),
            ratio(get("deadpool"), get("ours")),
        );
    }
    for (title, row) in &report.extra {
        let cell = |p: &str| row.get(p).cloned().unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "| {title} | {} | {} | {} | {} | {} | {} | {} | | |",
            cell("floor"),
            cell("ours"),
            cell("ours-untimed"),
            cell("deadpool"),
            cell("bb8"),
            cell("mobc"),
            cell("qp")
        );
    }
}

fn table(dir: &Path, report: &mut Report) -> String {
    let mut out = String::new();
    let in_memory_ran = ["A", "B", "C", "D"]
        .iter()
        .any(|id| report.ops.contains_key(*id))
        || !report.extra.is_empty();
    if in_memory_ran {
        in_memory_table(&mut out, dir, report);
    }
    service_table(
        &mut out,
        dir,
        report,
        "F",
        "workload F: `SELECT 1`, 16 connections (per query)",
        &[
            ("raw", "raw client"),
            ("ours", "ours"),
            ("deadpool-postgres", "deadpool-postgres"),
            ("bb8-postgres", "bb8-postgres"),
        ],
        &[
            ("ours", "deadpool-postgres", "ours/deadpool-postgres"),
            ("ours", "raw", "ours/raw"),
        ],
    );
    service_table(
        &mut out,
        dir,
        report,
        "P",
        "workload F, point query: `SELECT v FROM t WHERE k = $1` (1,000 rows), 16 connections (per query)",
        &[
            ("raw", "raw client, one prepared statement"),
            ("raw-ring", "16 raw clients in turn"),
            ("ours-cached", "ours, prepare_cached"),
            ("ours-plain", "ours, query_one(&str)"),
            ("deadpool-cached", "deadpool-postgres, prepare_cached"),
            ("bb8-postgres", "bb8-postgres"),
            ("ours-cached-fifo", "ours, prepare_cached, QueueMode::Fifo"),
        ],
        &[
            ("deadpool-cached", "ours-cached", "deadpool-cached/ours-cached"),
            ("raw", "raw-ring", "raw/raw-ring"),
            ("ours-plain", "ours-cached", "ours-plain/ours-cached"),
        ],
    );
    service_table(
        &mut out,
        dir,
        report,
        "G",
        "workload G: Redis `PING`, 16 connections (per command)",
        &[
            ("bb8-redis", "bb8 + bb8-redis"),
            ("ours-bb8", "ours + FromBb8"),
            ("deadpool-redis", "deadpool-redis"),
            ("ours-deadpool", "ours + FromDeadpool"),
        ],
        &[
            ("bb8-redis", "ours-bb8", "bb8/ours"),
            ("deadpool-redis", "ours-deadpool", "deadpool/ours"),
        ],
    );
    out
}

fn main() {
    let quick = std::env::var_os("BENCH_QUICK").is_some_and(|v| v != "0");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let mut c = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    if quick {
        c = c
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(10);
    }
    let mut report = Report::default();
    let workloads = [
        // 64 checkouts per timed batch: the hang guard (a tokio timeout around each batch)
        // costs about as much as a checkout, and would otherwise be half of every A figure.
        Workload {
            id: "A",
            tasks: 1,
            per_task: 64,
            size: 16,
            multi: false,
        },
        Workload {
            id: "B",
            tasks: 16,
            per_task: 64,
            size: 16,
            multi: true,
        },
        Workload {
            id: "C",
            tasks: 64,
            per_task: 16,
            size: 4,
            multi: true,
        },
        Workload {
            id: "D",
            tasks: 256,
            per_task: 8,
            size: 16,
            multi: true,
        },
    ];
    // BENCH_WORKLOADS=A,C,E runs a subset (A-D, C for the fairness row too, E, F, G, H).
    let only = std::env::var("BENCH_WORKLOADS").ok();
    let wanted = |id: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|w| w.trim().eq_ignore_ascii_case(id)))
    };
    for w in workloads.iter().filter(|w| wanted(w.id)) {
        run_workload(&mut c, w, &mut report);
    }
    if wanted("C") {
        fairness(&mut report, if quick { 200 } else { 1000 });
    }
    if wanted("E") {
        spike(&mut report, if quick { 5 } else { 11 });
    }
    if wanted("H") {
        cancel_storm(&mut report, if quick { 5 } else { 11 }, 10_000);
    }
    if wanted("F") {
        postgres(&mut c, &mut report);
    }
    if wanted("G") {
        redis(&mut c, &mut report);
    }
    c.final_summary();

    let table = table(&dir, &mut report);
    let header = format!(
        "Measured {} with `{}{}cargo bench -p benches --bench pool_compare` on {} cores. Times are criterion medians; ours/floor is time ours / time floor; deadpool/ours is time deadpool / time ours (above 1 = ours faster).\n\n",
        std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default(),
        if quick { "BENCH_QUICK=1 " } else { "" },
        only.as_deref().map(|w| format!("BENCH_WORKLOADS={w} ")).unwrap_or_default(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    println!("\n{header}{table}");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("pool_compare.md"), format!("{header}{table}"));
    if std::env::var_os("BENCH_DOCS").is_some_and(|v| v != "0") {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
        match write_docs(&docs, &format!("{header}{table}")) {
            Ok(()) => println!("BENCH_DOCS: the tables in {} rewritten", docs.display()),
            Err(e) => eprintln!("BENCH_DOCS: {} not rewritten: {e}", docs.display()),
        }
    }
}

/// Replaces the text between `<!-- pool_compare -->` and `<!-- /pool_compare -->` in the
/// benchmarks page with this run's tables (`BENCH_DOCS=1`).
fn write_docs(path: &Path, tables: &str) -> Result<(), String> {
    const OPEN: &str = "<!-- pool_compare -->\n";
    const CLOSE: &str = "<!-- /pool_compare -->";
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let start = text.find(OPEN).ok_or(format!("no {OPEN:?} marker"))? + OPEN.len();
    let end = text[start..]
        .find(CLOSE)
        .ok_or(format!("no {CLOSE:?} marker"))?
        + start;
    let new = format!("{}{}\n{}", &text[..start], tables.trim_end(), &text[end..]);
    std::fs::write(path, new).map_err(|e| e.to_string())
}
