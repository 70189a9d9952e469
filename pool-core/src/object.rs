//! The checkout guard.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::inner::{Conn, Shared};
use crate::manager::Manager;
use crate::rt::Instant;

/// A connection checked out of a [`Pool`](crate::Pool). Derefs to the connection; goes back to
/// the pool when dropped (synchronously, without spawning, also outside a runtime).
///
/// On return the pool asks [`Manager::has_broken`]; a broken connection is closed and replaced
/// if waiters or the floor need it.
#[must_use = "dropping the Object returns the connection at once"]
pub struct Object<M: Manager> {
    conn: Option<Conn<M::Connection>>,
    shared: Arc<Shared<M>>,
    since: Instant,
    /// Set while a health check runs: a caller cancelled mid-check leaves the connection in an
    /// unknown protocol state, so it is discarded rather than returned.
    pub(crate) checking: bool,
}

impl<M: Manager> Object<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, conn: Conn<M::Connection>, since: Instant) -> Self {
        Object {
            conn: Some(conn),
            shared,
            since,
            checking: false,
        }
    }

    pub(crate) fn idle_since(&self) -> Instant {
        self.conn.as_ref().map_or(self.since, |c| c.idle_since)
    }

    /// Starts the leak watch on this checkout.
    pub(crate) fn watch(&mut self, caller: &'static std::panic::Location<'static>) {
        if let Some(conn) = self.conn.as_mut() {
            self.shared.start_checkout(conn, caller, self.since);
        }
    }

    pub(crate) fn conn_mut(&mut self) -> &mut M::Connection {
        &mut self
            .conn
            .as_mut()
            .expect("an Object holds its connection until dropped")
            .raw
    }

    /// Detaches the connection from the pool: the caller owns it, the pool forgets it (its size
    /// drops by one and it may open a replacement).
    pub fn take(mut this: Self) -> M::Connection {
        let mut conn = this
            .conn
            .take()
            .expect("an Object holds its connection until dropped");
        this.shared.discard(None, conn.checkout.take(), false);
        conn.raw
    }

    /// Closes the connection instead of returning it (for example after an error that leaves
    /// it unusable). The pool may open a replacement.
    pub fn discard(mut this: Self) {
        let conn = this.conn.take();
        this.shared.discard(conn, None, false);
    }

    /// Discards a connection that failed its health check.
    pub(crate) fn lose(mut self) {
        let conn = self.conn.take();
        self.shared.discard(conn, None, true);
    }

    /// When the pool opened this connection.
    pub fn created(&self) -> Instant {
        self.conn.as_ref().map_or(self.since, |c| c.created)
    }
}

impl<M: Manager> Deref for Object<M> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        &self
            .conn
            .as_ref()
            .expect("an Object holds its connection until dropped")
            .raw
    }
}

impl<M: Manager> DerefMut for Object<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        self.conn_mut()
    }
}

impl<M: Manager> Drop for Object<M> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.checking {
            self.shared.discard(Some(conn), None, false);
            return;
        }
        let broken = self.shared.manager.has_broken(&mut conn.raw);
        self.shared.give_back(conn, broken, Some(self.since));
    }
}

impl<M: Manager> fmt::Debug for Object<M>
where
    M::Connection: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Object")
            .field("conn", &self.conn.as_ref().map(|c| &c.raw))
            .finish()
    }
}
