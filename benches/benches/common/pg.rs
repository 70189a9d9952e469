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
    let manager = pool_postgres::PgManager::from_url(url).expect("url");
    let pool = pool_core::Pool::builder(manager)
        .min_size(size)
        .max_size(size)
        .check(pool_core::CheckPolicy::Never)
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
