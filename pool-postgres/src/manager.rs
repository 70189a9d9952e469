//! `PgManager`: opens, checks and judges tokio-postgres connections for the pool.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pool_core::{ErrorClass, Manager};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{NoTls, Socket};

use crate::cache;
use crate::connection::PgConnection;
use crate::conninfo::Conninfo;
use crate::error::{PgError, ProviderError};
use crate::health::Health;
use crate::keepalive::Keepalives;
use crate::redact::redact;
use crate::ssl::{split_ssl, SslMode, SslSettings};
use crate::stream::{Connector, PgStream};

type PasswordFuture = Pin<Box<dyn Future<Output = Result<String, ProviderError>> + Send>>;
pub(crate) type PasswordProvider = Arc<dyn Fn() -> PasswordFuture + Send + Sync>;

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
    pub(crate) tls: T,
    /// Everything but the TLS connector (so `with_tls` moves it whole).
    pub(crate) s: Settings,
}

/// A manager's settings besides its TLS connector.
pub(crate) struct Settings {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) ssl: SslSettings,
    pub(crate) keepalives: Option<Keepalives>,
    pub(crate) tcp_user_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) password: Option<PasswordProvider>,
    /// The pool's floor, to compare with the connection budget at the first connect.
    pub(crate) budget_floor: Option<usize>,
    /// SQL run on every new connection before the pool offers it.
    pub(crate) setup_sql: Option<Arc<str>>,
    /// Prepared statements kept per connection by `prepare_cached` (0: none).
    pub(crate) statement_cache: usize,
    /// Supplies the stream for every connect, instead of dialing the hosts.
    pub(crate) connector: Option<Connector>,
    pub(crate) health: Arc<Health>,
}

