//! TCP keepalives are really on the pool's sockets: read back from the kernel with
//! getsockopt, and seen by `ss` as a keepalive timer.
mod common;

use std::time::Duration;

use pool_core::Pool;
use pool_postgres::{Keepalives, PgManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_sockets_carry_the_keepalive_settings() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("keepalive");
    let manager = PgManager::from_url(&common::with_app(&url, &app, None))
        .unwrap()
        .tcp_user_timeout(Some(Duration::from_secs(30)));
    assert_eq!(manager.keepalive_settings(), Some(Keepalives::default()));
    let pool = Pool::builder(manager)
        .min_size(3)
        .max_size(3)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();

    let mut ports = Vec::new();
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(pool.get().await.unwrap());
        }
        v
    };
    for conn in &held {
        let opts = conn.socket_options().expect("a TCP connection");
        assert!(opts.keepalive, "SO_KEEPALIVE is on");
        assert_eq!(opts.keepalive_idle, Duration::from_secs(60), "TCP_KEEPIDLE");
        assert_eq!(
            opts.keepalive_interval,
            Duration::from_secs(10),
            "TCP_KEEPINTVL"
        );
        assert_eq!(opts.keepalive_retries, 6, "TCP_KEEPCNT");
        assert_eq!(
            opts.user_timeout,
            Some(Duration::from_secs(30)),
            "TCP_USER_TIMEOUT"
        );
        ports.push(opts.local_addr.port());
    }
    // The server sees the same client ports.
    let rows = admin
        .query(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    let mut server_ports: Vec<u16> = rows.iter().map(|r| r.get::<_, i32>(0) as u16).collect();
    server_ports.sort();
    ports.sort();
    assert_eq!(server_ports, ports);

    // And the operating system shows a keepalive timer (at most 60 s, not Linux's 2 h default)
    // on each of those sockets.
    let out = std::process::Command::new("ss")
        .args(["-tnoe", "state", "established"])
        .output();
    let out = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        Err(e) => panic!("`ss` (iproute2) is needed to show the sockets' keepalive timers: {e}"),
    };
    for port in &ports {
        let line = out
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .nth(2)
                    .is_some_and(|local| local.ends_with(&format!(":{port}")))
            })
            .unwrap_or_else(|| panic!("no socket with local port {port} in ss output:\n{out}"));
        let timer = line
            .split("timer:(keepalive,")
            .nth(1)
            .unwrap_or_else(|| panic!("no keepalive timer on port {port}: {line}"));
        let secs: f64 = timer
            .split(',')
            .next()
            .and_then(|t| {
                let t = t.trim_end_matches("sec").trim_end_matches("ms");
                t.parse().ok()
            })
            .unwrap_or_else(|| panic!("unparsable timer: {line}"));
        assert!(
            secs <= 60.0,
            "keepalive timer {secs} s on port {port}: {line}"
        );
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_url_settings_win_over_the_defaults() {
    let url = require_server!();
    let app = common::unique("keepalive_url");
    let base = common::with_app(&url, &app, None);
    let manager = PgManager::from_url(&format!(
        "{base} keepalives_idle=30 keepalives_interval=5 keepalives_retries=3 tcp_user_timeout=20"
    ))
    .unwrap();
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    let opts = *conn.socket_options().unwrap();
    assert_eq!(opts.keepalive_idle, Duration::from_secs(30));
    assert_eq!(opts.keepalive_interval, Duration::from_secs(5));
    assert_eq!(opts.keepalive_retries, 3);
    assert_eq!(opts.user_timeout, Some(Duration::from_secs(20)));

    // Only the idle time given: the rest keep the adapter's defaults.
    let manager = PgManager::from_url(&format!("{base} keepalives_idle=45")).unwrap();
    assert_eq!(
        manager.keepalive_settings(),
        Some(Keepalives {
            idle: Duration::from_secs(45),
            ..Keepalives::default()
        })
    );
    // Turned off explicitly.
    let manager = PgManager::from_url(&format!("{base} keepalives=0")).unwrap();
    assert_eq!(manager.keepalive_settings(), None);
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    assert!(!conn.socket_options().unwrap().keepalive);
}

#[test]
fn url_form_parameters_are_read_too() {
    let manager = PgManager::from_url(
        "postgres://app@db.invalid:5433/x?keepalives_idle=15&connect_timeout=3",
    )
    .unwrap();
    assert_eq!(
        manager.keepalive_settings().unwrap().idle,
        Duration::from_secs(15)
    );
    assert_eq!(manager.keepalive_settings().unwrap().retries, 6);
    assert_eq!(
        manager.connect_timeout_setting(),
        Some(Duration::from_secs(3))
    );
}
