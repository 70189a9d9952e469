//! The same no-op connection behind every pool's manager trait, and one `BenchPool` face per
//! pool so the workloads are written once.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The no-op connection every pool hands out.
#[derive(Debug)]
pub struct Conn(#[allow(dead_code)] pub usize);

#[derive(Debug)]
pub struct NoopError;

impl fmt::Display for NoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no-op")
    }
}

impl std::error::Error for NoopError {}

/// Makes no-op connections, optionally slowly, counting them.
#[derive(Debug, Clone)]
pub struct Noop {
    pub delay: Duration,
    pub opened: Arc<AtomicUsize>,
}

impl Noop {
    pub fn new(delay: Duration) -> Self {
        Noop {
            delay,
            opened: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn make(&self) -> Conn {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        Conn(self.opened.fetch_add(1, Ordering::Relaxed))
    }
}

impl pool_core::Manager for Noop {
    type Connection = Conn;
    type Error = NoopError;
    async fn connect(&self) -> Result<Conn, NoopError> {
        Ok(self.make().await)
    }
    async fn check(&self, _conn: &mut Conn) -> Result<(), NoopError> {
        Ok(())
    }
}

impl deadpool::managed::Manager for Noop {
    type Type = Conn;
    type Error = NoopError;
    async fn create(&self) -> Result<Conn, NoopError> {
        Ok(self.make().await)
    }
    async fn recycle(
        &self,
        _conn: &mut Conn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<NoopError> {
        Ok(())
    }
}

impl bb8::ManageConnection for Noop {
    type Connection = Conn;
    type Error = NoopError;
    async fn connect(&self) -> Result<Conn, NoopError> {
        Ok(self.make().await)
    }
    async fn is_valid(&self, _conn: &mut Conn) -> Result<(), NoopError> {
        Ok(())
    }
    fn has_broken(&self, _conn: &mut Conn) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl mobc::Manager for Noop {
    type Connection = Conn;
    type Error = NoopError;
    async fn connect(&self) -> Result<Conn, NoopError> {
        Ok(self.make().await)
    }
    async fn check(&self, conn: Conn) -> Result<Conn, NoopError> {
        Ok(conn)
    }
}

#[async_trait::async_trait]
impl qp::resource::Manage for Noop {
    type Output = Conn;
    type Error = NoopError;
    async fn try_create(&self) -> Result<Conn, NoopError> {
        Ok(self.make().await)
    }
}

/// What a task does while holding a connection.
#[derive(Debug, Clone)]
pub enum Hold {
    Nothing,
    Yield,
    Sleep(Duration),
    /// Until the gate opens.
    Until(tokio::sync::watch::Receiver<bool>),
}

impl Hold {
    pub async fn run(&self) {
        match self {
            Hold::Nothing => {}
            Hold::Yield => tokio::task::yield_now().await,
            Hold::Sleep(d) => tokio::time::sleep(*d).await,
            Hold::Until(gate) => {
                let mut gate = gate.clone();
                let _ = gate.wait_for(|open| *open).await;
            }
        }
    }
}

/// One pool under test.
pub trait BenchPool: Clone + Send + Sync + 'static {
    /// What a checkout returns; dropping it returns the connection.
    type Guard<'a>: Send
    where
        Self: 'a;
    /// Checks out a connection.
    fn get(&self) -> impl Future<Output = Result<Self::Guard<'_>, String>> + Send;
    /// Connections the backend opened (0 for the semaphore).
    fn opened(&self) -> usize;
}

/// Checks out, holds, returns.
pub async fn cycle<P: BenchPool>(pool: &P, hold: &Hold) -> Result<(), String> {
    let guard = pool.get().await?;
    hold.run().await;
    drop(guard);
    Ok(())
}

/// As [`cycle`], returning how long the checkout waited.
pub async fn cycle_timed<P: BenchPool>(pool: &P, hold: &Hold) -> Result<Duration, String> {
    let t0 = tokio::time::Instant::now();
    let guard = pool.get().await?;
    let waited = t0.elapsed();
    hold.run().await;
    drop(guard);
    Ok(waited)
}

#[derive(Clone)]
pub struct Floor(pub Arc<Semaphore>);

impl BenchPool for Floor {
    type Guard<'a> = tokio::sync::SemaphorePermit<'a>;
    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        self.0.acquire().await.map_err(|e| e.to_string())
    }
    fn opened(&self) -> usize {
        0
    }
}

#[derive(Clone)]
pub struct Ours(pub pool_core::Pool<Noop>);

impl BenchPool for Ours {
    type Guard<'a> = pool_core::Object<Noop>;
    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        self.0.get().await.map_err(|e| e.to_string())
    }
    fn opened(&self) -> usize {
        self.0.manager().opened.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Deadpool(pub deadpool::managed::Pool<Noop>, pub Arc<AtomicUsize>);

impl BenchPool for Deadpool {
    type Guard<'a> = deadpool::managed::Object<Noop>;
    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        self.0.get().await.map_err(|e| format!("{e:?}"))
    }
    fn opened(&self) -> usize {
        self.1.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Bb8(pub bb8::Pool<Noop>, pub Arc<AtomicUsize>);

impl BenchPool for Bb8 {
    type Guard<'a> = bb8::PooledConnection<'a, Noop>;
    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        self.0.get().await.map_err(|e| format!("{e:?}"))
    }
    fn opened(&self) -> usize {
        self.1.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Mobc(pub mobc::Pool<Noop>, pub Arc<AtomicUsize>);

impl BenchPool for Mobc {
    type Guard<'a> = mobc::Connection<Noop>;
    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        self.0.get().await.map_err(|e| format!("{e:?}"))
    }
    fn opened(&self) -> usize {
        self.1.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Qp(pub qp::Pool<Noop>, pub Arc<AtomicUsize>);

impl BenchPool for Qp {
    type Guard<'a> = qp::Pooled<'a, Noop>;
    async fn get(&self) -> Result<Self::Guard<'_>, String> {
        self.0
            .acquire_unchecked()
            .await
            .map_err(|e| format!("{e:?}"))
    }
    fn opened(&self) -> usize {
        self.1.load(Ordering::Relaxed)
    }
}

/// Builds each pool with `min` connections open (where the pool can hold a floor, or by
/// checking out `min` at once where it cannot) and room for `max`. Call inside the runtime
/// that will use the pool.
pub async fn build_floor(max: usize) -> Floor {
    Floor(Arc::new(Semaphore::new(max)))
}

/// Our pool with its default configuration: only the sizes and `CheckPolicy::Never` (the peers'
/// equivalent of no checkout health check) are set. The 30 s wait timeout and the 1 s
/// slow-acquire warning stay on, as a user gets them.
pub async fn build_ours(min: usize, max: usize, delay: Duration) -> Ours {
    let builder = pool_core::Pool::builder(Noop::new(delay))
        .min_size(min)
        .max_size(max)
        .check(pool_core::CheckPolicy::Never);
    ready(builder).await
}

/// [`build_ours`] with the wait timeout and the slow-acquire warning turned off: what the pool
/// costs without any deadline to keep.
pub async fn build_ours_untimed(min: usize, max: usize, delay: Duration) -> Ours {
    let builder = pool_core::Pool::builder(Noop::new(delay))
        .min_size(min)
        .max_size(max)
        .check(pool_core::CheckPolicy::Never)
        .wait_timeout(None)
        .slow_acquire_threshold(None);
    ready(builder).await
}

async fn ready(builder: pool_core::PoolBuilder<Noop>) -> Ours {
    let pool = builder.build().expect("valid config");
    pool.wait_ready(Duration::from_secs(30))
        .await
        .expect("pre-filled");
    Ours(pool)
}

pub async fn build_deadpool(min: usize, max: usize, delay: Duration) -> Deadpool {
    let m = Noop::new(delay);
    let opened = Arc::clone(&m.opened);
    let pool = deadpool::managed::Pool::builder(m)
        .max_size(max)
        .build()
        .expect("deadpool");
    let p = Deadpool(pool, opened);
    prefill_exact(&p, min).await;
    p
}

pub async fn build_bb8(min: usize, max: usize, delay: Duration) -> Bb8 {
    let m = Noop::new(delay);
    let opened = Arc::clone(&m.opened);
    let pool = bb8::Pool::builder()
        .max_size(max as u32)
        .min_idle(Some(min as u32))
        .test_on_check_out(false)
        .build(m)
        .await
        .expect("bb8");
    Bb8(pool, opened)
}

pub async fn build_mobc(min: usize, max: usize, delay: Duration) -> Mobc {
    let m = Noop::new(delay);
    let opened = Arc::clone(&m.opened);
    let pool = mobc::Pool::builder()
        .max_open(max as u64)
        .max_idle(max as u64)
        .test_on_check_out(false)
        .build(m);
    let p = Mobc(pool, opened);
    prefill_exact(&p, min).await;
    p
}

pub async fn build_qp(min: usize, max: usize, delay: Duration) -> Qp {
    let m = Noop::new(delay);
    let opened = Arc::clone(&m.opened);
    let pool = qp::Pool::new(m, max);
    if min > 0 {
        pool.reserve(min).await.expect("qp reserve");
    }
    Qp(pool, opened)
}

/// Opens exactly `n` connections by holding `n` checkouts at once.
async fn prefill_exact<P: BenchPool>(pool: &P, n: usize) {
    if n == 0 {
        return;
    }
    let (go, gate) = tokio::sync::watch::channel(false);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let pool = pool.clone();
        let gate = gate.clone();
        set.spawn(async move { cycle(&pool, &Hold::Until(gate)).await });
    }
    while pool.opened() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _ = go.send(true);
    while let Some(r) = set.join_next().await {
        r.expect("prefill task").expect("prefill checkout");
    }
}
