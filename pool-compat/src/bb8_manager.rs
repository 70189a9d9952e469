//! Any `bb8::ManageConnection` as a pool-core [`Manager`].

use std::fmt;
use std::sync::Arc;

use pool_core::{ErrorClass, Manager};

use crate::classify::Classifier;
use crate::CompatError;

/// A bb8 manager running on pool-core: `connect` opens, `is_valid` is the health check,
/// `has_broken` is asked on every return.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pool_compat::FromBb8;
///
/// let manager = bb8_redis::RedisConnectionManager::new("redis://127.0.0.1:6379")?;
/// let pool = pool_core::Pool::builder(FromBb8::new(manager))
///     // bb8's `test_on_check_out(true)`, its default:
///     .check(pool_core::CheckPolicy::Always)
///     .build()?;
/// let mut conn = pool.get().await?;
/// let pong: String = redis::cmd("PING").query_async(&mut *conn).await?;
/// # let _ = pong;
/// # Ok(())
/// # }
/// ```
pub struct FromBb8<M: bb8::ManageConnection> {
    inner: M,
    classifier: Classifier<M::Error>,
}

impl<M: bb8::ManageConnection> FromBb8<M> {
    /// Wraps `manager`; every connect error counts as transient (retried with backoff).
    pub fn new(manager: M) -> Self {
        FromBb8 {
            inner: manager,
            classifier: Classifier(None),
        }
    }

    /// Classifies connect errors with `classify`: errors it calls
    /// [`Fatal`](ErrorClass::Fatal) (a wrong password, say) reach the waiting callers at once
    /// instead of being retried until their wait times out.
    pub fn classify_with<F>(mut self, classify: F) -> Self
    where
        F: Fn(&M::Error) -> ErrorClass + Send + Sync + 'static,
    {
        self.classifier = Classifier(Some(Arc::new(classify)));
        self
    }

    /// The wrapped bb8 manager.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<M> fmt::Debug for FromBb8<M>
where
    M: bb8::ManageConnection + fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromBb8")
            .field("inner", &self.inner)
            .field("classify", &self.classifier)
            .finish()
    }
}

impl<M> Manager for FromBb8<M>
where
    M: bb8::ManageConnection,
    M::Error: Sync,
{
    type Connection = M::Connection;
    type Error = CompatError<M::Error>;

    async fn connect(&self) -> Result<M::Connection, Self::Error> {
        self.inner.connect().await.map_err(CompatError::Backend)
    }

    async fn check(&self, conn: &mut M::Connection) -> Result<(), Self::Error> {
        self.inner
            .is_valid(conn)
            .await
            .map_err(CompatError::Backend)
    }

    fn has_broken(&self, conn: &mut M::Connection) -> bool {
        self.inner.has_broken(conn)
    }

    fn classify(&self, err: &Self::Error) -> ErrorClass {
        self.classifier.classify(err)
    }
}
