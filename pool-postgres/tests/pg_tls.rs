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
