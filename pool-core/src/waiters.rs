//! The FIFO queue of callers waiting for a connection, generic over what a waiter is handed.
//!
//! # Implementation details
//!
//! Each queued caller holds a [`Seat`] (see `seats.rs`), shared between the caller and its
//! place here. On the hot path a hand-off only pops the place under the pool's state lock
//! ([`Waiters::pop`]); the seat is filled after the lock is released. The rare paths (the
//! timer, closing, the idle sweep) fill seats under the lock ([`Waiters::hand_off`],
//! [`Waiters::expire`], [`Waiters::fail_all`]).
//!
//! `queue` holds the waiting places sorted by ticket: a caller draws a ticket when it first
//! queues and keeps it if it has to queue again (its connection failed the health check), so
//! it goes back to the place its arrival earned, ahead of later callers.
//!
//! A seat is `Waiting` (with the waker to call) until its place is popped from the queue and
//! it is filled with what it was handed: a connection, or an error (a fatal connect error, the
//! pool closing, its wait timing out). Only its caller empties it.
//!
//! **Deadlines.** A waiter under the pool-wide wait timeout keeps its deadline in its place.
//! Every such waiter waits the same time, and tickets follow arrival, so these deadlines are in
//! queue order: the oldest expires first, and one timer sleeping until the head's deadline
//! serves the whole queue ([`Waiters::expire`]). A new arrival's deadline is never set earlier
//! than the one queued before it (two callers read the clock a few nanoseconds apart and may
//! take the lock in the other order), which keeps the order exact. Waiters with a timeout of
//! their own (`get_timeout`) or none have no deadline here and are skipped by the timer.
//!
//! `Waiters` is guarded by the pool's state lock; a seat's contents by the seat's own lock,
//! which is taken inside the state lock (the rare paths, leaving) or alone (the hot path's
//! fill, the caller looking).

use std::collections::VecDeque;
use std::task::Waker;

use crate::rt::Instant;
use crate::seats::Seat;

/// A waiting place in line.
struct Place<T> {
    ticket: u64,
    /// When the pool-wide timer expires this waiter; `None` if it keeps its own timer or waits
    /// forever.
    deadline: Option<Instant>,
    /// When this caller first queued.
    since: Instant,
    seat: Seat<T>,
}

/// Where a queued waiter ended up.
pub(crate) struct Queued<T> {
    pub(crate) seat: Seat<T>,
    pub(crate) ticket: u64,
    /// The deadline stored in its place, if any (possibly a few nanoseconds later than asked).
    pub(crate) deadline: Option<Instant>,
}

#[repr(C)]
pub(crate) struct Waiters<T> {
    queue: VecDeque<Place<T>>,
    next_ticket: u64,
    /// The deadline of the latest new arrival: later arrivals never get an earlier one.
    last_deadline: Option<Instant>,
}

impl<T> Waiters<T> {
    pub(crate) fn new() -> Self {
        Waiters {
            queue: VecDeque::new(),
            next_ticket: 0,
            last_deadline: None,
        }
    }

    /// Callers still queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues a waiter: a new caller (`ticket: None`) at the back, one going round again in
    /// the place its ticket earned. `deadline` is for the pool-wide timer.
    pub(crate) fn push(
        &mut self,
        ticket: Option<u64>,
        seat: Seat<T>,
        since: Instant,
        deadline: Option<Instant>,
    ) -> Queued<T> {
        let (ticket, deadline) = match ticket {
            Some(t) => (t, deadline),
            None => {
                let t = self.next_ticket;
                self.next_ticket += 1;
                let deadline = deadline.map(|d| match self.last_deadline {
                    Some(last) if last > d => last,
                    _ => d,
                });
                if deadline.is_some() {
                    self.last_deadline = deadline;
                }
                (t, deadline)
            }
        };
        let queued = Queued {
            seat: seat.share(),
            ticket,
            deadline,
        };
        let place = Place {
            ticket,
            deadline,
            since,
            seat,
        };
        match self.queue.back() {
            Some(last) if last.ticket > ticket => {
                let at = self.queue.partition_point(|p| p.ticket < ticket);
                self.queue.insert(at, place);
            }
            _ => self.queue.push_back(place),
        }
        queued
    }

