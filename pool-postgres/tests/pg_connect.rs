//! Custom connects (`PgManager::connector`): the stream comes from the application, the rest
//! of the connect is the manager's. Through a Unix socket at a path of the test's choosing,
//! and through the test kit's TCP proxy standing in for a tunnel (keepalives set on the TCP
//! stream, the password provider and `after_connect_sql` applied, a tunnel reset healed
//! without a caller error).
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::Cluster;
use pool_postgres::{PgError, PgManager, PgStream, Pool};
use pool_testkit::{Fault, FaultProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_connect_through_a_unix_socket_path() {
    let _ = require_server!();
    let cluster = tokio::task::spawn_blocking(Cluster::new).await.unwrap();
    let socket = cluster.socket_path();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let manager = PgManager::from_url(&cluster.conninfo("sslmode=disable"))
        .unwrap()
        .after_connect_sql("SET application_name = 'via_unix'")
        .connector(move |_config| {
            c.fetch_add(1, Ordering::SeqCst);
            let socket = socket.clone();
            async move {
                Ok(PgStream::Unix(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        });
    let pool = Pool::builder(manager)
        .min_size(2)
        .max_size(2)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    let conn = pool.get().await.unwrap();
    let row = conn
        .query_one(
            "SELECT inet_server_addr() IS NULL, current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "a Unix-socket backend has no server address"
    );
    assert_eq!(row.get::<_, String>(1), "via_unix", "after_connect_sql ran");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one custom connect per connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_connect_through_a_tunnel_keeps_the_managers_tcp_settings() {
    let url = require_server!();
    let upstream = {
        let c: tokio_postgres::Config = url.parse().unwrap();
        let port = c.get_ports().first().copied().unwrap_or(5432);
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    };
    let tunnel = FaultProxy::start(upstream).await.unwrap();
    let tunnel_addr = tunnel.addr();
    let local_ports = Arc::new(Mutex::new(Vec::new()));
    let ports = Arc::clone(&local_ports);
    let app = common::unique("tunnel");
    let passwords = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&passwords);
    let manager = PgManager::from_url(&common::with_app(&url, &app, None))
        .unwrap()
        .password_provider(move || {
            p.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::io::Error>("unused-with-trust".to_string()) }
        })
        .connector(move |_config| {
            let ports = Arc::clone(&ports);
            async move {
                let stream = tokio::net::TcpStream::connect(tunnel_addr).await?;
                ports.lock().unwrap().push(stream.local_addr()?.port());
                Ok(PgStream::Tcp(stream))
            }
        });
    let pool = Pool::builder(manager)
        .min_size(1)
        .max_size(2)
        .check(pool_postgres::CheckPolicy::Never)
        .build()
        .unwrap();
    pool.wait_ready(Duration::from_secs(10)).await.unwrap();
    {
        let conn = pool.get().await.unwrap();
        conn.simple_query("SELECT 1").await.unwrap();
    }
    assert_eq!(tunnel.accepted(), 1, "connected through the tunnel");
    assert!(
        passwords.load(Ordering::SeqCst) >= 1,
        "the password provider was asked"
    );
    // The manager's keepalives (idle 60 s) are on the TCP stream the connector made.
    let port = local_ports.lock().unwrap()[0];
    let timer = common::keepalive_timer(port).expect("a keepalive timer on the tunnel's socket");
    assert!(timer <= 60.0, "keepalive idle 60 s: {timer}");
    // The tunnel drops every connection: the dead one is found and replaced, no caller error.
    tunnel.set(Fault::Reset);
    tokio::time::sleep(Duration::from_millis(200)).await;
    tunnel.set(Fault::Pass);
    let conn = tokio::time::timeout(Duration::from_secs(10), pool.get())
        .await
        .unwrap()
        .unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
    assert!(tunnel.accepted() >= 2, "reconnected through the tunnel");
    assert_eq!(pool.stats().requests_errors, 0);
}

#[tokio::test]
async fn a_custom_connect_refuses_an_sslmode_that_needs_tls_naming_it() {
    let manager = PgManager::from_url("postgres://app@db.invalid/app?sslmode=require")
        .unwrap()
        .connector(|_| async { Err(std::io::Error::other("never called")) });
    let pool = Pool::builder(manager).build().unwrap();
    let err = pool.get().await.unwrap_err();
    let e = err.backend_error().expect("a fatal configuration error");
    assert!(matches!(e, PgError::Config(_)), "{e}");
    assert!(e.to_string().contains("sslmode=require"), "{e}");
}
