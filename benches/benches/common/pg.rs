//! Workload F: `SELECT 1` through each pool's Postgres adapter, and a raw client.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::service::Service;

#[derive(Clone)]
pub struct Raw(pub Arc<tokio_postgres::Client>);

impl Service for Raw {
    async fn call(&self) -> Result<(), String> {
        self.0
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct OursPg(pub pool_core::Pool<pool_postgres::PgManager>);

impl Service for OursPg {
    async fn call(&self) -> Result<(), String> {
        let conn = self.0.get().await.map_err(|e| e.to_string())?;
        conn.simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct DeadpoolPg(pub deadpool_postgres::Pool);

impl Service for DeadpoolPg {
    async fn call(&self) -> Result<(), String> {
        let conn = self.0.get().await.map_err(|e| e.to_string())?;
        conn.simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct Bb8Pg(pub bb8::Pool<bb8_postgres::PostgresConnectionManager<NoTls>>);

impl Service for Bb8Pg {
    async fn call(&self) -> Result<(), String> {
        let conn = self.0.get().await.map_err(|e| e.to_string())?;
        conn.simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

pub async fn raw(url: &str) -> Raw {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("raw connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Raw(Arc::new(client))
}

pub async fn ours(url: &str, size: usize) -> OursPg {
    ours_with(url, size, pool_core::QueueMode::default()).await
}

/// Ours as [`ours`] builds it, but reusing idle connections oldest first
/// (`QueueMode::Fifo`, deadpool's order) instead of the default most recent first.
pub async fn ours_fifo(url: &str, size: usize) -> OursPg {
    ours_with(url, size, pool_core::QueueMode::Fifo).await
}

async fn ours_with(url: &str, size: usize, queue: pool_core::QueueMode) -> OursPg {
    let manager = pool_postgres::PgManager::from_url(url).expect("url");
    let pool = pool_core::Pool::builder(manager)
        .min_size(size)
        .max_size(size)
        .check(pool_core::CheckPolicy::Never)
        .queue_mode(queue)
        .build()
        .expect("config");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("pre-filled");
    OursPg(pool)
}

pub async fn deadpool(url: &str, size: usize) -> DeadpoolPg {
    let config: tokio_postgres::Config = url.parse().expect("url");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .build()
        .expect("deadpool-postgres");
    // Open all `size` connections up front, as the others are.
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(pool.get().await.expect("deadpool-postgres connect"));
    }
    drop(held);
    DeadpoolPg(pool)
}

pub async fn bb8(url: &str, size: usize) -> Bb8Pg {
    let config: tokio_postgres::Config = url.parse().expect("url");
    let manager = bb8_postgres::PostgresConnectionManager::new(config, NoTls);
    let pool = bb8::Pool::builder()
        .max_size(size as u32)
        .min_idle(Some(size as u32))
        .test_on_check_out(false)
        .build(manager)
        .await
        .expect("bb8-postgres");
    Bb8Pg(pool)
}

/// The point query of workload F's second table: one row of 1,000 by its key.
pub const POINT_SQL: &str = "SELECT v FROM pool_bench_point WHERE k = $1";

/// Creates the point query's table (1,000 rows) if it is not there.
pub async fn point_table(url: &str) {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connect for the point table");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS pool_bench_point (k int4 PRIMARY KEY, v int4 NOT NULL);
             INSERT INTO pool_bench_point SELECT g, g * 7 FROM generate_series(1, 1000) g
             ON CONFLICT (k) DO NOTHING",
        )
        .await
        .expect("the point table");
}

/// The next key to look up, cycling over the table.
fn next_key(counter: &std::sync::atomic::AtomicU32) -> i32 {
    (counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1000) as i32 + 1
}

fn check(row: tokio_postgres::Row, k: i32) -> Result<(), String> {
    let v: i32 = row.get(0);
    if v == k * 7 {
        Ok(())
    } else {
        Err(format!("k {k}: v {v}"))
    }
}

/// A raw client with its one prepared statement.
#[derive(Clone)]
pub struct RawPoint(
    pub Arc<tokio_postgres::Client>,
    pub tokio_postgres::Statement,
    pub Arc<std::sync::atomic::AtomicU32>,
);

impl Service for RawPoint {
    async fn call(&self) -> Result<(), String> {
        let k = next_key(&self.2);
        let row = self
            .0
            .query_one(&self.1, &[&k])
            .await
            .map_err(|e| e.to_string())?;
        check(row, k)
    }
}

pub async fn raw_point(url: &str) -> RawPoint {
    let raw = raw(url).await;
    let st = raw.0.prepare(POINT_SQL).await.expect("prepare");
    RawPoint(raw.0, st, Arc::default())
}

/// Raw clients, each with its one prepared statement, taken in turn: no pool, only the
/// order in which deadpool (FIFO) reuses its connections.
#[derive(Clone)]
pub struct RawRing(
    pub Arc<Vec<RawPoint>>,
    pub Arc<std::sync::atomic::AtomicU32>,
);

impl Service for RawRing {
    async fn call(&self) -> Result<(), String> {
        let i = self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
        self.0[i % self.0.len()].call().await
    }
}

pub async fn raw_ring(url: &str, size: usize) -> RawRing {
    let keys = Arc::<std::sync::atomic::AtomicU32>::default();
    let mut ring = Vec::with_capacity(size);
    for _ in 0..size {
        let one = raw_point(url).await;
        ring.push(RawPoint(one.0, one.1, keys.clone()));
    }
    RawRing(Arc::new(ring), Arc::default())
}

/// Ours, with `prepare_cached` (`cached`) or a plain `query_one(&str)`.
#[derive(Clone)]
pub struct OursPoint(pub OursPg, pub bool, pub Arc<std::sync::atomic::AtomicU32>);

impl Service for OursPoint {
    async fn call(&self) -> Result<(), String> {
        let k = next_key(&self.2);
        let conn = self.0 .0.get().await.map_err(|e| e.to_string())?;
        let row = if self.1 {
            let st = conn
                .prepare_cached(POINT_SQL)
                .await
                .map_err(|e| e.to_string())?;
            conn.query_one(&st, &[&k]).await
        } else {
            conn.query_one(POINT_SQL, &[&k]).await
        }
        .map_err(|e| e.to_string())?;
        check(row, k)
    }
}

/// deadpool-postgres with its `prepare_cached`.
#[derive(Clone)]
pub struct DeadpoolPoint(pub DeadpoolPg, pub Arc<std::sync::atomic::AtomicU32>);

impl Service for DeadpoolPoint {
    async fn call(&self) -> Result<(), String> {
        let k = next_key(&self.1);
        let conn = self.0 .0.get().await.map_err(|e| e.to_string())?;
        let st = conn
            .prepare_cached(POINT_SQL)
            .await
            .map_err(|e| e.to_string())?;
        let row = conn
            .query_one(&st, &[&k])
            .await
            .map_err(|e| e.to_string())?;
        check(row, k)
    }
}

/// bb8-postgres (no statement cache: the query text each time).
#[derive(Clone)]
pub struct Bb8Point(pub Bb8Pg, pub Arc<std::sync::atomic::AtomicU32>);

impl Service for Bb8Point {
    async fn call(&self) -> Result<(), String> {
        let k = next_key(&self.1);
        let conn = self.0 .0.get().await.map_err(|e| e.to_string())?;
        let row = conn
            .query_one(POINT_SQL, &[&k])
            .await
            .map_err(|e| e.to_string())?;
        check(row, k)
    }
}
