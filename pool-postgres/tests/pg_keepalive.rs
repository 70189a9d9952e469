//! TCP keepalives are really on the pool's sockets: `ss` shows a keepalive timer on the client
//! ports `pg_stat_activity` reports for the pool's backends, and a URL's own settings win.
mod common;

use std::time::Duration;

use pool_core::Pool;
use pool_postgres::{Keepalives, PgManager};
use tokio_postgres::Client;

use pool_postgres::tokio_postgres;

/// The client ports of the backends with this application name.
async fn client_ports(admin: &Client, app: &str) -> Vec<u16> {
    let rows = admin
        .query(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<_, i32>(0) as u16).collect()
}

async fn pool_ports(url: &str, app: &str, n: usize, admin: &Client) -> (Pool<PgManager>, Vec<u16>) {
    let manager = PgManager::from_url(url).unwrap();
    let pool = Pool::builder(manager)
        .min_size(n)
        .max_size(n)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let ports = client_ports(admin, app).await;
    assert_eq!(ports.len(), n, "the pool's backends");
    (pool, ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_sockets_carry_the_default_keepalives() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("keepalive");
    let conn = common::with_app(&url, &app, None);
    assert_eq!(
        PgManager::from_url(&conn).unwrap().keepalive_settings(),
        Some(Keepalives::default())
    );
    let (_pool, ports) = pool_ports(&conn, &app, 3, &admin).await;
    for port in ports {
        let timer =
            common::keepalive_timer(port).unwrap_or_else(|| panic!("no keepalive timer on {port}"));
        // Linux's default would be 7200 s.
        assert!(timer <= 60.0, "keepalive timer {timer} s on port {port}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_settings_win_over_the_defaults() {
    let url = require_server!();
    let admin = common::admin(&url).await;
    let app = common::unique("keepalive_url");
    let base = common::with_app(&url, &app, None);
    let conn = format!(
        "{base} keepalives_idle=30 keepalives_interval=5 keepalives_retries=3 tcp_user_timeout=20"
    );
    let manager = PgManager::from_url(&conn).unwrap();
    assert_eq!(
        manager.keepalive_settings(),
        Some(Keepalives::new(
            Duration::from_secs(30),
            Duration::from_secs(5),
            3
        ))
    );
    assert_eq!(
        manager.tcp_user_timeout_setting(),
        Some(Duration::from_secs(20))
    );
    let (pool, ports) = pool_ports(&conn, &app, 2, &admin).await;
    for port in ports {
        let timer =
            common::keepalive_timer(port).unwrap_or_else(|| panic!("no keepalive timer on {port}"));
        assert!(
            timer <= 30.0,
            "keepalives_idle=30 from the URL: timer {timer} s on {port}"
        );
        assert!(timer > 20.0, "fresh sockets, timer {timer} s on {port}");
    }
    drop(pool);

    // Only the idle time given: the rest keep the adapter's defaults.
    let manager = PgManager::from_url(&format!("{base} keepalives_idle=45")).unwrap();
    assert_eq!(
        manager.keepalive_settings(),
        Some({
            let mut k = Keepalives::default();
            k.idle = Duration::from_secs(45);
            k
        })
    );

    // Turned off explicitly: no keepalive timer on the sockets.
    let app = common::unique("keepalive_off");
    let conn = format!("{} keepalives=0", common::with_app(&url, &app, None));
    assert_eq!(
        PgManager::from_url(&conn).unwrap().keepalive_settings(),
        None
    );
    let (_pool, ports) = pool_ports(&conn, &app, 1, &admin).await;
    assert_eq!(common::keepalive_timer(ports[0]), None);
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
