//! Resetting a connection that comes back ([`reset`], an `after_return` hook).

use crate::connection::PgConnection;

/// How [`reset`] cleans a connection that comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reset {
    /// `ROLLBACK`: an open transaction (a `BEGIN` left behind) is rolled back; session
    /// settings stay.
    Rollback,
    /// `ROLLBACK` then `DISCARD ALL`: also `SET`s, temporary tables, prepared statements,
    /// `LISTEN`s and advisory locks, as if the session were new.
    DiscardAll,
}

/// An `after_return` hook for the pool builder that resets each connection before it is used
/// again:
///
/// ```no_run
/// # fn demo(manager: pool_postgres::PgManager) -> Result<(), pool_core::ConfigError> {
/// use pool_postgres::{reset, Reset};
/// let pool = pool_core::Pool::builder(manager)
///     .after_return(reset(Reset::Rollback))
///     .build()?;
/// # Ok(())
/// # }
/// ```
///
/// It runs in the background (the returning caller does not wait); a reset that fails closes
/// the connection.
pub fn reset(
    how: Reset,
) -> impl for<'a> Fn(&'a mut PgConnection, &'a pool_core::ConnectionInfo) -> pool_core::HookFuture<'a>
       + Send
       + Sync
       + 'static {
    move |conn, _info| {
        Box::pin(async move {
            conn.client.batch_execute("ROLLBACK").await?;
            if how == Reset::DiscardAll {
                // Its own query: a multi-statement string is a transaction block, which
                // DISCARD ALL refuses. The server forgets every prepared statement.
                conn.client.batch_execute("DISCARD ALL").await?;
                conn.clear_statement_cache();
            }
            Ok(())
        })
    }
}
