//! The watched connection: [`PgConnection`], the statement methods that observe what the
//! server says (a 25006 demotes the server, the 26000 hint, stale cached statements prepared
//! again), its statement cache, and the transactions it starts.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::Buf;
use tokio::sync::oneshot;
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    Client, CopyInSink, CopyOutStream, Row, RowStream, SimpleQueryMessage, Statement,
};

use crate::cache::{Query, StatementCache};
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
    /// The suspect epoch it last passed a check in (or was opened in).
    pub(crate) checked_epoch: u64,
    /// What its statements are observed against.
    pub(crate) watch: Watch,
    /// Dropped after `client`: tells the connection task to wind down.
    pub(crate) _closing: oneshot::Sender<()>,
}

impl PgConnection {
    /// The server this connection is on: `address:port` as the server reports it when the
    /// connection string lists several hosts, else empty.
    pub fn server(&self) -> &str {
        &self.watch.server
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

    fn cache(&self) -> std::sync::MutexGuard<'_, StatementCache> {
        self.watch.cache()
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

    fn split(&mut self) -> (&mut Client, &Watch) {
        (&mut self.client, &self.watch)
    }

    statement_methods!(client, "Client");

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
            .field("server", &self.watch.server)
            .field("seq", &self.watch.seq)
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
