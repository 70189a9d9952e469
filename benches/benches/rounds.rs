//! Workloads A-D, and O and T (an oversubscribed runtime, a busy host: where a spin lock's
//! holder is preempted while others wait), in interleaved rounds: each round runs the floor (a bare
//! `tokio::sync::Semaphore`), our pool with its defaults and deadpool with its defaults once,
//! in that order, for a fixed number of operations; the table gives the median time per
//! operation of each and the medians of the per-round ratios. Interleaving puts every pool
//! through the same moments of a noisy machine, so the ratios hold up better than separate
//! criterion runs.
//!
//! ```text
//! cargo bench -p benches --bench rounds               # 7 rounds
//! ROUNDS=15 BENCH_WORKLOADS=C,D cargo bench -p benches --bench rounds
//! BENCH_WORKLOADS=O,T cargo bench -p benches --bench rounds   # the lock's worst cases
//! ONLY_OURS=1 BENCH_WORKLOADS=D perf record -g target/release/deps/rounds-<hash>   # profile
//! PROBE=1 cargo bench -p benches --bench rounds      # with the featureless probe pool too
//! ONLY_OURS=1 PROBE=3 ...                            # the probe at level 3 alone, to profile
//! cargo bench -p benches --bench rounds --features metrics   # with a Prometheus recorder
//! ```
//!
//! Under `PROBE=1` each round also runs `common/probe.rs`, the smallest pool that does the job
//! (one mutex, an idle `Vec`, a FIFO of waiter slots, no timeouts, stamps or statistics), bare
//! and with our pool's hot-path features added one level at a time (stamps and counts,
//! recycled slots, tickets and deadlines, the looks at a connection), and a row gives each
//! one's time over the floor's: the distance from one level to the next is what that feature
//! costs, and the distance from the last to ours is what the rest of our pool costs. Under
//! `ONLY_OURS=1`, `PROBE=<level>` (0 to 4) runs that level alone, to profile it.
//!
//! Built with the `metrics` feature, pool-core records its metrics and this program installs
//! the Prometheus recorder first, so the figures include what recording costs.

#![allow(unreachable_pub, missing_debug_implementations, dead_code)]

#[path = "common/peers.rs"]
mod peers;
#[path = "common/probe.rs"]
mod probe;

use std::time::{Duration, Instant};

use peers::*;
use tokio::runtime::Runtime;

struct Workload {
    id: &'static str,
    title: &'static str,
    tasks: usize,
    per_task: usize,
    size: usize,
    multi: bool,
    /// Runtime worker threads (multi-thread workloads).
    workers: usize,
    /// CPU-bound OS threads spinning beside the runtime for the whole workload (a busy host).
    hogs: usize,
    /// Batches per round and pool.
    batches: usize,
}