impl<T> fmt::Debug for PgManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio_postgres::Config's own Debug already prints the password as `_`.
        f.debug_struct("PgManager")
            .field("user", &self.s.config.get_user())
            .field("dbname", &self.s.config.get_dbname())
            .field("hosts", &self.s.config.get_hosts())
            .field("ports", &self.s.config.get_ports())
            .field("application_name", &self.s.config.get_application_name())
            .field("password", &self.s.config.get_password().map(|_| "***"))
            .field(
                "password_provider",
                &self.s.password.as_ref().map(|_| "..."),
            )
            .field(
                "target_session_attrs",
                &self.s.config.get_target_session_attrs(),
            )
            .field(
                "load_balance_hosts",
                &self.s.config.get_load_balance_hosts(),
            )
            .field("sslmode", &self.s.ssl.mode)
            .field("keepalives", &self.s.keepalives)
            .field("tcp_user_timeout", &self.s.tcp_user_timeout)
            .field("connect_timeout", &self.s.connect_timeout)
            .field("statement_cache", &self.s.statement_cache)
            .field("connector", &self.s.connector.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// The connection-string parameters that, when present, override the adapter's defaults.
fn explicit_params(conn: &str) -> Vec<String> {
    Conninfo::parse(conn)
        .params()
        .iter()
        .map(|p| p.key.to_ascii_lowercase())
        .collect()
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
        manager.s.ssl = ssl;
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
        manager.s.keepalives = if has("keepalives") && !config.get_keepalives() {
            None
        } else {
            Some(k)
        };
        manager.s.tcp_user_timeout = config.get_tcp_user_timeout().copied();
        manager.s.connect_timeout = config.get_connect_timeout().copied();
        Ok(manager)
    }

    /// A manager for a `tokio_postgres::Config`. Keepalive settings that differ from
    /// tokio-postgres's own defaults count as explicit and win over the adapter's defaults.
    ///
    /// # Errors
    /// [`PgError::Config`] when the config names no host or no user.
    pub fn new(config: tokio_postgres::Config) -> Result<Self, PgError> {
        let mut manager = PgManager::build(config.clone(), NoTls)?;
        manager.s.ssl.mode = match config.get_ssl_mode() {
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
        manager.s.keepalives = config.get_keepalives().then_some(k);
        manager.s.tcp_user_timeout = config.get_tcp_user_timeout().copied();
        manager.s.connect_timeout = config.get_connect_timeout().copied();
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
            tls,
            s: Settings {
                config,
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
            },
        })
    }

    /// Uses another TLS connector. It decides what is verified; the connection string's
    /// `sslmode` still decides whether TLS is used (`disable`, `prefer`, `require`; the
    /// verifying modes count as `require`).
    pub fn with_tls<U>(self, tls: U) -> PgManager<U> {
        PgManager { tls, s: self.s }
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
        self.s.connector = Some(Arc::new(move |config| Box::pin(connect(config))));
        self
    }

    /// How many prepared statements each connection keeps for
    /// [`PgConnection::prepare_cached`] (default 100; the least recently used goes first).
    /// `0` turns the cache off: `prepare_cached` then prepares every time. Behind a
    /// transaction-mode pooler such as PgBouncer, where a named statement lasts only for the
    /// transaction that prepared it, set 0 (and use `query_typed`, which needs no named
    /// statement).
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.s.statement_cache = capacity;
        self
    }

    /// The statement cache's capacity per connection.
    pub fn statement_cache_capacity_setting(&self) -> usize {
        self.s.statement_cache
    }

    /// Compares this floor with the server's connection budget ([`Budget`](crate::Budget)) once, at the first
    /// successful connect, and logs a warning when the rest of it does not fit in what the
    /// server, the role and the database have left. Without it, the pool's `min_size` is used
    /// (a floor of 0 is never checked).
    pub fn budget_floor(mut self, floor: usize) -> Self {
        self.s.budget_floor = Some(floor);
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
        self.s.password = Some(Arc::new(move || {
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
        self.s.setup_sql = Some(Arc::from(sql.into()));
        self
    }

    /// Sets (or with `None`, turns off) TCP keepalives.
    pub fn keepalives(mut self, keepalives: Option<Keepalives>) -> Self {
        self.s.keepalives = keepalives;
        self
    }

    /// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the kernel
    /// drops the connection.
    pub fn tcp_user_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.s.tcp_user_timeout = timeout;
        self
    }

    /// Bounds the socket connect to each host tried.
    pub fn connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.s.connect_timeout = timeout;
        self
    }

    /// The keepalive settings new connections get.
    pub fn keepalive_settings(&self) -> Option<Keepalives> {
        self.s.keepalives
    }

    /// The `TCP_USER_TIMEOUT` new connections get.
    pub fn tcp_user_timeout_setting(&self) -> Option<Duration> {
        self.s.tcp_user_timeout
    }

    /// The per-host connect timeout.
    pub fn connect_timeout_setting(&self) -> Option<Duration> {
        self.s.connect_timeout
    }

    /// The `sslmode` the connection string asked for.
    pub fn ssl_mode(&self) -> SslMode {
        self.s.ssl.mode
    }

    /// The tokio-postgres configuration as given (its `Debug` hides the password). Connects
    /// use a copy with the keepalive and timeout settings above applied.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.s.config
    }

    /// How many times a pooled connection has seen its backend go away (57P01, 57P02, class
    /// 08); each time, the connections opened before are doubted and checked once.
    pub fn server_restarts_seen(&self) -> u64 {
        self.s.health.suspect_epoch.load(Ordering::Relaxed)
    }

    /// How many times a connection saw SQLSTATE 25006 under `target_session_attrs=read-write`
    /// (its server had been demoted).
    pub fn demotions_seen(&self) -> u64 {
        self.s.health.demotions.load(Ordering::Relaxed)
    }

    /// How many connects failed authentication and were retried with a fresh password from
    /// the provider.
    pub fn auth_retries(&self) -> u64 {
        self.s.health.auth_retries.load(Ordering::Relaxed)
    }

    /// The configuration a connect uses: the adapter's keepalive and timeout settings applied.
    fn connect_config(&self) -> tokio_postgres::Config {
        let mut c = self.s.config.clone();
        match self.s.keepalives {
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
        if let Some(t) = self.s.tcp_user_timeout {
            c.tcp_user_timeout(t);
        }
        if let Some(t) = self.s.connect_timeout {
            c.connect_timeout(t);
        }
        c
    }

    /// Where the connection string points, for error messages: `host:port` for each host.
    pub(crate) fn targets(&self) -> String {
        let ports = self.s.config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts = self.s.config.get_hosts();
        let addrs = self.s.config.get_hostaddrs();
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
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
impl<T> PgManager<T> {
    /// TLS through rustls, verifying as the connection string's `sslmode` says: `verify-full`
    /// checks the certificate chain against `sslrootcert` and the host name; `verify-ca` the
    /// chain only; `require` and `prefer` encrypt without verifying (as libpq does);
    /// `disable` uses no TLS.
    ///
    /// # Errors
    /// [`PgError::Config`] when a verifying mode has no `sslrootcert`, or it cannot be read.
    pub fn rustls(self) -> Result<PgManager<tokio_postgres_rustls::MakeRustlsConnect>, PgError> {
        let config = crate::tls::client_config(&self.s.ssl)?;
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

impl<T: PgTls> Manager for PgManager<T> {
    type Connection = PgConnection;
    type Error = PgError;

    async fn connect(&self) -> Result<PgConnection, PgError> {
        let mut config = self.connect_config();
        let Some(provider) = &self.s.password else {
            return self.connect_with(&config).await;
        };
        config.password(provider().await.map_err(PgError::PasswordProvider)?);
        match self.connect_with(&config).await {
            Err(e) if e.is_auth_failure() => {
                self.s.health.auth_retries.fetch_add(1, Ordering::Relaxed);
                tracing::info!(target: "pool_postgres", error = %e, "authentication failed; asking the password provider again");
                config.password(provider().await.map_err(PgError::PasswordProvider)?);
                self.connect_with(&config).await
            }
            other => other,
        }
    }

    async fn check(&self, conn: &mut PgConnection) -> Result<(), PgError> {
        let epoch = self.s.health.suspect_epoch.load(Ordering::Acquire);
        conn.client.simple_query("").await.map_err(PgError::from)?;
        conn.checked_epoch = epoch;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed()
            || conn.watch.broken.load(Ordering::Acquire)
            || self.s.health.is_demoted(&conn.watch.server, conn.watch.seq)
    }

    /// Takes the pool's floor for the connection-budget warning, unless
    /// [`PgManager::budget_floor`] set one.
    fn configure(&mut self, config: &pool_core::Config) {
        if self.s.budget_floor.is_none() && config.min_size > 0 {
            self.s.budget_floor = Some(config.min_size);
        }
    }

    fn needs_check(&self, conn: &mut PgConnection) -> bool {
        conn.checked_epoch < self.s.health.suspect_epoch.load(Ordering::Acquire)
    }

    fn classify(&self, err: &PgError) -> ErrorClass {
        err.class()
    }
}

/// The running program's file name, the default `application_name` (so `pg_stat_activity`
/// says which service a backend belongs to).
fn program_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let name = exe.file_stem()?.to_string_lossy().into_owned();
    (!name.is_empty()).then_some(name)
}
