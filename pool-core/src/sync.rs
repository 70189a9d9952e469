//! The one lock the engine uses, behind a small facade so its implementation can be swapped
//! (and measured) in one place.

/// A mutex whose `lock` cannot fail: the engine never panics while holding it, and a poisoned
/// lock (a panic in a caller's `Drop` elsewhere) still guards consistent state.
///
/// Aligned to a cache line: the pool's state lock word then shares its line with the state's
/// hot fields (see `State`'s layout), and no lock shares a line with an unrelated neighbour.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(std::sync::Mutex::new(value))
    }

    #[inline]
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
