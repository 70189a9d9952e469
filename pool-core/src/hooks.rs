//! Lifecycle hooks set on the builder: `after_connect` (in the background connector, before a
//! new connection is first offered), `before_checkout` (on the caller's task, before
//! hand-out) and `after_return` (in a background task after a connection comes back). Each is async, bounded by `hook_timeout`, and a hook that fails, times out or
//! panics costs the connection, not the caller: it is closed and the caller is served by
//! another.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::stats::ConnectionInfo;

/// The error a hook returns.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The future a hook returns: `Box::pin(async move { ... })`.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HookError>> + Send + 'a>>;

type AfterConnect<C> = Box<dyn for<'a> Fn(&'a mut C) -> HookFuture<'a> + Send + Sync>;
type BeforeCheckout<C> =
    Box<dyn for<'a> Fn(&'a mut C, &'a ConnectionInfo) -> HookFuture<'a> + Send + Sync>;
type AfterReturn<C> = BeforeCheckout<C>;

/// The hooks of one pool.
pub(crate) struct Hooks<C> {
    pub(crate) after_connect: Option<AfterConnect<C>>,
    pub(crate) before_checkout: Option<BeforeCheckout<C>>,
    pub(crate) after_return: Option<AfterReturn<C>>,
}

impl<C> Default for Hooks<C> {
    fn default() -> Self {
        Hooks {
            after_connect: None,
            before_checkout: None,
            after_return: None,
        }
    }
}

impl<C> fmt::Debug for Hooks<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect.is_some())
            .field("before_checkout", &self.before_checkout.is_some())
            .field("after_return", &self.after_return.is_some())
            .finish()
    }
}
