//! The checkout guard.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::resume_unwind;
use std::sync::Arc;

use crate::conn::Conn;
use crate::hooks::Stage;
use crate::manager::Manager;
use crate::shared::{Link, Shared};
use crate::state::Outcome;
use crate::stats::ConnectionInfo;
use crate::unwind::panic_message;

/// A connection checked out of a [`Pool`](crate::Pool). Derefs to the connection; goes back to
/// the pool when dropped (synchronously, without spawning, also outside a runtime).
///
/// On return the pool asks [`Manager::has_broken`]; a broken connection is closed and replaced
/// if waiters or the floor need it. If `has_broken` panics, the connection is closed and the
/// panic goes on from the drop (it is logged instead when the drop is part of another panic's
/// unwinding).
#[must_use = "dropping the Object returns the connection at once"]
pub struct Object<M: Manager> {
    conn: Option<Conn<M::Connection>>,
    shared: Arc<Link<M>>,
}

impl<M: Manager> Object<M> {
    pub(crate) fn new(shared: Arc<Link<M>>, conn: Conn<M::Connection>) -> Self {
        Object {
            conn: Some(conn),
            shared,
        }
    }

    /// Marks the connection as in a health check or `before_checkout` hook (`true`) or out of
    /// it: a guard dropped while marked discards the connection (its protocol state is
    /// unknown) rather than returning it. Kept in the record, not the guard, so the guard is
    /// two pointers with no padding for a `Result` around it to copy piecewise.
    pub(crate) fn set_checking(&mut self, checking: bool) {
        if let Some(conn) = self.conn.as_mut() {
            conn.checking = checking;
        }
    }

    fn conn(&self) -> &Conn<M::Connection> {
        self.conn
            .as_ref()
            .expect("an Object holds its connection until dropped")
    }

    pub(crate) fn conn_mut(&mut self) -> &mut M::Connection {
        &mut self
            .conn
            .as_mut()
            .expect("an Object holds its connection until dropped")
            .raw
    }

    fn into_conn(mut this: Self) -> Conn<M::Connection> {
        this.conn
            .take()
            .expect("an Object holds its connection until dropped")
    }

    /// Detaches the connection from the pool: the caller owns it, the pool forgets it (its size
    /// drops by one and it may open a replacement). Not counted as a closed connection.
    pub fn take(this: Self) -> M::Connection {
        let shared = Arc::clone(&this.shared);
        let mut conn = Object::into_conn(this);
        shared.detach(conn.watch.take());
        conn.into_raw()
    }

    /// Closes the connection instead of returning it (for example after an error that leaves
    /// it unusable). The pool may open a replacement.
    pub fn discard(this: Self) {
        let shared = Arc::clone(&this.shared);
        shared.release(Object::into_conn(this), Outcome::Discarded);
    }

    /// Discards a connection that failed its health check.
    pub(crate) fn lose(this: Self) {
        let shared = Arc::clone(&this.shared);
        shared.release(Object::into_conn(this), Outcome::Lost);
    }

    /// When the pool opened this connection.
    pub fn created(&self) -> tokio::time::Instant {
        self.conn().created.to_tokio()
    }

    /// What the pool knows about this connection: its id, when it was opened, when this
    /// checkout began, and how many checkouts it has served (this one included).
    pub fn info(&self) -> ConnectionInfo {
        self.conn().info()
    }
}

impl<M: Manager> Deref for Object<M> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        &self.conn().raw
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
        if conn.checking || !self.shared.retained(&mut conn) {
            self.shared.release(conn, Outcome::Discarded);
            return;
        }
        match self.shared.judge(&mut conn) {
            Ok(true) => self.shared.release(conn, Outcome::Broken),
            Ok(false) if self.shared.hooks.has(Stage::AfterReturn) => {
                Shared::after_return(&self.shared, conn)
            }
            Ok(false) => self.shared.release(conn, Outcome::Healthy),
            Err(panic) => {
                // The pool's accounting first, then the panic goes on to the caller (unless
                // it is already unwinding: a second panic out of a `Drop` would abort).
                self.shared.release(conn, Outcome::Discarded);
                if std::thread::panicking() {
                    tracing::warn!(
                        target: "pool_core",
                        panic = %panic_message(&*panic),
                        "has_broken panicked on a connection returned during a panic; discarded"
                    );
                } else {
                    resume_unwind(panic);
                }
            }
        }
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
