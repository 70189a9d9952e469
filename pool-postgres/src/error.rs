//! Errors from the Postgres adapter, and their classification.

use std::fmt;
use std::io;

use pool_core::ErrorClass;
use tokio_postgres::error::SqlState;

/// An error opening, checking or configuring a Postgres connection. Never contains a password.
#[derive(Debug)]
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
}

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
    /// 53300 (too many connections), 57P03 (cannot connect now), class 08 and refused, reset
    /// or timed-out connects are transient; class 28 (bad credentials) and 3D000 (unknown
    /// database) are fatal; a bad configuration is fatal. Anything else is transient.
    pub fn class(&self) -> ErrorClass {
        match self {
            PgError::Io { .. } | PgError::TimedOut { .. } => ErrorClass::Transient,
            PgError::Config(_) => ErrorClass::Fatal,
            PgError::Postgres(e) => match e.code() {
                Some(code) if is_fatal_code(code) => ErrorClass::Fatal,
                _ => ErrorClass::Transient,
            },
        }
    }
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
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Io { source, .. } => Some(source),
            PgError::Postgres(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Postgres(e)
    }
}
