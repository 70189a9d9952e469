//! `PgManager`: opens, checks and judges tokio-postgres connections for the pool.

use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Buf;
use pool_core::{ErrorClass, Manager};
use tokio::sync::oneshot;
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    Client, CopyInSink, CopyOutStream, NoTls, Row, RowStream, SimpleQueryMessage, Socket, Statement,
};

use crate::budget::Budget;
use crate::cache::{self, Query, StatementCache};
use crate::error::{server_went_away, PgError};
use crate::keepalive::Keepalives;
use crate::redact::redact;
use crate::ssl::{split_ssl, SslMode, SslSettings};
use crate::stream::{Connector, PgStream};
use crate::transaction::{Transaction, TransactionBuilder};

/// How long a closed connection's background task may take to say goodbye to the server.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The error a password provider may return.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

type PasswordFuture = Pin<Box<dyn Future<Output = Result<String, ProviderError>> + Send>>;
type PasswordProvider = Arc<dyn Fn() -> PasswordFuture + Send + Sync>;

/// A [`Manager`] for tokio-postgres connections.
///
/// Connections are opened by [`tokio_postgres::Config::connect`], so everything the connection
/// string says applies: several hosts tried in order (or shuffled with
/// `load_balance_hosts=random`), `target_session_attrs` (`read-write` skips standbys and
/// read-only servers), `connect_timeout` per host, and a [`CancelToken`](tokio_postgres::CancelToken)
/// that works on pooled connections. TCP keepalives (idle 60 s, interval 10 s, 6 probes) are on
/// by default; settings given in the connection string win over these defaults.
///
/// **Health.** The check is an empty simple query. A connection is broken when its client is
/// closed, or when it saw SQLSTATE 25006 (read-only transaction) while the pool asks for
/// `read-write`: that server was demoted, so it and every connection to the same server opened
/// before it are closed. When a connection's backend goes away (57P01, 57P02, class 08), the
/// connections opened before are doubted, not closed: each is checked once before its next use
/// ([`Manager::needs_check`]).
///
/// **Credentials.** [`PgManager::password_provider`] is called before every connect (cloud IAM
/// tokens, rotated secrets); with one, an authentication failure (class 28) asks it once more
/// and retries before it counts as fatal.
///
/// `T` is the TLS connector: [`NoTls`] by default; with the `rustls` feature, see
/// `PgManager::rustls` (verification as `sslmode` says) and `PgManager::with_rustls`.
pub struct PgManager<T = NoTls> {
    config: tokio_postgres::Config,
    tls: T,
    ssl: SslSettings,
    keepalives: Option<Keepalives>,
    tcp_user_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    password: Option<PasswordProvider>,
    /// The pool's floor, to compare with the connection budget at the first connect.
    budget_floor: Option<usize>,
    /// SQL run on every new connection before the pool offers it.
    setup_sql: Option<Arc<str>>,
    /// Prepared statements kept per connection by `prepare_cached` (0: none).
    statement_cache: usize,
    /// Supplies the stream for every connect, instead of dialing the hosts.
    connector: Option<Connector>,
    health: Arc<Health>,
}

/// What the manager's connections tell each other.
#[derive(Debug, Default)]
struct Health {
    /// Bumped when a pooled connection sees its backend go away: connections checked in an
    /// older epoch are doubted.
    suspect_epoch: AtomicU64,
    /// Opening order of connections.
    next_seq: AtomicU64,
    /// Demoted servers: the newest connection known to have been on the server when it was
    /// found read-only; it and every older connection to that server are broken.
    demoted: Mutex<Vec<(Arc<str>, u64)>>,
    demotions: AtomicU64,
    auth_retries: AtomicU64,
    /// The connection budget has been read (once, at the first connect).
    budget_read: AtomicBool,
    /// The hint about prepared statements behind a transaction pooler was logged.
    prepared_hint: AtomicBool,
}

impl Health {
    fn demote(&self, server: &Arc<str>, seq: u64) {
        let mut d = self.demoted.lock().unwrap_or_else(|e| e.into_inner());
        match d.iter_mut().find(|(s, _)| s == server) {
            Some((_, newest)) => *newest = (*newest).max(seq),
            None => d.push((Arc::clone(server), seq)),
        }
        self.demotions.fetch_add(1, Ordering::AcqRel);
    }

    fn is_demoted(&self, server: &Arc<str>, seq: u64) -> bool {
        if self.demotions.load(Ordering::Acquire) == 0 {
            return false;
        }
        let d = self.demoted.lock().unwrap_or_else(|e| e.into_inner());
        d.iter().any(|(s, newest)| s == server && seq <= *newest)
    }
}

