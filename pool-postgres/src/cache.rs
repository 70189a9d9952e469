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
