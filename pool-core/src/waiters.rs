//! The FIFO queue of callers waiting for a connection, generic over what a waiter is handed.
//!
//! # Implementation details
//!
//! Each queued caller holds a [`Seat`]: a small cell with a lock of its own, shared between the
//! caller and the queue. The queue (under the pool's state lock) hands a value over by putting
//! it in the seat and taking the waker out; the caller then takes the value from its seat
//! without the pool's lock. A hand-off therefore costs the pool's lock once (on the returning
//! side), not twice, which is what matters when many callers wait on few connections.
//!
//! Seats are reused: a seat that has been filled (or left) goes to `spare`, and a new waiter
//! takes a spare seat that nobody else still holds (its caller has taken its value and let it
//! go), so queueing allocates nothing once the pool has seen its peak number of waiters.
//!
//! `queue` holds the waiting places sorted by ticket: a caller draws a ticket when it first
//! queues and keeps it if it has to queue again (its connection failed the health check), so
//! it goes back to the place its arrival earned, ahead of later callers.
//!
//! A seat is `Waiting` (with the waker to call) until its place is popped from the queue and
//! it is `Done` with what it was handed: a connection, or an error (a fatal connect error, the
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
//! which is taken inside the state lock (hand-off, leaving) or alone (the caller looking).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use crate::rt::Instant;
use crate::sync::Mutex;

enum SeatState<T> {
    /// Queued; the waker of the task to wake on hand-off.
    Waiting(Option<Waker>),
    /// Handed something; waits for its caller to take it.
    Done(T),
    /// Taken, or left.
    Empty,
}

/// A queued caller's end of its place in line.
pub(crate) struct Seat<T>(Arc<Mutex<SeatState<T>>>);

impl<T> Seat<T> {
    fn new(waker: Waker) -> Self {
        Seat(Arc::new(Mutex::new(SeatState::Waiting(Some(waker)))))
    }

    fn share(&self) -> Self {
        Seat(Arc::clone(&self.0))
    }

    fn is(&self, other: &Seat<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
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
        match std::mem::replace(&mut *state, SeatState::Empty) {
            SeatState::Done(value) => Some(value),
            _ => None,
        }
    }

    /// What it was handed, if anything, leaving it empty.
    fn take(&self) -> Option<T> {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, SeatState::Empty) {
            SeatState::Done(value) => Some(value),
            other => {
                *state = other;
                None
            }
        }
    }

    /// Hands `value` over; returns the waker to call.
    fn fill(&self, value: T) -> Option<Waker> {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, SeatState::Done(value)) {
            SeatState::Waiting(waker) => waker,
            SeatState::Done(_) | SeatState::Empty => {
                unreachable!("only a queued seat is filled, and a queued seat is waiting")
            }
        }
    }
}

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

/// Spare seats looked at for one nobody holds, before a new one is made.
const SPARE_SCAN: usize = 8;

#[repr(C)]
pub(crate) struct Waiters<T> {
    queue: VecDeque<Place<T>>,
    /// Seats filled or left, oldest first, to be reused once their callers have let them go.
    spare: VecDeque<Seat<T>>,
    next_ticket: u64,
    /// The deadline of the latest new arrival: later arrivals never get an earlier one.
    last_deadline: Option<Instant>,
}