impl<T> fmt::Debug for PgManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's own Debug already prints the password as `_`.
        f.debug_struct("PgManager")
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("application_name", &self.config.get_application_name())
            .field("password", &self.config.get_password().map(|_| "***"))
            .field("password_provider", &self.password.as_ref().map(|_| "..."))
            .field(
                "target_session_attrs",
                &self.config.get_target_session_attrs(),
            )
            .field("load_balance_hosts", &self.config.get_load_balance_hosts())
            .field("sslmode", &self.ssl.mode)
            .field("keepalives", &self.keepalives)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_cache", &self.statement_cache)
            .field("connector", &self.connector.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// The connection-string parameters that, when present, override the adapter's defaults.
fn explicit_params(conn: &str) -> Vec<String> {
    let trimmed = conn.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        let query = trimmed.split_once('?').map_or("", |(_, q)| q);
        let query = query.split('#').next().unwrap_or("");
        query
            .split('&')
            .filter_map(|p| p.split_once('=').map(|(k, _)| k.to_ascii_lowercase()))
            .collect()
    } else {
        trimmed
            .split_whitespace()
            .filter_map(|tok| {
                tok.split_once('=')
                    .map(|(k, _)| k.trim().to_ascii_lowercase())
            })
            .collect()
    }
}

impl PgManager<NoTls> {
    /// A manager for a connection string: a URL (`postgres://user:pw@host:5432/db?...`) or
    /// libpq key/value pairs (`host=... user=...`). Besides what tokio-postgres parses,
    /// `sslmode=verify-ca`, `sslmode=verify-full` and `sslrootcert` are understood (they take
    /// effect with `PgManager::rustls`, under the `rustls` feature).
    ///
    /// # Errors
    /// [`PgError::Config`] naming what is wrong, with any password redacted.
    pub fn from_url(conn: &str) -> Result<Self, PgError> {
        let (for_tokio, ssl) = split_ssl(conn)?;
        let config = tokio_postgres::Config::from_str(&for_tokio)
            .map_err(|e| PgError::Config(format!("{e} (in {:?})", redact(conn))))?;
        let explicit = explicit_params(conn);
        let has = |k: &str| explicit.iter().any(|p| p == k);
        let mut manager = PgManager::build(config.clone(), NoTls)?;
        manager.ssl = ssl;
        let mut k = Keepalives::default();
        if has("keepalives_idle") {
            k.idle = config.get_keepalives_idle();
        }
        if let (true, Some(i)) = (has("keepalives_interval"), config.get_keepalives_interval()) {
            k.interval = i;
        }
        if let (true, Some(r)) = (has("keepalives_retries"), config.get_keepalives_retries()) {
            k.retries = r;
        }
        manager.keepalives = if has("keepalives") && !config.get_keepalives() {
            None
        } else {
            Some(k)
        };
        manager.tcp_user_timeout = config.get_tcp_user_timeout().copied();
        manager.connect_timeout = config.get_connect_timeout().copied();
        Ok(manager)
    }

    /// A manager for a `tokio_postgres::Config`. Keepalive settings that differ from
    /// tokio-postgres's own defaults count as explicit and win over the adapter's defaults.
    ///
    /// # Errors
    /// [`PgError::Config`] when the config names no host or no user.
    pub fn new(config: tokio_postgres::Config) -> Result<Self, PgError> {
        let mut manager = PgManager::build(config.clone(), NoTls)?;
        manager.ssl.mode = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable => SslMode::Disable,
            tokio_postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        };
        let mut k = Keepalives::default();
        if config.get_keepalives_idle() != Duration::from_secs(2 * 60 * 60) {
            k.idle = config.get_keepalives_idle();
        }
        if let Some(i) = config.get_keepalives_interval() {
            k.interval = i;
        }
        if let Some(r) = config.get_keepalives_retries() {
            k.retries = r;
        }
        manager.keepalives = config.get_keepalives().then_some(k);
        manager.tcp_user_timeout = config.get_tcp_user_timeout().copied();
        manager.connect_timeout = config.get_connect_timeout().copied();
        Ok(manager)
    }
}

