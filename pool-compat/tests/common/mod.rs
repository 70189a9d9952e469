//! Redis helpers for the swap-in tests: the server's URL, clients by database, and a private
//! `requirepass` server.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// The Redis server the tests use: `POOL_TEST_REDIS_URL`, else the local one. `None` (with a
/// loud message) when it does not answer, except under CI, where that is a failure.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("POOL_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
    let url = url.trim_end_matches('/').to_string();
    match admin(&url).await {
        Ok(_) => Some(url),
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("Redis at {url} is required under CI and does not answer: {e}");
            }
            eprintln!("SKIPPED: Redis at {url} does not answer ({e}); set POOL_TEST_REDIS_URL");
            None
        }
    }
}

/// A connection on database 0 for looking at and killing the pool's clients.
pub async fn admin(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(format!("{url}/0"))?;
    tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))?
}

/// The ids of the clients that have database `db` selected. Each test uses a database of its
/// own, so these are its pool's connections.
pub async fn clients_in(admin: &mut MultiplexedConnection, db: u32) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter(|line| line.split(' ').any(|f| f == format!("db={db}")))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

/// Kills, from the server side, every client with database `db` selected (`CLIENT KILL ID`:
/// `CLIENT KILL TYPE normal` would also kill the other tests' connections on this shared
/// server). Returns how many were killed.
pub async fn kill_clients_in(admin: &mut MultiplexedConnection, db: u32) -> usize {
    let ids = clients_in(admin, db).await;
    for id in &ids {
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(admin)
            .await
            .expect("CLIENT KILL ID");
    }
    ids.len()
}

/// Waits (polling, up to `limit`) until `db` has `n` clients; returns the last count seen.
pub async fn await_clients(
    admin: &mut MultiplexedConnection,
    db: u32,
    n: usize,
    limit: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = clients_in(admin, db).await.len();
        if seen == n || tokio::time::Instant::now() >= deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private `redis-server` with `requirepass`, on a free port; killed when dropped.
pub struct PrivateRedis {
    child: Child,
    pub port: u16,
}

impl PrivateRedis {
    /// Starts one, or `None` (with a loud message) when `redis-server` is not installed;
    /// under CI that is a failure.
    pub async fn start(password: &str) -> Option<PrivateRedis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--requirepass", password])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if std::env::var_os("CI").is_some() {
                    panic!("redis-server is required under CI: {e}");
                }
                eprintln!("SKIPPED: cannot start redis-server ({e})");
                return None;
            }
        };
        let server = PrivateRedis { child, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(server)
    }

    pub fn url(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/0", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
