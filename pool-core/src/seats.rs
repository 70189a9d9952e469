//! Seats: the cell a queued caller waits in, and the store that recycles them.
//!
//! # Implementation details
//!
//! A [`Seat`] is shared between its caller and the queue: a small cell with a lock of its own.
//! The queue pops a waiter's place under the pool's state lock; the connection is put in the
//! seat after that lock is released ([`Seat::fill`]), and the caller takes it out under the
//! seat's lock alone ([`Seat::poll`]). Neither side touches the seat while holding the pool's
//! lock on the hot path, so the cache line a seat lives on (last written by the other core)
//! never lengthens the pool's critical section.
//!
//! Between the pop and the fill the seat is still `Waiting`, with its place gone: a caller that
//! leaves in that window marks it `Left` ([`Seat::leave`]) and whoever fills it gets the value
//! back, to release it again. Only its caller ever empties a `Done` seat.
//!
//! A seat is one small allocation: the `Arc`'s two counts, an unaligned [`Lock`] and the
//! state, 48 bytes, so the hand-off and the caller touch one cache line of it (two if the
//! allocator places it across a line boundary), not the three a line-aligned lock and an
//! inline error took. An error handed to a waiter is boxed (the
//! rare path) so the state stays three words (`a_seat_is_one_small_allocation` keeps it so).
//!
//! [`SeatStore`] keeps filled seats for reuse, in a few shards picked by thread, so a thread
//! mostly reuses the seats it filled itself (their lines are in its cache). A spare seat is
//! reused only when the store holds the last reference to it (its caller has taken its value
//! and let it go); the oldest spares are looked at first. Once warm, queueing allocates
//! nothing.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use crate::sync::{thread_shard, Lock, Mutex, SHARDS};

enum SeatState<T> {
    /// Queued (or popped and about to be filled); the waker of the task to wake.
    Waiting(Option<Waker>),
    /// Handed something; waits for its caller to take it.
    Done(T),
    /// Its caller left after its place was popped and before the fill.
    Left,
    /// Taken, or left while still queued.
    Empty,
}

/// A queued caller's end of its place in line.
pub(crate) struct Seat<T>(Arc<Lock<SeatState<T>>>);

impl<T> Seat<T> {
    /// A new seat, waiting with `waker`.
    pub(crate) fn new(waker: Waker) -> Self {
        Seat(Arc::new(Lock::new(SeatState::Waiting(Some(waker)))))
    }

    pub(crate) fn share(&self) -> Self {
        Seat(Arc::clone(&self.0))
    }

    pub(crate) fn is(&self, other: &Seat<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Nobody else holds it.
    fn is_free(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }

    /// The caller looks: `None` while it still waits (its waker is updated), or what it was
    /// handed. Takes only the seat's lock.
    #[inline]
    pub(crate) fn poll(&self, waker: &Waker) -> Option<T> {
        let mut state = self.0.lock();
        if let SeatState::Waiting(current) = &mut *state {
            match current {
                Some(w) if w.will_wake(waker) => {}
                _ => *current = Some(waker.clone()),
            }
            return None;
        }
        Self::empty(&mut state)
    }

    /// The waker of a seat still waiting.
    pub(crate) fn waker(&self) -> Option<Waker> {
        match &*self.0.lock() {
            SeatState::Waiting(w) => w.clone(),
            _ => None,
        }
    }

    /// What it was handed, if anything, leaving it empty.
    pub(crate) fn take(&self) -> Option<T> {
        Self::empty(&mut self.0.lock())
    }

    fn empty(state: &mut SeatState<T>) -> Option<T> {
        match std::mem::replace(state, SeatState::Empty) {
            SeatState::Done(value) => Some(value),
            other => {
                *state = other;
                None
            }
        }
    }

    /// Its caller goes away after its place was popped: what it was handed if the fill came
    /// first, else `None` and the seat is marked left (the fill then gets its value back).
    pub(crate) fn leave(&self) -> Option<T> {
        let mut state = self.0.lock();
        match &*state {
            SeatState::Done(_) => Self::empty(&mut state),
            SeatState::Waiting(_) => {
                *state = SeatState::Left;
                None
            }
            SeatState::Left | SeatState::Empty => None,
        }
    }

    /// A seat taken and not used: nothing will come (and no waker is kept).
    pub(crate) fn clear(&self) {
        *self.0.lock() = SeatState::Empty;
    }

    /// Hands `value` over; returns the waker to call, or `Err(value)` if the caller left
    /// after its place was popped.
    pub(crate) fn fill(&self, value: T) -> Result<Option<Waker>, T> {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, SeatState::Done(value)) {
            SeatState::Waiting(waker) => Ok(waker),
            SeatState::Left => match std::mem::replace(&mut *state, SeatState::Empty) {
                SeatState::Done(value) => Err(value),
                _ => unreachable!("the value was just put there"),
            },
            SeatState::Done(_) | SeatState::Empty => {
                unreachable!("only a popped seat is filled, and a popped seat is waiting or left")
            }
        }
    }

