//! TLS through rustls (the `rustls` feature): the handshake really happens.
#![cfg(feature = "rustls")]
mod common;

use std::sync::Arc;

use pool_core::{Pool, PoolError};
use pool_postgres::rustls::{self, ClientConfig, RootCertStore};
use pool_postgres::PgManager;

fn client_config() -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_connector_works_and_verifies_certificates() {
    let url = require_server!();
    let app = common::unique("tls");
    let base = common::with_app(&url, &app, None);

    // TLS off: the rustls-typed manager still connects.
    let manager = PgManager::from_url(&format!("{base} sslmode=disable"))
        .unwrap()
        .with_rustls(client_config());
    let pool = Pool::builder(manager).max_size(1).build().unwrap();
    let conn = pool.get().await.unwrap();
    conn.simple_query("SELECT 1").await.unwrap();
    drop(conn);

    // TLS required, nothing trusted: the server's certificate is refused. (The test server
    // offers TLS, as Debian's PostgreSQL does out of the box with its snakeoil certificate.)
    let manager = PgManager::from_url(&format!("{base} sslmode=require"))
        .unwrap()
        .with_rustls(client_config());
    let pool = Pool::builder(manager)
        .max_size(1)
        .wait_timeout(Some(std::time::Duration::from_secs(2)))
        .build()
        .unwrap();
    let err = pool.get().await.unwrap_err();
    let text = match &err {
        PoolError::Timeout(t) => format!("{:?}", t.last_connect_error),
        other => format!("{other:?}"),
    };
    eprintln!("TLS error: {text}");
    assert!(
        text.contains("UnknownIssuer"),
        "the certificate was checked and refused: {text}"
    );
}

/// The private cluster's connection string over `host`, with `extra` settings.
fn tls_conninfo(c: &common::cluster::Cluster, host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user=postgres password={} dbname=postgres {extra}",
        c.port,
        common::cluster::SUPERUSER_PASSWORD
    )
}

async fn tls_cluster() -> common::cluster::Cluster {
    tokio::task::spawn_blocking(common::cluster::Cluster::with_tls)
        .await
        .unwrap()
}

/// The first `get()` through a manager built from `conn` with `PgManager::rustls`.
async fn first_get(conn: &str) -> Result<bool, PoolError<pool_postgres::PgError>> {
    let manager = PgManager::from_url(conn).unwrap().rustls().unwrap();
    let pool = Pool::builder(manager)
        .max_size(1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .unwrap();
    let conn = pool.get().await?;
    let row = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_from_the_url_decides_what_is_verified() {
    let _ = require_server!();
    let cluster = tls_cluster().await;
    let certs = cluster.certs.clone().unwrap();
    let ca = certs.ca.display().to_string();
    let other = certs.other_ca.display().to_string();

    // verify-full with the right root and the certificate's host name: encrypted.
    let conn = tls_conninfo(
        &cluster,
        "localhost",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    assert!(first_get(&conn)
        .await
        .expect("verify-full, right root and name"));

    // verify-ca checks the chain only: 127.0.0.1 is not in the certificate, and that is fine.
    let conn = tls_conninfo(
        &cluster,
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={ca}"),
    );
    assert!(first_get(&conn)
        .await
        .expect("verify-ca ignores the host name"));

    // require: encrypted, nothing verified (no root certificate given at all).
    let conn = tls_conninfo(&cluster, "127.0.0.1", "sslmode=require");
    assert!(first_get(&conn).await.expect("require does not verify"));

    // The URL form works too.
    let url = format!(
        "postgres://postgres:{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        common::cluster::SUPERUSER_PASSWORD,
        cluster.port,
        ca.replace('/', "%2F")
    );
    assert!(first_get(&url).await.expect("URL form"));

    // Failures are fatal: the first get() fails at once, naming the verification error.
    for (conn, expected) in [
        (
            tls_conninfo(
                &cluster,
                "localhost",
                &format!("sslmode=verify-full sslrootcert={other}"),
            ),
            "UnknownIssuer",
        ),
        (
            tls_conninfo(
                &cluster,
                "127.0.0.1",
                &format!("sslmode=verify-full sslrootcert={ca}"),
            ),
            "certificate not valid for name \"127.0.0.1\"",
        ),
    ] {
        let started = std::time::Instant::now();
        let err = first_get(&conn).await.expect_err("verification fails");
        let took = started.elapsed();
        assert!(
            matches!(err, PoolError::Backend(_)),
            "fatal, not retried: {err:?}"
        );
        let text = err.to_string();
        eprintln!("TLS refusal: {text}");
        assert!(
            text.contains(expected),
            "names the failure ({expected}): {text}"
        );
        assert!(
            took < std::time::Duration::from_secs(2),
            "at once: {took:?}"
        );
    }
}

#[test]
fn verifying_without_a_root_certificate_is_a_configuration_error() {
    let err = PgManager::from_url("host=db.invalid user=u sslmode=verify-full")
        .unwrap()
        .rustls()
        .expect_err("no sslrootcert");
    assert!(err.to_string().contains("sslrootcert"), "{err}");
    let err = PgManager::from_url(
        "host=db.invalid user=u sslmode=verify-ca sslrootcert=/nonexistent/ca.crt",
    )
    .unwrap()
    .rustls()
    .expect_err("unreadable sslrootcert");
    assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_without_a_tls_connector_fails_at_once() {
    let _ = require_server!();
    let cluster = tls_cluster().await;
    let manager =
        PgManager::from_url(&tls_conninfo(&cluster, "127.0.0.1", "sslmode=require")).unwrap();
    let pool = Pool::builder(manager)
        .max_size(1)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = pool.get().await.expect_err("NoTls cannot do TLS");
    assert!(matches!(err, PoolError::Backend(_)), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    eprintln!("NoTls with sslmode=require: {err}");
}
