//! A tokio-postgres adapter for [`pool_core`]: TCP keepalives on by default, an empty-query
//! health check, SQLSTATE-aware connect errors, failover and demotion handling, a statement
//! cache, watched transactions, [`GenericClient`], custom connects, and presets. One crate to
//! add: [`Pool`], [`Object`], [`PoolBuilder`] and [`PoolError`] are aliases over `pool_core`'s
//! types, and [`pool_core`] itself is re-exported.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pool_postgres::{elastic, PgManager, Pool};
//!
//! let manager = PgManager::from_url("postgres://app@db.internal/app")?;
//! // min 1, max 4, idle connections closed after 300 s, a health check on every checkout;
//! // APP_DB_POOL_MIN, APP_DB_POOL_MAX, APP_DB_POOL_MAX_IDLE (and the rest) override.
//! let pool: Pool = elastic(manager, "APP_DB_POOL")?.build()?;
//! let mut conn = pool.get().await?;
//! let st = conn.prepare_cached("SELECT $1::int4 + 1").await?;
//! assert_eq!(conn.query_one(&st, &[&1_i32]).await?.get::<_, i32>(0), 2);
//! let tx = conn.transaction().await?;
//! tx.batch_execute("CREATE TEMP TABLE t (v int4)").await?;
//! tx.commit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Connections are opened by `tokio_postgres::Config::connect`: several hosts,
//! `target_session_attrs`, `load_balance_hosts` and cancel tokens work as tokio-postgres
//! defines them. A statement that fails with 25006 under `target_session_attrs=read-write`
//! closes the connections to that (demoted) server; a backend that goes away makes the older
//! connections doubted, each checked once. [`PgManager::password_provider`] supplies a fresh
//! password to every connect; with the `rustls` feature, `PgManager::rustls` verifies as
//! `sslmode` asks (`verify-ca`, `verify-full` with `sslrootcert`).
//!
//! Connect errors are classified by SQLSTATE: 53300 (too many connections), 57P03 (cannot
//! connect now) and refused or reset connections are retried with backoff; class 28 (bad
//! credentials), 3D000 (unknown database) and a refused server certificate fail the waiting
//! callers at once. Passwords never appear in `Debug`, `Display`, errors or log events.
#![cfg_attr(docsrs, feature(doc_cfg))]

//!
//! # Map
//!
//! | file | holds |
//! |---|---|
//! | `manager.rs` | `PgManager`: its settings, the builder methods and the `Manager` impl |
//! | `dial.rs` | one connect (dialing the hosts or a custom connector's stream), the connection task, setup SQL, the budget check |
//! | `connection.rs` | `PgConnection`: the watched statement methods, the statement cache, transactions |
//! | `transaction.rs`, `generic.rs` | the watched `Transaction`; `GenericClient` over all three |
//! | `watch.rs`, `health.rs` | what a statement's outcome is observed against; what connections tell each other |
//! | `cache.rs` | the per-connection LRU of prepared statements |
//! | `conninfo.rs` | the one connection-string parser (URL and key/value), for TLS settings, explicit parameters and redaction |
//! | `stream.rs` | custom connects' streams |
//! | `reset.rs`, `preset.rs`, `ssl.rs`, `tls.rs`, `error.rs`, `budget.rs`, `keepalive.rs`, `redact.rs` | reset hooks, presets, TLS settings, errors, the connection budget, keepalives, redaction |

mod budget;
#[macro_use]
mod cache;
mod connection;
mod conninfo;
mod dial;
mod error;
mod generic;
mod health;
mod keepalive;
mod manager;
mod preset;
mod redact;
mod reset;
mod ssl;
mod stream;
#[cfg(feature = "rustls")]
mod tls;
mod transaction;
mod watch;

pub use budget::Budget;
pub use cache::Query;
pub use connection::PgConnection;
pub use error::PgError;
pub use error::ProviderError;
pub use generic::GenericClient;
pub use keepalive::Keepalives;
pub use manager::{PgManager, PgTls};
pub use preset::{
    checkpointer, checkpointer_config, checkpointer_with_prefix, elastic, elastic_config,
    CHECKPOINTER_ENV_PREFIX,
};
pub use redact::redact;
pub use reset::{reset, Reset};

/// The pool crate, re-exported: `pool_postgres::pool_core::Config` and the rest, without a
/// second dependency.
pub use pool_core;
pub use pool_core::{CheckPolicy, Config, ConfigError, ConnectionInfo, Stats, Status};

/// A pool of Postgres connections (`T` is the TLS connector; [`NoTls`](tokio_postgres::NoTls)
/// by default).
pub type Pool<T = tokio_postgres::NoTls> = pool_core::Pool<PgManager<T>>;
/// A pooled Postgres connection: derefs to [`PgConnection`]; goes back to the pool on drop.
pub type Object<T = tokio_postgres::NoTls> = pool_core::Object<PgManager<T>>;
/// The builder of a [`Pool`].
pub type PoolBuilder<T = tokio_postgres::NoTls> = pool_core::PoolBuilder<PgManager<T>>;
/// What a checkout from a [`Pool`] can fail with.
pub type PoolError = pool_core::PoolError<PgError>;
pub use ssl::SslMode;
pub use stream::{ConnectFuture, PgStream, Stream};
pub use tokio_postgres;
pub use transaction::{Transaction, TransactionBuilder};
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use {rustls, tokio_postgres_rustls};
