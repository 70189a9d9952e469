//! Workload G: Redis `PING` through our pool with bb8-redis's and deadpool-redis's own
//! managers (pool-compat), against bb8 with bb8-redis and deadpool-redis themselves.

use std::time::Duration;

use pool_compat::{FromBb8, FromDeadpool};
use redis::aio::MultiplexedConnection;

use crate::service::Service;

async fn ping(conn: &mut MultiplexedConnection) -> Result<(), String> {
    let pong: String = redis::cmd("PING")
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("PING answered {pong}"))
    }
}

#[derive(Clone)]
pub struct OursBb8(pub pool_core::Pool<FromBb8<bb8_redis::RedisConnectionManager>>);

impl Service for OursBb8 {
    async fn call(&self) -> Result<(), String> {
        let mut conn = self.0.get().await.map_err(|e| e.to_string())?;
        ping(&mut conn).await
    }
}

#[derive(Clone)]
pub struct OursDeadpool(pub pool_core::Pool<FromDeadpool<deadpool_redis::Manager>>);

impl Service for OursDeadpool {
    async fn call(&self) -> Result<(), String> {
        let mut conn = self.0.get().await.map_err(|e| e.to_string())?;
        ping(&mut conn).await
    }
}

#[derive(Clone)]
pub struct Bb8Redis(pub bb8::Pool<bb8_redis::RedisConnectionManager>);

impl Service for Bb8Redis {
    async fn call(&self) -> Result<(), String> {
        let mut conn = self.0.get().await.map_err(|e| e.to_string())?;
        ping(&mut conn).await
    }
}

#[derive(Clone)]
pub struct DeadpoolRedis(pub deadpool_redis::Pool);

impl Service for DeadpoolRedis {
    async fn call(&self) -> Result<(), String> {
        let mut conn = self.0.get().await.map_err(|e| e.to_string())?;
        ping(&mut conn).await
    }
}

/// Our pool on bb8-redis's manager: defaults, pre-filled, no checkout check (as bb8 below).
pub async fn ours_bb8(url: &str, size: usize) -> OursBb8 {
    let manager = bb8_redis::RedisConnectionManager::new(url).expect("url");
    let pool = pool_core::Pool::builder(FromBb8::new(manager))
        .min_size(size)
        .max_size(size)
        .check(pool_core::CheckPolicy::Never)
        .build()
        .expect("config");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("pre-filled");
    OursBb8(pool)
}

/// Our pool on deadpool-redis's manager: defaults, pre-filled, `recycle` on every checkout
/// (`CheckPolicy::Always`), as deadpool does.
pub async fn ours_deadpool(url: &str, size: usize) -> OursDeadpool {
    let manager = deadpool_redis::Manager::new(url).expect("url");
    let pool = pool_core::Pool::builder(FromDeadpool::new(manager))
        .min_size(size)
        .max_size(size)
        .check(pool_core::CheckPolicy::Always)
        .build()
        .expect("config");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("pre-filled");
    OursDeadpool(pool)
}

/// bb8 with bb8-redis, pre-filled, without `test_on_check_out`.
pub async fn bb8(url: &str, size: usize) -> Bb8Redis {
    let manager = bb8_redis::RedisConnectionManager::new(url).expect("url");
    let pool = bb8::Pool::builder()
        .max_size(size as u32)
        .min_idle(Some(size as u32))
        .test_on_check_out(false)
        .build(manager)
        .await
        .expect("bb8-redis");
    Bb8Redis(pool)
}

/// deadpool-redis with its defaults (it recycles, with a PING, on every checkout), all
/// `size` connections opened up front.
pub async fn deadpool(url: &str, size: usize) -> DeadpoolRedis {
    let pool = deadpool_redis::Config::from_url(url)
        .builder()
        .expect("deadpool-redis config")
        .max_size(size)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .expect("deadpool-redis");
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(pool.get().await.expect("deadpool-redis connect"));
    }
    drop(held);
    DeadpoolRedis(pool)
}
