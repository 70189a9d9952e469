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
//! **Leaving.** A caller that leaves (cancelled, or its own timer fired) is found by its ticket
//! (first where consecutive tickets would put it, else by a binary search), and its place is
//! emptied where it stands: nothing behind it moves.
//! Emptied places at either end are dropped at once; those in the middle once they outnumber
//! the waiting ones, by one compaction. So a storm of cancellations costs a logarithmic search
//! each, whatever the order, and the queue never holds more than about twice its waiters.
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

use crate::clock::Instant;
use crate::seats::Seat;

/// A place in line: a waiting caller's, or, emptied (`seat: None`), one whose caller has gone.
struct Place<T> {
    ticket: u64,
    /// When the pool-wide timer expires this waiter; `None` if it keeps its own timer or waits
    /// forever.
    deadline: Option<Instant>,
    /// When this caller first queued.
    since: Instant,
    /// `None` once its caller has left or been served out of turn (the timer): the place is
    /// kept, so nothing behind it moves, until it reaches either end or the queue is compacted.
    seat: Option<Seat<T>>,
}

/// Where a queued waiter ended up.
pub(crate) struct Queued<T> {
    pub(crate) seat: Seat<T>,
    pub(crate) ticket: u64,
    /// The deadline stored in its place, if any (possibly a few nanoseconds later than asked).
    pub(crate) deadline: Option<Instant>,
}

/// Emptied places are compacted away once there are more of them than this and than
/// waiting ones.
const COMPACT_AFTER: usize = 32;

#[repr(C)]
pub(crate) struct Waiters<T> {
    /// Places in ticket order, waiting ones and emptied ones; the front and the back are
    /// always waiting ones.
    queue: VecDeque<Place<T>>,
    /// Places with a seat: the callers still queued.
    waiting: usize,
    /// Tickets issued so far: one per caller that has queued (`Stats::requests_queued`).
    next_ticket: u64,
    /// The deadline of the latest new arrival: later arrivals never get an earlier one.
    last_deadline: Option<Instant>,
}

impl<T> Waiters<T> {
    /// The bytes at its start that a hand-off touches (the queue and the count of callers
    /// still in it); an arrival also writes the rest.
    #[cfg(test)]
    pub(crate) const HAND_OFF_BYTES: usize =
        std::mem::offset_of!(Waiters<T>, waiting) + std::mem::size_of::<usize>();

    pub(crate) fn new() -> Self {
        Waiters {
            queue: VecDeque::new(),
            waiting: 0,
            next_ticket: 0,
            last_deadline: None,
        }
    }

