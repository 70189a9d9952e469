//! [`GenericClient`]: one trait over a pooled connection, the connection itself and a
//! transaction, so a function can take any of them.

use std::future::Future;

use bytes::Buf;
use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{
    CopyInSink, CopyOutStream, Error, Row, RowStream, SimpleQueryMessage, Statement,
};

use crate::cache::Query;
use crate::connection::PgConnection;
use crate::manager::{PgManager, PgTls};
use crate::transaction::Transaction;

/// The methods a pooled [`Object`](crate::Object), a [`PgConnection`] and a [`Transaction`]
/// share, all watched as the connection's own are. Every future is `Send`, so a function
/// generic over it runs inside `tokio::spawn`:
///
/// ```no_run
/// use pool_postgres::GenericClient;
///
/// async fn count_users(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
///     let st = client.prepare_cached("SELECT count(*) FROM users").await?;
///     Ok(client.query_one(&st, &[]).await?.get(0))
/// }
///
/// # async fn demo(pool: pool_postgres::Pool) -> Result<(), Box<dyn std::error::Error>> {
/// let mut conn = pool.get().await?;
/// let before = count_users(&conn).await?;
/// let tx = conn.transaction().await?;
/// let inside = count_users(&tx).await?;
/// tx.commit().await?;
/// # let _ = (before, inside);
/// # Ok(())
/// # }
/// ```
pub trait GenericClient: Sync {
    /// `query`: the rows.
    fn query<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;
    /// `query_one`: exactly one row.
    fn query_one<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send;
    /// `query_opt`: at most one row.
    fn query_opt<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;
    /// `query_raw`: the rows as a stream.
    fn query_raw<S, P, I>(
        &self,
        statement: &S,
        params: I,
    ) -> impl Future<Output = Result<RowStream, Error>> + Send
    where
        S: ?Sized + Query,
        P: BorrowToSql + Send,
        I: IntoIterator<Item = P> + Clone + Send + Sync,
        I::IntoIter: ExactSizeIterator + Send;
    /// `query_typed`: an unnamed statement with typed parameters (one round trip, no named
    /// statement: what works behind a transaction-mode pooler).
    fn query_typed(
        &self,
        statement: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;
    /// `execute`: the rows affected.
    fn execute<S: ?Sized + Query>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;
    /// `prepare`: a new named statement.
    fn prepare(&self, query: &str) -> impl Future<Output = Result<Statement, Error>> + Send;
    /// `prepare_cached`: the connection's cached statement for `query`.
    fn prepare_cached(&self, query: &str) -> impl Future<Output = Result<Statement, Error>> + Send;
    /// `batch_execute`: statements as one simple query.
    fn batch_execute(&self, query: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// `simple_query`: the simple protocol's messages.
    fn simple_query(
        &self,
        query: &str,
    ) -> impl Future<Output = Result<Vec<SimpleQueryMessage>, Error>> + Send;
    /// `copy_in`: a sink for `COPY ... FROM STDIN`.
    fn copy_in<S, U>(
        &self,
        statement: &S,
    ) -> impl Future<Output = Result<CopyInSink<U>, Error>> + Send
    where
        S: ?Sized + Query,
        U: Buf + 'static + Send;
    /// `copy_out`: a stream of `COPY ... TO STDOUT`.
    fn copy_out<S: ?Sized + Query>(
        &self,
        statement: &S,
    ) -> impl Future<Output = Result<CopyOutStream, Error>> + Send;
    /// `transaction`: a transaction (on a transaction, a savepoint).
    fn transaction(&mut self) -> impl Future<Output = Result<Transaction<'_>, Error>> + Send;
}

/// Implements [`GenericClient`] by calling the type's own watched methods (through `$deref`).
macro_rules! generic_client {
    ($(#[$m:meta])* impl [$($g:tt)*] for $ty:ty, |$this:ident| $deref:expr, |$mut:ident| $deref_mut:expr) => {
        $(#[$m])*
        impl<$($g)*> GenericClient for $ty {
            async fn query<S: ?Sized + Query>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
                let $this = self;
                $deref.query(statement, params).await
            }
            async fn query_one<S: ?Sized + Query>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
                let $this = self;
                $deref.query_one(statement, params).await
            }
            async fn query_opt<S: ?Sized + Query>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, Error> {
                let $this = self;
                $deref.query_opt(statement, params).await
            }
            async fn query_raw<S, P, I>(&self, statement: &S, params: I) -> Result<RowStream, Error>
            where
                S: ?Sized + Query,
                P: BorrowToSql + Send,
                I: IntoIterator<Item = P> + Clone + Send + Sync,
                I::IntoIter: ExactSizeIterator + Send,
            {
                let $this = self;
                $deref.query_raw(statement, params).await
            }
            async fn query_typed(&self, statement: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Result<Vec<Row>, Error> {
                let $this = self;
                $deref.query_typed(statement, params).await
            }
            async fn execute<S: ?Sized + Query>(&self, statement: &S, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
                let $this = self;
                $deref.execute(statement, params).await
            }
            async fn prepare(&self, query: &str) -> Result<Statement, Error> {
                let $this = self;
                $deref.prepare(query).await
            }
            async fn prepare_cached(&self, query: &str) -> Result<Statement, Error> {
                let $this = self;
                $deref.prepare_cached(query).await
            }
            async fn batch_execute(&self, query: &str) -> Result<(), Error> {
                let $this = self;
                $deref.batch_execute(query).await
            }
            async fn simple_query(&self, query: &str) -> Result<Vec<SimpleQueryMessage>, Error> {
                let $this = self;
                $deref.simple_query(query).await
            }
            async fn copy_in<S, U>(&self, statement: &S) -> Result<CopyInSink<U>, Error>
            where
                S: ?Sized + Query,
                U: Buf + 'static + Send,
            {
                let $this = self;
                $deref.copy_in(statement).await
            }
            async fn copy_out<S: ?Sized + Query>(&self, statement: &S) -> Result<CopyOutStream, Error> {
                let $this = self;
                $deref.copy_out(statement).await
            }
            async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
                let $mut = self;
                $deref_mut.transaction().await
            }
        }
    };
}

generic_client!(impl [] for PgConnection, |c| c, |c| c);
generic_client!(impl ['a] for Transaction<'a>, |t| t, |t| t);
generic_client!(impl [T: PgTls] for pool_core::Object<PgManager<T>>, |o| (&**o), |o| &mut **o);
