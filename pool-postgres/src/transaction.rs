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
    watch: Watch<'a>,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction").finish_non_exhaustive()
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(inner: tokio_postgres::Transaction<'a>, watch: Watch<'a>) -> Self {
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

    /// [`tokio_postgres::Transaction::query`], watched (a stale cached statement is prepared
    /// again and the query retried once, as on the connection; in a transaction the retry
    /// usually finds it aborted by the first failure and reports that).
    pub async fn query<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        watched!(self, statement, |s| self.inner.query(s, params))
    }

    /// [`tokio_postgres::Transaction::query_one`], watched.
    pub async fn query_one<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        watched!(self, statement, |s| self.inner.query_one(s, params))
    }

    /// [`tokio_postgres::Transaction::query_opt`], watched.
    pub async fn query_opt<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        watched!(self, statement, |s| self.inner.query_opt(s, params))
    }

    /// [`tokio_postgres::Transaction::query_raw`], watched.
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
        watched!(self, statement, |s| self.inner.query_raw(s, params.clone()))
    }

    /// [`tokio_postgres::Transaction::query_typed`], watched.
    pub async fn query_typed(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.observe(self.inner.query_typed(statement, params).await)
    }

    /// [`tokio_postgres::Transaction::execute`], watched.
    pub async fn execute<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        watched!(self, statement, |s| self.inner.execute(s, params))
    }

    /// [`tokio_postgres::Transaction::simple_query`], watched.
    pub async fn simple_query(
        &self,
        query: &str,
    ) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
        self.observe(self.inner.simple_query(query).await)
    }

    /// [`tokio_postgres::Transaction::batch_execute`], watched.
    pub async fn batch_execute(&self, query: &str) -> Result<(), tokio_postgres::Error> {
        self.observe(self.inner.batch_execute(query).await)
    }

    /// [`tokio_postgres::Transaction::prepare`], watched.
    pub async fn prepare(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
        self.observe(self.inner.prepare(query).await)
    }

    /// [`tokio_postgres::Transaction::prepare_typed`], watched.
    pub async fn prepare_typed(
        &self,
        query: &str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        self.observe(self.inner.prepare_typed(query, types).await)
    }

    /// The connection's cached statement for `query`
    /// ([`PgConnection::prepare_cached`](crate::PgConnection::prepare_cached)).
    ///
    /// # Errors
    /// The server's error preparing it.
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
        if let Some(statement) = self.watch.cache().get(query, types) {
            return Ok(statement);
        }
        let statement = self.prepare_typed(query, types).await?;
        self.watch.cache().insert(query, types, statement.clone());
        Ok(statement)
    }

    /// [`tokio_postgres::Transaction::copy_in`], watched.
    pub async fn copy_in<S, U>(&self, statement: &S) -> Result<CopyInSink<U>, tokio_postgres::Error>
    where
        S: ?Sized + Query,
        U: Buf + 'static + Send,
    {
        self.observe(self.inner.copy_in(statement).await)
    }

    /// [`tokio_postgres::Transaction::copy_out`], watched.
    pub async fn copy_out<S>(&self, statement: &S) -> Result<CopyOutStream, tokio_postgres::Error>
    where
        S: ?Sized + Query,
    {
        self.observe(self.inner.copy_out(statement).await)
    }
}

/// A transaction being configured ([`PgConnection::build_transaction`]).
///
/// [`PgConnection::build_transaction`]: crate::PgConnection::build_transaction
pub struct TransactionBuilder<'a> {
    inner: tokio_postgres::TransactionBuilder<'a>,
    watch: Watch<'a>,
}

impl fmt::Debug for TransactionBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionBuilder").finish_non_exhaustive()
    }
}

impl<'a> TransactionBuilder<'a> {
    pub(crate) fn new(inner: tokio_postgres::TransactionBuilder<'a>, watch: Watch<'a>) -> Self {
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
