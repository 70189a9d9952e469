//! The error the adapters report.

use std::borrow::Cow;
use std::fmt;

/// An error from a wrapped bb8 or deadpool manager.
///
/// bb8 and deadpool ask only `Debug` (bb8) or nothing (deadpool) of their error types, while
/// pool-core needs `std::error::Error`; this wrapper supplies it. `Display` shows the wrapped
/// error's `Debug` form, since that is all the original trait promises.
#[non_exhaustive]
pub enum CompatError<E> {
    /// The wrapped manager's own error.
    Backend(E),
    /// deadpool's `RecycleError::Message`: the manager's `recycle` rejected the connection.
    Recycle(Cow<'static, str>),
}

impl<E> CompatError<E> {
    /// The wrapped manager's error, if this is one.
    pub fn backend(&self) -> Option<&E> {
        match self {
            CompatError::Backend(e) => Some(e),
            CompatError::Recycle(_) => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for CompatError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatError::Backend(e) => f.debug_tuple("Backend").field(e).finish(),
            CompatError::Recycle(m) => f.debug_tuple("Recycle").field(m).finish(),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for CompatError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatError::Backend(e) => write!(f, "{e:?}"),
            CompatError::Recycle(m) => write!(f, "recycle rejected the connection: {m}"),
        }
    }
}

impl<E: fmt::Debug> std::error::Error for CompatError<E> {}

#[cfg(test)]
mod tests {
    use super::CompatError;

    #[test]
    fn display_names_the_wrapped_error_and_the_recycle_message() {
        let e: CompatError<&str> = CompatError::Backend("refused");
        assert_eq!(e.to_string(), "\"refused\"");
        assert_eq!(e.backend(), Some(&"refused"));
        let r: CompatError<&str> = CompatError::Recycle("bad ping".into());
        assert_eq!(r.to_string(), "recycle rejected the connection: bad ping");
        assert_eq!(r.backend(), None);
    }
}