impl<T> PgManager<T> {
    fn build(mut config: tokio_postgres::Config, tls: T) -> Result<Self, PgError> {
        if config.get_application_name().is_none() {
            if let Some(name) = program_name() {
                config.application_name(&name);
            }
        }
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(PgError::Config(
                "no host given (set host= or use postgres://host/...)".into(),
            ));
        }
        if config.get_user().is_none() {
            return Err(PgError::Config(
                "no user given (set user= or use postgres://user@host/...)".into(),
            ));
        }
        Ok(PgManager {
            config,
            tls,
            ssl: SslSettings::default(),
            keepalives: Some(Keepalives::default()),
            tcp_user_timeout: None,
            connect_timeout: None,
            password: None,
            budget_floor: None,
            setup_sql: None,
            statement_cache: cache::DEFAULT_CAPACITY,
            connector: None,
            health: Arc::new(Health::default()),
        })
    }

    /// Uses another TLS connector. It decides what is verified; the connection string's
    /// `sslmode` still decides whether TLS is used (`disable`, `prefer`, `require`; the
    /// verifying modes count as `require`).
    pub fn with_tls<U>(self, tls: U) -> PgManager<U> {
        PgManager {
            config: self.config,
            tls,
            ssl: self.ssl,
            keepalives: self.keepalives,
            tcp_user_timeout: self.tcp_user_timeout,
            connect_timeout: self.connect_timeout,
            password: self.password,
            budget_floor: self.budget_floor,
            setup_sql: self.setup_sql,
            statement_cache: self.statement_cache,
            connector: self.connector,
            health: self.health,
        }
    }

    /// Supplies the stream for every connect (a Unix socket at a path of your choosing, an
    /// SSH or kube port-forward tunnel, a cloud SQL connector), instead of tokio-postgres
    /// dialing the connection string's hosts. The rest of the connect is the manager's as
    /// usual: the keepalives and `tcp_user_timeout` are set on a [`PgStream::Tcp`], the
    /// `connect_timeout` bounds the whole connect, and the password provider,
    /// [`after_connect_sql`](Self::after_connect_sql), the budget check, the health checks
    /// and the SQLSTATE handling apply. `connect` is given the connection settings (with the
    /// provider's password), to read what it needs.
    ///
    /// The Postgres protocol runs over the stream as it is: encryption is the connector's or
    /// the tunnel's (a connect with `sslmode=require` or stricter fails with a configuration
    /// error naming it), and `target_session_attrs` is not checked.
    ///
    /// ```no_run
    /// # fn demo() -> Result<(), pool_postgres::PgError> {
    /// use pool_postgres::{PgManager, PgStream};
    ///
    /// let manager = PgManager::from_url("postgres://app@db/app?sslmode=disable")?
    ///     .connector(|_config| async {
    ///         let socket = tokio::net::UnixStream::connect("/run/db/.s.PGSQL.5432").await?;
    ///         Ok(PgStream::Unix(socket))
    ///     });
    /// # drop(manager);
    /// # Ok(())
    /// # }
    /// ```
    pub fn connector<F, Fut>(mut self, connect: F) -> Self
    where
        F: Fn(&tokio_postgres::Config) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<PgStream>> + Send + 'static,
    {
        self.connector = Some(Arc::new(move |config| Box::pin(connect(config))));
        self
    }

    /// How many prepared statements each connection keeps for
    /// [`PgConnection::prepare_cached`] (default 100; the least recently used goes first).
    /// `0` turns the cache off: `prepare_cached` then prepares every time. Behind a
    /// transaction-mode pooler such as PgBouncer, where a named statement lasts only for the
    /// transaction that prepared it, set 0 (and use `query_typed`, which needs no named
    /// statement).
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache = capacity;
        self
    }

    /// The statement cache's capacity per connection.
    pub fn statement_cache_capacity_setting(&self) -> usize {
        self.statement_cache
    }

    /// Compares this floor with the server's connection budget ([`Budget`]) once, at the first
    /// successful connect, and logs a warning when the rest of it does not fit in what the
    /// server, the role and the database have left. Without it, the pool's `min_size` is used
    /// (a floor of 0 is never checked).
    pub fn budget_floor(mut self, floor: usize) -> Self {
        self.budget_floor = Some(floor);
        self
    }

    /// Calls `provider` for the password before every connect (a cloud IAM token, a secret
    /// that rotates), instead of using the one in the connection string. When a connect fails
    /// authentication (SQLSTATE class 28), the provider is asked once more and the connect
    /// retried before the error counts as fatal. A provider error fails that connect as a
    /// transient error (retried with backoff).
    pub fn password_provider<F, Fut, E>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<ProviderError>,
    {
        self.password = Some(Arc::new(move || {
            let fut = provider();
            Box::pin(async move { fut.await.map_err(Into::into) })
        }));
        self
    }

    /// Runs `sql` (one or more statements, as a simple query) on every new connection before
    /// the pool offers it: `SET search_path TO app`, `SET statement_timeout = '5s'`. If it
    /// fails, the connect fails with its error (retried with backoff, or fatal by SQLSTATE,
    /// as any connect error).
    pub fn after_connect_sql(mut self, sql: impl Into<String>) -> Self {
        self.setup_sql = Some(Arc::from(sql.into()));
        self
    }

    /// Sets (or with `None`, turns off) TCP keepalives.
    pub fn keepalives(mut self, keepalives: Option<Keepalives>) -> Self {
        self.keepalives = keepalives;
        self
    }

    /// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the kernel
    /// drops the connection.
    pub fn tcp_user_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.tcp_user_timeout = timeout;
        self
    }

    /// Bounds the socket connect to each host tried.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The keepalive settings new connections get.
    pub fn keepalive_settings(&self) -> Option<Keepalives> {
        self.keepalives
    }

    /// The `TCP_USER_TIMEOUT` new connections get.
    pub fn tcp_user_timeout_setting(&self) -> Option<Duration> {
        self.tcp_user_timeout
    }

    /// The per-host connect timeout.
    pub fn connect_timeout_setting(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The `sslmode` the connection string asked for.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl.mode
    }

    /// The tokio-postgres configuration as given (its `Debug` hides the password). Connects
    /// use a copy with the keepalive and timeout settings above applied.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// How many times a pooled connection has seen its backend go away (57P01, 57P02, class
    /// 08); each time, the connections opened before are doubted and checked once.
    pub fn server_restarts_seen(&self) -> u64 {
        self.health.suspect_epoch.load(Ordering::Relaxed)
    }

    /// How many times a connection saw SQLSTATE 25006 under `target_session_attrs=read-write`
    /// (its server had been demoted).
    pub fn demotions_seen(&self) -> u64 {
        self.health.demotions.load(Ordering::Relaxed)
    }

    /// How many connects failed authentication and were retried with a fresh password from
    /// the provider.
    pub fn auth_retries(&self) -> u64 {
        self.health.auth_retries.load(Ordering::Relaxed)
    }

    /// The configuration a connect uses: the adapter's keepalive and timeout settings applied.
    fn connect_config(&self) -> tokio_postgres::Config {
        let mut c = self.config.clone();
        match self.keepalives {
            Some(k) => {
                c.keepalives(true)
                    .keepalives_idle(k.idle)
                    .keepalives_interval(k.interval)
                    .keepalives_retries(k.retries);
            }
            None => {
                c.keepalives(false);
            }
        }
        if let Some(t) = self.tcp_user_timeout {
            c.tcp_user_timeout(t);
        }
        if let Some(t) = self.connect_timeout {
            c.connect_timeout(t);
        }
        c
    }

    /// Where the connection string points, for error messages: `host:port` for each host.
    fn targets(&self) -> String {
        let ports = self.config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts = self.config.get_hosts();
        let addrs = self.config.get_hostaddrs();
        (0..hosts.len().max(addrs.len()))
            .map(|i| {
                let host = match (hosts.get(i), addrs.get(i)) {
                    (Some(Host::Tcp(h)), _) => h.clone(),
                    (Some(Host::Unix(p)), _) => p.display().to_string(),
                    (None, Some(a)) => a.to_string(),
                    (None, None) => String::new(),
                };
                format!("{host}:{}", port(i))
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(feature = "rustls")]
impl<T> PgManager<T> {
    /// TLS through rustls, verifying as the connection string's `sslmode` says: `verify-full`
    /// checks the certificate chain against `sslrootcert` and the host name; `verify-ca` the
    /// chain only; `require` and `prefer` encrypt without verifying (as libpq does);
    /// `disable` uses no TLS.
    ///
    /// # Errors
    /// [`PgError::Config`] when a verifying mode has no `sslrootcert`, or it cannot be read.
    pub fn rustls(self) -> Result<PgManager<tokio_postgres_rustls::MakeRustlsConnect>, PgError> {
        let config = crate::tls::client_config(&self.ssl)?;
        Ok(self.with_tls(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
    }

    /// TLS through rustls with this client configuration (roots, client certificates): it
    /// decides what is verified. The connection string's `sslmode` decides whether TLS is
    /// used.
    pub fn with_rustls(
        self,
        config: rustls::ClientConfig,
    ) -> PgManager<tokio_postgres_rustls::MakeRustlsConnect> {
        self.with_tls(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// A pooled Postgres connection: derefs to [`tokio_postgres::Client`].
///
/// The statement methods below (`query`, `query_one`, `query_opt`, `query_typed`, `execute`,
/// `simple_query`, `batch_execute`, `prepare`) are the client's, watched: a 25006 (read-only
/// transaction) under `target_session_attrs=read-write` marks this connection and the older
/// ones to the same server broken. Everything else is reached through `Deref` to the client.
///
/// Dropping it closes the client; its background connection task then says goodbye to the
/// server and ends (given at most five seconds).
pub struct PgConnection {
    client: Client,
    /// Opening order.
    seq: u64,
    /// The server it is on (`inet_server_addr:port` when the connection string lists several
    /// hosts).
    server: Arc<str>,
    /// The suspect epoch it last passed a check in (or was opened in).
    checked_epoch: u64,
    broken: AtomicBool,
    read_write: bool,
    health: Arc<Health>,
    /// `prepare_cached`'s statements.
    statements: Mutex<StatementCache>,
    /// Dropped after `client`: tells the connection task to wind down.
    _closing: oneshot::Sender<()>,
}

/// What a statement's outcome is watched against: the connection's marks, its statement cache
/// and the manager's health, borrowed apart from the client (a transaction holds the client).
#[derive(Clone, Copy)]
pub(crate) struct Watch<'a> {
    seq: u64,
    server: &'a Arc<str>,
    broken: &'a AtomicBool,
    read_write: bool,
    health: &'a Arc<Health>,
    statements: &'a Mutex<StatementCache>,
}

impl Watch<'_> {
    /// Looks at a statement's outcome: the 26000 hint behind a pooler, and a 25006 on a
    /// read-write pool marks this server's connections broken.
    pub(crate) fn observe<R>(
        &self,
        result: Result<R, tokio_postgres::Error>,
    ) -> Result<R, tokio_postgres::Error> {
        if let Err(e) = &result {
            if e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME)
                && !self.health.prepared_hint.swap(true, Ordering::AcqRel)
            {
                tracing::warn!(
                    target: "pool_postgres",
                    error = %e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()),
                    "a prepared statement vanished (26000): behind a transaction-mode pooler such as PgBouncer, a named statement lasts only for the transaction that prepared it; use query_typed (unnamed statements) or prepare inside a transaction"
                );
            }
            if self.read_write && e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
                self.broken.store(true, Ordering::Release);
                self.health.demote(self.server, self.seq);
                tracing::warn!(
                    target: "pool_postgres",
                    server = %self.server,
                    "25006 on a read-write pool: the server was demoted; closing its connections"
                );
            }
        }
        result
    }

    /// The cached statement `statement` stands for, if the server lost it (26000) or its plan
    /// changed result type (0A000): forgotten from the cache, and what it was prepared from.
    pub(crate) fn stale<S: ?Sized + Query, R>(
        &self,
        result: &Result<R, tokio_postgres::Error>,
        statement: &S,
    ) -> Option<(String, Vec<Type>)> {
        let e = result.as_ref().err()?;
        let stale = e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME)
            || (e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
                && e.as_db_error().is_some_and(|d| {
                    d.message()
                        .contains("cached plan must not change result type")
                }));
        if !stale {
            return None;
        }
        let key = self.cache().remove(statement.as_statement()?)?;
        tracing::debug!(target: "pool_postgres", code = ?e.code(), "a cached statement is stale; preparing it again");
        Some(key)
    }

    pub(crate) fn cache(&self) -> std::sync::MutexGuard<'_, StatementCache> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PgConnection {
    /// The server this connection is on: `address:port` as the server reports it when the
    /// connection string lists several hosts, else empty.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// What statements on this connection are watched against, borrowed apart from the
    /// client.
    pub(crate) fn watch(&self) -> Watch<'_> {
        Watch {
            seq: self.seq,
            server: &self.server,
            broken: &self.broken,
            read_write: self.read_write,
            health: &self.health,
            statements: &self.statements,
        }
    }

    fn observe<R>(
        &self,
        result: Result<R, tokio_postgres::Error>,
    ) -> Result<R, tokio_postgres::Error> {
        self.watch().observe(result)
    }

    fn stale<S: ?Sized + Query, R>(
        &self,
        result: &Result<R, tokio_postgres::Error>,
        statement: &S,
    ) -> Option<(String, Vec<Type>)> {
        self.watch().stale(result, statement)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, StatementCache> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a transaction (`BEGIN`), watched like the connection's own statements: a 25006
    /// in it marks this server's connections broken under `target_session_attrs=read-write`,
    /// and its cached statements are this connection's. Rolled back if dropped uncommitted.
    ///
    /// # Errors
    /// The server's error starting it.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, tokio_postgres::Error> {
        let (client, watch) = self.split();
        let inner = watch.observe(client.transaction().await)?;
        Ok(Transaction::new(inner, watch))
    }

    /// A transaction with its isolation level, read-only and deferrable modes set.
    pub fn build_transaction(&mut self) -> TransactionBuilder<'_> {
        let (client, watch) = self.split();
        TransactionBuilder::new(client.build_transaction(), watch)
    }

    fn split(&mut self) -> (&mut Client, Watch<'_>) {
        let watch = Watch {
            seq: self.seq,
            server: &self.server,
            broken: &self.broken,
            read_write: self.read_write,
            health: &self.health,
            statements: &self.statements,
        };
        (&mut self.client, watch)
    }

    /// [`Client::copy_in`], watched.
    pub async fn copy_in<S, U>(&self, statement: &S) -> Result<CopyInSink<U>, tokio_postgres::Error>
    where
        S: ?Sized + Query,
        U: Buf + 'static + Send,
    {
        self.observe(self.client.copy_in(statement).await)
    }

    /// [`Client::copy_out`], watched.
    pub async fn copy_out<S>(&self, statement: &S) -> Result<CopyOutStream, tokio_postgres::Error>
    where
        S: ?Sized + Query,
    {
        self.observe(self.client.copy_out(statement).await)
    }

    /// [`Client::query`], watched. A statement from [`prepare_cached`](Self::prepare_cached)
    /// that the server no longer knows (26000) or whose plan changed result type (0A000) is
    /// prepared again and the query retried once.
    pub async fn query<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        watched!(self, statement, |s| self.client.query(s, params))
    }

    /// [`Client::query_one`], watched (and retried as [`query`](Self::query) is).
    pub async fn query_one<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        watched!(self, statement, |s| self.client.query_one(s, params))
    }

    /// [`Client::query_opt`], watched (and retried as [`query`](Self::query) is).
    pub async fn query_opt<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        watched!(self, statement, |s| self.client.query_opt(s, params))
    }

    /// [`Client::query_raw`], watched (and retried as [`query`](Self::query) is).
    pub async fn query_raw<S, P, I>(
        &self,
        statement: &S,
        params: I,
    ) -> Result<RowStream, tokio_postgres::Error>
    where
        S: ?Sized + Query,
        P: BorrowToSql,
        I: IntoIterator<Item = P> + Clone,
        I::IntoIter: ExactSizeIterator,
    {
        watched!(self, statement, |s| self
            .client
            .query_raw(s, params.clone()))
    }

    /// [`Client::query_typed`], watched.
    pub async fn query_typed(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.observe(self.client.query_typed(statement, params).await)
    }

    /// [`Client::execute`], watched (and retried as [`query`](Self::query) is).
    pub async fn execute<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        watched!(self, statement, |s| self.client.execute(s, params))
    }

    /// [`Client::simple_query`], watched.
    pub async fn simple_query(
        &self,
        query: &str,
    ) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
        self.observe(self.client.simple_query(query).await)
    }

    /// [`Client::batch_execute`], watched.
    pub async fn batch_execute(&self, query: &str) -> Result<(), tokio_postgres::Error> {
        self.observe(self.client.batch_execute(query).await)
    }

    /// [`Client::prepare`], watched.
    pub async fn prepare(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
        self.observe(self.client.prepare(query).await)
    }

    /// [`Client::prepare_typed`], watched.
    pub async fn prepare_typed(
        &self,
        query: &str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        self.observe(self.client.prepare_typed(query, types).await)
    }

    /// The statement prepared for `query` on this connection: from its cache (one server-side
    /// statement per query text per connection, so a query costs one round trip, not a
    /// Parse and a Bind), or prepared now and kept. The cache is bounded
    /// ([`PgManager::statement_cache_capacity`]); a cached statement the server lost, or whose
    /// plan changed result type, is prepared again by the watched query methods.
    ///
    /// # Errors
    /// The server's error preparing it.
    ///
    /// # Cancel safety
    /// Cancel-safe: a statement prepared by a cancelled call is not kept.
    pub async fn prepare_cached(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
        self.prepare_typed_cached(query, &[]).await
    }

    /// [`prepare_cached`](Self::prepare_cached) with parameter types.
    ///
    /// # Errors
    /// The server's error preparing it.
    pub async fn prepare_typed_cached(
        &self,
        query: &str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.cache().get(query, types) {
            return Ok(statement);
        }
        let statement = self.prepare_typed(query, types).await?;
        self.cache().insert(query, types, statement.clone());
        Ok(statement)
    }

    /// Forgets every cached statement (each is closed on the server once no clone of it is
    /// left). `Reset::DiscardAll` does this too.
    pub fn clear_statement_cache(&self) {
        self.cache().clear();
    }

    /// How many statements the cache holds.
    pub fn statement_cache_len(&self) -> usize {
        self.cache().len()
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("closed", &self.client.is_closed())
            .field("server", &self.server)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Deref for PgConnection {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// A TLS connector [`PgManager`] can use: [`NoTls`], or with the `rustls` feature
/// `tokio_postgres_rustls::MakeRustlsConnect`. Implemented for every connector whose streams,
/// handshakes and errors can cross threads.
pub trait PgTls:
    MakeTlsConnect<
        Socket,
        Stream: Send + 'static,
        TlsConnect: Send + TlsConnect<Socket, Future: Send>,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> PgTls for T where
    T: MakeTlsConnect<
            Socket,
            Stream: Send + 'static,
            TlsConnect: Send + TlsConnect<Socket, Future: Send>,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

impl<T: PgTls> PgManager<T> {
    /// One connect with this configuration: tokio-postgres tries the hosts, checks the session
    /// attributes, and the connection task is spawned.
    async fn connect_with(&self, config: &tokio_postgres::Config) -> Result<PgConnection, PgError> {
        if let Some(connector) = &self.connector {
            return self.connect_custom(connector, config).await;
        }
        let (client, connection) = config
            .connect(self.tls.clone())
            .await
            .map_err(|e| PgError::connect(self.targets(), e))?;
        self.finish(client, connection, config).await
    }

    /// A connect over the stream the custom connector supplies.
    async fn connect_custom(
        &self,
        connector: &Connector,
        config: &tokio_postgres::Config,
    ) -> Result<PgConnection, PgError> {
        if self.ssl.mode.requires_tls() {
            return Err(PgError::Config(format!(
                "sslmode={} with a custom connector: the Postgres protocol runs over the connector's stream without TLS; encrypt in the connector or the tunnel and set sslmode=disable",
                self.ssl.mode
            )));
        }
        let target = "the custom connector".to_string();
        let dial = async {
            let stream = connector(config).await.map_err(|source| PgError::Io {
                target: target.clone(),
                source,
            })?;
            stream
                .tune(self.keepalives, self.tcp_user_timeout)
                .map_err(|source| PgError::Io {
                    target: target.clone(),
                    source,
                })?;
            config
                .connect_raw(stream, NoTls)
                .await
                .map_err(|e| PgError::connect(target.clone(), e))
        };
        let (client, connection) = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, dial)
                .await
                .map_err(|_| PgError::TimedOut { what: "connect" })??,
            None => dial.await?,
        };
        self.finish(client, connection, config).await
    }

    /// The rest of every connect, however its stream was made: the connection task, the
    /// setup SQL, the budget check, the server's address.
    async fn finish<C>(
        &self,
        client: Client,
        connection: C,
        config: &tokio_postgres::Config,
    ) -> Result<PgConnection, PgError>
    where
        C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let (closing, closed) = oneshot::channel::<()>();
        let health = Arc::clone(&self.health);
        let born = health.suspect_epoch.load(Ordering::Acquire);
        let seq = health.next_seq.fetch_add(1, Ordering::AcqRel);
        let task_health = Arc::clone(&health);
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = &mut connection => {
                    if let Err(e) = result {
                        if server_went_away(&e) {
                            task_health.suspect_epoch.fetch_add(1, Ordering::AcqRel);
                            tracing::warn!(target: "pool_postgres", error = %PgError::from(e), "a backend went away; the connections opened before are checked before their next use");
                        } else {
                            tracing::debug!(target: "pool_postgres", error = %PgError::from(e), "connection ended with an error");
                        }
                    }
                }
                _ = closed => {
                    let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
                }
            }
        });
        if let Some(sql) = &self.setup_sql {
            client.batch_execute(sql).await?;
        }
        if let Some(floor) = self.budget_floor {
            if !self.health.budget_read.swap(true, Ordering::AcqRel) {
                check_budget(&client, floor).await;
            }
        }
        let server: Arc<str> = if self
            .config
            .get_hosts()
            .len()
            .max(self.config.get_hostaddrs().len())
            > 1
        {
            server_of(&client).await?.into()
        } else {
            Arc::from("")
        };
        Ok(PgConnection {
            client,
            seq,
            server,
            checked_epoch: born,
            broken: AtomicBool::new(false),
            read_write: config.get_target_session_attrs() == TargetSessionAttrs::ReadWrite,
            health,
            statements: Mutex::new(StatementCache::new(self.statement_cache)),
            _closing: closing,
        })
    }
}

