//! The watched connection: [`PgConnection`], the statement methods that observe what the
//! server says (a 25006 demotes the server, the 26000 hint, stale cached statements prepared
//! again), its statement cache, and the transactions it starts.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use bytes::Buf;
use tokio::sync::oneshot;
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    Client, CopyInSink, CopyOutStream, Row, RowStream, SimpleQueryMessage, Statement,
};

use crate::cache::{Query, StatementCache};
use crate::health::Health;
use crate::transaction::{Transaction, TransactionBuilder};
use crate::watch::Watch;

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
    pub(crate) client: Client,
    /// Opening order.
    pub(crate) seq: u64,
    /// The server it is on (`inet_server_addr:port` when the connection string lists several
    /// hosts).
    pub(crate) server: Arc<str>,
    /// The suspect epoch it last passed a check in (or was opened in).
    pub(crate) checked_epoch: u64,
    pub(crate) broken: AtomicBool,
    pub(crate) read_write: bool,
    pub(crate) health: Arc<Health>,
    /// `prepare_cached`'s statements.
    pub(crate) statements: Mutex<StatementCache>,
    /// Dropped after `client`: tells the connection task to wind down.
    pub(crate) _closing: oneshot::Sender<()>,
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
    /// ([`PgManager::statement_cache_capacity`](crate::PgManager::statement_cache_capacity)); a cached statement the server lost, or whose
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
