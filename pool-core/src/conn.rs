//! The connection record: a connection with the pool's bookkeeping, boxed once when it is
//! opened.

use crate::clock::Instant;
use crate::stats::ConnectionInfo;

/// A connection with the pool's bookkeeping, boxed once when it is opened: the record moves
/// between the idle list, waiter seats and `Object`s as one pointer, so a checkout copies 8
/// bytes, not the record.
pub(crate) struct Conn<C>(Box<Record<C>>);

/// What the pool keeps beside each connection.
pub(crate) struct Record<C> {
    pub(crate) raw: C,
    /// The pool's number for it (1 for the first opened).
    pub(crate) id: u64,
    pub(crate) created: Instant,
    /// Checkouts so far.
    pub(crate) uses: u64,
    /// Retired when it comes back with this many uses (`max_uses`, jittered).
    pub(crate) use_limit: Option<u64>,
    /// The `retain` epoch it was last judged in (or opened in): predicates from later
    /// `retain` calls still have to look at it.
    pub(crate) epoch: u64,
    /// When `max_lifetime` (less this connection's jitter) retires it.
    pub(crate) expires: Option<Instant>,
    /// When it was last returned, opened or handed to a waiter: its idle age, and for a
    /// waiter the moment its wait ended.
    pub(crate) stamp: Instant,
    /// When a caller took it, for the usage statistics; `None` while in the pool.
    pub(crate) taken: Option<Instant>,
    /// Its entry in the leak watch while checked out with `leak_threshold` set.
    pub(crate) watch: Option<usize>,
    /// In a health check or `before_checkout` hook (see `Object::set_checking`).
    pub(crate) checking: bool,
}

impl<C> std::ops::Deref for Conn<C> {
    type Target = Record<C>;
    #[inline]
    fn deref(&self) -> &Record<C> {
        &self.0
    }
}

impl<C> std::ops::DerefMut for Conn<C> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Record<C> {
        &mut self.0
    }
}

impl<C> Conn<C> {
    /// A record, boxed once.
    pub(crate) fn new(record: Record<C>) -> Self {
        Conn(Box::new(record))
    }

    /// A bare record around `raw` (id 0, never used), for the idle list's tests.
    #[cfg(test)]
    pub(crate) fn for_tests(raw: C, now: Instant) -> Self {
        Conn(Box::new(Record {
            raw,
            id: 0,
            created: now,
            uses: 0,
            use_limit: None,
            epoch: 0,
            expires: None,
            stamp: now,
            taken: None,
            watch: None,
            checking: false,
        }))
    }

    /// The connection itself, leaving the pool's bookkeeping behind.
    pub(crate) fn into_raw(self) -> C {
        self.0.raw
    }

    /// Its metadata; `last_used` is its stamp (the last return or hand-off) while idle.
    pub(crate) fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            id: self.id,
            created: self.created.to_tokio(),
            last_used: self.taken.unwrap_or(self.stamp).to_tokio(),
            uses: self.uses,
        }
    }
}
