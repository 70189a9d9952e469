//! The one lock the engine uses, behind a small facade so its implementation can be swapped
//! (and measured) in one place. Under `--cfg pool_loom` the facade is loom's mutex, so the
//! model checker in `loom.rs` explores every interleaving of the engine's locks.

use std::cell::Cell;
#[cfg(not(any(pool_loom, pool_std_lock)))]
use std::hint::spin_loop;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Failed looks at a held lock before the waiting thread yields its core between looks.
#[cfg(not(any(pool_loom, pool_std_lock)))]
const SPINS: u32 = 64;

/// A spin lock that yields: the engine's critical sections are a few dozen instructions,
/// never await, never call user code and never block, so a thread that finds the lock taken
/// waits by reading it (no write, so the holder keeps its cache line), and after [`SPINS`]
/// looks yields its core to the holder in case it was preempted. Releasing is a plain store,
/// not the read-modify-write a sleeping lock needs to find out whom to wake.
///
/// Aligned to a cache line: the pool's state lock word then shares its line with the state's
/// hot fields (see `State`'s layout), and no lock shares a line with an unrelated neighbour.
/// There is no poisoning: the engine never panics while holding a lock.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Mutex<T>(Lock<T>);

/// [`Mutex`] without the alignment, for small cells that live in an allocation of their own
/// (a waiter's seat): lock word, value and the allocation's counts then share one line.
#[cfg(not(any(pool_loom, pool_std_lock)))]
#[derive(Debug, Default)]
pub(crate) struct Lock<T>(spin::mutex::SpinMutex<T>);

#[cfg(not(any(pool_loom, pool_std_lock)))]
pub(crate) type MutexGuard<'a, T> = spin::mutex::SpinMutexGuard<'a, T>;

/// Under the model checker: loom's mutex, whose every acquisition is a point where loom may
/// switch threads.
#[cfg(pool_loom)]
#[derive(Debug)]
pub(crate) struct Lock<T>(loom::sync::Mutex<T>);

#[cfg(pool_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// Under `--cfg pool_std_lock`: std's futex mutex, to measure the lock decision
/// (docs/design.md) again.
#[cfg(all(pool_std_lock, not(pool_loom)))]
#[derive(Debug)]
pub(crate) struct Lock<T>(std::sync::Mutex<T>);

#[cfg(all(pool_std_lock, not(pool_loom)))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

#[cfg(any(pool_loom, pool_std_lock))]
impl<T: Default> Default for Lock<T> {
    fn default() -> Self {
        Lock::new(T::default())
    }
}

#[cfg(pool_loom)]
impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Lock(loom::sync::Mutex::new(value))
    }
}

#[cfg(all(pool_std_lock, not(pool_loom)))]
impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Lock(std::sync::Mutex::new(value))
    }
}

#[cfg(any(pool_loom, pool_std_lock))]
impl<T> Lock<T> {
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .expect("the engine never panics holding a lock")
    }
}

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(Lock::new(value))
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock()
    }
}

#[cfg(not(any(pool_loom, pool_std_lock)))]
impl<T> Lock<T> {
    pub(crate) fn new(value: T) -> Self {
        Lock(spin::mutex::SpinMutex::new(value))
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        match self.0.try_lock() {
            Some(guard) => guard,
            None => self.lock_contended(),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) -> MutexGuard<'_, T> {
        let mut looks = 0u32;
        loop {
            while self.0.is_locked() {
                if looks < SPINS {
                    looks += 1;
                    spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if let Some(guard) = self.0.try_lock() {
                return guard;
            }
        }
    }
}

/// Shards of per-thread structures (spare seats, the handles `Object`s hold).
pub(crate) const SHARDS: usize = 4;

/// This thread's shard, given round-robin the first time it asks (so a runtime's few worker
/// threads get different shards), then fixed.
#[inline]
pub(crate) fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}