impl<T> Waiters<T> {
    pub(crate) fn new() -> Self {
        Waiters {
            queue: VecDeque::new(),
            spare: VecDeque::new(),
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

    /// A seat for a new waiter: a spare one nobody holds any more, else a new one. The oldest
    /// spares are looked at first: their callers are the likeliest to have let them go.
    fn seat(&mut self, waker: Waker) -> Seat<T> {
        for i in 0..self.spare.len().min(SPARE_SCAN) {
            // Only `spare` holds it: no caller can look at it again, so it is ours to reuse.
            if Arc::strong_count(&self.spare[i].0) == 1 {
                let seat = self
                    .spare
                    .swap_remove_front(i)
                    .expect("the index was just looked at");
                *seat.0.lock() = SeatState::Waiting(Some(waker));
                return seat;
            }
        }
        Seat::new(waker)
    }

    /// Queues a waiter: a new caller (`ticket: None`) at the back, one going round again in
    /// the place its ticket earned. `deadline` is for the pool-wide timer.
    pub(crate) fn push(
        &mut self,
        ticket: Option<u64>,
        waker: Waker,
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
        let seat = self.seat(waker);
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

    /// Gives a popped place's seat `value`; the seat becomes spare. Returns its waker.
    fn serve(&mut self, place: Place<T>, value: T) -> Option<Waker> {
        let waker = place.seat.fill(value);
        self.spare.push_back(place.seat);
        waker
    }

    /// Hands `value` (as `wrap` makes it a `T`) to the oldest waiter; returns the waker to call
    /// once the lock is released and when that waiter queued. `Err(value)`, unwrapped, if
    /// nobody is waiting.
    #[inline]
    pub(crate) fn hand_off<V>(
        &mut self,
        value: V,
        wrap: impl FnOnce(V) -> T,
    ) -> Result<(Option<Waker>, Instant), V> {
        let Some(place) = self.queue.pop_front() else {
            return Err(value);
        };
        let since = place.since;
        Ok((self.serve(place, wrap(value)), since))
    }

    /// Hands every queued waiter the value `make` builds; pushes their wakers to `wake`.
    /// Returns how many there were.
    pub(crate) fn fail_all(&mut self, mut make: impl FnMut() -> T, wake: &mut Vec<Waker>) -> usize {
        let mut n = 0;
        while let Some(place) = self.queue.pop_front() {
            wake.extend(self.serve(place, make()));
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
                    wake.extend(self.serve(place, value));
                }
                // Deadlines are in queue order: nothing behind this one is due.
                Some(d) => return Some(d),
            }
        }
        None
    }

    /// The waiter with `seat` leaves: returns what it had been handed, if anything; a
    /// still-waiting one leaves the queue.
    pub(crate) fn remove(&mut self, seat: &Seat<T>) -> Option<T> {
        if let Some(pos) = self.queue.iter().position(|p| p.seat.is(seat)) {
            let place = self.queue.remove(pos).expect("the place was just found");
            *place.seat.0.lock() = SeatState::Empty;
            self.spare.push_back(place.seat);
            return None;
        }
        seat.take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use super::Waiters;
    use crate::rt::Instant;

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
        let a = w.push(None, waker().0, t0, None);
        let b = w.push(None, waker().0, t0, None);
        assert_eq!(
            w.hand_off("one", |v| v).ok().map(|(w, _)| w.is_some()),
            Some(true)
        );
        assert_eq!(a.seat.poll(&waker().0), Some("one"));
        // `a` goes round again with its ticket: ahead of `b`.
        let a2 = w.push(Some(a.ticket), waker().0, t0, None);
        assert_eq!(a2.ticket, a.ticket);
        let _ = w.hand_off("two", |v| v);
        assert_eq!(a2.seat.poll(&waker().0), Some("two"));
        assert_eq!(b.seat.poll(&waker().0), None, "b still waits");
        assert_eq!(w.len(), 1);
        assert_eq!(w.remove(&b.seat), None);
        assert!(w.is_empty());
        assert!(matches!(w.hand_off("three", |v| v), Err("three")));
    }

    #[test]
    fn a_seat_is_reused_only_once_its_caller_has_let_it_go() {
        let t0 = Instant::now();
        let mut w: Waiters<u32> = Waiters::new();
        let a = w.push(None, waker().0, t0, None);
        let _ = w.hand_off(1, |v| v);
        // `a` still holds its seat (it has not taken its value): a new waiter gets another.
        let b = w.push(None, waker().0, t0, None);
        assert!(!b.seat.is(&a.seat));
        assert_eq!(a.seat.poll(&waker().0), Some(1));
        drop(a);
        let _ = w.hand_off(2, |v| v);
        assert_eq!(b.seat.poll(&waker().0), Some(2));
        let b_seat = b.seat.share();
        drop(b);
        // `b`'s caller still holds a share: not reused. Once it lets go, it is.
        let c = w.push(None, waker().0, t0, None);
        assert!(!c.seat.is(&b_seat));
        drop(b_seat);
        let d = w.push(None, waker().0, t0, None);
        assert_eq!(d.seat.poll(&waker().0), None, "a reused seat waits afresh");
        assert_eq!(w.len(), 2);
        let _ = w.hand_off(3, |v| v);
        assert_eq!(c.seat.poll(&waker().0), Some(3), "FIFO across reused seats");
    }

    #[test]
    fn expire_fails_due_waiters_in_order_and_skips_own_timers() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w: Waiters<Result<&str, Instant>> = Waiters::new();
        let own = w.push(None, waker().0, t0, None);
        let (wa, fa) = waker();
        let a = w.push(None, wa, t0, Some(t0 + s));
        let b = w.push(None, waker().0, t0, Some(t0 + 3 * s));
        let mut wake = Vec::new();
        assert_eq!(w.expire(t0, Err, &mut wake), Some(t0 + s));
        assert!(wake.is_empty());
        assert_eq!(w.expire(t0 + s, Err, &mut wake), Some(t0 + 3 * s));
        assert_eq!(wake.len(), 1);
        wake.drain(..).for_each(Waker::wake);
        assert!(woken(&fa));
        assert_eq!(w.remove(&a.seat), Some(Err(t0)));
        assert_eq!(w.len(), 2, "the own-timer waiter and b remain");
        assert_eq!(w.expire(t0 + 10 * s, Err, &mut wake), None);
        assert_eq!(w.remove(&b.seat), Some(Err(t0)));
        assert_eq!(w.remove(&own.seat), None, "still waiting");
        assert!(w.is_empty());
    }

    #[test]
    fn a_later_arrival_never_gets_an_earlier_deadline() {
        let t0 = Instant::now();
        let mut w: Waiters<()> = Waiters::new();
        let first = w.push(None, waker().0, t0, Some(t0 + Duration::from_millis(10)));
        let second = w.push(None, waker().0, t0, Some(t0 + Duration::from_millis(9)));
        assert_eq!(second.deadline, first.deadline);
    }

    #[test]
    fn fail_all_empties_the_queue_and_collects_wakers() {
        let t0 = Instant::now();
        let mut w: Waiters<u8> = Waiters::new();
        let seats: Vec<_> = (0..3)
            .map(|_| w.push(None, waker().0, t0, None).seat)
            .collect();
        let mut wake = Vec::new();
        assert_eq!(w.fail_all(|| 7, &mut wake), 3);
        assert_eq!(wake.len(), 3);
        assert!(w.is_empty());
        for s in seats {
            assert_eq!(w.remove(&s), Some(7));
        }
    }
}