/// Reads the budget on a new connection (the pool's first) and warns when the rest of the
/// floor does not fit.
async fn check_budget(client: &Client, floor: usize) {
    match Budget::read(client).await {
        Ok(budget) => {
            // This connection is already open and counted.
            let more = floor.saturating_sub(1);
            if more > budget.headroom() as usize {
                tracing::warn!(
                    target: "pool_postgres",
                    floor,
                    headroom = budget.headroom(),
                    limit = budget.binding_limit(),
                    %budget,
                    "the pool's floor does not fit in the connection budget: it will hold fewer idle connections than min_size, and other clients may be refused"
                );
            } else {
                tracing::debug!(target: "pool_postgres", floor, %budget, "connection budget");
            }
        }
        Err(e) => {
            tracing::debug!(target: "pool_postgres", error = %e, "could not read the connection budget")
        }
    }
}

/// The running program's file name, the default `application_name` (so `pg_stat_activity`
/// says which service a backend belongs to).
fn program_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_stem()?.to_string_lossy().into_owned();
    (!name.is_empty()).then_some(name)
}

/// The server a connection is on, as it reports itself (several hosts in the string).
async fn server_of(client: &Client) -> Result<String, PgError> {
    let rows = client
        .simple_query("SELECT inet_server_addr()::text, inet_server_port()::text")
        .await?;
    let row = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r),
        _ => None,
    });
    Ok(match row {
        Some(r) => format!(
            "{}:{}",
            r.get(0).unwrap_or("local"),
            r.get(1).unwrap_or("?")
        ),
        None => String::new(),
    })
}