    /// Makes a free seat wait afresh with `waker`.
    fn reset(&self, waker: Waker) {
        *self.0.lock() = SeatState::Waiting(Some(waker));
    }
}

/// Spare seats looked at in a shard for a free one.
const SCAN: usize = 8;
/// Spare seats a shard keeps; beyond that a filled seat is dropped.
const KEPT: usize = 256;

/// One shard's spares, on a cache line of its own.
#[repr(align(64))]
struct Shard<T>(Mutex<VecDeque<Seat<T>>>);

/// Seats filled on the hot path, kept for reuse.
pub(crate) struct SeatStore<T> {
    shards: [Shard<T>; SHARDS],
}

impl<T> SeatStore<T> {
    pub(crate) fn new() -> Self {
        SeatStore {
            shards: std::array::from_fn(|_| Shard(Mutex::new(VecDeque::new()))),
        }
    }

    /// A seat waiting with `waker`: a free spare (this thread's shard first, then the next),
    /// else a new one.
    pub(crate) fn take(&self, waker: &Waker) -> Seat<T> {
        let home = thread_shard();
        for i in 0..2 {
            let mut spares = self.shards[(home + i) % SHARDS].0.lock();
            if let Some(at) = spares.iter().take(SCAN).position(Seat::is_free) {
                let seat = spares
                    .swap_remove_front(at)
                    .expect("the index was just looked at");
                drop(spares);
                seat.reset(waker.clone());
                return seat;
            }
        }
        Seat::new(waker.clone())
    }

    /// A seat taken before the lock and not needed after all goes back, without the waker
    /// it was given (a waker kept in the store would keep its task's memory alive).
    pub(crate) fn give_unused(&self, seat: Seat<T>) {
        seat.clear();
        self.give(seat);
    }

    /// A seat whose place was served goes back, to be reused once its caller lets it go.
    pub(crate) fn give(&self, seat: Seat<T>) {
        let extra = {
            let mut spares = self.shards[thread_shard()].0.lock();
            if spares.len() < KEPT {
                spares.push_back(seat);
                None
            } else {
                Some(seat)
            }
        };
        drop(extra);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::{Seat, SeatStore};

    struct Nop;
    impl Wake for Nop {
        fn wake(self: Arc<Self>) {}
    }

    fn waker() -> Waker {
        Waker::from(Arc::new(Nop))
    }

    #[test]
    fn a_seat_is_reused_only_once_its_caller_has_let_it_go() {
        let store: SeatStore<u32> = SeatStore::new();
        let a = store.take(&waker());
        let queued = a.share();
        assert!(queued.fill(1).is_ok());
        store.give(queued);
        // `a`'s caller has not taken its value yet: a new waiter gets another seat.
        let b = store.take(&waker());
        assert!(!b.is(&a));
        assert_eq!(a.poll(&waker()), Some(1));
        let a_ptr = a.share();
        drop(a);
        // Still held (by `a_ptr`): not reused. Once let go, it is, waiting afresh.
        let c = store.take(&waker());
        assert!(!c.is(&a_ptr));
        let first = Arc::as_ptr(&a_ptr.0);
        drop(a_ptr);
        let d = store.take(&waker());
        assert_eq!(Arc::as_ptr(&d.0), first, "the first seat is reused");
        assert_eq!(d.poll(&waker()), None, "a reused seat waits afresh");
    }

    #[test]
    fn a_seat_is_one_small_allocation() {
        type Handed = crate::state::Handed<u64, std::io::Error>;
        let cell = std::mem::size_of::<crate::sync::Lock<super::SeatState<Handed>>>();
        // The allocation is the `Arc`'s two counts and the cell.
        assert!(
            2 * std::mem::size_of::<usize>() + cell <= 48,
            "a seat's cell is {cell} bytes"
        );
    }

    #[test]
    fn a_seat_left_before_its_fill_hands_the_value_back() {
        let seat: Seat<u8> = Seat::new(waker());
        let queue_end = seat.share();
        assert_eq!(seat.leave(), None);
        assert!(matches!(queue_end.fill(3), Err(3)));
        // Filled first, left after: the leaver gets it.
        let seat: Seat<u8> = Seat::new(waker());
        let queue_end = seat.share();
        assert!(queue_end.fill(4).is_ok());
        assert_eq!(seat.leave(), Some(4));
    }
}