    /// Gives a place popped under the lock `value` at once (the rare paths); its seat is
    /// dropped, not reused. Returns its waker.
    fn serve(place: Place<T>, value: T) -> Option<Waker> {
        match place.seat.fill(value) {
            Ok(waker) => waker,
            Err(_) => unreachable!("a caller leaves a queued place under the lock, never its seat"),
        }
    }

    /// The hot path's hand-off: pops the oldest waiter's place, for its seat to be filled
    /// once the lock is released. Returns the seat and when that waiter queued.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(Seat<T>, Instant)> {
        self.queue.pop_front().map(|p| (p.seat, p.since))
    }

    /// Hands `value` (as `wrap` makes it a `T`) to the oldest waiter at once, under the lock;
    /// returns the waker to call once the lock is released and when that waiter queued.
    /// `Err(value)`, unwrapped, if nobody is waiting.
    pub(crate) fn hand_off<V>(
        &mut self,
        value: V,
        wrap: impl FnOnce(V) -> T,
    ) -> Result<(Option<Waker>, Instant), V> {
        let Some(place) = self.queue.pop_front() else {
            return Err(value);
        };
        let since = place.since;
        Ok((Self::serve(place, wrap(value)), since))
    }

    /// Hands every queued waiter the value `make` builds; pushes their wakers to `wake`.
    /// Returns how many there were.
    pub(crate) fn fail_all(&mut self, mut make: impl FnMut() -> T, wake: &mut Vec<Waker>) -> usize {
        let mut n = 0;
        while let Some(place) = self.queue.pop_front() {
            wake.extend(Self::serve(place, make()));
            n += 1;
        }
        n
    }

    /// Hands every waiter whose deadline has passed the value `make` builds from when it
    /// queued, in queue order; pushes their wakers to `wake`. Returns the next deadline.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        mut make: impl FnMut(Instant) -> T,
        wake: &mut Vec<Waker>,
    ) -> Option<Instant> {
        let mut i = 0;
        while let Some(place) = self.queue.get(i) {
            match place.deadline {
                // A waiter with its own timer (or none): not this timer's business.
                None => i += 1,
                Some(d) if d <= now => {
                    let place = self.queue.remove(i).expect("the place was just looked at");
                    let value = make(place.since);
                    wake.extend(Self::serve(place, value));
                }
                // Deadlines are in queue order: nothing behind this one is due.
                Some(d) => return Some(d),
            }
        }
        None
    }

    /// The waiter with `seat` wants out: still queued, it leaves the queue; else its place
    /// was popped, and it was either handed something already or is about to be.
    pub(crate) fn remove(&mut self, seat: &Seat<T>) -> Out<T> {
        if let Some(pos) = self.queue.iter().position(|p| p.seat.is(seat)) {
            let place = self.queue.remove(pos).expect("the place was just found");
            place.seat.clear();
            return Out::Removed;
        }
        match seat.take() {
            Some(value) => Out::Handed(value),
            None => Out::InFlight,
        }
    }
}

/// What became of a waiter that wants out of the queue ([`Waiters::remove`]).
pub(crate) enum Out<T> {
    /// It was still queued and has left.
    Removed,
    /// Its place was popped and its seat filled: this is what it was handed.
    Handed(T),
    /// Its place was popped and the fill has not landed yet.
    InFlight,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use super::{Out, Waiters};
    use crate::rt::Instant;
    use crate::seats::Seat;

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn waker() -> (Waker, Arc<Flag>) {
        let flag = Arc::new(Flag(false.into()));
        (Waker::from(Arc::clone(&flag)), flag)
    }

