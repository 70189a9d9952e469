//! The FIFO queue of callers waiting for a connection, generic over what a waiter is handed.
//!
//! # Implementation details
//!
//! Each waiter owns a slot in a [`Slab`], so queueing and leaving reuse memory and allocate
//! nothing once the slab has grown to the peak number of waiters. `queue` holds `(ticket, key)`
//! for the slots still waiting, sorted by ticket: a caller draws a ticket when it first queues
//! and keeps it if it has to queue again (its connection failed the health check), so it goes
//! back to the place its arrival earned, ahead of later callers.
//!
//! A slot is `Waiting` (with the waker to call) until it is popped from the queue and
//! `Done` with what it was handed: a connection, or an error (a fatal connect error, the pool
//! closing, its wait timing out). Only the waiter that owns the key frees it, so keys never
//! alias.
//!
//! **Deadlines.** A waiter under the pool-wide wait timeout keeps its deadline in its slot.
//! Every such waiter waits the same time, and tickets follow arrival, so these deadlines are in
//! queue order: the oldest expires first, and one timer sleeping until the head's deadline
//! serves the whole queue ([`Waiters::expire`]). A new arrival's deadline is never set earlier
//! than the one queued before it (two callers read the clock a few nanoseconds apart and may
//! take the lock in the other order), which keeps the order exact. Waiters with a timeout of
//! their own (`get_timeout`) or none have no deadline here and are skipped by the timer.
//!
//! Everything here is guarded by the pool's state lock.

use std::collections::VecDeque;
use std::task::Waker;

use crate::rt::Instant;
use crate::slab::Slab;

enum SlotState<T> {
    /// Still queued; the waker of the task to wake on hand-off.
    Waiting(Option<Waker>),
    /// Handed something; waits for its owner to take it.
    Done(T),
}

struct Slot<T> {
    state: SlotState<T>,
    /// When the pool-wide timer expires this waiter; `None` if it keeps its own timer or waits
    /// forever.
    deadline: Option<Instant>,
    /// When this caller first queued.
    since: Instant,
}

/// Where a queued waiter ended up.
pub(crate) struct Queued {
    pub(crate) key: usize,
    pub(crate) ticket: u64,
    /// The deadline stored in the slot, if any (possibly a few nanoseconds later than asked).
    pub(crate) deadline: Option<Instant>,
}

pub(crate) struct Waiters<T> {
    slots: Slab<Slot<T>>,
    queue: VecDeque<(u64, usize)>,
    next_ticket: u64,
    /// The deadline of the latest new arrival: later arrivals never get an earlier one.
    last_deadline: Option<Instant>,
}

impl<T> Waiters<T> {
    pub(crate) fn new() -> Self {
        Waiters {
            slots: Slab::new(),
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
        waker: Waker,
        since: Instant,
        deadline: Option<Instant>,
    ) -> Queued {
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
        let key = self.slots.insert(Slot {
            state: SlotState::Waiting(Some(waker)),
            deadline,
            since,
        });
        match self.queue.back() {
            Some(&(last, _)) if last > ticket => {
                let at = self.queue.partition_point(|&(other, _)| other < ticket);
                self.queue.insert(at, (ticket, key));
            }
            _ => self.queue.push_back((ticket, key)),
        }
        Queued {
            key,
            ticket,
            deadline,
        }
    }

    /// The waiter `key` looks at its slot: `None` while it still waits (its waker is updated),
    /// or what it was handed (the slot is freed).
    #[inline]
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Option<T> {
        let slot = self.slots.get_mut(key)?;
        if let SlotState::Waiting(current) = &mut slot.state {
            match current {
                Some(w) if w.will_wake(waker) => {}
                _ => *current = Some(waker.clone()),
            }
            return None;
        }
        self.remove(key)
    }

    /// Hands `value` (as `wrap` makes it a `T`) to the oldest waiter and returns the waker to
    /// call once the lock is released; `Err(value)`, unwrapped, if nobody is waiting.
    #[inline]
    pub(crate) fn hand_off<V>(
        &mut self,
        value: V,
        wrap: impl FnOnce(V) -> T,
    ) -> Result<Option<Waker>, V> {
        let Some((_, key)) = self.queue.pop_front() else {
            return Err(value);
        };
        Ok(self.fill(key, wrap(value)))
    }

    /// Hands every queued waiter the value `make` builds; pushes their wakers to `wake`.
    pub(crate) fn fail_all(&mut self, mut make: impl FnMut() -> T, wake: &mut Vec<Waker>) {
        while let Some((_, key)) = self.queue.pop_front() {
            wake.extend(self.fill(key, make()));
        }
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
        while let Some(&(_, key)) = self.queue.get(i) {
            let slot = self.slots.get(key).expect("a queued key names a slot");
            match slot.deadline {
                // A waiter with its own timer (or none): not this timer's business.
                None => i += 1,
                Some(d) if d <= now => {
                    let since = slot.since;
                    self.queue.remove(i);
                    wake.extend(self.fill(key, make(since)));
                }
                // Deadlines are in queue order: nothing behind this one is due.
                Some(d) => return Some(d),
            }
        }
        None
    }

    fn fill(&mut self, key: usize, value: T) -> Option<Waker> {
        let slot = self.slots.get_mut(key).expect("a queued key names a slot");
        match std::mem::replace(&mut slot.state, SlotState::Done(value)) {
            SlotState::Waiting(waker) => waker,
            SlotState::Done(_) => unreachable!("a queued key always names a waiting slot"),
        }
    }

    /// The waiter `key` leaves: frees its slot and returns what it had been handed, if
    /// anything; a still-waiting one also leaves the queue.
    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        match self.slots.remove(key)?.state {
            SlotState::Done(value) => Some(value),
            SlotState::Waiting(_) => {
                if let Some(pos) = self.queue.iter().position(|&(_, k)| k == key) {
                    self.queue.remove(pos);
                }
                None
            }
        }
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
            w.hand_off("one", |v| v).ok().map(|w| w.is_some()),
            Some(true)
        );
        assert_eq!(w.remove(a.key), Some("one"));
        // `a` goes round again with its ticket: ahead of `b`.
        let a2 = w.push(Some(a.ticket), waker().0, t0, None);
        assert_eq!(a2.ticket, a.ticket);
        let _ = w.hand_off("two", |v| v);
        assert_eq!(w.poll(a2.key, &waker().0), Some("two"));
        assert_eq!(w.poll(b.key, &waker().0), None, "b still waits");
        assert_eq!(w.len(), 1);
        assert_eq!(w.remove(b.key), None);
        assert!(w.is_empty());
        assert!(matches!(w.hand_off("three", |v| v), Err("three")));
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
        assert_eq!(w.remove(a.key), Some(Err(t0)));
        assert_eq!(w.len(), 2, "the own-timer waiter and b remain");
        assert_eq!(w.expire(t0 + 10 * s, Err, &mut wake), None);
        assert_eq!(w.remove(b.key), Some(Err(t0)));
        assert_eq!(w.remove(own.key), None, "still waiting");
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
        let keys: Vec<_> = (0..3)
            .map(|_| w.push(None, waker().0, t0, None).key)
            .collect();
        let mut wake = Vec::new();
        w.fail_all(|| 7, &mut wake);
        assert_eq!(wake.len(), 3);
        assert!(w.is_empty());
        for k in keys {
            assert_eq!(w.remove(k), Some(7));
        }
    }
}
