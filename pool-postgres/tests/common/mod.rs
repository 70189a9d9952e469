//! Helpers for the tests against a real PostgreSQL server.
//!
//! The server comes from `POOL_TEST_DATABASE_URL` (a superuser URL, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`). Without it a test skips with a loud
//! message, except under CI (`CI` set), where it fails.
#![allow(dead_code, unreachable_pub)]

pub mod bouncer;
pub mod cluster;
pub mod fleet;

use std::time::Duration;

use pool_postgres::tokio_postgres::{self, Client, NoTls};

pub const URL_VAR: &str = "POOL_TEST_DATABASE_URL";

/// The test server's URL, or `None` (after a loud message) when the variable is unset outside
/// CI. Under CI a missing variable is a failure.
pub fn server_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{URL_VAR} is not set under CI: the Postgres tests must run, not skip");
            }
            // Straight to stderr, past the test harness's capture, so the skip is seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {}: {URL_VAR} is not set; this test needs a PostgreSQL server, e.g.\n\
                 *** {URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres cargo test --workspace",
                std::thread::current().name().unwrap_or("a Postgres test")
            );
            None
        }
    }
}

/// Returns early from a test (skipping) when no server is configured.
#[macro_export]
macro_rules! require_server {
    () => {
        match common::server_url() {
            Some(url) => url,
            None => return,
        }
    };
}

/// A plain admin connection (not through the pool).
pub async fn admin(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach the test server at {}: {e}",
                pool_postgres::redact(url)
            )
        });
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// A name unique to this test run, for application names and roles.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pooltest_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The URL with an application name (and optionally another user) set.
pub fn with_app(url: &str, app: &str, user: Option<&str>) -> String {
    let mut config: tokio_postgres::Config = url.parse().expect("a valid test URL");
    config.application_name(app);
    if let Some(u) = user {
        config.user(u);
    }
    to_key_values(&config)
}

/// Renders a config as libpq key/value pairs (enough for the test server: host, port, user,
/// dbname, application_name; no password since the test server trusts local connections).
pub fn to_key_values(c: &tokio_postgres::Config) -> String {
    let mut parts = Vec::new();
    for h in c.get_hosts() {
        match h {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(p) = c.get_ports().first() {
        parts.push(format!("port={p}"));
    }
    if let Some(u) = c.get_user() {
        parts.push(format!("user={u}"));
    }
    if let Some(d) = c.get_dbname() {
        parts.push(format!("dbname={d}"));
    }
    if let Some(pw) = c.get_password() {
        parts.push(format!(
            "password='{}'",
            String::from_utf8_lossy(pw).replace('\'', "\\'")
        ));
    }
    if let Some(a) = c.get_application_name() {
        parts.push(format!("application_name={a}"));
    }
    parts.join(" ")
}

/// Backends connected with this application name.
pub async fn backends(admin: &Client, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

/// Backends connected as this role.
pub async fn backends_of_role(admin: &Client, role: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0)
}

/// Polls `f` until it returns true or `limit` passes (for effects outside this process, such
/// as the server noticing a closed socket). Returns whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A login role with a connection limit, dropped (with its sessions) by `drop_role`.
pub async fn create_limited_role(admin: &Client, role: &str, limit: u32) {
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}"
        ))
        .await
        .unwrap();
}

pub async fn drop_role(admin: &Client, role: &str) {
    let _ = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            &[&role],
        )
        .await;
    for _ in 0..100 {
        if admin
            .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not drop role {role}");
}

/// The keepalive timer `ss` shows on the established socket with this local port, in
/// seconds (`None`: no keepalive timer).
pub fn keepalive_timer(port: u16) -> Option<f64> {
    let out = std::process::Command::new("ss")
        .args(["-tnoe", "state", "established"])
        .output()
        .unwrap_or_else(|e| panic!("`ss` (iproute2) is needed to see the sockets' timers: {e}"));
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = out
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|local| local.ends_with(&format!(":{port}")))
        })
        .unwrap_or_else(|| panic!("no socket with local port {port} in ss output:\n{out}"));
    let timer = line.split("timer:(keepalive,").nth(1)?;
    let t = timer.split(',').next().unwrap_or("");
    let secs = if let Some(ms) = t.strip_suffix("ms") {
        ms.parse::<f64>().ok().map(|v| v / 1000.0)
    } else if let Some((m, s)) = t.split_once("min") {
        let s = s.trim_end_matches("sec");
        Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().unwrap_or(0.0))
    } else {
        t.trim_end_matches("sec").parse().ok()
    };
    Some(secs.unwrap_or_else(|| panic!("unparsable timer: {line}")))
}