    fn woken(flag: &Flag) -> bool {
        flag.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn hand_off_goes_to_the_oldest_and_a_returning_ticket_keeps_its_place() {
        let t0 = Instant::now();
        let mut w: Waiters<&str> = Waiters::new();
        let a = w.push(None, Seat::new(waker().0), t0, None);
        let b = w.push(None, Seat::new(waker().0), t0, None);
        assert_eq!(
            w.hand_off("one", |v| v).ok().map(|(w, _)| w.is_some()),
            Some(true)
        );
        assert_eq!(a.seat.poll(&waker().0), Some("one"));
        // `a` goes round again with its ticket: ahead of `b`.
        let a2 = w.push(Some(a.ticket), Seat::new(waker().0), t0, None);
        assert_eq!(a2.ticket, a.ticket);
        let _ = w.hand_off("two", |v| v);
        assert_eq!(a2.seat.poll(&waker().0), Some("two"));
        assert_eq!(b.seat.poll(&waker().0), None, "b still waits");
        assert_eq!(w.len(), 1);
        assert!(matches!(w.remove(&b.seat), Out::Removed));
        assert!(w.is_empty());
        assert!(matches!(w.hand_off("three", |v| v), Err("three")));
    }

    #[test]
    fn expire_fails_due_waiters_in_order_and_skips_own_timers() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w: Waiters<Result<&str, Instant>> = Waiters::new();
        let own = w.push(None, Seat::new(waker().0), t0, None);
        let (wa, fa) = waker();
        let a = w.push(None, Seat::new(wa), t0, Some(t0 + s));
        let b = w.push(None, Seat::new(waker().0), t0, Some(t0 + 3 * s));
        let mut wake = Vec::new();
        assert_eq!(w.expire(t0, Err, &mut wake), Some(t0 + s));
        assert!(wake.is_empty());
        assert_eq!(w.expire(t0 + s, Err, &mut wake), Some(t0 + 3 * s));
        assert_eq!(wake.len(), 1);
        wake.drain(..).for_each(Waker::wake);
        assert!(woken(&fa));
        assert!(matches!(w.remove(&a.seat), Out::Handed(Err(t)) if t == t0));
        assert_eq!(w.len(), 2, "the own-timer waiter and b remain");
        assert_eq!(w.expire(t0 + 10 * s, Err, &mut wake), None);
        assert!(matches!(w.remove(&b.seat), Out::Handed(Err(t)) if t == t0));
        assert!(matches!(w.remove(&own.seat), Out::Removed), "still waiting");
        assert!(w.is_empty());
    }

    #[test]
    fn a_later_arrival_never_gets_an_earlier_deadline() {
        let t0 = Instant::now();
        let mut w: Waiters<()> = Waiters::new();
        let first = w.push(
            None,
            Seat::new(waker().0),
            t0,
            Some(t0 + Duration::from_millis(10)),
        );
        let second = w.push(
            None,
            Seat::new(waker().0),
            t0,
            Some(t0 + Duration::from_millis(9)),
        );
        assert_eq!(second.deadline, first.deadline);
    }

    #[test]
    fn fail_all_empties_the_queue_and_collects_wakers() {
        let t0 = Instant::now();
        let mut w: Waiters<u8> = Waiters::new();
        let seats: Vec<_> = (0..3)
            .map(|_| w.push(None, Seat::new(waker().0), t0, None).seat)
            .collect();
        let mut wake = Vec::new();
        assert_eq!(w.fail_all(|| 7, &mut wake), 3);
        assert_eq!(wake.len(), 3);
        assert!(w.is_empty());
        for s in seats {
            assert!(matches!(w.remove(&s), Out::Handed(7)));
        }
    }

    #[test]
    fn a_popped_seat_is_in_flight_until_filled_and_a_leaver_gets_the_fill_back() {
        let t0 = Instant::now();
        let mut w: Waiters<u8> = Waiters::new();
        let (wa, fa) = waker();
        let a = w.push(None, Seat::new(wa), t0, None);
        let b = w.push(None, Seat::new(waker().0), t0, None);
        let (seat, since) = w.pop().expect("a is queued");
        assert!(seat.is(&a.seat) && since == t0);
        assert!(matches!(w.remove(&a.seat), Out::InFlight));
        // The fill lands: a is woken and takes it.
        seat.fill(1).ok().flatten().expect("a's waker").wake();
        assert!(woken(&fa));
        assert_eq!(a.seat.poll(&waker().0), Some(1));
        // b leaves between the pop and the fill: the fill gets its value back.
        let (seat, _) = w.pop().expect("b is queued");
        assert_eq!(b.seat.leave(), None);
        assert!(matches!(seat.fill(2), Err(2)));
        assert!(w.is_empty());
    }
}
