//! `PgManager`: opens, checks and judges tokio-postgres connections for the pool.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_core::{ErrorClass, Manager};
use tokio::sync::oneshot;
use tokio_postgres::config::Host;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls};

use crate::error::{server_went_away, PgError};
use crate::redact::redact;
use crate::socket::{self, Keepalives, PgStream, SocketOptions};

/// How long a closed connection's background task may take to say goodbye to the server.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A [`Manager`] for tokio-postgres connections.
///
/// It opens its own sockets so TCP keepalives (on by default: idle 60 s, interval 10 s, 6
/// probes) and `TCP_USER_TIMEOUT` are set before the startup handshake; settings given
/// explicitly in the connection string win over these defaults. The health check is an empty
/// simple query; a connection is broken when its client is closed, or when it was opened
/// before a pooled connection saw the server go away (57P01, 57P02, class 08), so a server
/// restart retires every older connection at once instead of one failed checkout at a time.
///
/// `T` is the TLS connector: [`NoTls`] by default; with the `rustls` feature, see
/// [`PgManager::with_tls`].
pub struct PgManager<T = NoTls> {
    config: tokio_postgres::Config,
    tls: T,
    keepalives: Option<Keepalives>,
    tcp_user_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    /// Bumped when a pooled connection sees the server go away; connections opened in an
    /// older generation are retired.
    generation: Arc<AtomicU64>,
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
            .field("keepalives", &self.keepalives)
            .field("tcp_user_timeout", &self.tcp_user_timeout)
            .field("connect_timeout", &self.connect_timeout)
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
    /// libpq key/value pairs (`host=... user=...`).
    ///
    /// # Errors
    /// [`PgError::Config`] naming what is wrong, with any password redacted.
    pub fn from_url(conn: &str) -> Result<Self, PgError> {
        let config = tokio_postgres::Config::from_str(conn)
            .map_err(|e| PgError::Config(format!("{e} (in {:?})", redact(conn))))?;
        let explicit = explicit_params(conn);
        let has = |k: &str| explicit.iter().any(|p| p == k);
        let mut manager = PgManager::build(config.clone(), NoTls)?;
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
    /// [`PgError::Config`] when the config names no host.
    pub fn new(config: tokio_postgres::Config) -> Result<Self, PgError> {
        let mut manager = PgManager::build(config.clone(), NoTls)?;
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

#[cfg(feature = "rustls")]
impl<T> PgManager<T> {
    /// TLS through rustls with this client configuration (roots, client certificates). The
    /// connection string's `sslmode` decides whether TLS is used (`prefer` by default,
    /// `require` to insist).
    pub fn with_rustls(
        self,
        config: rustls::ClientConfig,
    ) -> PgManager<tokio_postgres_rustls::MakeRustlsConnect> {
        self.with_tls(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

impl<T> PgManager<T> {
    fn build(config: tokio_postgres::Config, tls: T) -> Result<Self, PgError> {
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
            keepalives: Some(Keepalives::default()),
            tcp_user_timeout: None,
            connect_timeout: None,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Uses another TLS connector (for example `tokio_postgres_rustls::MakeRustlsConnect`).
    pub fn with_tls<U>(self, tls: U) -> PgManager<U> {
        PgManager {
            config: self.config,
            tls,
            keepalives: self.keepalives,
            tcp_user_timeout: self.tcp_user_timeout,
            connect_timeout: self.connect_timeout,
            generation: self.generation,
        }
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

    /// Bounds one connect (socket and startup handshake), per host tried.
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

    /// The tokio-postgres configuration (its `Debug` hides the password).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// How many times a pooled connection has seen the server go away.
    pub fn server_restarts_seen(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

/// A pooled Postgres connection: derefs to [`tokio_postgres::Client`].
///
/// Dropping it closes the client; its background connection task then says goodbye to the
/// server and ends (given at most five seconds).
pub struct PgConnection {
    client: Client,
    generation: u64,
    socket: Option<SocketOptions>,
    /// Dropped after `client`: tells the connection task to wind down.
    _closing: oneshot::Sender<()>,
}

impl PgConnection {
    /// The socket options read back from the kernel when the connection was opened (`None`
    /// for a Unix-domain socket).
    pub fn socket_options(&self) -> Option<&SocketOptions> {
        self.socket.as_ref()
    }
}

impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("closed", &self.client.is_closed())
            .field("socket", &self.socket)
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
        PgStream,
        Stream: Send + 'static,
        TlsConnect: Send + TlsConnect<PgStream, Future: Send>,
        Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> PgTls for T where
    T: MakeTlsConnect<
            PgStream,
            Stream: Send + 'static,
            TlsConnect: Send + TlsConnect<PgStream, Future: Send>,
            Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

enum Target {
    Tcp {
        host: String,
        addr: Option<IpAddr>,
        port: u16,
    },
    Unix {
        dir: std::path::PathBuf,
        port: u16,
    },
}

impl<T: PgTls> PgManager<T> {
    fn targets(&self) -> Vec<Target> {
        let ports = self.config.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts = self.config.get_hosts();
        let addrs = self.config.get_hostaddrs();
        let n = hosts.len().max(addrs.len());
        (0..n)
            .map(|i| match hosts.get(i) {
                Some(Host::Unix(dir)) => Target::Unix {
                    dir: dir.clone(),
                    port: port(i),
                },
                Some(Host::Tcp(h)) => Target::Tcp {
                    host: h.clone(),
                    addr: addrs.get(i).copied(),
                    port: port(i),
                },
                None => {
                    let a = addrs[i];
                    Target::Tcp {
                        host: a.to_string(),
                        addr: Some(a),
                        port: port(i),
                    }
                }
            })
            .collect()
    }

    async fn connect_to(&self, target: &Target) -> Result<PgConnection, PgError> {
        let (stream, socket, host) = match target {
            Target::Unix { dir, port } => {
                let stream =
                    socket::connect_unix(dir, *port)
                        .await
                        .map_err(|source| PgError::Io {
                            target: format!("{}/.s.PGSQL.{port}", dir.display()),
                            source,
                        })?;
                (stream, None, "localhost".to_string())
            }
            Target::Tcp { host, addr, port } => {
                let addrs: Vec<SocketAddr> = match addr {
                    Some(ip) => vec![SocketAddr::new(*ip, *port)],
                    None => tokio::net::lookup_host((host.as_str(), *port))
                        .await
                        .map_err(|source| PgError::Io {
                            target: format!("{host}:{port}"),
                            source,
                        })?
                        .collect(),
                };
                let mut last = None;
                let mut connected = None;
                for a in addrs {
                    match socket::connect_tcp(a, self.keepalives, self.tcp_user_timeout).await {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(source) => {
                            last = Some(PgError::Io {
                                target: format!("{host}:{port} ({a})"),
                                source,
                            })
                        }
                    }
                }
                let (stream, opts) = match connected {
                    Some(s) => s,
                    None => {
                        return Err(last.unwrap_or_else(|| PgError::Io {
                            target: format!("{host}:{port}"),
                            source: std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                "no addresses found",
                            ),
                        }))
                    }
                };
                (stream, Some(opts), host.clone())
            }
        };
        let tls = self
            .tls
            .clone()
            .make_tls_connect(&host)
            .map_err(|e| PgError::Config(format!("TLS setup for {host}: {}", e.into())))?;
        let (client, connection) = self.config.connect_raw(stream, tls).await?;
        let (closing, closed) = oneshot::channel::<()>();
        let generation = Arc::clone(&self.generation);
        let born = generation.load(Ordering::Acquire);
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = &mut connection => {
                    if let Err(e) = result {
                        if server_went_away(&e) {
                            generation.fetch_add(1, Ordering::AcqRel);
                            tracing::warn!(target: "pool_postgres", error = %PgError::from(e), "the server went away; retiring every connection opened before now");
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
        Ok(PgConnection {
            client,
            generation: born,
            socket,
            _closing: closing,
        })
    }
}

impl<T: PgTls> Manager for PgManager<T> {
    type Connection = PgConnection;
    type Error = PgError;

    async fn connect(&self) -> Result<PgConnection, PgError> {
        let mut last = None;
        for target in self.targets() {
            let attempt = self.connect_to(&target);
            let result = match self.connect_timeout {
                Some(t) => tokio::time::timeout(t, attempt)
                    .await
                    .unwrap_or(Err(PgError::TimedOut { what: "connect" })),
                None => attempt.await,
            };
            match result {
                Ok(conn) => return Ok(conn),
                // Bad credentials or an unknown database will not differ on the next host.
                Err(e) if e.class() == ErrorClass::Fatal => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PgError::Config("no host to connect to".into())))
    }

    async fn check(&self, conn: &mut PgConnection) -> Result<(), PgError> {
        conn.client
            .simple_query("")
            .await
            .map(drop)
            .map_err(PgError::from)
    }

    fn has_broken(&self, conn: &mut PgConnection) -> bool {
        conn.client.is_closed() || conn.generation < self.generation.load(Ordering::Acquire)
    }

    fn classify(&self, err: &PgError) -> ErrorClass {
        err.class()
    }
}
