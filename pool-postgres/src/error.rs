//! Errors from the Postgres adapter, and their classification.

use std::fmt;
use std::io;

use pool_core::ErrorClass;
use tokio_postgres::error::SqlState;

/// An error opening, checking or configuring a Postgres connection. Never contains a password.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgError {
    /// The TCP or Unix-socket connect failed.
    Io {
        /// Where it tried to connect (host and port, or socket path); no credentials.
        target: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The server or the protocol reported an error.
    Postgres(tokio_postgres::Error),
    /// A connect or check did not finish in time.
    TimedOut {
        /// What timed out.
        what: &'static str,
    },
    /// The connection settings cannot be used (named, with the password redacted).
    Config(String),
    /// No connection could be made to any of the hosts (refused, unreachable, TLS failed,
    /// or no host matched `target_session_attrs`); tokio-postgres's error for the last one.
    Connect {
        /// The hosts tried, `host:port` each; no credentials.
        targets: String,
        /// The last host's error.
        source: tokio_postgres::Error,
    },
    /// The password provider failed.
    PasswordProvider(ProviderError),
}

/// The error a password provider may return.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

impl PgError {
    /// The SQLSTATE the server sent, if any.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            PgError::Postgres(e) => e.code(),
            _ => None,
        }
    }

    /// Transient (retry with backoff) or fatal (fail the callers now)?
    ///
    /// 53300 (too many connections) is [`ErrorClass::ServerFull`] (retried, and the pool's
    /// adaptive ceiling comes down); 57P03 (cannot connect now), class 08, refused, reset or
    /// timed-out connects, a host that fails `target_session_attrs` and a failing password
    /// provider are transient; class 28 (bad credentials), 3D000 (unknown database), a server
    /// certificate that fails verification, TLS required without a TLS connector, and a bad
    /// configuration are fatal. Anything else is transient.
    pub fn class(&self) -> ErrorClass {
        match self {
            PgError::Io { .. } | PgError::TimedOut { .. } | PgError::PasswordProvider(_) => {
                ErrorClass::Transient
            }
            PgError::Config(_) => ErrorClass::Fatal,
            PgError::Connect { source, .. } if is_tls_refusal(source) => ErrorClass::Fatal,
            PgError::Connect { .. } => ErrorClass::Transient,
            PgError::Postgres(e) => match e.code() {
                Some(code) if is_fatal_code(code) => ErrorClass::Fatal,
                Some(&SqlState::TOO_MANY_CONNECTIONS) => ErrorClass::ServerFull,
                _ => ErrorClass::Transient,
            },
        }
    }

    /// Did the server refuse the credentials (SQLSTATE class 28)?
    pub fn is_auth_failure(&self) -> bool {
        self.code().is_some_and(|c| c.code().starts_with("28"))
    }

    /// A connect error: the server's own error when it sent one (with its SQLSTATE), else the
    /// failure to reach any of `targets`.
    pub(crate) fn connect(targets: String, e: tokio_postgres::Error) -> PgError {
        if e.code().is_some() {
            PgError::Postgres(e)
        } else {
            PgError::Connect { targets, source: e }
        }
    }
}

/// Is this a TLS failure that retrying cannot fix: the server's certificate refused, or TLS
/// required with no TLS connector?
fn is_tls_refusal(e: &tokio_postgres::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<tokio_postgres::tls::NoTlsError>() {
            return true;
        }
        #[cfg(feature = "rustls")]
        if let Some(rustls::Error::InvalidCertificate(_)) = err.downcast_ref::<rustls::Error>() {
            return true;
        }
        // io::Error hides the error it wraps from `source()`.
        next = match err.downcast_ref::<io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

fn is_fatal_code(code: &SqlState) -> bool {
    code.code().starts_with("28") || *code == SqlState::INVALID_CATALOG_NAME
}

/// Does this error on a pooled connection mean the server went away (shutdown, crash, or the
/// connection was terminated: 57P01, 57P02, class 08)?
pub(crate) fn server_went_away(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => {
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || code.code().starts_with("08")
        }
        None => false,
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Io { target, source } => write!(f, "could not connect to {target}: {source}"),
            PgError::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "postgres error {}: {}", db.code().code(), db.message()),
                None => write!(f, "postgres: {e}"),
            },
            PgError::TimedOut { what } => write!(f, "{what} timed out"),
            PgError::Config(msg) => write!(f, "invalid Postgres connection settings: {msg}"),
            PgError::Connect { targets, source } => {
                write!(f, "could not connect to {targets}: {source}")?;
                let mut next = std::error::Error::source(source);
                while let Some(e) = next {
                    write!(f, ": {e}")?;
                    next = e.source();
                }
                Ok(())
            }
            PgError::PasswordProvider(e) => write!(f, "the password provider failed: {e}"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Io { source, .. } => Some(source),
            PgError::Postgres(e) | PgError::Connect { source: e, .. } => Some(e),
            PgError::PasswordProvider(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Postgres(e)
    }
}
