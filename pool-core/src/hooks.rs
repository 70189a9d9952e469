//! Lifecycle hooks set on the builder: `after_connect` (in the background connector, before a
//! new connection is first offered), `before_checkout` (on the caller's task, before
//! hand-out) and `after_return` (in a background task after a connection comes back).
//!
//! One runner ([`Hooks::run`]) runs every stage: each hook is async, bounded by
//! `hook_timeout`, inside a span named for its stage, with a panic caught (in the call that
//! builds the future as well as in its polls) and logged. Several hooks per stage run in the
//! order they were added; the first that fails, times out or panics stops the stage. A hook
//! that fails costs the connection, never the caller: the connection is closed and the caller
//! is served by another.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::rt;
use crate::stats::{millis, ConnectionInfo};
use crate::unwind::{catch_panic, panic_message};

/// The error a hook returns.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The future a hook returns: `Box::pin(async move { ... })`.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HookError>> + Send + 'a>>;

/// A hook of any stage, as stored (an `after_connect` hook ignores the info).
pub(crate) type Hook<C> =
    Box<dyn for<'a> Fn(&'a mut C, &'a ConnectionInfo) -> HookFuture<'a> + Send + Sync>;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    AfterConnect,
    BeforeCheckout,
    AfterReturn,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::AfterConnect => "after_connect",
            Stage::BeforeCheckout => "before_checkout",
            Stage::AfterReturn => "after_return",
        }
    }

    fn span(self, pool: &str, conn: u64) -> tracing::Span {
        match self {
            Stage::AfterConnect => {
                tracing::debug_span!(target: "pool_core", "pool.after_connect", pool = %pool)
            }
            Stage::BeforeCheckout => {
                tracing::debug_span!(target: "pool_core", "pool.before_checkout", pool = %pool, conn)
            }
            Stage::AfterReturn => {
                tracing::debug_span!(target: "pool_core", "pool.after_return", pool = %pool, conn)
            }
        }
    }
}

/// How a stage's hooks failed.
#[derive(Debug)]
pub(crate) enum HookFailure {
    Failed(HookError),
    Panicked(Arc<str>),
    TimedOut(Duration),
}

impl fmt::Display for HookFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookFailure::Failed(e) => write!(f, "failed: {e}"),
            HookFailure::Panicked(m) => write!(f, "panicked: {m}"),
            HookFailure::TimedOut(d) => write!(f, "timed out after {d:?}"),
        }
    }
}

/// The hooks of one pool, per stage in the order added.
pub(crate) struct Hooks<C> {
    after_connect: Vec<Hook<C>>,
    before_checkout: Vec<Hook<C>>,
    after_return: Vec<Hook<C>>,
}

impl<C> Default for Hooks<C> {
    fn default() -> Self {
        Hooks {
            after_connect: Vec::new(),
            before_checkout: Vec::new(),
            after_return: Vec::new(),
        }
    }
}

impl<C> fmt::Debug for Hooks<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect.len())
            .field("before_checkout", &self.before_checkout.len())
            .field("after_return", &self.after_return.len())
            .finish()
    }
}

impl<C> Hooks<C> {
    fn stage(&self, stage: Stage) -> &[Hook<C>] {
        match stage {
            Stage::AfterConnect => &self.after_connect,
            Stage::BeforeCheckout => &self.before_checkout,
            Stage::AfterReturn => &self.after_return,
        }
    }

    /// Adds `hook` after the stage's others.
    pub(crate) fn add(&mut self, stage: Stage, hook: Hook<C>) {
        match stage {
            Stage::AfterConnect => self.after_connect.push(hook),
            Stage::BeforeCheckout => self.before_checkout.push(hook),
            Stage::AfterReturn => self.after_return.push(hook),
        }
    }

    /// Has the stage any hook?
    #[inline]
    pub(crate) fn has(&self, stage: Stage) -> bool {
        !self.stage(stage).is_empty()
    }

    /// Runs the stage's hooks on `conn` in the order added, each under `limit`, in the stage's
    /// span; the first failure, timeout or panic stops the stage, is logged (naming the stage
    /// and saying the connection is discarded) and returned. The caller discards the
    /// connection on `Err`.
    pub(crate) async fn run(
        &self,
        stage: Stage,
        pool: &str,
        limit: Duration,
        conn: &mut C,
        info: &ConnectionInfo,
    ) -> Result<(), HookFailure> {
        for hook in self.stage(stage) {
            let span = stage.span(pool, info.id);
            let target = &mut *conn;
            let ran = match catch_unwind(AssertUnwindSafe(move || {
                let target = target;
                hook(target, info)
            })) {
                Ok(fut) => match rt::timeout(limit, catch_panic(fut)).instrument(span).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(HookFailure::Failed(e)),
                    Ok(Err(message)) => Err(HookFailure::Panicked(message)),
                    Err(_) => Err(HookFailure::TimedOut(limit)),
                },
                Err(panic) => Err(HookFailure::Panicked(Arc::from(panic_message(&*panic)))),
            };
            if let Err(failure) = ran {
                let hook = stage.name();
                match &failure {
                    HookFailure::Failed(e) => {
                        tracing::info!(target: "pool_core", hook, error = %e, "hook failed; connection discarded")
                    }
                    HookFailure::Panicked(m) => {
                        tracing::warn!(target: "pool_core", hook, panic = %m, "hook panicked; connection discarded")
                    }
                    HookFailure::TimedOut(d) => {
                        tracing::info!(target: "pool_core", hook, timeout_ms = millis(*d), "hook timed out; connection discarded")
                    }
                }
                return Err(failure);
            }
        }
        Ok(())
    }
}