impl<T: PgTls> Manager for PgManager<T> {
    type Connection = PgConnection;
    type Error = PgError;

    async fn connect(&self) -> Result<PgConnection, PgError> {
        let mut config = self.connect_config();
        let Some(provider) = &self.password else {
            return self.connect_with(&config).await;
        };
        config.password(provider().await.map_err(PgError::PasswordProvider)?);
        match self.connect_with(&config).await {
            Err(e) if e.is_auth_failure() => {
                self.health.auth_retries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "pool_postgres", error = %e, "authentication failed; asking the password provider again");
                config.password(provider().await.map_err(PgError::PasswordProvider)?);
                self.connect_with(&config).await
            }
            other => other,
        }
    }

    async fn check(&self, conn: &mut PgConnection) -> Result<(), PgError> {
        let epoch = self.health.suspect_epoch.load(Ordering::Acquire);
        conn.client.simple_query("").await.map_err(PgError::from)?;
        conn.checked_epoch = epoch;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed()
            || conn.broken.load(Ordering::Acquire)
            || self.health.is_demoted(&conn.server, conn.seq)
    }

    /// Takes the pool's floor for the connection-budget warning, unless
    /// [`PgManager::budget_floor`] set one.
    fn configure(&mut self, config: &pool_core::Config) {
        if self.budget_floor.is_none() && config.min_size > 0 {
            self.budget_floor = Some(config.min_size);
        }
    }

    fn needs_check(&self, conn: &mut PgConnection) -> bool {
        conn.checked_epoch < self.health.suspect_epoch.load(Ordering::Acquire)
    }

    fn classify(&self, err: &PgError) -> ErrorClass {
        err.class()
    }
}

