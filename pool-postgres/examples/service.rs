//! A small HTTP service on the pool: accounts with balances, a transfer in a transaction, the
//! pool's metrics at `/metrics`, and a graceful shutdown that closes the pool.
//!
//! ```text
//! cargo run -p pool-postgres --example service -- --url postgres://postgres@127.0.0.1:5432/postgres
//! curl -X POST localhost:3000/accounts/alice/deposit/100     # 100
//! curl -X POST localhost:3000/accounts/bob/deposit/5         # 5
//! curl -X POST localhost:3000/transfer/alice/bob/30          # alice 70, bob 35
//! curl localhost:3000/accounts/bob                           # 35
//! curl -X POST localhost:3000/transfer/alice/bob/1000        # 409: not enough money
//! curl localhost:3000/metrics                                # pool_connections{pool="service"} ...
//! ```
//!
//! `--listen ADDR` (default `127.0.0.1:3000`); the URL may also come from `DATABASE_URL`. The
//! pool is the elastic preset (min 1, max 4), overridden by `SERVICE_DB_POOL_*` variables.
//! Ctrl-C or SIGTERM stops accepting, lets the requests in flight finish, then closes the
//! pool and waits up to 10 s for its connections. `tests/pg_service.rs` runs this service on a
//! free port and talks HTTP to it.

use std::future::Future;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pool_postgres::tokio_postgres::error::SqlState;
use pool_postgres::{PgManager, Pool, PoolError};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The environment prefix of the pool's settings (`SERVICE_DB_POOL_MAX=8` and the rest).
pub(crate) const ENV_PREFIX: &str = "SERVICE_DB_POOL";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS service_accounts (
    id text PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0)
)";

/// What the handlers share: the pool, and the recorder's handle for `/metrics`.
#[derive(Clone)]
pub(crate) struct App {
    pool: Pool,
    metrics: PrometheusHandle,
}

/// Builds the service's pool (the elastic preset, named "service" in its metrics) and makes
/// sure its table exists.
pub(crate) async fn build_pool(url: &str) -> Result<Pool, BoxError> {
    let manager = PgManager::from_url(url)?;
    let pool: Pool = pool_postgres::elastic(manager, ENV_PREFIX)?
        .name("service")
        .build()?;
    pool.get().await?.batch_execute(SCHEMA).await?;
    Ok(pool)
}

/// The routes.
pub(crate) fn router(pool: Pool, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/accounts/{id}", get(balance))
        .route("/accounts/{id}/deposit/{amount}", post(deposit))
        .route("/transfer/{from}/{to}/{amount}", post(transfer))
        .route("/metrics", get(render_metrics))
        .with_state(App { pool, metrics })
}

/// Serves until `shutdown` completes, lets the requests in flight finish, then closes the pool
/// and waits (at most 10 s) for its connections to come back and close.
pub(crate) async fn serve(
    listener: TcpListener,
    pool: Pool,
    metrics: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(pool.clone(), metrics))
        .with_graceful_shutdown(shutdown)
        .await?;
    if let Err(status) = pool.close_and_wait_timeout(Duration::from_secs(10)).await {
        eprintln!("service: closed with connections still checked out: {status:?}");
    }
    Ok(())
}

/// A handler's failure, as an HTTP status and a one-line reason.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No connection in time (or the pool is closed): 503.
    Pool(PoolError),
    /// The database said no: 500, or 409 for a balance that would go negative.
    Db(pool_postgres::tokio_postgres::Error),
    /// No such account: 404.
    NotFound(String),
    /// A request that cannot be right: 400.
    BadRequest(String),
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        ApiError::Pool(e)
    }
}

impl From<pool_postgres::tokio_postgres::Error> for ApiError {
    fn from(e: pool_postgres::tokio_postgres::Error) -> Self {
        ApiError::Db(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = match self {
            ApiError::Pool(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            ApiError::Db(e) if e.code() == Some(&SqlState::CHECK_VIOLATION) => {
                (StatusCode::CONFLICT, "not enough money".to_string())
            }
            ApiError::Db(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
        };
        (status, format!("{reason}\n")).into_response()
    }
}

fn positive(amount: i64) -> Result<i64, ApiError> {
    if amount > 0 {
        Ok(amount)
    } else {
        Err(ApiError::BadRequest(format!(
            "amount must be positive, got {amount}"
        )))
    }
}

async fn balance(State(app): State<App>, Path(id): Path<String>) -> Result<String, ApiError> {
    let conn = app.pool.get().await?;
    let st = conn
        .prepare_cached("SELECT balance FROM service_accounts WHERE id = $1")
        .await?;
    match conn.query_opt(&st, &[&id]).await? {
        Some(row) => Ok(format!("{}\n", row.get::<_, i64>(0))),
        None => Err(ApiError::NotFound(format!("no account {id:?}"))),
    }
}

async fn deposit(
    State(app): State<App>,
    Path((id, amount)): Path<(String, i64)>,
) -> Result<String, ApiError> {
    let amount = positive(amount)?;
    let conn = app.pool.get().await?;
    let st = conn
        .prepare_cached(
            "INSERT INTO service_accounts (id, balance) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET balance = service_accounts.balance + EXCLUDED.balance
             RETURNING balance",
        )
        .await?;
    let row = conn.query_one(&st, &[&id, &amount]).await?;
    Ok(format!("{}\n", row.get::<_, i64>(0)))
}

/// Moves `amount` from one account to another in one transaction: both rows locked in id order
/// (so two opposite transfers cannot deadlock), the debit refused by the table's check when it
/// would go negative, and nothing kept unless both updates succeed.
async fn transfer(
    State(app): State<App>,
    Path((from, to, amount)): Path<(String, String, i64)>,
) -> Result<String, ApiError> {
    let amount = positive(amount)?;
    if from == to {
        return Err(ApiError::BadRequest(
            "from and to are the same account".into(),
        ));
    }
    let mut conn = app.pool.get().await?;
    let tx = conn.transaction().await?;
    let found = tx
        .query(
            "SELECT id FROM service_accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            &[&vec![from.clone(), to.clone()]],
        )
        .await?;
    if found.len() != 2 {
        // Dropping the transaction rolls it back.
        let missing = if found.iter().any(|r| r.get::<_, &str>(0) == from) {
            &to
        } else {
            &from
        };
        return Err(ApiError::NotFound(format!("no account {missing:?}")));
    }
    let debit = tx
        .prepare_cached("UPDATE service_accounts SET balance = balance - $2 WHERE id = $1")
        .await?;
    tx.execute(&debit, &[&from, &amount]).await?;
    let credit = tx
        .prepare_cached("UPDATE service_accounts SET balance = balance + $2 WHERE id = $1")
        .await?;
    tx.execute(&credit, &[&to, &amount]).await?;
    tx.commit().await?;
    Ok("ok\n".into())
}

async fn render_metrics(State(app): State<App>) -> String {
    app.metrics.render()
}

/// Ctrl-C, or SIGTERM where there is one.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("service: shutting down");
}

const USAGE: &str = "usage: service [--url POSTGRES_URL] [--listen ADDR]   (or set DATABASE_URL)";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut url = std::env::var("DATABASE_URL").ok();
    let mut listen = "127.0.0.1:3000".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--listen" => listen = value()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    let url = url.ok_or(format!(
        "no database: pass --url or set DATABASE_URL\n{USAGE}"
    ))?;

    // The recorder first, so the pool registers its metrics with it when built.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let pool = build_pool(&url).await?;
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    eprintln!("service: listening on http://{}", listener.local_addr()?);
    serve(listener, pool, metrics, shutdown_signal()).await?;
    Ok(())
}
