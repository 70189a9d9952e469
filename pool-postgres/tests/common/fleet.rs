//! The fleet simulation shared by `examples/fleet.rs` and `tests/pg_fleet.rs`: five pools
//! (one per worker) with the checkpointer preset against a role limited to 10 connections on
//! a real server, the same bursty random load on every worker, in three modes.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_core::{Config, Pool};
use pool_postgres::tokio_postgres::{self, Client, NoTls};
use pool_postgres::{checkpointer_config, PgManager};
use pool_testkit::Rng;
use tokio::time::Instant;

pub const WORKERS: usize = 5;
pub const ROLE_LIMIT: u32 = 10;

/// How the five pools are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// min = max = 4.
    Fixed,
    /// The checkpointer preset (min 1, max 4), adaptive ceiling off.
    Elastic,
    /// The checkpointer preset with the adaptive ceiling (the default).
    Adaptive,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Fixed, Mode::Elastic, Mode::Adaptive];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Fixed => "fixed 4/4",
            Mode::Elastic => "elastic 1-4",
            Mode::Adaptive => "elastic 1-4, adaptive ceiling",
        }
    }

    fn config(self) -> Config {
        let mut c = checkpointer_config();
        match self {
            Mode::Fixed => {
                c.min_size = 4;
                c.max_size = 4;
                c.adaptive_ceiling = false;
            }
            Mode::Elastic => c.adaptive_ceiling = false,
            Mode::Adaptive => c.adaptive_ceiling = true,
        }
        c
    }
}

/// What one mode's run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub mode: Mode,
    pub peak_backends: i64,
    pub mean_backends: f64,
    /// Connects the server refused (53300), all pools.
    pub refused: u64,
    pub caller_errors: u64,
    pub checkouts: u64,
    pub p50_wait: Duration,
    pub p99_wait: Duration,
    /// Each pool's checkouts.
    pub per_pool: Vec<u64>,
}

impl Report {
    /// The smallest pool's share of checkouts relative to a fair share (1.0 = fair).
    pub fn worst_share(&self) -> f64 {
        let fair = self.checkouts as f64 / self.per_pool.len() as f64;
        self.per_pool
            .iter()
            .map(|&n| n as f64 / fair)
            .fold(f64::INFINITY, f64::min)
    }
}

/// A role limited to `ROLE_LIMIT` connections, dropped with its sessions by `drop`.
pub struct Role {
    pub name: String,
    admin: Client,
}

impl Role {
    pub async fn create(admin_url: &str) -> Role {
        let (admin, conn) = tokio_postgres::connect(admin_url, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "fleet: cannot reach {}: {e}",
                    pool_postgres::redact(admin_url)
                )
            });
        tokio::spawn(conn);
        let name = format!("pool_fleet_{}", std::process::id());
        let _ = admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {name}"))
            .await;
        admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN CONNECTION LIMIT {ROLE_LIMIT}"
            ))
            .await
            .expect("create the fleet role");
        Role { name, admin }
    }

    async fn backends(&self) -> i64 {
        self.admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&self.name],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0)
    }

    async fn wait_for_no_backends(&self) {
        for _ in 0..100 {
            if self.backends().await == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn drop(self) {
        let _ = self
            .admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                &[&self.name],
            )
            .await;
        self.wait_for_no_backends().await;
        let _ = self
            .admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name))
            .await;
    }
}

/// One worker's load: pauses of 0-2 s, then a burst of 1-8 concurrent requests, each holding
/// its connection 50-250 ms around a `SELECT 1`. Seeded per worker, so every mode gets the
/// same schedule.
async fn worker(
    pool: Pool<PgManager>,
    seed: u64,
    end: Instant,
    waits: Arc<Mutex<Vec<Duration>>>,
    errors: Arc<Mutex<u64>>,
) {
    let mut rng = Rng::new(seed);
    let mut bursts = Vec::new();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.below(2000))).await;
        let n = 1 + rng.below(8);
        for _ in 0..n {
            let hold = Duration::from_millis(50 + rng.below(200));
            let (pool, waits, errors) = (pool.clone(), Arc::clone(&waits), Arc::clone(&errors));
            bursts.push(tokio::spawn(async move {
                let asked = Instant::now();
                match pool.get().await {
                    Ok(conn) => {
                        waits.lock().unwrap().push(asked.elapsed());
                        if conn.simple_query("SELECT 1").await.is_err() {
                            *errors.lock().unwrap() += 1;
                        }
                        tokio::time::sleep(hold).await;
                    }
                    Err(e) => {
                        eprintln!("fleet: caller error: {e}");
                        *errors.lock().unwrap() += 1;
                    }
                }
            }));
        }
    }
    for b in bursts {
        let _ = b.await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs one mode for `secs` seconds against `role` on the server at `url` (any user; the
/// role replaces it).
pub async fn run(url: &str, role: &Role, mode: Mode, secs: u64, seed: u64) -> Report {
    role.wait_for_no_backends().await;
    let mut config: tokio_postgres::Config = url.parse().expect("a valid URL");
    config.user(&role.name).application_name("pool-fleet");
    let pools: Vec<Pool<PgManager>> = (0..WORKERS)
        .map(|_| {
            let manager = PgManager::new(config.clone()).expect("a manager");
            Pool::builder(manager)
                .config(mode.config())
                .build()
                .expect("a pool")
        })
        .collect();
    // Let the floors open (or fail to); refusals from here on count.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let waits = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(0u64));
    let end = Instant::now() + Duration::from_secs(secs);
    let sampling = Arc::new(AtomicBool::new(true));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for (i, pool) in pools.iter().enumerate() {
        workers.push(tokio::spawn(worker(
            pool.clone(),
            seed.wrapping_add(i as u64 * 7919),
            end,
            Arc::clone(&waits),
            Arc::clone(&errors),
        )));
    }
    let (s, on) = (Arc::clone(&samples), Arc::clone(&sampling));
    let sampler = async {
        while on.load(Ordering::Relaxed) {
            let n = role.backends().await;
            s.lock().unwrap().push(n);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let load = async {
        for w in workers {
            let _ = w.await;
        }
        sampling.store(false, Ordering::Relaxed);
    };
    tokio::join!(sampler, load);

    let refused = pools
        .iter()
        .map(|p| p.stats().connections_errors)
        .sum::<u64>();
    let per_pool: Vec<u64> = pools.iter().map(|p| p.stats().requests_num).collect();
    for p in &pools {
        p.close_and_wait().await;
    }
    let mut w = waits.lock().unwrap().clone();
    w.sort();
    let samples = samples.lock().unwrap().clone();
    let caller_errors = *errors.lock().unwrap();
    Report {
        mode,
        peak_backends: samples.iter().copied().max().unwrap_or(0),
        mean_backends: samples.iter().sum::<i64>() as f64 / samples.len().max(1) as f64,
        refused,
        caller_errors,
        checkouts: per_pool.iter().sum(),
        p50_wait: percentile(&w, 0.5),
        p99_wait: percentile(&w, 0.99),
        per_pool,
    }
}

/// The reports as a Markdown table.
pub fn table(reports: &[Report]) -> String {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mut out = String::from(
        "| mode | peak backends | mean backends | refused connects | caller errors | checkouts | p50 wait | p99 wait | checkouts per pool |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {:?} |\n",
            r.mode.name(),
            r.peak_backends,
            r.mean_backends,
            r.refused,
            r.caller_errors,
            r.checkouts,
            ms(r.p50_wait),
            ms(r.p99_wait),
            r.per_pool
        ));
    }
    out
}