    /// Callers still queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// Tickets issued so far: every caller that has queued took one, once.
    pub(crate) fn tickets_issued(&self) -> u64 {
        self.next_ticket
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
        let again = ticket.is_some();
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
            seat: Some(seat),
        };
        // A new ticket is the highest issued: it goes at the back without a look at the
        // place there (a line the last hand-off or arrival may have written on another core).
        match self.queue.back() {
            Some(last) if again && last.ticket > ticket => {
                let at = self.queue.partition_point(|p| p.ticket < ticket);
                self.queue.insert(at, place);
            }
            _ => self.queue.push_back(place),
        }
        self.waiting += 1;
        queued
    }

    /// Gives a place popped under the lock `value` at once (the rare paths); its seat is
    /// dropped, not reused. Returns its waker.
    fn serve(seat: Seat<T>, value: T) -> Option<Waker> {
        match seat.fill(value) {
            Ok(waker) => waker,
            Err(_) => unreachable!("a caller leaves a queued place under the lock, never its seat"),
        }
    }

    /// The oldest waiting place, out of the queue: its seat and when it queued.
    #[inline(always)]
    fn pop_front(&mut self) -> Option<(Seat<T>, Instant)> {
        let place = self.queue.pop_front()?;
        let seat = place
            .seat
            .expect("the front of the queue is a waiting place");
        self.waiting -= 1;
        self.trim();
        Some((seat, place.since))
    }

    /// Drops emptied places from both ends, and compacts the queue once they outnumber the
    /// waiting ones (amortised: a compaction drops at least as many emptied places as it
    /// moves waiting ones). With no emptied place, the common case, it only compares counts.
    #[inline]
    fn trim(&mut self) {
        if self.queue.len() == self.waiting {
            return;
        }
        while self.queue.front().is_some_and(|p| p.seat.is_none()) {
            self.queue.pop_front();
        }
        while self.queue.back().is_some_and(|p| p.seat.is_none()) {
            self.queue.pop_back();
        }
        let emptied = self.queue.len() - self.waiting;
        if emptied > COMPACT_AFTER && emptied > self.waiting {
            self.queue.retain(|p| p.seat.is_some());
        }
    }

    /// The hot path's hand-off: pops the oldest waiter's place, for its seat to be filled
    /// once the lock is released. Returns the seat and when that waiter queued.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<(Seat<T>, Instant)> {
        self.pop_front()
    }

    /// Hands `value` (as `wrap` makes it a `T`) to the oldest waiter at once, under the lock;
    /// returns the waker to call once the lock is released and when that waiter queued.
    /// `Err(value)`, unwrapped, if nobody is waiting.
    pub(crate) fn hand_off<V>(
        &mut self,
        value: V,
        wrap: impl FnOnce(V) -> T,
    ) -> Result<(Option<Waker>, Instant), V> {
        let Some((seat, since)) = self.pop_front() else {
            return Err(value);
        };
        Ok((Self::serve(seat, wrap(value)), since))
    }

    /// The wakers of every queued waiter, left queued.
    pub(crate) fn wakers(&self, wake: &mut Vec<Waker>) {
        for seat in self.queue.iter().filter_map(|p| p.seat.as_ref()) {
            wake.extend(seat.waker());
        }
    }

    /// Hands every queued waiter the value `make` builds; pushes their wakers to `wake`.
    /// Returns how many there were.
    pub(crate) fn fail_all(&mut self, mut make: impl FnMut() -> T, wake: &mut Vec<Waker>) -> usize {
        let mut n = 0;
        for place in self.queue.drain(..) {
            if let Some(seat) = place.seat {
                wake.extend(Self::serve(seat, make()));
                n += 1;
            }
        }
        self.waiting = 0;
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
        let mut next = None;
        for place in self.queue.iter_mut() {
            if place.seat.is_none() {
                continue;
            }
            match place.deadline {
                // A waiter with its own timer (or none): not this timer's business.
                None => {}
                Some(d) if d <= now => {
                    let seat = place.seat.take().expect("a waiting place");
                    self.waiting -= 1;
                    wake.extend(Self::serve(seat, make(place.since)));
                }
                // Deadlines are in queue order: nothing behind this one is due.
                Some(d) => {
                    next = Some(d);
                    break;
                }
            }
        }
        self.trim();
        next
    }

    /// The waiter with `seat` and `ticket` wants out: still queued, it leaves the queue (found
    /// by its ticket, in logarithmic time; its place is emptied, nothing else moves); else its
    /// place was popped, and it was either handed something already or is about to be.
    pub(crate) fn remove(&mut self, seat: &Seat<T>, ticket: u64) -> Out<T> {
        // Tickets are consecutive until a caller goes round again or a compaction runs, so
        // the place is most often exactly `ticket - front` places in: looked at first.
        let guess = self
            .queue
            .front()
            .and_then(|f| usize::try_from(ticket.checked_sub(f.ticket)?).ok())
            .filter(|&i| self.queue.get(i).is_some_and(|p| p.ticket == ticket));
        let at = guess.unwrap_or_else(|| self.queue.partition_point(|p| p.ticket < ticket));
        let place = self
            .queue
            .get_mut(at)
            .filter(|p| p.ticket == ticket && p.seat.as_ref().is_some_and(|s| s.is(seat)));
        if let Some(place) = place {
            // The queue's handle goes; the caller's goes right after (it is leaving), and the
            // seat with its waker with it, outside the lock: nothing to clear here.
            place.seat = None;
            self.waiting -= 1;
            self.trim();
            return Out::Removed;
        }
        debug_assert!(
            !self
                .queue
                .iter()
                .any(|p| p.seat.as_ref().is_some_and(|s| s.is(seat))),
            "a queued seat is found by its ticket"
        );
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
    use crate::clock::Instant;
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
        assert!(matches!(w.remove(&b.seat, b.ticket), Out::Removed));
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
        assert!(matches!(w.remove(&a.seat, a.ticket), Out::Handed(Err(t)) if t == t0));
        assert_eq!(w.len(), 2, "the own-timer waiter and b remain");
        assert_eq!(w.expire(t0 + 10 * s, Err, &mut wake), None);
        assert!(matches!(w.remove(&b.seat, b.ticket), Out::Handed(Err(t)) if t == t0));
        assert!(
            matches!(w.remove(&own.seat, own.ticket), Out::Removed),
            "still waiting"
        );
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
            .map(|_| w.push(None, Seat::new(waker().0), t0, None))
            .collect();
        let mut wake = Vec::new();
        assert_eq!(w.fail_all(|| 7, &mut wake), 3);
        assert_eq!(wake.len(), 3);
        assert!(w.is_empty());
        for s in seats {
            assert!(matches!(w.remove(&s.seat, s.ticket), Out::Handed(7)));
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
        assert!(matches!(w.remove(&a.seat, a.ticket), Out::InFlight));
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

    /// Places left emptied in the middle never pile up: a waiter that stays at the front while
    /// thousands arrive behind it and leave keeps the queue at a bounded length.
    #[test]
    fn leavers_behind_a_waiter_that_stays_are_compacted_away() {
        let t0 = Instant::now();
        let mut w: Waiters<u8> = Waiters::new();
        let stays = w.push(None, Seat::new(waker().0), t0, None);
        let mut last = w.push(None, Seat::new(waker().0), t0, None);
        for _ in 0..10_000 {
            let newer = w.push(None, Seat::new(waker().0), t0, None);
            // The one before it leaves: its place is in the middle, not at either end.
            assert!(matches!(w.remove(&last.seat, last.ticket), Out::Removed));
            last = newer;
            assert_eq!(w.len(), 2);
            assert!(w.queue.len() <= 2 * w.len() + super::COMPACT_AFTER + 1);
        }
        let (seat, _) = w.pop().expect("the first waiter");
        assert!(seat.is(&stays.seat));
        let (seat, _) = w.pop().expect("the last one");
        assert!(seat.is(&last.seat));
        assert!(w.pop().is_none());
    }

    /// Against a plain model (a list sorted by ticket), over a long random run of arrivals,
    /// returns with an earned ticket, leavers, hand-offs and expiries: the same waiters are
    /// queued, in the same order, and a leaver is found wherever it stands.
    #[test]
    fn the_queue_matches_a_sorted_list_under_random_arrivals_and_leavers() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w: Waiters<u32> = Waiters::new();
        // (ticket, seat, deadline) of every waiting caller, in ticket order.
        let mut model: Vec<(u64, Seat<u32>, Option<Instant>)> = Vec::new();
        // Tickets served and free to come back (a failed check), with their deadline.
        let mut served: Vec<(u64, Option<Instant>)> = Vec::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut clock = 0u64;
        for step in 0..20_000u32 {
            match next(10) {
                0..=3 => {
                    clock += 1;
                    let deadline = (next(2) == 0).then(|| t0 + ms(clock + 50));
                    let q = w.push(None, Seat::new(waker().0), t0, deadline);
                    model.push((q.ticket, q.seat, q.deadline));
                }
                4 if !served.is_empty() => {
                    let (ticket, deadline) = served.swap_remove(next(served.len() as u64) as usize);
                    let q = w.push(Some(ticket), Seat::new(waker().0), t0, deadline);
                    let at = model.partition_point(|m| m.0 < ticket);
                    model.insert(at, (ticket, q.seat, q.deadline));
                }
                5..=6 if !model.is_empty() => {
                    let (ticket, seat, _) = model.remove(next(model.len() as u64) as usize);
                    assert!(
                        matches!(w.remove(&seat, ticket), Out::Removed),
                        "step {step}"
                    );
                    // A second look finds it gone, and nothing was handed to it.
                    assert!(matches!(w.remove(&seat, ticket), Out::InFlight));
                }
                7 => {
                    let popped = w.pop();
                    match model.first() {
                        None => assert!(popped.is_none(), "step {step}"),
                        Some(_) => {
                            let (ticket, seat, deadline) = model.remove(0);
                            let (got, _) = popped.expect("a waiter");
                            assert!(got.is(&seat), "step {step}: the oldest ticket first");
                            served.push((ticket, deadline));
                        }
                    }
                }
                8 => {
                    let now = t0 + ms(clock.saturating_sub(next(60)) + 50);
                    let mut wake = Vec::new();
                    // Due deadlines among new arrivals are in queue order, so only those
                    // before the first one not yet due expire (a returning ticket may carry
                    // an earlier deadline; it waits for the timer's next pass, as queued).
                    let mut expect = Vec::new();
                    let mut kept = Vec::new();
                    let mut stop = false;
                    for m in model.drain(..) {
                        match m.2 {
                            Some(d) if !stop && d <= now => expect.push(m),
                            Some(_) => {
                                stop = true;
                                kept.push(m);
                            }
                            None => kept.push(m),
                        }
                    }
                    model = kept;
                    let next_deadline = w.expire(now, |_| 0, &mut wake);
                    assert_eq!(wake.len(), expect.len(), "step {step}");
                    for (_, seat, _) in &expect {
                        assert_eq!(seat.poll(&waker().0), Some(0), "step {step}");
                    }
                    let first_kept = model.iter().find_map(|m| m.2).filter(|_| stop);
                    assert_eq!(next_deadline, first_kept, "step {step}");
                }
                _ => {}
            }
            assert_eq!(w.len(), model.len(), "step {step}");
            assert_eq!(w.is_empty(), model.is_empty());
        }
        // Whatever is left comes out in ticket order.
        for (_, seat, _) in model {
            let (got, _) = w.pop().expect("still queued");
            assert!(got.is(&seat));
        }
        assert!(w.pop().is_none());
    }
}
