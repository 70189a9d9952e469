//! The watched transaction: tokio-postgres's transaction, its statements observed like the
//! connection's own (a 25006 demotes the server's connections, the 26000 hint, stale cached
//! statements prepared again), with the connection's statement cache, savepoints nested as
//! transactions within it.

use std::fmt;

use bytes::Buf;
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    CopyInSink, CopyOutStream, IsolationLevel, Row, RowStream, SimpleQueryMessage, Statement,
};

use crate::cache::Query;
use crate::watch::Watch;

/// A transaction on a pooled connection ([`PgConnection::transaction`]), watched like the
/// connection: a statement failing with 25006 under `target_session_attrs=read-write` marks
/// the server's connections broken, and cached statements
/// ([`prepare_cached`](Transaction::prepare_cached)) are the connection's. Nested
/// [`transaction`](Transaction::transaction)s are savepoints. Dropped without
/// [`commit`](Transaction::commit), it rolls back.
///
/// [`PgConnection::transaction`]: crate::PgConnection::transaction
pub struct Transaction<'a> {
    inner: tokio_postgres::Transaction<'a>,
    watch: &'a Watch,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(inner: tokio_postgres::Transaction<'a>, watch: &'a Watch) -> Self {
        Transaction { inner, watch }
    }

    fn observe<R>(
        &self,
        result: Result<R, tokio_postgres::Error>,
    ) -> Result<R, tokio_postgres::Error> {
        self.watch.observe(result)
    }

    fn stale<S: ?Sized + Query, R>(
        &self,
        result: &Result<R, tokio_postgres::Error>,
        statement: &S,
    ) -> Option<(String, Vec<Type>)> {
        self.watch.stale(result, statement)
    }

    /// Commits it.
    ///
    /// # Errors
    /// The server's error (the transaction is then rolled back).
    pub async fn commit(self) -> Result<(), tokio_postgres::Error> {
        let Transaction { inner, watch } = self;
        watch.observe(inner.commit().await)
    }

    /// Rolls it back.
    ///
    /// # Errors
    /// The server's error.
    pub async fn rollback(self) -> Result<(), tokio_postgres::Error> {
        let Transaction { inner, watch } = self;
        watch.observe(inner.rollback().await)
    }

    /// A nested transaction: a savepoint, released on commit, rolled back to on rollback or
    /// drop.
    ///
    /// # Errors
    /// The server's error.
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, tokio_postgres::Error> {
        let watch = self.watch;
        let inner = watch.observe(self.inner.transaction().await)?;
        Ok(Transaction { inner, watch })
    }

    /// [`transaction`](Self::transaction) with a savepoint name of your choosing.
    ///
    /// # Errors
    /// The server's error.
    pub async fn savepoint(
        &mut self,
        name: impl Into<String>,
    ) -> Result<Transaction<'_>, tokio_postgres::Error> {
        let watch = self.watch;
        let inner = watch.observe(self.inner.savepoint(name).await)?;
        Ok(Transaction { inner, watch })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, crate::cache::StatementCache> {
        self.watch.cache()
    }

    statement_methods!(inner, "tokio_postgres::Transaction");
}

/// A transaction being configured ([`PgConnection::build_transaction`]).
///
/// [`PgConnection::build_transaction`]: crate::PgConnection::build_transaction
pub struct TransactionBuilder<'a> {
    inner: tokio_postgres::TransactionBuilder<'a>,
    watch: &'a Watch,
}

impl fmt::Debug for TransactionBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionBuilder").finish_non_exhaustive()
    }
}

impl<'a> TransactionBuilder<'a> {
    pub(crate) fn new(inner: tokio_postgres::TransactionBuilder<'a>, watch: &'a Watch) -> Self {
        TransactionBuilder { inner, watch }
    }

    /// The isolation level.
    pub fn isolation_level(self, level: IsolationLevel) -> Self {
        TransactionBuilder {
            inner: self.inner.isolation_level(level),
            watch: self.watch,
        }
    }

    /// Read-only (or read-write).
    pub fn read_only(self, read_only: bool) -> Self {
        TransactionBuilder {
            inner: self.inner.read_only(read_only),
            watch: self.watch,
        }
    }

    /// Deferrable (with serializable, read-only).
    pub fn deferrable(self, deferrable: bool) -> Self {
        TransactionBuilder {
            inner: self.inner.deferrable(deferrable),
            watch: self.watch,
        }
    }

    /// Starts it.
    ///
    /// # Errors
    /// The server's error starting it.
    pub async fn start(self) -> Result<Transaction<'a>, tokio_postgres::Error> {
        let TransactionBuilder { inner, watch } = self;
        let inner = watch.observe(inner.start().await)?;
        Ok(Transaction::new(inner, watch))
    }
}
