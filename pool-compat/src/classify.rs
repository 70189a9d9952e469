//! Connect-error classification shared by the adapters.

use std::fmt;
use std::sync::Arc;

use pool_core::ErrorClass;

use crate::CompatError;

/// Decides whether a wrapped manager's connect error is transient or fatal.
pub(crate) type Classify<E> = Arc<dyn Fn(&E) -> ErrorClass + Send + Sync>;

/// The classifier shared by both adapters: transient unless the user's function says
/// otherwise.
pub(crate) struct Classifier<E>(pub(crate) Option<Classify<E>>);

impl<E> Classifier<E> {
    pub(crate) fn classify(&self, err: &CompatError<E>) -> ErrorClass {
        match (&self.0, err) {
            (Some(f), CompatError::Backend(e)) => f(e),
            _ => ErrorClass::Transient,
        }
    }
}

impl<E> Clone for Classifier<E> {
    fn clone(&self) -> Self {
        Classifier(self.0.clone())
    }
}

impl<E> fmt::Debug for Classifier<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "custom"
        } else {
            "all transient"
        })
    }
}