/// `n` OS threads that keep a core busy each until dropped: a host whose other work competes
/// with the runtime's workers for the cores (and preempts a lock's holder).
struct Hogs {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Hogs {
    fn start(n: usize) -> Hogs {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..1000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                    }
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `tasks` tasks doing `per_task` checkouts each, holding across a yield (none for one task).
async fn batch<P: BenchPool>(pool: &P, tasks: usize, per_task: usize) {
    if tasks == 1 {
        for _ in 0..per_task {
            cycle(pool, &Hold::Nothing).await.expect("checkout");
        }
        return;
    }
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let pool = pool.clone();
        set.spawn(async move {
            for _ in 0..per_task {
                cycle(&pool, &Hold::Yield).await.expect("checkout");
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task");
    }
}

/// Nanoseconds per operation over `w.batches` batches.
fn time<P: BenchPool>(rt: &Runtime, pool: &P, w: &Workload) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..w.batches {
            batch(pool, w.tasks, w.per_task).await;
        }
        start.elapsed().as_nanos() as f64 / (w.batches * w.tasks * w.per_task) as f64
    })
}

/// The probe's level from `PROBE` under `ONLY_OURS`: 0 to 4.
fn probe_level(value: &std::ffi::OsStr) -> Result<usize, String> {
    match value.to_str().and_then(|v| v.trim().parse::<usize>().ok()) {
        Some(level) if level <= 4 => Ok(level),
        _ => Err(format!(
            "PROBE={value:?}: under ONLY_OURS, PROBE picks the probe's level to run alone, a number from 0 to 4"
        )),
    }
}

/// [`time`] for the probe at `level` (see `common/probe.rs`).
fn time_probe(
    rt: &Runtime,
    level: usize,
    probes: (
        &probe::Probe<0>,
        &probe::Probe<1>,
        &probe::Probe<2>,
        &probe::Probe<3>,
        &probe::Probe<4>,
    ),
    w: &Workload,
) -> f64 {
    match level {
        0 => time(rt, probes.0, w),
        1 => time(rt, probes.1, w),
        2 => time(rt, probes.2, w),
        3 => time(rt, probes.3, w),
        4 => time(rt, probes.4, w),
        _ => unreachable!("probe_level checks the level"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let only = std::env::var("BENCH_WORKLOADS").ok();
    // ONLY_OURS=1: our pool alone, for profiling.
    let only_ours = std::env::var_os("ONLY_OURS").is_some();
    // PROBE=1: the probe pool, bare and at every level, runs too (last in each round).
    let with_probe = std::env::var_os("PROBE").is_some();
    // Under ONLY_OURS, PROBE=<level> picks the one level of the probe that runs.
    let probe_level = if only_ours && with_probe {
        match probe_level(&std::env::var_os("PROBE").unwrap_or_default()) {
            Ok(level) => level,
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        }
    } else {
        0
    };
    let workloads = [
        Workload {
            id: "A",
            title: "uncontended get+return, 1 task, pool of 16",
            tasks: 1,
            per_task: 200_000,
            size: 16,
            multi: false,
            workers: 1,
            hogs: 0,
            batches: 1,
        },
        Workload {
            id: "B",
            title: "16 tasks on 16, hold across a yield",
            tasks: 16,
            per_task: 64,
            size: 16,
            multi: true,
            workers: 2,
            hogs: 0,
            batches: 200,
        },
        Workload {
            id: "C",
            title: "64 tasks on 4, hold across a yield",
            tasks: 64,
            per_task: 16,
            size: 4,
            multi: true,
            workers: 2,
            hogs: 0,
            batches: 200,
        },
        Workload {
            id: "D",
            title: "256 tasks on 16, hold across a yield",
            tasks: 256,
            per_task: 8,
            size: 16,
            multi: true,
            workers: 2,
            hogs: 0,
            batches: 100,
        },
        // The lock's worst cases: a holder preempted while others wait for it.
        Workload {
            id: "O",
            title: "oversubscribed: 8 workers on the 2 cores, 64 tasks on 4",
            tasks: 64,
            per_task: 16,
            size: 4,
            multi: true,
            workers: 8,
            hogs: 0,
            batches: 100,
        },
        Workload {
            id: "T",
            title: "busy host: 2 CPU-bound threads beside 2 workers, 64 tasks on 4",
            tasks: 64,
            per_task: 16,
            size: 4,
            multi: true,
            workers: 2,
            hogs: 2,
            batches: 50,
        },
    ];
    #[cfg(feature = "metrics")]
    let _handle = {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("no recorder installed yet");
        handle
    };
    println!(
        "{rounds} interleaved rounds, medians (ours: defaults with min = max and CheckPolicy::Never{})\n",
        if cfg!(feature = "metrics") {
            "; the metrics feature on, with the Prometheus recorder installed"
        } else {
            ""
        }
    );
    println!("| workload | floor | ours | deadpool | ours/floor | deadpool/ours |");
    println!("|---|---|---|---|---|---|");
    for w in workloads.iter().filter(|w| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x.trim().eq_ignore_ascii_case(w.id)))
    }) {
        let rt = if w.multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(w.workers)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let _hogs = Hogs::start(w.hogs);
        let floor = rt.block_on(build_floor(w.size));
        let ours = rt.block_on(build_ours(w.size, w.size, Duration::ZERO));
        let dp = rt.block_on(build_deadpool(w.size, w.size, Duration::ZERO));
        let pr = probe::Probe::<0>::new(w.size);
        let (p1, p2, p3, p4) = (
            probe::Probe::<1>::new(w.size),
            probe::Probe::<2>::new(w.size),
            probe::Probe::<3>::new(w.size),
            probe::Probe::<4>::new(w.size),
        );
        // Warm-up round, not counted (ours only under ONLY_OURS, so a profile holds no other
        // pool's samples).
        // Under ONLY_OURS and PROBE both, the probe stands in for ours.
        if only_ours && with_probe {
            time_probe(&rt, probe_level, (&pr, &p1, &p2, &p3, &p4), w);
        } else if only_ours {
            time(&rt, &ours, w);
        } else {
            time(&rt, &floor, w);
            time(&rt, &ours, w);
            time(&rt, &dp, w);
            if with_probe {
                time(&rt, &pr, w);
                time(&rt, &p1, w);
                time(&rt, &p2, w);
                time(&rt, &p3, w);
                time(&rt, &p4, w);
            }
        }
        let (mut f, mut o, mut d, mut of, mut dr) = (vec![], vec![], vec![], vec![], vec![]);
        let mut pf = vec![];
        let mut levels = [vec![], vec![], vec![], vec![]];
        for _ in 0..rounds {
            if only_ours && with_probe {
                o.push(time_probe(&rt, probe_level, (&pr, &p1, &p2, &p3, &p4), w));
                continue;
            }
            if only_ours {
                o.push(time(&rt, &ours, w));
                continue;
            }
            let tf = time(&rt, &floor, w);
            let to = time(&rt, &ours, w);
            let td = time(&rt, &dp, w);
            f.push(tf);
            o.push(to);
            d.push(td);
            of.push(to / tf);
            dr.push(td / to);
            if with_probe {
                pf.push(time(&rt, &pr, w) / tf);
                levels[0].push(time(&rt, &p1, w) / tf);
                levels[1].push(time(&rt, &p2, w) / tf);
                levels[2].push(time(&rt, &p3, w) / tf);
                levels[3].push(time(&rt, &p4, w) / tf);
            }
        }
        if only_ours {
            let alone = if with_probe {
                format!("probe at level {probe_level} only")
            } else {
                "ours only".to_owned()
            };
            println!("| {}: {alone} | | {} | | | |", w.id, fmt_ns(median(o)));
            continue;
        }
        println!(
            "| {}: {} (per op) | {} | {} | {} | {:.2} | {:.2} |",
            w.id,
            w.title,
            fmt_ns(median(f)),
            fmt_ns(median(o)),
            fmt_ns(median(d)),
            median(of),
            median(dr)
        );
        if with_probe {
            let [l1, l2, l3, l4] = levels;
            println!(
                "|   probe/floor {:.2}; with stamps and counts {:.2}, + recycled slots {:.2}, + tickets and deadlines {:.2}, + connection looks {:.2} | | | | | |",
                median(pf),
                median(l1),
                median(l2),
                median(l3),
                median(l4)
            );
        }
    }
}
