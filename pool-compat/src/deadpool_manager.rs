//! Any `deadpool::managed::Manager` as a pool-core [`Manager`].

use std::fmt;
use std::sync::Arc;

use deadpool::managed::{self, Metrics, RecycleError};
use pool_core::{ErrorClass, Manager};

use crate::classify::Classifier;
use crate::CompatError;

/// A deadpool manager running on pool-core: `create` opens, `recycle` is the health check.
///
/// deadpool recycles every object on every checkout; the same here is
/// [`CheckPolicy::Always`](pool_core::CheckPolicy::Always). `recycle` gets a fresh
/// [`Metrics`] each time (see the crate docs for what does not map).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pool_compat::FromDeadpool;
/// use redis::AsyncCommands;
///
/// let manager = deadpool_redis::Manager::new("redis://127.0.0.1:6379")?;
/// let pool = pool_core::Pool::builder(FromDeadpool::new(manager))
///     .check(pool_core::CheckPolicy::Always)
///     .build()?;
/// let mut conn = pool.get().await?;
/// let n: i64 = conn.incr("visits", 1).await?;
/// # let _ = n;
/// # Ok(())
/// # }
/// ```
pub struct FromDeadpool<M: managed::Manager> {
    inner: M,
    classifier: Classifier<M::Error>,
}

impl<M: managed::Manager> FromDeadpool<M> {
    /// Wraps `manager`; every create error counts as transient (retried with backoff).
    pub fn new(manager: M) -> Self {
        FromDeadpool {
            inner: manager,
            classifier: Classifier(None),
        }
    }

    /// Classifies create errors with `classify`: errors it calls
    /// [`Fatal`](ErrorClass::Fatal) reach the waiting callers at once.
    pub fn classify_with<F>(mut self, classify: F) -> Self
    where
        F: Fn(&M::Error) -> ErrorClass + Send + Sync + 'static,
    {
        self.classifier = Classifier(Some(Arc::new(classify)));
        self
    }

    /// The wrapped deadpool manager.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<M> fmt::Debug for FromDeadpool<M>
where
    M: managed::Manager + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromDeadpool")
            .field("inner", &self.inner)
            .field("classify", &self.classifier)
            .finish()
    }
}

impl<M> Manager for FromDeadpool<M>
where
    M: managed::Manager + 'static,
    M::Error: fmt::Debug + Sync + 'static,
{
    type Connection = M::Type;
    type Error = CompatError<M::Error>;

    async fn connect(&self) -> Result<M::Type, Self::Error> {
        self.inner.create().await.map_err(CompatError::Backend)
    }

    async fn check(&self, conn: &mut M::Type) -> Result<(), Self::Error> {
        match self.inner.recycle(conn, &Metrics::default()).await {
            Ok(()) => Ok(()),
            Err(RecycleError::Backend(e)) => Err(CompatError::Backend(e)),
            Err(RecycleError::Message(m)) => Err(CompatError::Recycle(m)),
        }
    }

    fn classify(&self, err: &Self::Error) -> ErrorClass {
        self.classifier.classify(err)
    }
}
