//! A bounded, per-connection cache of prepared statements (`prepare_cached`), and the
//! statement-or-text argument the watched query methods take.

use std::collections::HashMap;

use tokio_postgres::types::Type;
use tokio_postgres::{Statement, ToStatement};

/// The cache's capacity when the manager does not set one.
pub(crate) const DEFAULT_CAPACITY: usize = 100;

/// Prepared statements by SQL text and parameter types, least recently used evicted first.
/// An evicted statement is closed on the server when its last clone is dropped.
#[derive(Debug)]
pub(crate) struct StatementCache {
    capacity: usize,
    by_sql: HashMap<String, Vec<Cached>>,
    len: usize,
    clock: u64,
}

#[derive(Debug)]
struct Cached {
    types: Vec<Type>,
    statement: Statement,
    used: u64,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        StatementCache {
            capacity,
            by_sql: HashMap::new(),
            len: 0,
            clock: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The statement prepared for `sql` with `types`, if cached (it becomes the most recently
    /// used).
    pub(crate) fn get(&mut self, sql: &str, types: &[Type]) -> Option<Statement> {
        self.clock += 1;
        let now = self.clock;
        let entry = self
            .by_sql
            .get_mut(sql)?
            .iter_mut()
            .find(|c| c.types == types)?;
        entry.used = now;
        Some(entry.statement.clone())
    }

    /// Keeps `statement` for `sql` and `types`, evicting the least recently used one when full.
    /// Nothing is kept with a capacity of 0.
    pub(crate) fn insert(&mut self, sql: &str, types: &[Type], statement: Statement) {
        if self.capacity == 0 {
            return;
        }
        if self.get(sql, types).is_some() {
            return;
        }
        if self.len >= self.capacity {
            self.evict_oldest();
        }
        self.clock += 1;
        self.by_sql.entry(sql.to_owned()).or_default().push(Cached {
            types: types.to_vec(),
            statement,
            used: self.clock,
        });
        self.len += 1;
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .by_sql
            .iter()
            .flat_map(|(sql, v)| v.iter().enumerate().map(move |(i, c)| (c.used, sql, i)))
            .min()
            .map(|(_, sql, i)| (sql.clone(), i));
        if let Some((sql, i)) = oldest {
            self.remove_at(&sql, i);
        }
    }

    fn remove_at(&mut self, sql: &str, i: usize) -> Option<Vec<Type>> {
        let list = self.by_sql.get_mut(sql)?;
        let gone = list.swap_remove(i);
        if list.is_empty() {
            self.by_sql.remove(sql);
        }
        self.len -= 1;
        Some(gone.types)
    }

    /// Forgets `statement` if it is one of the cache's (the server lost it, or its plan
    /// changed); returns what it was prepared from, to prepare it again.
    pub(crate) fn remove(&mut self, statement: &Statement) -> Option<(String, Vec<Type>)> {
        let (sql, i) = self.by_sql.iter().find_map(|(sql, v)| {
            v.iter()
                .position(|c| same(&c.statement, statement))
                .map(|i| (sql.clone(), i))
        })?;
        let types = self.remove_at(&sql, i)?;
        Some((sql, types))
    }

    /// Forgets every statement (after `DISCARD ALL`, or on request).
    pub(crate) fn clear(&mut self) {
        self.by_sql.clear();
        self.len = 0;
    }
}

/// Is `a` a clone of `b`? A statement's parameter and column lists live in its shared inner
/// allocation, so clones share their addresses. A statement with neither is never matched
/// (empty lists share no address), so it is not prepared again.
fn same(a: &Statement, b: &Statement) -> bool {
    if a.params().is_empty() && a.columns().is_empty() {
        return false;
    }
    std::ptr::eq(a.params(), b.params()) && std::ptr::eq(a.columns(), b.columns())
}

/// What the watched query methods take: SQL text or a prepared [`Statement`], as
/// tokio-postgres's `ToStatement` does. Telling a statement apart lets a cached one that the
/// server no longer knows be prepared again and the call retried.
pub trait Query: ToStatement + Sync {
    /// The prepared statement, if this is one.
    fn as_statement(&self) -> Option<&Statement>;
}

impl Query for str {
    fn as_statement(&self) -> Option<&Statement> {
        None
    }
}

impl Query for String {
    fn as_statement(&self) -> Option<&Statement> {
        None
    }
}

impl Query for Statement {
    fn as_statement(&self) -> Option<&Statement> {
        Some(self)
    }
}

/// Runs `$call` with the statement given, and again, once, with a freshly prepared one if the
/// given one was a cached statement gone stale (`stale`); the outcome is
/// watched (`observe`).
macro_rules! watched {
    ($self:ident, $statement:ident, |$s:ident| $call:expr) => {{
        let first = {
            let $s = $statement;
            $call.await
        };
        match $self.stale(&first, $statement) {
            None => $self.observe(first),
            Some((sql, types)) => {
                let fresh = $self.prepare_typed_cached(&sql, &types).await?;
                let $s = &fresh;
                $self.observe($call.await)
            }
        }
    }};
}

/// The watched statement methods a connection and a transaction share, on `$inner` (the
/// tokio-postgres client or transaction, named `$on` in the docs). The type provides
/// `observe`, `stale` and `cache`.
macro_rules! statement_methods {
    ($inner:ident, $on:literal) => {
        #[doc = concat!("[`", $on, "::query`], watched. A statement from `prepare_cached` that the server no longer knows (26000) or whose plan changed result type (0A000) is prepared again and the query retried once (in a transaction, the retry usually finds it aborted by the first failure and reports that).")]
        pub async fn query<S: ?Sized + Query>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Vec<Row>, tokio_postgres::Error> {
            watched!(self, statement, |s| self.$inner.query(s, params))
        }

        #[doc = concat!("[`", $on, "::query_one`], watched (and retried as `query` is).")]
        pub async fn query_one<S: ?Sized + Query>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Row, tokio_postgres::Error> {
            watched!(self, statement, |s| self.$inner.query_one(s, params))
        }

        #[doc = concat!("[`", $on, "::query_opt`], watched (and retried as `query` is).")]
        pub async fn query_opt<S: ?Sized + Query>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Option<Row>, tokio_postgres::Error> {
            watched!(self, statement, |s| self.$inner.query_opt(s, params))
        }

        #[doc = concat!("[`", $on, "::query_raw`], watched (and retried as `query` is).")]
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
            watched!(self, statement, |s| self.$inner.query_raw(s, params.clone()))
        }

        #[doc = concat!("[`", $on, "::query_typed`], watched: an unnamed statement with typed parameters (what works behind a transaction-mode pooler).")]
        pub async fn query_typed(
            &self,
            statement: &str,
            params: &[(&(dyn ToSql + Sync), Type)],
        ) -> Result<Vec<Row>, tokio_postgres::Error> {
            self.observe(self.$inner.query_typed(statement, params).await)
        }

        #[doc = concat!("[`", $on, "::execute`], watched (and retried as `query` is).")]
        pub async fn execute<S: ?Sized + Query>(
            &self,
            statement: &S,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<u64, tokio_postgres::Error> {
            watched!(self, statement, |s| self.$inner.execute(s, params))
        }

        #[doc = concat!("[`", $on, "::simple_query`], watched.")]
        pub async fn simple_query(
            &self,
            query: &str,
        ) -> Result<Vec<SimpleQueryMessage>, tokio_postgres::Error> {
            self.observe(self.$inner.simple_query(query).await)
        }

        #[doc = concat!("[`", $on, "::batch_execute`], watched.")]
        pub async fn batch_execute(&self, query: &str) -> Result<(), tokio_postgres::Error> {
            self.observe(self.$inner.batch_execute(query).await)
        }

        #[doc = concat!("[`", $on, "::prepare`], watched.")]
        pub async fn prepare(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
            self.observe(self.$inner.prepare(query).await)
        }

        #[doc = concat!("[`", $on, "::prepare_typed`], watched.")]
        pub async fn prepare_typed(
            &self,
            query: &str,
            types: &[Type],
        ) -> Result<Statement, tokio_postgres::Error> {
            self.observe(self.$inner.prepare_typed(query, types).await)
        }

        /// The statement prepared for `query` on this connection: from its cache (one
        /// server-side statement per query text per connection, so a query costs one round
        /// trip, not a Parse and a Bind), or prepared now and kept. The cache is bounded
        /// ([`PgManager::statement_cache_capacity`](crate::PgManager::statement_cache_capacity));
        /// a cached statement the server lost, or whose plan changed result type, is prepared
        /// again by the watched query methods.
        ///
        /// # Errors
        /// The server's error preparing it.
        ///
        /// # Cancel safety
        /// Cancel-safe: a statement prepared by a cancelled call is not kept.
        pub async fn prepare_cached(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
            self.prepare_typed_cached(query, &[]).await
        }

        /// `prepare_cached` with parameter types.
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

        #[doc = concat!("[`", $on, "::copy_in`], watched.")]
        pub async fn copy_in<S, U>(&self, statement: &S) -> Result<CopyInSink<U>, tokio_postgres::Error>
        where
            S: ?Sized + Query,
            U: Buf + 'static + Send,
        {
            self.observe(self.$inner.copy_in(statement).await)
        }

        #[doc = concat!("[`", $on, "::copy_out`], watched.")]
        pub async fn copy_out<S>(&self, statement: &S) -> Result<CopyOutStream, tokio_postgres::Error>
        where
            S: ?Sized + Query,
        {
            self.observe(self.$inner.copy_out(statement).await)
        }
    };
}