/// How [`reset`] cleans a connection that comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// `ROLLBACK`: an open transaction (a `BEGIN` left behind) is rolled back; session
    /// settings stay.
    Rollback,
    /// `ROLLBACK` then `DISCARD ALL`: also `SET`s, temporary tables, prepared statements,
    /// `LISTEN`s and advisory locks, as if the session were new.
    DiscardAll,
}

/// An `after_return` hook for the pool builder that resets each connection before it is used
/// again:
///
/// ```no_run
/// # fn demo(manager: pool_postgres::PgManager) -> Result<(), pool_core::ConfigError> {
/// use pool_postgres::{reset, Reset};
/// let pool = pool_core::Pool::builder(manager)
///     .after_return(reset(Reset::Rollback))
///     .build()?;
/// # Ok(())
/// # }
/// ```
///
/// It runs in the background (the returning caller does not wait); a reset that fails closes
/// the connection.
pub fn reset(
    how: Reset,
) -> impl for<'a> Fn(&'a mut PgConnection, &'a pool_core::ConnectionInfo) -> pool_core::HookFuture<'a>
       + Send
       + Sync
       + 'static {
    move |conn, _info| {
        Box::pin(async move {
            conn.client.batch_execute("ROLLBACK").await?;
            if how == Reset::DiscardAll {
                // Its own query: a multi-statement string is a transaction block, which
                // DISCARD ALL refuses. The server forgets every prepared statement.
                conn.client.batch_execute("DISCARD ALL").await?;
                conn.clear_statement_cache();
            }
            Ok(())
        })
    }
}
