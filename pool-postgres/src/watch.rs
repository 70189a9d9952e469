//! What a statement's outcome is observed against, shared by the connection and its
//! transactions: the connection's marks, its statement cache and the manager's health.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::cache::{Query, StatementCache};
use crate::health::Health;

/// What a statement's outcome is watched against: the connection's marks, its statement cache
/// and the manager's health. A connection owns one, beside its client, so a transaction can
/// borrow it while it holds the client.
pub(crate) struct Watch {
    /// Opening order.
    pub(crate) seq: u64,
    /// The server it is on (`inet_server_addr:port` when the connection string lists several
    /// hosts).
    pub(crate) server: Arc<str>,
    pub(crate) broken: AtomicBool,
    pub(crate) read_write: bool,
    pub(crate) health: Arc<Health>,
    /// `prepare_cached`'s statements.
    pub(crate) statements: Mutex<StatementCache>,
}

impl Watch {
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
                self.health.demote(&self.server, self.seq);
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
